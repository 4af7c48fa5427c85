# Crash in the middle of a concurrent workload.  pgbench clients commit
# workflow versions (try_commit with an action id), take short leases and
# advance projection watermarks; after each call returned to the client, the
# client appends what it was told (ok and the version, acquired and the epoch,
# applied and the offset) to a log file outside the database.  The postmaster
# is stopped with -m immediate mid-run and started again.  Then every outcome
# in the client log must be in the database: versions at least the reported
# ones and the action ids remembered with them, epochs and watermarks never
# below what was handed out, new epochs above all of them, and the counters
# started again from zero with a new stats_reset.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
max_connections = 30
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	SELECT ptm.try_commit('wf-' || k, 0, '{"n": 0}') FROM generate_series(1, 8) k;});

my $dir = PostgreSQL::Test::Utils::tempdir;
my $log = "$dir/client.log";

# Each script runs one call in its own transaction (autocommit), so when it
# returns the outcome is committed; only then does \shell log it.  pgbench
# variables live on between a client's transactions: n and off count up.
my %scripts = (
	commit => qq{
\\set k random(1, 8)
\\set n :n + 1
SELECT CASE WHEN c.result = 'ok' THEN c.version ELSE 0 END AS v
  FROM ptm.workflow_state w,
       ptm.try_commit(w.workflow_key, w.version, jsonb_build_object('client', :client_id, 'n', :n),
                      'a-' || :client_id || '-' || :n) c
 WHERE w.workflow_key = 'wf-' || :k \\gset
\\if :v > 0
\\shell echo commit :k :v :client_id :n >> $log
\\endif
},
	lease => qq{
\\set p random(0, 3)
\\set a random(1, 16)
SELECT CASE WHEN result = 'acquired' THEN lease_epoch ELSE 0 END AS e
  FROM ptm.acquire_partition_lease('crash', :p, 'agent-' || :a, '20 ms') \\gset
\\if :e > 0
\\shell echo epoch :p :e >> $log
\\endif
},
	project => qq{
\\set off :off + 1
SELECT CASE WHEN result = 'applied' THEN watermark ELSE 0 END AS w
  FROM ptm.apply_projection('crash-view', :client_id, :off, 'k' || (:off % 7), jsonb_build_object('o', :off)) \\gset
\\if :w > 0
\\shell echo watermark :client_id :w >> $log
\\endif
},
);
my @files;
for my $name (sort keys %scripts)
{
	my $file = "$dir/$name.sql";
	open my $fh, '>', $file or die "$file: $!";
	print $fh $scripts{$name};
	close $fh;
	push @files, '-f', "$file\@" . ($name eq 'commit' ? 5 : 2);
}

my $stats_reset = $node->safe_psql('postgres', 'SELECT stats_reset FROM ptm.stat_info');
# The series this workload counts (the sweeper may count expirations at once
# after the restart, so those are left out).
my $counted_q = q{
	SELECT count(*) FROM ptm.metric_series
	 WHERE family IN ('ptm_commit_total', 'canonical_store_state_commits_total',
	                  'canonical_store_commit_latency_ms', 'lease_acquisitions_total',
	                  'projection_materializer_projections_materialized_total')
	   AND value <> 0};

# pgbench runs until the server goes away; it fails then, as it should.
my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '6', '-j', '2', '-T', '300', '-D', 'n=0', '-D', 'off=0', @files,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

# Crash once the log shows all three kinds of outcome in good numbers.
sub logged
{
	my %count = (commit => 0, epoch => 0, watermark => 0);
	if (open my $fh, '<', $log)
	{
		while (<$fh>) { $count{$1}++ if /^(\w+) /; }
		close $fh;
	}
	return \%count;
}
my $deadline = time() + 180;
while (time() < $deadline)
{
	my $c = logged();
	last if $c->{commit} >= 200 && $c->{epoch} >= 50 && $c->{watermark} >= 100;
	usleep(200_000);
}
my $c = logged();
ok($c->{commit} >= 200 && $c->{epoch} >= 50 && $c->{watermark} >= 100,
	"the workload ran ($c->{commit} commits, $c->{epoch} acquisitions, $c->{watermark} applies logged)");
my $counted = $node->safe_psql('postgres', $counted_q);
ok($counted >= 5, "the workload's counters counted before the crash ($counted series)");

$node->stop('immediate');
ok(!$bench->finish, 'pgbench was still running and was cut off by the crash')
  or diag($out, $err);
$node->start;

# The client log as a table.  Lines are complete: each is one small append.
my (@commits, @epochs, @marks);
open my $fh, '<', $log or die "$log: $!";
while (<$fh>)
{
	if (/^commit (\d+) (\d+) (\d+) (\d+)$/) { push @commits, "('wf-$1', $2, 'a-$3-$4')"; }
	elsif (/^epoch (\d+) (\d+)$/) { push @epochs, "($1, $2)"; }
	elsif (/^watermark (\d+) (\d+)$/) { push @marks, "($1, $2)"; }
	else { fail("unexpected line in the client log: $_"); }
}
close $fh;
note(scalar(@commits) . ' commits, ' . scalar(@epochs) . ' acquisitions, ' . scalar(@marks) . ' applies logged');
$node->safe_psql('postgres', 'CREATE TABLE logged_commits (key text, version bigint, action text);
	CREATE TABLE logged_epochs (partition_id int, epoch bigint);
	CREATE TABLE logged_marks (partition_id int, "offset" bigint);
	INSERT INTO logged_commits VALUES ' . join(',', @commits) . ';
	INSERT INTO logged_epochs VALUES ' . join(',', @epochs) . ';
	INSERT INTO logged_marks VALUES ' . join(',', @marks));

# Counters: a crash starts them again, and stats_reset says when.
is($node->safe_psql('postgres', $counted_q), '0', "after the crash the workload's counters start from zero");
my $reset_after = $node->safe_psql('postgres', 'SELECT stats_reset FROM ptm.stat_info');
ok($node->safe_psql('postgres', "SELECT '$reset_after'::timestamptz > '$stats_reset'::timestamptz") eq 't',
	"stats_reset moved forward ($stats_reset -> $reset_after)");

# Commits.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM logged_commits l JOIN ptm.workflow_state w ON w.workflow_key = l.key
	 WHERE w.version < l.version}),
	'0', 'every version a client was told ok is there (current version >= reported)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM logged_commits l LEFT JOIN ptm.action_dedup_log d
	    ON d.workflow_key = l.key AND d.action_id = l.action AND d.result_version = l.version
	 WHERE d.action_id IS NULL}),
	'0', 'every action a client was told ok is remembered with its version');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT key, version FROM logged_commits GROUP BY 1, 2 HAVING count(*) > 1) x}),
	'0', 'no version was reported ok twice');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ptm.workflow_state w
	 WHERE w.version <> 1 + (SELECT count(*) FROM ptm.action_dedup_log d WHERE d.workflow_key = w.workflow_key)}),
	'0', 'versions are contiguous: one per remembered action (nothing half-applied)');
is($node->safe_psql('postgres', q{
	SELECT string_agg(r, ' ') FROM (
	  SELECT DISTINCT c.result AS r FROM logged_commits l, ptm.try_commit(l.key, l.version - 1, '{}', l.action) c) x}),
	'duplicate', 'repeating any logged action after the crash is a duplicate');

# Epochs.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT epoch FROM logged_epochs GROUP BY 1 HAVING count(*) > 1) x}),
	'0', 'no epoch was handed out twice');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM logged_epochs l JOIN ptm.partition_leases p
	    ON p.topic = 'crash' AND p.partition_id = l.partition_id
	 WHERE p.lease_epoch < l.epoch}),
	'0', 'no lease epoch went back below one a client was given');
my $max_logged = $node->safe_psql('postgres', 'SELECT max(epoch) FROM logged_epochs');
# A lease never seen before takes the sequence's next value (force_expire would
# answer no_lease with the old epoch once the sweeper has marked them expired).
my $new = $node->safe_psql('postgres', q{
	SELECT lease_epoch FROM ptm.acquire_partition_lease('crash', 100, 'after-crash')});
ok($new > $max_logged, "epochs after the crash ($new) are above every epoch handed out before ($max_logged)");

# Watermarks.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT partition_id, max("offset") AS o FROM logged_marks GROUP BY 1) l
	  LEFT JOIN ptm.projection_watermarks w ON w.projection = 'crash-view' AND w.partition_id = l.partition_id
	 WHERE w."offset" IS NULL OR w."offset" < l.o}),
	'0', 'no watermark went back below an offset a client was told applied');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT a.result, ' ')
	  FROM (SELECT partition_id, max("offset") AS o FROM logged_marks GROUP BY 1) l,
	       ptm.apply_projection('crash-view', l.partition_id, l.o, 'k', '{}') a}),
	'duplicate', 'the last logged offset of each partition is a duplicate after the crash');

# And work goes on.
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT c.result, ' ') FROM ptm.workflow_state w,
	       ptm.try_commit(w.workflow_key, w.version, '{}') c}),
	'ok', 'commits continue from the recovered versions');

$node->stop;
done_testing();
