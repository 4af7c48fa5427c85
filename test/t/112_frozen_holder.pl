# Issue 16, reproductions 2 and 3, with real sessions (psql processes,
# test/t/PtmClient.pm): a frozen holder inside a fenced transaction
# (BEGIN; check_fence; INSERT; then nothing, its psql stopped with SIGSTOP).
#
#  A. The worker ends it (holder_grace default): agent-b's calls never wait
#     longer than ptm_lease.lock_wait_timeout, its renewals on the same
#     connection keep its own lease, the holder's backend is terminated within
#     TTL + holder_grace + sweep_interval, its COMMIT fails and its write is
#     gone, the action is audited (end_holder, pid, by worker) and counted,
#     and agent-b takes the partition over with a higher epoch.
#  B. holder_grace = -1: the holder is never ended, but every wait is still
#     bounded: acquire and force_expire answer busy and change nothing.
#  C. The operator's force_expire: busy behind the holder; end_holder => true
#     terminates it (audited, by force_expire) and forces; agent_id => the old
#     owner after the lease moved is not_owner, a wrong lease_epoch is
#     stale_epoch, and neither changes anything; the audit time of a forced
#     lease is never before its acquisition, even when force_expire waited.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PtmClient;

my $LOCK_WAIT = 0.5;    # ptm_lease.lock_wait_timeout default
my $GRACE     = 1.0;    # ptm_lease.holder_grace default
my $SWEEP     = 0.2;    # ptm_lease.sweep_interval below
my $SLACK     = 1.5;    # a loaded 2-core machine

my $node = PostgreSQL::Test::Cluster->new('frozen');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.sweep_interval = '200ms'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	CREATE TABLE fenced_writes (partition_id int, epoch bigint, agent text, payload text);});
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname = 'postgres'", '1'),
	'the worker serves the test database');

my $ended_q = q{SELECT coalesce((SELECT value FROM ptm.metrics WHERE metric = 'lease_holders_ended_total'), 0)};

# The lease row of a partition, as committed: agent:epoch:state.
sub lease
{
	my ($topic, $p) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT coalesce(agent_id, '-') || ':' || lease_epoch || ':' || state
		  FROM ptm.partition_leases WHERE topic = '$topic' AND partition_id = $p});
}

# Wait (database clock) until a lease's expiry has passed.
sub wait_expired
{
	my ($topic, $p) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint > lease_expires_at
		  FROM ptm.partition_leases WHERE topic = '$topic' AND partition_id = $p});
}

sub backend_alive
{
	my ($pid) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid");
}

# A holder: acquires with a 2 s TTL (or $ttl), then BEGIN; check_fence; INSERT and
# nothing more.  Returns (client, epoch).
sub frozen_holder
{
	my ($topic, $p, $agent, $ttl) = @_;
	$ttl //= '2 s';
	my $c = PtmClient->new($node, 'postgres', $agent);
	my ($e) = $c->query(qq{SELECT lease_epoch FROM ptm.acquire_partition_lease('$topic', $p, '$agent', '$ttl') WHERE result = 'acquired'});
	like($e, qr/^\d+$/, "$agent acquires $topic-$p with a $ttl TTL (epoch $e)");
	my ($out, $err) = $c->query(qq{BEGIN;
		SELECT ptm.check_fence('$topic', $p, $e);
		INSERT INTO fenced_writes VALUES ($p, $e, '$agent', 'written inside the fence');});
	is($err, '', "$agent is inside its fenced transaction, idle");
	return ($c, $e);
}

# --- A. A frozen holder, ended by the worker -------------------------------
my $agent_b = PtmClient->new($node, 'postgres', 'agent-b');
my ($eb) = $agent_b->query(q{SELECT lease_epoch FROM ptm.acquire_partition_lease('frozen', 1, 'agent-b', '3 s')});
like($eb, qr/^\d+$/, "agent-b holds frozen-1 (epoch $eb)");
my $ended_before = $node->safe_psql('postgres', $ended_q);

my ($agent_a, $ea) = frozen_holder('frozen', 0, 'agent-a');
my $a_pid = $agent_a->backend_pid;
my $expiry_ms = $node->safe_psql('postgres',
	"SELECT lease_expires_at FROM ptm.partition_leases WHERE topic = 'frozen' AND partition_id = 0");
my $acquired_at = time;
$agent_a->stop;
ok(wait_expired('frozen', 0), "agent-a's lease expired while its client is stopped");

# agent-b tries to take the partition every 200 ms and renews its own lease
# on the same connection in between: no call waits longer than the bound.
my (@slow, @renew_bad, @results);
my $takeover;
my $expired_at = time;
while (time < $expired_at + 20)
{
	my ($r, $err, $secs) = $agent_b->query(q{
		SELECT result || ':' || coalesce(agent_id, '-') || ':' || lease_epoch
		  FROM ptm.acquire_partition_lease('frozen', 0, 'agent-b', '3 s')}, 30);
	push @slow, sprintf('acquire %.2fs', $secs) if $secs > $LOCK_WAIT + $SLACK;
	push @results, $r // 'timeout';
	my ($rn, undef, $rsecs) = $agent_b->query(qq{SELECT result FROM ptm.renew_lease('frozen', 1, 'agent-b', $eb, '3 s')}, 30);
	push @slow, sprintf('renew %.2fs', $rsecs) if $rsecs > $LOCK_WAIT + $SLACK;
	push @renew_bad, $rn // 'timeout' if ($rn // '') ne 'renewed';
	if (($r // '') =~ /^acquired:agent-b:(\d+)$/) { $takeover = $1; last; }
	last unless defined $r;
	usleep(200_000);
}
my $takeover_secs = time - $expired_at;
my $since_acquired = time - $acquired_at;
is(join(', ', @slow), '', "no acquire or renew of agent-b waited longer than lock_wait_timeout + ${SLACK}s");
is(join(', ', @renew_bad), '', 'agent-b renewed its own lease on the same connection every time');
is(join(' ', grep { !/^busy:agent-a:$ea$/ && !/^acquired:agent-b:/ } @results), '',
	'until the takeover agent-b was told busy, with the lease as last committed (agent-a, its epoch)');
ok(defined $takeover && $takeover > $ea,
	'agent-b takes the partition over with a higher epoch (' . ($takeover // 'none') . " > $ea)");
cmp_ok($takeover_secs, '<=', $GRACE + $SWEEP + $LOCK_WAIT + $SLACK,
	sprintf('the takeover came %.2f s after the expiry (bound: holder_grace + sweep_interval + lock_wait_timeout)', $takeover_secs));
cmp_ok($since_acquired, '<=', 2 + $GRACE + $SWEEP + $LOCK_WAIT + $SLACK,
	sprintf('the takeover came %.2f s after the acquisition (bound: TTL + holder_grace + sweep_interval + lock_wait_timeout)', $since_acquired));
is(backend_alive($a_pid), '0', "agent-a's backend ($a_pid) was terminated");
my $ended_after = $node->safe_psql('postgres', qq{
	SELECT extract(epoch FROM at - to_timestamp($expiry_ms / 1000.0))
	  FROM ptm.lease_audit WHERE action = 'end_holder' AND topic = 'frozen' AND partition_id = 0});
ok($ended_after ne '' && $ended_after <= $GRACE + $SWEEP + $SLACK,
	sprintf('the worker ended it %.2f s after the expiry (database clock; bound holder_grace + sweep_interval)', $ended_after || -1));
is($node->safe_psql('postgres', qq{
	SELECT count(*) || ':' || bool_and(at >= to_timestamp(($expiry_ms + ${\($GRACE * 1000)}) / 1000.0) - interval '10 ms')
	       || ':' || bool_and(details->>'by' = 'worker')
	  FROM ptm.lease_audit
	 WHERE action = 'end_holder' AND topic = 'frozen' AND partition_id = 0
	   AND previous_agent_id = 'agent-a' AND previous_epoch = $ea AND (details->>'pid')::int = $a_pid}),
	'1:true:true', 'lease_audit has one end_holder row naming agent-a\'s pid, by the worker, not before expiry + holder_grace');
cmp_ok($node->safe_psql('postgres', $ended_q), '>', $ended_before, 'lease_holders_ended_total rose');
$agent_a->cont;
my ($a_ok, $a_err) = $agent_a->finish('COMMIT;');
ok(!$a_ok && $a_err =~ /terminat|server closed the connection|connection to server was lost|no connection/i,
	"agent-a resumes: its COMMIT fails, its connection was ended") or diag($a_err);
is($node->safe_psql('postgres', q{SELECT count(*) FROM fenced_writes WHERE agent = 'agent-a'}), '0',
	"agent-a's fenced INSERT rolled back");
my $fence_err = ($node->psql('postgres', "\\set VERBOSITY verbose\nSELECT ptm.check_fence('frozen', 0, $ea)"))[2];
like($fence_err, qr/ERROR:  PTM01/, "agent-a's epoch is fenced (PTM01)");

# --- B. holder_grace = -1: never ended, waits still bounded ----------------
$node->append_conf('postgresql.conf', 'ptm_lease.holder_grace = -1');
$node->reload;
ok($node->poll_query_until('postgres', 'SHOW ptm_lease.holder_grace', '-1'), 'holder_grace = -1 reloaded');
my $ended_mid = $node->safe_psql('postgres', $ended_q);
($eb) = $agent_b->query(q{SELECT lease_epoch FROM ptm.acquire_partition_lease('frozen', 1, 'agent-b', '3 s')});
my ($h, $eh) = frozen_holder('frozen', 2, 'agent-h');
my $h_pid = $h->backend_pid;
ok(wait_expired('frozen', 2), "agent-h's lease expired, its transaction still open");
@slow = ();
@renew_bad = ();
@results = ();
my $t0 = time;
# well past expiry + the default holder_grace + two sweeps
while (time < $t0 + $GRACE + 3 * $SWEEP + 1)
{
	my ($r, undef, $secs) = $agent_b->query(q{
		SELECT result || ':' || coalesce(agent_id, '-') || ':' || lease_epoch
		  FROM ptm.acquire_partition_lease('frozen', 2, 'agent-b', '3 s')}, 30);
	push @slow, sprintf('acquire %.2fs', $secs) if $secs > $LOCK_WAIT + $SLACK;
	push @results, $r // 'timeout';
	my ($rn, undef, $rsecs) = $agent_b->query(qq{SELECT result FROM ptm.renew_lease('frozen', 1, 'agent-b', $eb, '3 s')}, 30);
	push @slow, sprintf('renew %.2fs', $rsecs) if $rsecs > $LOCK_WAIT + $SLACK;
	push @renew_bad, $rn // 'timeout' if ($rn // '') ne 'renewed';
	last unless defined $r;
	usleep(200_000);
}
is(join(', ', @slow), '', 'with holder_grace = -1 every wait is still bounded by lock_wait_timeout');
is(join(', ', @renew_bad), '', 'and agent-b keeps renewing its own lease');
ok(@results >= 2 && !grep({ $_ ne "busy:agent-h:$eh" } @results),
	scalar(@results) . " acquires of the expired, held lease all answered busy:agent-h:$eh") or diag("@results");
is(backend_alive($h_pid), '1', 'the holder is not ended');
is($node->safe_psql('postgres', $ended_q), $ended_mid, 'lease_holders_ended_total did not move');
is(lease('frozen', 2), "agent-h:$eh:active", 'busy changed nothing: the row is as agent-h committed it');

# --- C. The operator's force_expire ----------------------------------------
my $op = PtmClient->new($node, 'postgres', 'oncall');
my ($r, $err, $secs) = $op->query(q{
	SELECT result || ':' || coalesce(agent_id, '-') || ':' || lease_epoch
	  FROM ptm.force_expire('frozen', 2, 'agent-h looks stuck', agent_id => 'agent-h')}, 30);
is($r, "busy:agent-h:$eh", 'force_expire behind the frozen holder answers busy');
cmp_ok($secs, '<=', $LOCK_WAIT + $SLACK, sprintf('within lock_wait_timeout (%.2f s)', $secs));
($r, $err, $secs) = $op->query(q{
	SET ptm_lease.lock_wait_timeout = 0;
	SELECT result FROM ptm.force_expire('frozen', 2, 'no wait', agent_id => 'agent-h');
	RESET ptm_lease.lock_wait_timeout;}, 30);
is($r, 'busy', 'with lock_wait_timeout = 0 it answers busy too');
cmp_ok($secs, '<', $SLACK, sprintf('without waiting (%.2f s)', $secs));
is(lease('frozen', 2), "agent-h:$eh:active", 'busy changed nothing');
is($node->safe_psql('postgres', q{SELECT count(*) FROM ptm.lease_audit WHERE topic = 'frozen' AND partition_id = 2}),
	'0', 'and audited nothing');

# end_holder => true on the expired lease: the holder is ended; the lease is
# then forced, or found expired (no_lease) when the worker's sweep got to the
# freed row first.
($r, $err, $secs) = $op->query(q{
	SELECT result || ':' || coalesce(agent_id, '-') || ':' || lease_epoch
	  FROM ptm.force_expire('frozen', 2, 'agent-h is frozen', agent_id => 'agent-h', end_holder => true)}, 30);
like($r, qr/^(forced:-:\d+|no_lease:-:$eh)$/, "end_holder => true on the expired, held lease ends the holder ($r)");
cmp_ok($secs, '<=', 2 * $LOCK_WAIT + $SLACK, sprintf('in bounded time (%.2f s)', $secs));
ok($node->poll_query_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $h_pid", '0'),
	"agent-h's backend ($h_pid) is gone");
is($node->safe_psql('postgres', qq{
	SELECT count(*) || ':' || bool_and(details->>'by' = 'force_expire') || ':' ||
	       bool_and(details ? 'usename' AND details ? 'application_name' AND details ? 'xact_start')
	       || ':' || bool_and(details->>'application_name' = 'agent-h')
	  FROM ptm.lease_audit
	 WHERE action = 'end_holder' AND topic = 'frozen' AND partition_id = 2
	   AND previous_agent_id = 'agent-h' AND (details->>'pid')::int = $h_pid}),
	'1:true:true:true', 'audited: end_holder with the pid, user, application and transaction start, by force_expire');
cmp_ok($node->safe_psql('postgres', $ended_q), '>', $ended_mid, 'lease_holders_ended_total counts it');
my ($h_ok, $h_err) = $h->finish('COMMIT;');
ok(!$h_ok, "agent-h's COMMIT fails") or diag($h_err);
is($node->safe_psql('postgres', q{SELECT count(*) FROM fenced_writes WHERE agent = 'agent-h'}), '0',
	"agent-h's fenced INSERT rolled back");

# end_holder => true on a live lease (1 h TTL) whose client froze: forced.
my ($h2, $eh2) = frozen_holder('frozen', 3, 'agent-h2', '1 h');
my $h2_pid = $h2->backend_pid;
$h2->stop;
($r, $err, $secs) = $op->query(q{
	SELECT result || ':' || coalesce(agent_id, '-') || ':' || lease_epoch
	  FROM ptm.force_expire('frozen', 3, 'agent-h2 is frozen', agent_id => 'agent-h2')}, 30);
is($r, "busy:agent-h2:$eh2", 'force_expire of the live lease behind its frozen holder: busy');
($r, $err, $secs) = $op->query(qq{
	SELECT result || ':' || coalesce(agent_id, '-') || ':' || lease_epoch
	  FROM ptm.force_expire('frozen', 3, 'agent-h2 is frozen', agent_id => 'agent-h2', lease_epoch => $eh2,
	                        end_holder => true)}, 30);
like($r, qr/^forced:-:(\d+)$/, "with end_holder => true: forced ($r)");
my ($forced) = ($r // '') =~ /:(\d+)$/;
cmp_ok($forced // 0, '>', $eh2, 'with a higher epoch');
cmp_ok($secs, '<=', 2 * $LOCK_WAIT + $SLACK, sprintf('in bounded time (%.2f s)', $secs));
is(backend_alive($h2_pid), '0', "agent-h2's backend ($h2_pid) was terminated");
is($node->safe_psql('postgres', qq{
	SELECT string_agg(action || ':' || previous_agent_id || ':' || previous_epoch || ':' ||
	                  coalesce(details->>'by', '-') || ':' || coalesce(details->>'pid', '-'), ' ' ORDER BY audit_id)
	  FROM ptm.lease_audit WHERE topic = 'frozen' AND partition_id = 3}),
	"end_holder:agent-h2:$eh2:force_expire:$h2_pid force_expire:agent-h2:$eh2:-:-",
	'audited: end_holder (pid, by force_expire), then force_expire');
$h2->cont;
($h_ok, $h_err) = $h2->finish('COMMIT;');
ok(!$h_ok, "agent-h2 resumes: its COMMIT fails") or diag($h_err);
is($node->safe_psql('postgres', q{SELECT count(*) FROM fenced_writes WHERE agent = 'agent-h2'}), '0',
	"agent-h2's fenced INSERT rolled back");

# The lease moves on to agent-c; an operator still aiming at agent-h changes nothing.
my ($ec) = $agent_b->query(q{SELECT lease_epoch FROM ptm.acquire_partition_lease('frozen', 2, 'agent-c', '1 h') WHERE result = 'acquired'});
like($ec, qr/^\d+$/, "agent-c takes frozen-2 (epoch $ec)");
my $audits = $node->safe_psql('postgres', 'SELECT count(*) FROM ptm.lease_audit');
($r) = $op->query(q{
	SELECT result || ':' || agent_id || ':' || lease_epoch
	  FROM ptm.force_expire('frozen', 2, 'agent-h is stuck', agent_id => 'agent-h')});
is($r, "not_owner:agent-c:$ec", 'force_expire aimed at agent-h after the lease moved to agent-c: not_owner');
($r) = $op->query(qq{
	SELECT result || ':' || agent_id || ':' || lease_epoch
	  FROM ptm.force_expire('frozen', 2, 'old epoch', agent_id => 'agent-c', lease_epoch => $ec - 1)});
is($r, "stale_epoch:agent-c:$ec", 'aimed at agent-c with another epoch: stale_epoch');
is(lease('frozen', 2), "agent-c:$ec:active", 'neither changed the lease');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ptm.lease_audit'), $audits, 'nor audited anything');

# Audit time after the lock: the operator's force_expire starts waiting
# behind agent-c's transaction, in which agent-c releases and acquires again
# (a new acquired_at, later than the start of force_expire).  The force's
# audit row and ended_at are not earlier than that acquisition.
my $c = PtmClient->new($node, 'postgres', 'agent-c');
($r, $err) = $c->query(qq{BEGIN;
	SELECT result FROM ptm.renew_lease('frozen', 2, 'agent-c', $ec, '1 h');});
is($r, 'renewed', 'agent-c holds its lease row in an open transaction');
my $fn = $op->send(qq{
	SET ptm_lease.lock_wait_timeout = 20000;
	SELECT result || ':' || lease_epoch FROM ptm.force_expire('frozen', 2, 'ordered', agent_id => 'agent-c');
	RESET ptm_lease.lock_wait_timeout;});
my $op_pid = $op->backend_pid;
ok($node->poll_query_until('postgres', qq{
	SELECT state = 'active' AND clock_timestamp() - query_start > interval '300 ms'
	  FROM pg_stat_activity WHERE pid = $op_pid}), 'force_expire is waiting for agent-c\'s transaction');
($r, $err) = $c->query(qq{
	SELECT result FROM ptm.release_lease('frozen', 2, 'agent-c', $ec);
	SELECT result || ':' || lease_epoch FROM ptm.acquire_partition_lease('frozen', 2, 'agent-c', '1 h');
	COMMIT;});
like($r, qr/^released\nacquired:(\d+)$/, 'agent-c released and acquired again while force_expire waited');
my ($ec2) = ($r // '') =~ /acquired:(\d+)/;
($r, $err) = $op->wait($fn, 30);
like($r, qr/^forced:\d+$/, 'force_expire then forced agent-c\'s new lease');
is($node->safe_psql('postgres', qq{
	SELECT (a.at >= l.acquired_at) || ':' || (l.ended_at >= l.acquired_at)
	  FROM ptm.lease_audit a, ptm.partition_leases l
	 WHERE a.action = 'force_expire' AND a.reason = 'ordered' AND a.previous_epoch = $ec2
	   AND l.topic = 'frozen' AND l.partition_id = 2}),
	'true:true', 'the audit row\'s at and the lease\'s ended_at are not before its acquired_at');
$c->finish;

$agent_b->finish;
$op->finish;
$node->stop;
done_testing();
