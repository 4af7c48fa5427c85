# Two materializers replay offsets 1..N of one partition at the same time
# (pgbench, two clients): every offset is applied exactly once, by one of
# them, and the watermark ends at N.  The same for the batch form.  Then a
# rough benchmark: one apply against the hand-written upsert plus watermark
# update, and a batch of 500 against 500 single calls.
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
# loser of each race gets a regression WARNING; silence them.
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

# Benchmark, one client, one event per transaction as a materializer without
# batching runs it: ptm.apply_projection() against the hand-written upsert
# plus watermark update (as two statements, and as one PL/pgSQL call), and
# batches of 500.  Best of three rounds; the machine may be busy, so the
# bounds are wide: they catch a pathology, the numbers are in the log.
$node->safe_psql('postgres', q{
	CREATE TABLE hand_rows (projection text, key text, data jsonb, source_partition int,
	                        source_offset bigint, updated_at timestamptz, PRIMARY KEY (projection, key));
	CREATE TABLE hand_wm (projection text, partition_id int, "offset" bigint, updated_at timestamptz,
	                      PRIMARY KEY (projection, partition_id));
	CREATE FUNCTION hand_apply(p text, o bigint) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	  INSERT INTO hand_rows VALUES (p, 'k' || (o % 37), jsonb_build_object('off', o), 0, o, now())
	    ON CONFLICT (projection, key) DO UPDATE
	    SET data = EXCLUDED.data, source_offset = EXCLUDED.source_offset, updated_at = EXCLUDED.updated_at;
	  UPDATE hand_wm SET "offset" = o, updated_at = now()
	   WHERE projection = p AND partition_id = 0 AND "offset" < o;
	END $$;
});
my $dir = PostgreSQL::Test::Utils::tempdir;
my $events = 3000;
sub tps
{
	my ($name, $txns, $script) = @_;
	open my $f, '>', "$dir/$name.sql" or die;
	print $f $script;
	close $f;
	my ($out, $err) = run_command(['pgbench', '-n', '-M', 'prepared', '-c', '1', '-t', $txns,
		'-D', 'off=0', '-f', "$dir/$name.sql", $node->connstr('postgres')]);
	my ($tps) = $out =~ /tps = ([\d.]+)/;
	die "pgbench $name failed: $err" unless defined $tps;
	return $tps;
}
my (%best);
for my $round (1 .. 3)
{
	$node->safe_psql('postgres', "INSERT INTO hand_wm VALUES ('h$round', 0, 0, now()), ('p$round', 0, 0, now())");
	my %t = (
		hand_sql => tps("hand_sql$round", $events, qq{\\set off :off + 1
INSERT INTO hand_rows VALUES ('h$round', 'k' || (:off::bigint % 37), jsonb_build_object('off', :off::bigint), 0, :off::bigint, now())
  ON CONFLICT (projection, key) DO UPDATE
  SET data = EXCLUDED.data, source_offset = EXCLUDED.source_offset, updated_at = EXCLUDED.updated_at;
UPDATE hand_wm SET "offset" = :off::bigint, updated_at = now()
 WHERE projection = 'h$round' AND partition_id = 0 AND "offset" < :off::bigint;
}),
		hand_plpgsql => tps("hand_plpgsql$round", $events, qq{\\set off :off + 1
SELECT hand_apply('p$round', :off::bigint);
}),
		apply => tps("apply$round", $events, qq{\\set off :off + 1
SELECT ptm.apply_projection('bench$round', 0, :off::bigint, 'k' || (:off::bigint % 37), jsonb_build_object('off', :off::bigint));
}),
		batch => 500 * tps("batch$round", $events / 500, qq{\\set off :off + 1
SELECT count(*) FROM ptm.apply_projection_batch('bench_batch$round', 0,
  (SELECT array_agg((:off - 1) * 500 + g ORDER BY g) FROM generate_series(1, 500) g),
  (SELECT array_agg('k' || (((:off - 1) * 500 + g) % 37) ORDER BY g) FROM generate_series(1, 500) g),
  (SELECT array_agg(jsonb_build_object('off', (:off - 1) * 500 + g) ORDER BY g) FROM generate_series(1, 500) g));
}));
	for my $k (keys %t) { $best{$k} = $t{$k} if !defined $best{$k} || $t{$k} > $best{$k}; }
}
note(sprintf('%-45s %8.0f events/s', $_, $best{$_})) for qw(hand_sql hand_plpgsql apply batch);
cmp_ok($best{apply}, '>', $best{hand_sql} / 3,
	'one apply is in the range of the hand-written two statements');
cmp_ok($best{batch}, '>', 3 * $best{apply},
	'a batch of 500 is several times cheaper per event than single calls');

$node->stop;
done_testing();
