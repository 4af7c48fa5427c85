# Changes of owner on NOTIFY channel ptm_lease_events: acquire (from nobody
# and from another agent, single and bulk), release and force_expire each send
# one event; held acquisitions and renewals send none.  A topic's set of live
# agents changing (rebalance, leave, drain) sends agents_changed.  And
# recovery_latency_ms is observed on a takeover after the sweeper expired a
# lease.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.sweep_interval = '100ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');

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
});
my @events = ($out =~ /Asynchronous notification "ptm_lease_events" with payload "([^\n]*)" received/g);
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

$node->stop;
done_testing();
