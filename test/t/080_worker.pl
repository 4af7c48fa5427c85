# Background workers, configured as before 0.2.0 (ptm_lease.database names
# "postgres"; 120_launcher.pl tests the default, every database with the
# extension): the launcher and the worker for "postgres" appear in
# pg_stat_activity, sweep short-TTL leases within a couple of intervals
# (counted, logged, notified on ptm_lease_events, epoch kept), clean up old
# audit rows and expired dedup records, come back after pg_terminate_backend,
# follow a reloaded sweep_interval, and do nothing on a standby until it is
# promoted.  ptm.sweep_expired_leases() does the worker's batch on demand; a
# lease written at 0.1.0 is swept once its database is updated.
# A worker in a database still at 0.1.0 waits for that update: 121_worker_old_version.pl.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.database = 'postgres'
ptm_lease.sweep_interval = '200ms'
ptm_lease.cleanup_interval = '200ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');

my $workers_q = q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'ptm_lease worker' AND application_name = 'ptm_lease worker'
	  AND datname = 'postgres'};
ok($node->poll_query_until('postgres', $workers_q, '1'), 'the worker for postgres runs');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease launcher'"),
	'1', 'the launcher runs');

# Sweep: a LISTEN session takes a 100 ms lease, waits, and sees the NOTIFY.
my $offset = -s $node->logfile;
my $out = $node->safe_psql('postgres', q{
	LISTEN ptm_lease_events;
	SELECT result FROM ptm.acquire_partition_lease('orders', 0, 'agent-a', '100 ms');
	SELECT pg_sleep(1.5);
	SELECT 'done';
});
like($out, qr/Asynchronous notification "ptm_lease_events" with payload "\{"event": "expired", "topic": "orders", "partition_id": 0, "previous_agent_id": "agent-a", "lease_epoch": \d+, "expired_at_ms": \d+\}"/,
	'a LISTEN session receives the expiry on ptm_lease_events');
is($node->safe_psql('postgres', q{
	SELECT state || '/' || coalesce(agent_id, '-') || '/' || previous_agent_id || '/' ||
	       (previous_epoch = lease_epoch)
	  FROM ptm.partition_leases WHERE topic = 'orders' AND partition_id = 0}),
	'expired/-/agent-a/true', 'the lease is marked expired and its epoch kept');
is($node->safe_psql('postgres', q{
	SELECT r.result FROM ptm.partition_leases p,
	       ptm.renew_lease('orders', 0, 'agent-a', p.lease_epoch) r
	 WHERE p.topic = 'orders' AND p.partition_id = 0}),
	'expired', 'renew by the old owner says expired');
ok($node->safe_psql('postgres',
	"SELECT value FROM ptm.metrics WHERE metric = 'lease_expirations_total'") >= 1,
	'lease_expirations_total counts it');
ok($node->wait_for_log(qr/lost lease for partition orders-0 \(expired at /, $offset),
	'the server log names the lost lease');

# Several leases at once are all swept within a couple of intervals.
$node->safe_psql('postgres', q{
	SELECT ptm.acquire_partition_lease('bulk', g, 'agent-b', '50 ms') FROM generate_series(0, 49) g});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM ptm.partition_leases WHERE topic = 'bulk' AND state = 'expired'}, '50'),
	'50 short leases are swept');

# health(): the worker has passed recently, no backlog.
is($node->safe_psql('postgres', q{
	SELECT string_agg("check" || '=' || status || '/' || value, ' ' ORDER BY "check")
	  FROM ptm.health() WHERE "check" IN ('launcher', 'worker', 'sweep_backlog')}),
	'launcher=ok/running sweep_backlog=ok/0 worker=ok/running',
	'health() reports launcher, worker and backlog');

# ptm.sweep_expired_leases(): the worker's batch on demand, in a database no
# worker serves, with the worker's NOTIFY, log line and counter.
$node->safe_psql('postgres', 'CREATE DATABASE noworker');
$node->safe_psql('noworker', 'CREATE EXTENSION ptm_lease');
my $expirations_q = "SELECT value FROM ptm.metrics WHERE metric = 'lease_expirations_total'";
my $expirations = $node->safe_psql('postgres', $expirations_q);
$offset = -s $node->logfile;
$out = $node->safe_psql('noworker', q{
	LISTEN ptm_lease_events;
	SELECT result FROM ptm.acquire_partition_lease('manual', 0, 'agent-m', '1 ms');
	SELECT pg_sleep(0.01);
	SELECT expired || '/' || rescheduled FROM ptm.sweep_expired_leases();
});
like($out, qr{^1/0$}m, 'ptm.sweep_expired_leases() expires the lease in a database without a worker');
like($out, qr/Asynchronous notification "ptm_lease_events" with payload "\{"event": "expired", "topic": "manual", "partition_id": 0, "previous_agent_id": "agent-m", "lease_epoch": \d+, "expired_at_ms": \d+\}"/,
	'it sends the worker\'s NOTIFY');
ok($node->wait_for_log(qr/lost lease for partition manual-0 \(expired at /, $offset),
	'it logs the worker\'s line');
ok($node->safe_psql('postgres', $expirations_q) >= $expirations + 1,
	'it counts lease_expirations_total');
is($node->safe_psql('noworker', q{
	SELECT state || '/' || previous_agent_id || '/' || (previous_epoch = lease_epoch)
	  FROM ptm.partition_leases WHERE topic = 'manual'}),
	'expired/agent-m/true', 'the lease is expired with its epoch kept, as the worker leaves it');

# A lease row written at 0.1.0 (no sweep_at column then; by hand, since the
# current library refuses 0.1.0's lease functions) that expired before
# ALTER EXTENSION ptm_lease UPDATE: the update sets its sweep_at, and the
# worker sweeps it.
$node->safe_psql('postgres', 'CREATE DATABASE v010');
$node->safe_psql('v010', "CREATE EXTENSION ptm_lease VERSION '0.1.0'");
$node->safe_psql('v010', q{
	INSERT INTO ptm.partition_leases (topic, partition_id, agent_id, lease_epoch, lease_expires_at, state)
	VALUES ('old', 0, 'agent-o', nextval('ptm.lease_epoch_seq'),
	        (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 50, 'active')});
$node->safe_psql('v010', 'ALTER EXTENSION ptm_lease UPDATE');
$node->append_conf('postgresql.conf', "ptm_lease.database = 'postgres, v010'");
$node->reload;
ok($node->poll_query_until('v010',
	"SELECT state || '/' || previous_agent_id FROM ptm.partition_leases WHERE topic = 'old'",
	'expired/agent-o'),
	'the worker sweeps a lease written at 0.1.0 once the database is updated');
$node->append_conf('postgresql.conf', "ptm_lease.database = 'postgres'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker'", '1'),
	'the worker for v010 stops once it leaves ptm_lease.database');

# Renewed leases: renew leaves sweep_at behind (a HOT update); the sweeper
# reschedules a due lease that was renewed and expires it once it really
# expired, and never expires a live one.
$node->safe_psql('postgres', q{
	SELECT ptm.acquire_partition_lease('renewed', g, 'agent-r', '3 s') FROM generate_series(0, 1) g});
is($node->safe_psql('postgres', q{
	SELECT r.result FROM ptm.partition_leases p,
	       ptm.renew_lease('renewed', 0, 'agent-r', p.lease_epoch, '4 s') r
	 WHERE p.topic = 'renewed' AND p.partition_id = 0;
	SELECT r.result FROM ptm.partition_leases p,
	       ptm.renew_lease('renewed', 0, 'agent-r', p.lease_epoch, '5 s') r
	 WHERE p.topic = 'renewed' AND p.partition_id = 0;
	SELECT r.result FROM ptm.partition_leases p,
	       ptm.renew_lease('renewed', 1, 'agent-r', p.lease_epoch, '50 min') r
	 WHERE p.topic = 'renewed' AND p.partition_id = 1;
	SELECT r.result FROM ptm.partition_leases p,
	       ptm.renew_lease('renewed', 1, 'agent-r', p.lease_epoch, '1 h') r
	 WHERE p.topic = 'renewed' AND p.partition_id = 1;
	SELECT string_agg(partition_id || ':' || (sweep_at < lease_expires_at), ' ' ORDER BY partition_id)
	  FROM ptm.partition_leases WHERE topic = 'renewed'}),
	"renewed\nrenewed\nrenewed\nrenewed\n0:true 1:true", 'renewals leave sweep_at behind the expiry');
ok($node->poll_query_until('postgres', q{
	SELECT state || '/' || coalesce(agent_id, '-') || '/' || (sweep_at = lease_expires_at)
	  FROM ptm.partition_leases WHERE topic = 'renewed' AND partition_id = 1}, 'active/agent-r/true'),
	'the sweeper reschedules a renewed live lease (sweep_at = expiry) and leaves it active');
ok($node->poll_query_until('postgres', q{
	SELECT state || '/' || previous_agent_id || '/' || (ended_at >= to_timestamp(lease_expires_at / 1000.0) - interval '1 ms')
	  FROM ptm.partition_leases WHERE topic = 'renewed' AND partition_id = 0}, 'expired/agent-r/true'),
	'a renewed lease whose sweep_at lagged is expired once its real expiry passed');
is($node->safe_psql('postgres', q{
	SELECT state || '/' || agent_id || '/' || (lease_expires_at > (extract(epoch FROM clock_timestamp()) * 1000 + 2400000)::bigint)
	  FROM ptm.partition_leases WHERE topic = 'renewed' AND partition_id = 1}),
	'active/agent-r/true', 'the live renewed lease is not expired');

# Cleanup: audit rows past retention, expired dedup records.
$node->safe_psql('postgres', q{
	DO $$ BEGIN
	  IF pg_catalog.to_regclass('ptm.action_dedup_log') IS NULL THEN
	    CREATE TABLE ptm.action_dedup_log (workflow_key text NOT NULL, action_id text NOT NULL,
	      result_version bigint NOT NULL, expires_at timestamptz NOT NULL);
	  END IF;
	END $$;
	INSERT INTO ptm.action_dedup_log (workflow_key, action_id, result_version, expires_at)
	SELECT 'wf', 'a' || g, 1, now() - interval '1 s' FROM generate_series(1, 2500) g;
	INSERT INTO ptm.action_dedup_log (workflow_key, action_id, result_version, expires_at)
	VALUES ('wf', 'keep', 1, now() + interval '1 h');
});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM ptm.action_dedup_log', '1'),
	'expired dedup records are deleted in batches, live ones kept');
ok($node->safe_psql('postgres',
	"SELECT value FROM ptm.metrics WHERE metric = 'action_dedup_cleanup_deleted_total'") >= 2500,
	'action_dedup_cleanup_deleted_total counts them');

$node->safe_psql('postgres', q{
	SELECT ptm.acquire_partition_lease('audit', 0, 'agent-c');
	SELECT ptm.force_expire('audit', 0, 'test');});
ok($node->safe_psql('postgres', 'SELECT count(*) FROM ptm.lease_audit') >= 1, 'force_expire is audited');
$node->append_conf('postgresql.conf', "ptm_lease.audit_retention = '1s'");
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM ptm.lease_audit', '0'),
	'audit rows past ptm_lease.audit_retention are deleted');

# pg_terminate_backend: the postmaster starts it again.
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND pid <> $pid}, '1'),
	'a terminated worker comes back');

# Reload: a long interval stops sweeping; a short one resumes at once.
$node->append_conf('postgresql.conf', "ptm_lease.sweep_interval = '1h'");
$node->reload;
sleep(1);	# the worker wakes on SIGHUP, does one pass, then sleeps an hour
$node->safe_psql('postgres',
	"SELECT ptm.acquire_partition_lease('reload', 0, 'agent-d', '50 ms')");
sleep(2);
is($node->safe_psql('postgres',
	"SELECT state FROM ptm.partition_leases WHERE topic = 'reload'"),
	'active', 'with sweep_interval = 1h the expired lease is not swept yet');
is($node->safe_psql('postgres', q{
	SELECT status || '/' || value FROM ptm.health() WHERE "check" = 'sweep_backlog'}),
	'ok/1', 'health() counts it in the sweep backlog');
$node->append_conf('postgresql.conf', "ptm_lease.sweep_interval = '200ms'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT state FROM ptm.partition_leases WHERE topic = 'reload'", 'expired'),
	'after reloading a short interval it is swept');

# A sweeper behind its queue: a live lease whose look (sweep_at) is 120 s
# overdue, written while the worker is stopped, is no expired lease, yet
# health() warns, naming how late the oldest look is; once the worker runs
# again it looks, reschedules it to the expiry, and health() is ok.
my $wpid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname = 'postgres'");
kill 'STOP', $wpid;
$node->safe_psql('postgres', q{
	INSERT INTO ptm.partition_leases
	  (topic, partition_id, agent_id, lease_epoch, lease_expires_at, sweep_at, state, acquired_at, renewed_at)
	SELECT 'lag', 0, 'agent-l', nextval('ptm.lease_epoch_seq'), ms + 3600000, ms - 120000, 'active', now(), now()
	  FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) t});
like($node->safe_psql('postgres', q{
	SELECT status || '/' || value || '/' || detail FROM ptm.health() WHERE "check" = 'sweep_backlog'}),
	qr{^warning/0/.*the sweeper's oldest due look is 12\d s late}, 'health() warns when the sweeper is behind its queue');
kill 'CONT', $wpid;
ok($node->poll_query_until('postgres', q{
	SELECT status FROM ptm.health() WHERE "check" = 'sweep_backlog'}, 'ok'),
	'the worker looks, reschedules the live lease, and health() is ok again');
is($node->safe_psql('postgres', q{
	SELECT sweep_at = lease_expires_at FROM ptm.partition_leases WHERE topic = 'lag'}),
	't', 'the look moved sweep_at to the expiry');

# A sweep that ends on a full batch is behind: the next pass starts at once
# instead of after sweep_interval.  With batches of 10 (at most 10 a pass)
# and a 10 s interval, 600 due leases take one chain of passes, where one
# pass per interval would take six intervals (a minute).
$node->append_conf('postgresql.conf', "ptm_lease.sweep_interval = '10s'\nptm_lease.sweep_batch_size = 10");
$node->reload;
sleep(1);	# the worker wakes on SIGHUP, does one pass, then sleeps 10 s
$node->safe_psql('postgres', q{
	SELECT count(ptm.acquire_partition_lease('behind', g, 'agent-c', '10 ms')) FROM generate_series(0, 599) g});
my $t0 = time;
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM ptm.partition_leases WHERE topic = 'behind' AND state = 'expired'}, '600'),
	'600 due leases are swept in batches of 10');
my $took = time - $t0;
ok($took < 25, "a sweeper behind does not wait for the next interval: $took s, not six intervals of 10 s");
$node->append_conf('postgresql.conf', "ptm_lease.sweep_interval = '200ms'\nptm_lease.sweep_batch_size = 1000");
$node->reload;

# A standby runs no worker and changes nothing; after promotion it does.
$node->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'bk', has_streaming => 1);
$standby->start;
$node->safe_psql('postgres',
	"SELECT ptm.acquire_partition_lease('standby', 0, 'agent-e', '1 h')");
$node->wait_for_catchup($standby);
$node->stop;
sleep(1);
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'ptm_lease%'}),
	'0', 'no ptm_lease worker on a standby');
is($standby->safe_psql('postgres', q{
	SELECT status || '/' || value FROM ptm.health() WHERE "check" = 'launcher'}),
	'ok/standby', 'health() on a standby says so');
$standby->promote;
ok($standby->poll_query_until('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker'}, '1'),
	'after promotion the worker runs');
$standby->safe_psql('postgres',
	"SELECT ptm.acquire_partition_lease('promoted', 0, 'agent-f', '50 ms')");
ok($standby->poll_query_until('postgres',
	"SELECT state FROM ptm.partition_leases WHERE topic = 'promoted'", 'expired'),
	'and sweeps');
$standby->stop;

done_testing();
