# Differential test of the C fast path (src/row_access.c) against the SQL
# path: test/differential/diff.py runs one seeded random sequence of lease and
# commit calls in lockstep in two databases of this node, diff_fast with
# ptm_lease.direct_row_access = on and diff_sql with it off, after each of a
# list of DBA changes to the ptm tables (CHECK constraints, triggers,
# publications, a logical slot, dropped, added and retyped columns, row
# security), and compares every outcome, then the tables, TOAST chunk counts
# and decoded changes.  One TAP test per scenario and seed: seed 1, and a seed
# from the clock (printed; PTM_DIFF_SEED=N repeats it).  PTM_DIFF_STEPS sets
# the steps per scenario (300).
#
# Then the harness itself must fail: --self-test runs both databases on the
# fast path and corrupts one outcome of diff_sql (or adds a row to its
# tables) on purpose, and diff.py must report that difference and exit
# non-zero.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $root  = $ENV{PTM_ROOT} // '.';
my $py    = '/usr/bin/python3';    # Debian's, with python3-psycopg
my $diff  = "$root/test/differential/diff.py";
my $steps = $ENV{PTM_DIFF_STEPS} // 300;
my @seeds = (1, $ENV{PTM_DIFF_SEED} // time);

my $node = PostgreSQL::Test::Cluster->new('differential');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'ptm_lease'
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
# no worker sweeps the test databases: it would move sweep_at in one of them
ptm_lease.database = ''
# a scenario that crashes a backend fails; the next ones run after recovery
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $_") for qw(diff_fast diff_sql);
my @conninfo = map { 'host=' . $node->host . ' port=' . $node->port . " dbname=$_" } qw(diff_fast diff_sql);

# diff.py with these arguments: (exit code, output)
sub diff_py
{
	my $out = '';
	IPC::Run::run([ $py, $diff, @_ ], '>', \$out, '2>&1');
	return ($? >> 8, $out);
}

my ($list_rc, $list) = diff_py('--list');
my @scenarios = split /\n/, $list;
ok($list_rc == 0 && @scenarios >= 12, 'diff.py lists its scenarios') or diag($list);

# One TAP test per "ok NAME: ..." or "FAIL NAME: ..." line; a FAIL's details
# (the first difference and the history before it) go to diag.
for my $seed (@seeds)
{
	note "seed $seed, $steps steps per scenario (PTM_DIFF_SEED=$seed PTM_DIFF_STEPS=$steps to repeat)";
	my ($rc, $out) = diff_py(@conninfo, $seed, $steps);
	my %seen;
	for my $block (split /^(?=(?:ok|FAIL) \S+: )/m, $out)
	{
		next unless $block =~ /^(ok|FAIL) (\S+): ([^\n]*)/;
		my ($verdict, $name, $line) = ($1, $2, $3);
		$seen{$name} = 1;
		if ($line =~ /# SKIP (.*)/)
		{
		  SKIP: { skip "seed $seed: $name: $1", 1; }
			next;
		}
		ok($verdict eq 'ok', "seed $seed: $name: $line") or diag($block);
	}
	my @missing = grep { !$seen{$_} } @scenarios;
	is("@missing", '', "seed $seed: every scenario reported") or diag($out);
	is($rc, (grep { /^FAIL / } split /\n/, $out) ? 1 : 0, "seed $seed: diff.py's exit code matches its lines")
	  or diag($out);
}

# The harness can fail: a difference injected on purpose is reported.
my ($rc, $out) = diff_py(@conninfo, 7, 60, 'stock', '--self-test', 'outcome');
ok($rc != 0 && $out =~ /^FAIL stock: first difference at step 30\n/m
	  && $out =~ /B \(direct on\): .*\{"result": "corrupted on purpose/,
	'self-test: a corrupted outcome of diff_sql is reported as the first difference, exit non-zero')
  or diag("exit $rc\n$out");
($rc, $out) = diff_py(@conninfo, 7, 60, 'stock', '--self-test', 'table');
ok($rc != 0 && $out =~ /^FAIL stock: first difference at the end of the scenario: table ptm\.workflow_state/m,
	'self-test: an extra row in diff_sql\'s tables is reported, exit non-zero')
  or diag("exit $rc\n$out");

$node->stop;
done_testing();
