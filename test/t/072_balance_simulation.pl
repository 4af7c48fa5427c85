# Fair share in motion: 4 agents, 64 partitions.  agent-0 starts first and
# takes everything; then all four run rounds concurrently (pgbench, one
# transaction per agent per round): rebalance() and release what it lists,
# then bulk-acquire.  Within a bounded number of rounds every agent holds its
# fair share (16), and the log of every acquisition and release shows that no
# partition ever had two owners.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $max_rounds = 6;

my $node = PostgreSQL::Test::Cluster->new('balance');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'\nmax_connections = 40");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	SELECT ptm.ensure_partitions('sim', 64);
	SELECT ptm.set_topic_limit('sim', NULL, true, 'fair share for the simulation');
	-- every change of owner, logged in the transaction that made it
	CREATE TABLE sim_log (round int, agent_id text, partition_id int, epoch bigint,
	                      event text, at_ms bigint);
	INSERT INTO sim_log
	SELECT 0, a.agent_id, a.partition_id, a.lease_epoch, 'acquired',
	       (extract(epoch FROM clock_timestamp()) * 1000)::bigint
	  FROM ptm.acquire_partition_leases('sim', 'agent-0', 64, '10 min') a;
});
is($node->safe_psql('postgres',
	"SELECT agent_id || ':' || leases FROM ptm.balance WHERE topic = 'sim'"),
	'agent-0:64', 'agent-0 started first and holds all 64 partitions');

# One round of one agent: hand back what rebalance() lists, then acquire.
my $script = $node->basedir . '/round.sql';
open my $fh, '>', $script or die;
print $fh q{
\set agent :client_id
BEGIN;
INSERT INTO sim_log
SELECT :round, h.agent_id, r.partition_id, h.lease_epoch, 'released',
       (extract(epoch FROM clock_timestamp()) * 1000)::bigint
  FROM ptm.rebalance('sim', 'agent-' || :agent, '10 min') h,
       LATERAL ptm.release_lease(h.topic, h.partition_id, h.agent_id, h.lease_epoch) r
 WHERE r.result = 'released';
COMMIT;
BEGIN;
INSERT INTO sim_log
SELECT :round, a.agent_id, a.partition_id, a.lease_epoch, 'acquired',
       (extract(epoch FROM clock_timestamp()) * 1000)::bigint
  FROM ptm.acquire_partition_leases('sim', 'agent-' || :agent, 64, '10 min') a;
COMMIT;
};
close $fh;

my $balanced_q = q{SELECT count(*) = 4 AND bool_and(leases = 16) AND sum(leases) = 64
	FROM ptm.balance WHERE topic = 'sim'};
my $rounds = 0;
for my $round (1 .. $max_rounds)
{
	$node->command_ok(
		[ 'pgbench', '-n', '-c', '4', '-j', '2', '-t', '1', '-D', "round=$round",
		  '-f', $script, '-h', $node->host, '-p', $node->port, 'postgres' ],
		"round $round ran");
	if ($node->safe_psql('postgres', $balanced_q) eq 't')
	{
		$rounds = $round;
		last;
	}
}
ok($rounds > 0 && $rounds <= 4, "every agent holds its fair share of 16 after $rounds rounds (bound 4)")
  or diag($node->safe_psql('postgres',
	"SELECT agent_id, leases, fair_share, balance FROM ptm.balance WHERE topic = 'sim' ORDER BY 1"));
note("converged after $rounds rounds");

is($node->safe_psql('postgres', q{
	SELECT string_agg(agent_id || ':' || leases || '/' || fair_share || ':' || balance, ' ' ORDER BY agent_id)
	  FROM ptm.balance WHERE topic = 'sim'}),
	'agent-0:16/16:fair agent-1:16/16:fair agent-2:16/16:fair agent-3:16/16:fair',
	'the balance view says every agent is fair');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM generate_series(0, 3) g, LATERAL ptm.rebalance('sim', 'agent-' || g, '10 min')}),
	'0', 'balanced: rebalance() hands nothing back');
# At least the 48 excess partitions moved.  Rounds run concurrently, so an
# agent may hand back a lease it took a moment before the others joined; the
# churn stays bounded (no partition moves back and forth round after round).
my $moved = $node->safe_psql('postgres',
	"SELECT count(*) FROM sim_log WHERE event = 'released'");
ok($moved >= 48 && $moved <= 64, "the 48 excess partitions moved, with bounded churn ($moved releases)");

# Never two owners: on every partition, each acquisition after the first
# follows the release of the previous epoch (no lease expired: 10 min TTLs),
# epochs rise, and each epoch belongs to one agent.
is($node->safe_psql('postgres', q{
	WITH acq AS (
	  SELECT partition_id, agent_id, epoch, at_ms,
	         lag(epoch) OVER w AS prev_epoch, lag(agent_id) OVER w AS prev_agent
	    FROM sim_log WHERE event = 'acquired'
	  WINDOW w AS (PARTITION BY partition_id ORDER BY epoch))
	SELECT count(*) FROM acq a
	 WHERE a.prev_epoch IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM sim_log r
	                    WHERE r.event = 'released' AND r.partition_id = a.partition_id
	                      AND r.epoch = a.prev_epoch AND r.agent_id = a.prev_agent
	                      AND r.at_ms <= a.at_ms)}),
	'0', 'every takeover came after the previous owner released');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT partition_id, epoch FROM sim_log
	  GROUP BY 1, 2 HAVING count(DISTINCT agent_id) > 1) x}),
	'0', 'each epoch belongs to exactly one agent');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM sim_log l JOIN ptm.partition_leases p
	  ON p.topic = 'sim' AND p.partition_id = l.partition_id
	 WHERE l.epoch > p.lease_epoch}),
	'0', 'no logged epoch is above the current one');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ptm.partition_leases WHERE topic = 'sim' AND agent_id IS NOT NULL}),
	'64', 'all 64 partitions are owned');

# The announcements: the live set grew from one agent to four.
is($node->safe_psql('postgres',
	"SELECT cardinality(agents) FROM ptm.topic_generations WHERE topic = 'sim'"),
	'4', 'topic_generations records the four live agents');
my $fair_share = $node->safe_psql('postgres',
	q{SELECT value FROM ptm.metrics WHERE metric = 'ptm_backpressure_total' AND labels->>'reason' = 'fair_share'});
note("fair_share refusals during the run: $fair_share");

$node->stop;
done_testing();
