# Fault injection with real clients (issue 16, docs/faults.md).
#
# A primary (ptm_lease preloaded, worker on the test database, commit
# timestamps on) with a streaming standby, and a PgBouncer in transaction
# mode (test/t/PtmPgBouncer.pm; two server connections for its two agents, so
# a frozen transaction holding one must not starve the other).  Agents
# (test/fault/agent.py, psycopg 3) take partitions, renew every TTL/3 and
# write fenced rows, two of them directly (a multi-host conninfo with
# target_session_attrs=read-write), two through PgBouncer.  The faults, in
# rounds:
#   sigstop         SIGSTOP of an agent for longer than the TTL, then SIGCONT
#   sigstop_in_txn  the agent stops itself inside a fenced transaction (after
#                   the INSERT, before COMMIT), then SIGCONT
#   kill9           kill -9 of an agent (started again after the takeover)
#   terminate       pg_terminate_backend of an agent's session
#   crash           the primary stopped with -m immediate and started again
#   failover        the standby stops receiving WAL, the primary goes on (and
#                   an operator forces 60 epochs), crashes, and the stale
#                   standby is promoted; agents follow (a new standby is made
#                   for the next round)
# Then test/fault/checker.py checks the rows, the audit and the agents' logs.
# Short by default (one round); PTM_FAULT_LONG=1 runs rounds for 10 minutes,
# PTM_FAULT_LONG=N for N seconds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use POSIX qw(WNOHANG);
use JSON::PP;
use PtmPgBouncer;
use constant NOW_MS => q{(extract(epoch FROM clock_timestamp()) * 1000)::bigint};

my $root   = $ENV{PTM_ROOT} // '.';
my $py     = '/usr/bin/python3';    # Debian's, with python3-psycopg
my $agent_py = "$root/test/fault/agent.py";
my $checker  = "$root/test/fault/checker.py";
my $long     = $ENV{PTM_FAULT_LONG} // '';
my $duration = $long eq '' ? 0 : $long eq '1' ? 600 : $long;
my ($TTL, $PARTS, $MAXP, $RETRY, $SWEEP, $GRACE) = (2, 8, 3, 0.25, 0.2, 1.0);
my $topic = 'faults';
my $dir   = PostgreSQL::Test::Utils::tempdir;
my $logs  = "$dir/logs";
mkdir $logs;
my $faults_log = "$dir/faults.jsonl";

# 0. The checker finds violations: fabricated histories, one per check.
my $self = `$py $checker --self-test 2>&1`;
ok($? == 0, 'the checker finds each violation in fabricated histories') or diag($self);

# 1. Primary, standby, PgBouncer.
my $conf = qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.database = 'faultdb'
ptm_lease.sweep_interval = '${\ ($SWEEP * 1000)}ms'
ptm_lease.holder_grace = '${\ ($GRACE * 1000)}ms'
track_commit_timestamp = on
max_connections = 60
log_statement = none
};
my $primary = PostgreSQL::Test::Cluster->new('fault_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', $conf);
$primary->start;
$primary->safe_psql('postgres', 'CREATE DATABASE faultdb');
$primary->safe_psql('faultdb', 'CREATE EXTENSION ptm_lease');
$primary->safe_psql('faultdb', slurp_file("$root/test/fault/schema.sql"));
$primary->safe_psql('faultdb', "SELECT ptm.ensure_partitions('$topic', $PARTS)");
my $standby = new_standby($primary, 1);

my $pgb = PtmPgBouncer->new(dir => $dir, node => $primary, dbname => 'faultdb',
	users => ['agent'], pool_size => 2);
ok($pgb->listening, 'PgBouncer listens');

# The conninfo the agents read at every reconnect.
sub write_dsns
{
	my @nodes = grep { defined } @_;
	my $ports = join ',', map { $_->port } @nodes;
	my $hosts = join ',', map { $_->host } @nodes;
	ptm_write_file("$dir/direct.dsn", "host=$hosts port=$ports dbname=faultdb user=agent target_session_attrs=read-write connect_timeout=2\n");
	ptm_write_file("$dir/pgbouncer.dsn", $pgb->dsn('agent') . "\n");
}
write_dsns($primary, $standby);

# 2. Agents: a1, a2 direct; a3, a4 through PgBouncer.
my %agent;    # name => { pid, via }
my %via = (a1 => 'direct', a2 => 'direct', a3 => 'pgbouncer', a4 => 'pgbouncer');
start_agent($_) for sort keys %via;
ok(wait_for(sub { active_leases() == $PARTS }, 60), "the agents hold all $PARTS partitions");
ok(wait_for(sub { writes_by('a3') + writes_by('a4') > 0 && writes_by('a1') + writes_by('a2') > 0 }, 60),
	'agents write directly and through PgBouncer');

# 3. Faults, in rounds.
my $t_end = time + $duration;
my $round = 0;
my %count;
do {
	$round++;
	fault_sigstop($round);
	fault_sigstop_in_txn($round);
	fault_kill9($round);
	fault_terminate($round);
	fault_crash($round);
	fault_failover($round);
	note sprintf('round %d done, %.0f s left', $round, $t_end - time) if $duration;
} while (time < $t_end);

# 4. Stop the agents (they release their leases) and check.
stop_agents();
my $dsn = 'host=' . $primary->host . ' port=' . $primary->port . ' dbname=faultdb user=postgres';
my $out = `$py $checker --dsn '$dsn' --topic $topic --logs $logs --faults $faults_log --ttl $TTL --holder-grace $GRACE --sweep-interval $SWEEP --retry $RETRY --json $dir/summary.json 2>&1`;
my $rc = $?;
diag($out);
my ($summary) = $out =~ /^summary (\{.*\})$/m;
$summary = $summary ? decode_json($summary) : {};
ok(($summary->{writes_checked} // 0) > 100, "the checker read $summary->{writes_checked} committed writes");
is($summary->{faults_total}, scalar(() = slurp_file($faults_log) =~ /\n/g), 'every fault injected is in its log');
for my $check (qw(overlap superseded epochs acked takeover starved end_holder))
{
	my @v = $out =~ /^VIOLATION (\Q$check\E: .*)$/mg;
	ok(!@v, "no $check violation") or diag(join "\n", @v[0 .. ($#v < 9 ? $#v : 9)]);
}
ok($rc == 0 && $summary->{violations} == 0, 'checker: no violation');
ok(($summary->{holders_ended} // 0) >= $round,
	"the worker ended the frozen holders' transactions ($summary->{holders_ended} end_holder audit rows)");

$standby->stop if $standby;
$primary->stop;
done_testing();

# ---------------------------------------------------------------------------

sub new_standby
{
	my ($from, $n) = @_;
	$from->backup("bk$n");
	my $s = PostgreSQL::Test::Cluster->new("fault_standby$n");
	$s->init_from_backup($from, "bk$n", has_streaming => 1);
	$s->start;
	$from->wait_for_catchup($s);
	return $s;
}

sub start_agent
{
	my ($name) = @_;
	my $pooled = $via{$name} eq 'pgbouncer';
	$agent{$name} = ptm_spawn("$logs/$name.out", $py, $agent_py, '--agent', $name,
		'--dsn-file', $pooled ? "$dir/pgbouncer.dsn" : "$dir/direct.dsn", $pooled ? ('--pgbouncer') : (),
		'--topic', $topic, '--partitions', $PARTS, '--max-partitions', $MAXP,
		'--ttl', $TTL, '--retry', $RETRY, '--log', "$logs/$name.jsonl",
		'--pause-marker', "$dir/pause.$name");
}

sub stop_agents
{
	for my $name (sort keys %agent)
	{
		kill 'CONT', $agent{$name};
		kill 'TERM', $agent{$name};
	}
	for my $name (sort keys %agent)
	{
		my $pid = $agent{$name};
		wait_for(sub { waitpid($pid, WNOHANG) != 0 }, 15) or do { kill 'KILL', $pid; waitpid($pid, 0) };
		delete $agent{$name};
	}
}

END
{
	# whatever happened, leave no process behind (only those started here)
	for my $pid (values %agent) { kill 'CONT', $pid; kill 'KILL', $pid; }
	$pgb->stop if $pgb;
}

sub wait_for
{
	my ($cond, $timeout) = @_;
	my $until = time + $timeout;
	while (time < $until)
	{
		return 1 if eval { $cond->() };
		usleep(100_000);
	}
	return 0;
}

sub q1
{
	my ($sql) = @_;
	my ($ret, $out) = $primary->psql('faultdb', $sql);
	return $ret == 0 ? $out : undef;
}


sub active_leases
{
	my ($except) = @_;
	$except //= '';
	return q1(qq{SELECT count(*) FROM ptm.partition_leases WHERE topic = '$topic'
		AND agent_id IS NOT NULL AND agent_id <> '$except' AND lease_expires_at > ${\ NOW_MS}}) // -1;
}

sub writes_by
{
	my ($name) = @_;
	return q1(qq{SELECT count(*) FROM fault.writes_$name}) // 0;
}

sub log_fault
{
	my (%f) = @_;
	$f{t} //= time;
	append_to_file($faults_log, encode_json(\%f) . "\n");
	$count{ $f{kind} }++;
}

# The agent (of the given kind if one holds something) with the most live leases.
sub victim
{
	my ($kind) = @_;
	my %held = map { split /\|/ } split /\n/, q1(qq{SELECT agent_id, count(*) FROM ptm.partition_leases
		WHERE topic = '$topic' AND agent_id IS NOT NULL AND lease_expires_at > ${\ NOW_MS} GROUP BY 1}) // '';
	my @names = sort { ($held{$b} // 0) <=> ($held{$a} // 0) || $a cmp $b } keys %agent;
	my @kind = grep { $via{$_} eq $kind && ($held{$_} // 0) > 0 } @names;
	return @kind ? $kind[0] : $names[0];
}

# Every partition live again, none held by $name.
sub taken_over
{
	my ($name, $what) = @_;
	my $t0 = time;
	my $ok = wait_for(sub { active_leases($name) == $PARTS }, $TTL + 15);
	ok($ok, sprintf('%s: every partition of %s taken over (%.1f s)', $what, $name, time - $t0));
}

sub settle
{
	ok(wait_for(sub { active_leases() == $PARTS }, 60), "$_[0]: all partitions held again");
}

sub fault_sigstop
{
	my ($r) = @_;
	my $v = victim($r % 2 ? 'direct' : 'pgbouncer');
	my $t0 = time;
	kill 'STOP', $agent{$v};
	taken_over($v, "round $r sigstop");
	usleep(100_000) while time < $t0 + $TTL * 1.5;    # stopped longer than the TTL
	kill 'CONT', $agent{$v};
	log_fault(kind => 'sigstop', agent => $v, t => $t0, t_end => time);
}

sub fault_sigstop_in_txn
{
	my ($r) = @_;
	my $v = victim($r % 2 ? 'pgbouncer' : 'direct');
	my $pauses = () = slurp_file("$logs/$v.jsonl") =~ /"ev": "pause"/g;
	append_to_file("$dir/pause.$v", '');
	my $paused = wait_for(sub { (() = slurp_file("$logs/$v.jsonl") =~ /"ev": "pause"/g) > $pauses }, 20);
	ok($paused, "round $r sigstop_in_txn: $v stopped itself inside a fenced transaction");
	return unless $paused;
	my @t = slurp_file("$logs/$v.jsonl") =~ /"ev": "pause"[^\n]*"t": ([\d.]+)/g;
	taken_over($v, "round $r sigstop_in_txn");
	kill 'CONT', $agent{$v};
	log_fault(kind => 'sigstop_in_txn', agent => $v, t => $t[-1] + 0, t_end => time);
}

sub fault_kill9
{
	my ($r) = @_;
	my $v = victim($r % 2 ? 'direct' : 'pgbouncer');
	log_fault(kind => 'kill9', agent => $v);
	kill 'KILL', $agent{$v};
	waitpid($agent{$v}, 0);
	taken_over($v, "round $r kill9");
	start_agent($v);
}

sub fault_terminate
{
	my ($r) = @_;
	my $v = victim($r % 2 ? 'pgbouncer' : 'direct');
	my $before = writes_by($v);
	log_fault(kind => 'terminate', agent => $v);
	# Through PgBouncer a server connection shows the application_name of the
	# client it served last: try again until one shows this agent's.
	my $n = 0;
	wait_for(sub { ($n = q1(qq{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = 'faultdb' AND application_name = '$v'}) // 0) > 0 }, 10);
	ok($n >= 1, "round $r terminate: $n session(s) of $v terminated");
	ok(wait_for(sub { writes_by($v) > $before + 5 }, 30), "round $r terminate: $v writes again");
}

sub fault_crash
{
	my ($r) = @_;
	log_fault(kind => 'crash');
	$primary->stop('immediate');
	$primary->start;
	settle("round $r crash");
}

sub fault_failover
{
	my ($r) = @_;
	# The standby stops receiving WAL: what follows on the primary is lost.
	# Every write acknowledged before $lag_start is replayed on the standby.
	my $lag_start = time;
	$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
	$standby->append_conf('postgresql.conf', "primary_conninfo = ''");
	$standby->reload;
	wait_for(sub { (q1('SELECT count(*) FROM pg_stat_replication') // '') eq '0' }, 30);
	my $acq = q1('SELECT count(*) FROM fault.acquisitions');
	# An operator forces 60 epochs, one transaction each (more than the 32
	# values a sequence logs ahead), and the agents take the partitions again.
	q1(qq{DO \$\$ BEGIN FOR g IN 1 .. 60 LOOP
		PERFORM ptm.force_expire('$topic', g % $PARTS, 'fault suite'); COMMIT; PERFORM pg_sleep(0.05);
		END LOOP; END \$\$});
	wait_for(sub { q1('SELECT count(*) FROM fault.acquisitions') > $acq + 10 }, 30);
	$primary->stop('immediate');
	log_fault(kind => 'failover', lag_start => $lag_start);    # writes acknowledged until now may be lost
	$standby->promote;
	($primary, $standby) = ($standby, undef);
	write_dsns($primary);
	$pgb->retarget($primary);
	settle("round $r failover");
	is(q1(qq{SELECT count(*) FROM ptm.partition_leases WHERE topic = '$topic'
		AND agent_id IS NOT NULL AND lease_epoch <= 1000000000000000}), '0',
		"round $r failover: every live lease on the promoted standby has an epoch of the new era");
	# a standby for the next round, and the agents' conninfo lists it
	return if time >= $t_end;
	$standby = new_standby($primary, $r + 1);
	write_dsns($primary, $standby);
}
