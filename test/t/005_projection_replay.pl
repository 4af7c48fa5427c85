# Two materializers replay offsets 1..N of one partition at the same time
# (pgbench, two clients): every offset is applied exactly once, by one of
# them, and the watermark ends at N.  The same for the batch form.  Speed is
# measured by the benchmark suite (test/bench), not here.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 2000;          # offsets replayed by each client
my $batch = 50;        # events per batch call

my $node = PostgreSQL::Test::Cluster->new('projection_replay');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	CREATE TABLE applied_log (projection text, "offset" bigint, client int);
});

# Each pgbench client keeps its own :off, so both replay 1..N in order.  The
# one that falls behind gets a race WARNING (once a minute); silence it.
local $ENV{PGOPTIONS} = '-c client_min_messages=error';
$node->pgbench(
	"-n -c 2 -j 2 -t $n -D off=0",
	0,
	[qr{processed: @{[2 * $n]}/@{[2 * $n]}}],
	[qr{^$}],
	'two clients replay the same offsets one by one',
	{
		'005_single' => q{
\set off :off + 1
INSERT INTO applied_log
  SELECT 'single', :off, :client_id
    FROM ptm.apply_projection('replay', 0, :off, 'k' || (:off % 37), jsonb_build_object('off', :off))
   WHERE result = 'applied';
}
	});

# What two replaying clients must have left behind: in applied_log under
# $label, every offset 1..N once; the watermark at N with the other N calls
# skipped; each row holding the event that wrote it, the last one included.
sub check_replay
{
	my ($label, $projection) = @_;
	is($node->safe_psql('postgres',
		"SELECT count(*) || '/' || count(DISTINCT \"offset\") || '/' || min(\"offset\") || '/' || max(\"offset\")
		   FROM applied_log WHERE projection = '$label'"),
		"$n/$n/1/$n", "$label: each offset applied exactly once");
	is($node->safe_psql('postgres',
		"SELECT \"offset\" || '/' || applied_count || '/' || (duplicate_count + regression_count)
		   FROM ptm.projection_watermarks WHERE projection = '$projection'"),
		"$n/$n/$n", "$label: watermark at N, the other N events skipped");
	is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE (data->>'off')::bigint <> source_offset) || '/' || max(source_offset)
		   FROM ptm.workflow_projection WHERE projection = '$projection'"),
		"0/$n", "$label: every row holds the event that wrote it, the last one included");
}
check_replay('single', 'replay');

my $calls = $n / $batch;
$node->pgbench(
	"-n -c 2 -j 2 -t $calls -D b=0",
	0,
	[qr{processed: @{[2 * $calls]}/@{[2 * $calls]}}],
	[qr{^$}],
	'two clients replay the same offsets in batches',
	{
		'005_batch' => qq{
\\set b :b + 1
INSERT INTO applied_log
  SELECT 'batch', a."offset", :client_id
    FROM (SELECT array_agg(g ORDER BY g) AS offs,
                 array_agg('k' || (g % 37) ORDER BY g) AS keys,
                 array_agg(jsonb_build_object('off', g) ORDER BY g) AS datas
            FROM generate_series((:b - 1) * $batch + 1, :b * $batch) g) e,
         ptm.apply_projection_batch('replay_batch', 0, e.offs, e.keys, e.datas) a
   WHERE a.result = 'applied';
}
	});

check_replay('batch', 'replay_batch');

$node->stop;
done_testing();
