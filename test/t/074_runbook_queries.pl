# The runbook steps answer their question (issue 18, item 9).  An incident is
# staged with real sessions (test/t/PtmClient.pm), then the queries are taken
# from docs/runbooks/partition-lease-conflicts.md as written (by section, with
# test/t/PtmDocs.pm) and run against it:
#
#   Option 6  "one agent holds every live lease": five dead owners whose
#             leases expired unswept, free partitions (agent_id NULL) and one
#             live agent: one row, the live agent.  Seed 002's
#             SELECT DISTINCT agent_id lists seven.
#   Step 5    a frozen holder (idle in a fenced transaction), a renewal waiting
#             for it (more than one lock on the lease table) and an operator's
#             open read: one row per session, the waiter blocked by the holder
#             and the holder blocking the waiter.  Joining pg_locks row by row,
#             as the runbook did, repeats the waiter.
#   Option 4  the holder has been idle longer than its lease's TTL (2 s) but
#             well under a minute: the runbook's query ends it and only it
#             (not the open read, not the waiter), and the waiting renewal
#             goes on.  The old fixed "> 1 minute" filter found nothing.
#
# No worker serves the test database (ptm_lease.database names another), so
# expired leases keep their owners and the holder is never ended for us.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PtmClient;
use PtmDocs;

my $root = $ENV{PTM_ROOT} or die 'PTM_ROOT is not set (run through test/run)';
my $runbook = "$root/docs/runbooks/partition-lease-conflicts.md";
my $TTL = 2;    # seconds: the frozen holder's lease
my $db = 'incident';

my $node = PostgreSQL::Test::Cluster->new('runbook');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'ptm_lease'
ptm_lease.database = 'postgres'
ptm_lease.holder_grace = -1
});
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, qq{CREATE EXTENSION ptm_lease;
	ALTER DATABASE $db SET search_path = "\$user", public, ptm;});

# A runbook query, as the on-call engineer pastes it: its rows, '|'-separated.
sub run_doc
{
	my ($sql) = @_;
	my $out = $node->safe_psql($db, $sql);
	return [ $out eq '' ? () : split /\n/, $out, -1 ];
}

# ---------------------------------------------------------------------------
# Option 6: who holds the live leases.
# ---------------------------------------------------------------------------
$node->safe_psql($db, q{
	SELECT ptm.ensure_partitions('orders', 12);
	SELECT ptm.acquire_partition_lease('orders', p, 'dead-' || p, '1 ms') FROM generate_series(1, 5) p;
	SELECT ptm.acquire_partition_lease('orders', p, 'survivor', '5 min') FROM generate_series(6, 8) p;
	SELECT pg_sleep(0.05);});
is($node->safe_psql($db, q{SELECT count(*) FROM ptm.partition_leases
	WHERE agent_id LIKE 'dead-%' AND state = 'active'}), '5', 'five dead owners still hold expired, unswept leases');
my $seed_rows = run_doc('SELECT DISTINCT agent_id FROM partition_leases');
is(scalar @$seed_rows, 7, "seed 002's SELECT DISTINCT agent_id lists the dead owners and NULL (7 rows), not the live one alone");
my $live = run_doc(ptm_doc_section_block($runbook, qr/^### Option 6\b/, 1));
is_deeply($live, ['survivor|3'], 'Option 6: one row, the agent that holds every live lease');

# ---------------------------------------------------------------------------
# Step 5: who holds and who waits.
# ---------------------------------------------------------------------------
my ($epoch) = $node->safe_psql($db, qq{SELECT lease_epoch FROM ptm.acquire_partition_lease('orders', 0, 'agent-frozen', '$TTL s')});
my $holder = PtmClient->new($node, $db, 'agent-frozen');
my ($out, $err) = $holder->query("BEGIN; SELECT ptm.check_fence('orders', 0, $epoch);");
is($err, '', 'the holder fenced orders-0 and stays in its transaction');
my $t_fence = time;

my $reader = PtmClient->new($node, $db, 'oncall-psql');
($out) = $reader->query('BEGIN; SELECT count(*) FROM ptm.lease_status;');
ok(defined $out, 'an operator leaves a read of the lease table open');

my $waiter = PtmClient->new($node, $db, 'agent-frozen-renew');
$waiter->query("SET ptm_lease.lock_wait_timeout = '1min'");
my $renew = $waiter->send("SELECT result FROM ptm.renew_lease('orders', 0, 'agent-frozen', $epoch)");
ok($node->poll_query_until($db, sprintf(q{SELECT %d = ANY (pg_blocking_pids(%d))},
	$holder->backend_pid, $waiter->backend_pid)), 'a renewal of the lease waits for the holder');

my ($hp, $wp, $rp) = map { $_->backend_pid } $holder, $waiter, $reader;
my %locks = map { split /\|/ } split /\n/, $node->safe_psql($db, q{
	SELECT pid, count(*) FROM pg_locks WHERE relation = 'ptm.partition_leases'::regclass GROUP BY pid});
ok(($locks{$wp} // 0) >= 2, "the waiter holds or waits for $locks{$wp} locks on the lease table");
my $per_lock = run_doc(q{
	SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	 WHERE l.relation = 'ptm.partition_leases'::regclass});
cmp_ok(scalar(grep { $_ eq $wp } @$per_lock), '>=', 2, 'a query joining pg_locks row by row repeats the waiter');

my $step5 = ptm_doc_section_block($runbook, qr/^### Step 5\b/, 1);
my %seen;
my %row;
for (@{ run_doc($step5) })
{
	my ($pid, $app, $state, $age, $modes, $blocked_by, $blocking) = split /\|/;
	$seen{$pid}++;
	$row{$pid} = { app => $app, state => $state, modes => $modes, blocked_by => $blocked_by, blocking => $blocking };
}
is_deeply([ grep { $seen{$_} > 1 } sort keys %seen ], [], 'Step 5: one row per session');
ok($row{$hp} && $row{$wp} && $row{$rp}, 'Step 5: the holder, the waiter and the open read are listed');
is($row{$wp}{blocked_by}, "{$hp}", 'Step 5: the waiter is blocked by the holder');
is($row{$hp}{blocking}, "{$wp}", 'Step 5: the holder blocks the waiter');
is($row{$hp}{state}, 'idle in transaction', 'Step 5: the holder is idle in transaction');
like($row{$hp}{modes}, qr/RowShareLock/, 'Step 5: the holder holds the row lock of a fence');
is($row{$rp}{modes}, 'AccessShareLock', 'Step 5: the open read only reads');

# ---------------------------------------------------------------------------
# Option 4: end the session that blocks the takeover.
# ---------------------------------------------------------------------------
# Past the lease's TTL since the fence, well under a minute.
usleep(1_000_000 * ($TTL + 1 - (time - $t_fence))) if time - $t_fence < $TTL + 1;
is_deeply(run_doc(q{
	SELECT pid FROM pg_stat_activity
	 WHERE application_name = 'agent-abc' AND state LIKE 'idle in transaction%'
	   AND now() - xact_start > interval '1 minute'}), [],
	'the old fixed "> 1 minute" filter misses a holder frozen for longer than its TTL');
my $ended = run_doc(ptm_doc_section_block($runbook, qr/^### Option 4\b/, 2));
is_deeply([ map { (split /\|/)[0] } @$ended ], [$hp], 'Option 4: the query ends the frozen holder, and only it');
like($ended->[0] // '', qr/\|t$/, 'Option 4: pg_terminate_backend succeeded');
my ($renewed) = $waiter->wait($renew, 30);
is($renewed, 'expired', 'the waiting renewal goes on once the holder is gone (its lease has expired)');
ok($node->poll_query_until($db, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $hp"),
	'the holder\'s backend is gone');
($out) = $reader->query('SELECT 1');
is($out, '1', 'the open read was not ended');

$reader->finish('ROLLBACK');
$waiter->finish;
$holder->finish;
$node->stop;
done_testing();
