# Randomized lease race: 8 pgbench clients, 64 agents, 3 partitions, 20 ms
# TTLs.  Every acquisition is logged in the transaction that made it; after
# the run no two owners overlapped in time on a partition and epochs rose
# with time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('race');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'\nmax_connections = 40");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	CREATE TABLE race_log (partition_id int, agent_id text, epoch bigint, result text,
	                       start_ms bigint, expires_ms bigint);
});

my $script = $node->basedir . '/race.sql';
open my $fh, '>', $script or die;
print $fh q{
\set p random(0, 2)
\set a random(1, 64)
BEGIN;
INSERT INTO race_log
SELECT r.partition_id, r.agent_id, r.lease_epoch, r.result,
       (extract(epoch FROM r.expires_at) * 1000)::bigint - 20,
       (extract(epoch FROM r.expires_at) * 1000)::bigint
  FROM ptm.acquire_partition_lease('race', :p, 'agent-' || :a, '20 ms') r
 WHERE r.result IN ('acquired', 'held');
COMMIT;
};
close $fh;

$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '2', '-T', '5', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'pgbench race ran');

my $acquired = $node->safe_psql('postgres',
	"SELECT count(*) FROM race_log WHERE result = 'acquired'");
ok($acquired > 20, "many ownership changes happened ($acquired)");

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT partition_id, epoch FROM race_log
	  GROUP BY 1, 2 HAVING count(DISTINCT agent_id) > 1) x}),
	'0', 'each epoch belongs to exactly one agent');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT partition_id, epoch FROM race_log WHERE result = 'acquired'
	  GROUP BY 1, 2 HAVING count(*) > 1) x}),
	'0', 'each epoch was acquired once')
  or diag($node->safe_psql('postgres', q{
	SELECT l.* FROM race_log l JOIN (SELECT partition_id, epoch FROM race_log WHERE result = 'acquired'
	  GROUP BY 1, 2 HAVING count(*) > 1) d USING (partition_id, epoch) ORDER BY start_ms}));

# Per partition and epoch: the span the owner held it.  The next epoch must
# start no earlier than the previous one ended, and epochs rise with time.
my $overlaps = $node->safe_psql('postgres', q{
	WITH spans AS (
	  SELECT partition_id, epoch, min(start_ms) AS s, max(expires_ms) AS e
	    FROM race_log GROUP BY 1, 2),
	ordered AS (
	  SELECT *, lag(e) OVER w AS prev_end, lag(s) OVER w AS prev_start
	    FROM spans WINDOW w AS (PARTITION BY partition_id ORDER BY epoch))
	SELECT count(*) FROM ordered WHERE s < prev_end OR s < prev_start});
is($overlaps, '0', 'no two owners overlapped in time and epochs rose with time')
  or diag($node->safe_psql('postgres', q{
	WITH spans AS (
	  SELECT partition_id, epoch, min(start_ms) AS s, max(expires_ms) AS e,
	         string_agg(result || '@' || start_ms, ' ' ORDER BY start_ms) AS calls
	    FROM race_log GROUP BY 1, 2),
	ordered AS (
	  SELECT *, lag(e) OVER w AS prev_end, lag(s) OVER w AS prev_start, lag(calls) OVER w AS prev_calls
	    FROM spans WINDOW w AS (PARTITION BY partition_id ORDER BY epoch))
	SELECT * FROM ordered WHERE s < prev_end OR s < prev_start}));

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM race_log l JOIN ptm.partition_leases p
	  ON p.topic = 'race' AND p.partition_id = l.partition_id
	 WHERE l.epoch > p.lease_epoch}),
	'0', 'no logged epoch is above the current one');

$node->stop;
done_testing();
