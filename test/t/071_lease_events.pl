# Changes of owner on NOTIFY channel ptm_lease_events: acquire (from nobody
# and from another agent, single and bulk), release and force_expire each send
# one event; held acquisitions and renewals send none.  A topic's set of live
# agents changing (rebalance, leave, drain) sends agents_changed.  And
# recovery_latency_ms is observed on a takeover after the sweeper expired a
# lease.
#
# ptm_lease.notify_owner_changes = worker (the default): the database's worker
# sends the NOTIFYs after the changing transaction commits (announce.c): the
# same payloads, from the worker's pid, in commit order per partition, none
# for a rolled-back change; inline sends them from the changing session; a
# worker that leaves with announcements queued is replaced and the new one
# sends them, while sessions without a worker send their own and health()
# says so; a worker killed with SIGKILL (a crash restart) loses what was
# queued (at most once).
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.sweep_interval = '100ms'
restart_after_crash = on
max_prepared_transactions = 2
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');
ok($node->poll_query_until('postgres',
	q{SELECT value FROM ptm.health() WHERE "check" = 'announcements'}, 'worker'),
	'health(): the worker announces');
my $worker_pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname = 'postgres'");

my $notification = qr/Asynchronous notification "ptm_lease_events" with payload "([^\n]*)" received from server process with PID (\d+)\./;

# A session that LISTENs in the background; events() reads what it got.
sub listener
{
	my %l = (in => '', out => '', err => '');
	$l{h} = IPC::Run::start(['psql', '-X', '-At', '-d', $node->connstr('postgres')],
		'<', \$l{in}, '>', \$l{out}, '2>', \$l{err});
	$l{in} .= "LISTEN ptm_lease_events;\nSELECT 'listening';\n";
	$l{h}->pump until $l{out} =~ /listening/;
	return \%l;
}

# Let the listener's psql print what it has received so far.  psql prints
# the notifications it read with a query's result after that result, so a
# second query marks the end of what the first one brought in.
my $ticks = 0;
sub sync
{
	my ($l) = @_;
	my $tag = 'tick-' . ++$ticks;
	$l->{in} .= "SELECT '$tag';\nSELECT '$tag-end';\n";
	$l->{h}->pump until $l->{out} =~ /^$tag-end$/m;
}

sub parse
{
	my ($l) = @_;
	my @got = ($l->{out} =~ /$notification/g);
	my @ev;
	push @ev, [ shift @got, shift @got ] while @got;
	return @ev;
}

# The payloads and sender pids the listener got, once it has n (or 20 s).
sub events
{
	my ($l, $n) = @_;
	my @ev;
	for (my $i = 0; $i < 200; $i++)
	{
		sync($l);
		@ev = parse($l);
		last if @ev >= $n;
		usleep(100_000);
	}
	return @ev;
}

# Every event the listener got, once no more came for 0.5 s.
sub settled
{
	my ($l) = @_;
	my @ev;
	for (my $last = -1; scalar(@ev) != $last;)
	{
		$last = scalar(@ev);
		usleep(500_000);
		sync($l);
		@ev = parse($l);
	}
	return @ev;
}

sub stop_listener
{
	my ($l) = @_;
	$l->{in} .= "\\q\n";
	$l->{h}->finish;
}

my $out = $node->safe_psql('postgres', q{
	LISTEN ptm_lease_events;
	SELECT result FROM ptm.acquire_partition_lease('ev', 0, 'agent-a');
	SELECT result FROM ptm.acquire_partition_lease('ev', 0, 'agent-a');
	SELECT result FROM ptm.acquire_partition_lease('ev', 0, 'agent-b');
	SELECT result FROM ptm.renew_lease('ev', 0, 'agent-a',
	  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'ev' AND partition_id = 0));
	SELECT result FROM ptm.release_lease('ev', 0, 'agent-a',
	  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'ev' AND partition_id = 0));
	SELECT result FROM ptm.acquire_partition_lease('ev', 0, 'agent-b');
	SELECT result FROM ptm.force_expire('ev', 0, 'test');
	SELECT ptm.ensure_partitions('ev', 3);
	SELECT count(*) FROM ptm.acquire_partition_leases('ev', 'agent-c', 2);
	SELECT pg_sleep(0.5);
});
my @events = ($out =~ /Asynchronous notification "ptm_lease_events" with payload "([^\n]*)" received/g);
my @pids = ($out =~ /$notification/g)[map { 2 * $_ + 1 } 0 .. $#events];
is_deeply([ grep { $_ != $worker_pid } @pids ], [], 'every event sent by the worker');
my $json = qr/"lease_epoch": \d+/;
is(scalar(@events), 6, 'six events: three acquisitions, a release, a force, and none for held, conflict or renew')
  or diag($out);
like($events[0], qr/^\{"event": "acquired", "topic": "ev", "partition_id": 0, "agent_id": "agent-a", "previous_agent_id": null, $json, "expires_at_ms": \d+\}$/,
	'acquired from nobody');
like($events[1], qr/^\{"event": "released", "topic": "ev", "partition_id": 0, "previous_agent_id": "agent-a", $json, "released_at_ms": \d+\}$/,
	'released');
like($events[2], qr/^\{"event": "acquired", "topic": "ev", "partition_id": 0, "agent_id": "agent-b", "previous_agent_id": "agent-a", $json, "expires_at_ms": \d+\}$/,
	'acquired from another agent, naming it');
like($events[3], qr/^\{"event": "forced", "topic": "ev", "partition_id": 0, "previous_agent_id": "agent-b", $json, "forced_at_ms": \d+\}$/,
	'forced');
like($events[4], qr/^\{"event": "acquired", "topic": "ev", "partition_id": 0, "agent_id": "agent-c", "previous_agent_id": "agent-b"/,
	'bulk acquisition of a forced lease');
like($events[5], qr/^\{"event": "acquired", "topic": "ev", "partition_id": 1, "agent_id": "agent-c", "previous_agent_id": null/,
	'bulk acquisition of a free lease');

# ptm_lease.notify_owner_changes = off: acquisitions and releases are silent
# (their commits then skip PostgreSQL's notify serialization); a forced
# expiry, an operator's act, is still announced.
$out = $node->safe_psql('postgres', q{
	SET ptm_lease.notify_owner_changes = off;
	LISTEN ptm_lease_events;
	SELECT result FROM ptm.acquire_partition_lease('ev-quiet', 0, 'agent-a');
	SELECT result FROM ptm.release_lease('ev-quiet', 0, 'agent-a',
	  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'ev-quiet' AND partition_id = 0));
	SELECT count(*) FROM ptm.acquire_partition_leases('ev-quiet', 'agent-b', 1);
	SELECT result FROM ptm.force_expire('ev-quiet', 0, 'test');
	SELECT pg_sleep(0.5);
});
@events = ($out =~ /Asynchronous notification "ptm_lease_events" with payload "([^\n]*)" received/g);
is(scalar(@events), 1, 'with notify_owner_changes off only the forced expiry is announced')
  or diag($out);
like($events[0] // '', qr/^\{"event": "forced", "topic": "ev-quiet"/, 'the forced expiry');

# The live agents of a topic: join, leave, drain, undrain.
$out = $node->safe_psql('postgres', q{
	LISTEN ptm_lease_events;
	SELECT count(*) FROM ptm.rebalance('ev', 'agent-d');
	SELECT count(*) FROM ptm.rebalance('ev', 'agent-d');
	SELECT ptm.leave_topic('ev', 'agent-d');
	SELECT ptm.drain_agent('agent-c', 'deploy');
	SELECT ptm.undrain_agent('agent-c');
	SELECT pg_sleep(0.5);
});
@events = ($out =~ /Asynchronous notification "ptm_lease_events" with payload "([^\n]*)" received/g);
is_deeply([ map { /"live_agents": (\d+), "generation": (\d+)/ ? "$1\@$2" : $_ } @events ],
	[ '2@1', '1@2', '0@3', '1@4' ],
	'agents_changed on join (agent-c and agent-d), not on a repeated rebalance, then on leave, drain and undrain')
  or diag($out);
like($events[0], qr/^\{"event": "agents_changed", "topic": "ev", "live_agents": 2, "generation": 1\}$/,
	'the agents_changed payload');

# Recovery latency: a lease swept by the worker, then taken over.
my $before = $node->safe_psql('postgres',
	"SELECT count FROM ptm.histograms WHERE metric = 'recovery_latency_ms'");
$node->safe_psql('postgres', "SELECT ptm.acquire_partition_lease('ev', 2, 'agent-e', '50 ms')");
ok($node->poll_query_until('postgres',
	"SELECT state FROM ptm.partition_leases WHERE topic = 'ev' AND partition_id = 2", 'expired'),
	'the worker swept the lease');
is($node->safe_psql('postgres',
	"SELECT result FROM ptm.acquire_partition_lease('ev', 2, 'agent-f')"), 'acquired', 'taken over');
is($node->safe_psql('postgres',
	"SELECT count - $before FROM ptm.histograms WHERE metric = 'recovery_latency_ms'"),
	'1', 'recovery_latency_ms observed the takeover after the sweep');
ok($node->safe_psql('postgres',
	"SELECT sum >= 0.05 FROM ptm.histograms WHERE metric = 'recovery_latency_ms'") eq 't',
	'the observation is the time since the expiry');

# A rolled-back change is not announced: a whole transaction, or a
# subtransaction inside one that commits; a released savepoint's is.
my $l = listener();
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT ptm.acquire_partition_lease('ev-rb', 0, 'agent-a');
	ROLLBACK;
	BEGIN;
	SAVEPOINT s;
	SELECT ptm.acquire_partition_lease('ev-rb', 1, 'agent-a');
	ROLLBACK TO s;
	SELECT ptm.acquire_partition_lease('ev-rb', 2, 'agent-a');
	SAVEPOINT t;
	SELECT ptm.acquire_partition_lease('ev-rb', 3, 'agent-a');
	RELEASE t;
	COMMIT;
	SELECT ptm.acquire_partition_lease('ev-rb', 4, 'agent-a');
});
my @ev = events($l, 3);
is_deeply([ map { $_->[0] =~ /"topic": "ev-rb", "partition_id": (\d+)/ ? $1 : $_->[0] } @ev ],
	[ 2, 3, 4 ], 'rolled-back changes are not announced; the committed ones are, in commit order');

# PREPARE TRANSACTION of a transaction that changed an owner is refused, as
# PostgreSQL refuses it for any notifying transaction, and changes nothing.
my ($rc, $stdout, $stderr) = $node->psql('postgres', q{
	BEGIN;
	SELECT ptm.acquire_partition_lease('ev-2pc', 0, 'agent-a');
	PREPARE TRANSACTION 'ev-2pc';
});
like($stderr, qr/cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY/,
	'PREPARE TRANSACTION after a change of owner is refused');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ptm.partition_leases WHERE topic = 'ev-2pc' AND agent_id IS NOT NULL}),
	'0', 'and the change rolled back');
is_deeply([ grep { $_->[0] =~ /ev-2pc/ } settled($l) ], [], 'and was not announced');

# Commit order per partition, with clients racing for two partitions: each
# release names the last acquisition's agent and epoch, and epochs rise.
$l->{out} = '';
my $script = PostgreSQL::Test::Utils::tempdir() . '/cycle.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
\set p random(0, 1)
\set a random(1, 4)
SELECT lease_epoch AS e FROM ptm.acquire_partition_lease('ev-order', :p, 'agent-' || :a, '10 s') \gset
SELECT ptm.release_lease('ev-order', :p, 'agent-' || :a, :e);
});
$node->command_ok([ 'pgbench', '-n', '-c', '4', '-j', '2', '-t', '100', '-f', $script, 'postgres' ],
	'pgbench: four clients acquire and release two partitions');
my $changes = 0;
my @ordered = settled($l);
my (%owner, %epoch, @bad);
for my $e (@ordered)
{
	my ($what, $p, $epoch) = $e->[0] =~ /"event": "(\w+)", "topic": "ev-order", "partition_id": (\d), .*"lease_epoch": (\d+)/
	  or next;
	$changes++;
	if ($what eq 'acquired')
	{
		my ($agent) = $e->[0] =~ /"agent_id": "([^"]+)"/;
		push @bad, "acquire at $epoch after $epoch{$p}" if defined $epoch{$p} && $epoch <= $epoch{$p};
		push @bad, "acquire by $agent while $owner{$p} holds $p" if defined $owner{$p};
		($owner{$p}, $epoch{$p}) = ($agent, $epoch);
	}
	elsif ($what eq 'released')
	{
		my ($prev) = $e->[0] =~ /"previous_agent_id": "([^"]+)"/;
		push @bad, "release of $prev at $epoch, owner " . ($owner{$p} // 'none') . " at " . ($epoch{$p} // 0)
		  unless defined $owner{$p} && $owner{$p} eq $prev && $epoch == $epoch{$p};
		$owner{$p} = undef;
	}
}
my $released = $node->safe_psql('postgres', q{
	SELECT count(*) FROM ptm.partition_leases WHERE topic = 'ev-order' AND agent_id IS NULL});
is($released, '2', 'both partitions were left released');
cmp_ok($changes, '>=', 200, "every cycle announced ($changes events)");
is_deeply(\@bad, [], 'per partition, the announcements come in commit order')
  or diag(join("\n", map { $_->[0] } @ordered));
ok(!(grep { $_->[1] != $worker_pid } @ordered), 'all sent by the worker');

# inline: the changing session sends its NOTIFY itself; on means worker.
$out = $node->safe_psql('postgres', q{
	SET ptm_lease.notify_owner_changes = inline;
	LISTEN ptm_lease_events;
	SELECT 'pid', pg_backend_pid();
	SELECT result FROM ptm.acquire_partition_lease('ev-inline', 0, 'agent-a');
	SET ptm_lease.notify_owner_changes = on;
	SHOW ptm_lease.notify_owner_changes;
});
my ($own) = $out =~ /^pid\|(\d+)$/m;
like($out, qr/"topic": "ev-inline"[^\n]* received from server process with PID $own\./,
	'inline: sent by the changing session');
like($out, qr/^worker$/m, "'on' is the worker mode");

# A worker that leaves while announcements wait in the ring (asked to by
# ptm_lease.database; it is stopped meanwhile so that it cannot send them
# first): until another worker serves the database, sessions send their own
# inline and health() says so; the next worker sends what was queued.
$l->{out} = '';
kill 'STOP', $worker_pid;
$node->safe_psql('postgres', "SELECT ptm.acquire_partition_lease('ev-kill', 0, 'agent-a')");
$node->safe_psql('postgres', "ALTER SYSTEM SET ptm_lease.database = 'nowhere'; SELECT pg_reload_conf()");
usleep(1_000_000);				# the launcher asks the worker to leave
kill 'CONT', $worker_pid;
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE pid = $worker_pid", '0'), 'the worker left');
is($node->safe_psql('postgres', q{SELECT value FROM ptm.health() WHERE "check" = 'announcements'}),
	'inline (no worker)', 'health(): no worker, sessions announce inline');
$out = $node->safe_psql('postgres', q{
	SELECT 'pid', pg_backend_pid();
	SELECT ptm.acquire_partition_lease('ev-kill', 1, 'agent-a');
});
($own) = $out =~ /^pid\|(\d+)$/m;
sub kill_events { return map { [ $_->[0] =~ /"topic": "ev-kill", "partition_id": (\d+)/, $_->[1] ] } grep { $_->[0] =~ /ev-kill/ } @_ }
usleep(500_000);
is_deeply([ kill_events(settled($l)) ], [ [ 1, $own ] ],
	'the change made without a worker is announced at once, by its session')
  or diag($l->{out});
$node->safe_psql('postgres', "ALTER SYSTEM RESET ptm_lease.database; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', q{SELECT value FROM ptm.health() WHERE "check" = 'announcements'}, 'worker'),
	'a new worker serves the database');
my $new_pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname = 'postgres'");
events($l, 3);
is_deeply([ kill_events(settled($l)) ], [ [ 1, $own ], [ 0, $new_pid ] ],
	'the change queued before the worker left is sent by the next worker')
  or diag($l->{out});
stop_listener($l);

# A crash (the stopped worker killed with SIGKILL: the server restarts)
# loses what was queued: at most once.  The lease itself is durable, and
# later changes are announced again.
$worker_pid = $new_pid;
kill 'STOP', $worker_pid;
$node->safe_psql('postgres', "SELECT ptm.acquire_partition_lease('ev-crash', 0, 'agent-a')");
kill 'KILL', $worker_pid;
ok($node->poll_query_until('postgres', q{SELECT value FROM ptm.health() WHERE "check" = 'announcements'}, 'worker'),
	'after the crash restart a worker announces again');
$l = listener();
$node->safe_psql('postgres', "SELECT ptm.acquire_partition_lease('ev-crash', 1, 'agent-a')");
@ev = settled($l);
is_deeply([ map { $_->[0] =~ /"topic": "ev-crash", "partition_id": (\d+)/ ? $1 : $_->[0] } @ev ], [ 1 ],
	'the change queued before the crash is not announced; the one after is');
is($node->safe_psql('postgres', "SELECT agent_id FROM ptm.partition_leases WHERE topic = 'ev-crash' AND partition_id = 0"),
	'agent-a', 'the lease it announced is held all the same');
stop_listener($l);

$node->stop;
done_testing();
