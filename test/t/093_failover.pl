# Failover with a streaming standby (ptm_lease preloaded on both):
#  - on the standby the views, metrics and health() are readable, every
#    function that writes fails with SQLSTATE 25006 (read-only transaction)
#    and changes nothing, and no ptm_lease worker runs;
#  - after promotion epochs continue above every epoch handed out on the old
#    primary, leases replicated before the failover are still valid, and a
#    fence on an epoch of the old primary that has since been superseded is
#    rejected on the new primary (PTM01).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PtmExercise;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.sweep_interval = '200ms'
});
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	CREATE ROLE svc LOGIN;});
$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->start;

# Work on the primary: every function once, leases with a long and a short
# TTL, a workflow, a projection.
is(ptm_exercise($primary, 'postgres', 'primary'), $PTM_EXERCISE_EXPECTED, 'workload on the primary');
$primary->safe_psql('postgres', q{
	SELECT ptm.acquire_partition_lease('orders', 0, 'agent-a', '1 h');
	SELECT ptm.acquire_partition_lease('orders', 1, 'agent-b', '1 h');
	SELECT ptm.acquire_partition_lease('orders', 2, 'agent-c', '3 s');
	SELECT ptm.try_commit('wf', 0, '{"n": 1}', 'a1');
	SELECT ptm.apply_projection('proj', 0, 10, 'k', '{}');});
my %epoch = map { $_ => $primary->safe_psql('postgres',
	"SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'orders' AND partition_id = $_") } 0 .. 2;
$primary->wait_for_catchup($standby);

# 1. Reading on the standby.
is($standby->safe_psql('postgres', q{
	SELECT concat_ws(' ',
	       (SELECT count(*) FROM ptm.lease_status WHERE topic = 'orders' AND status = 'ACTIVE'),
	       (SELECT count(*) > 0 FROM ptm.metrics),
	       (SELECT count(*) > 0 FROM ptm.metric_series WHERE type = 'histogram'),
	       (SELECT stats_reset IS NOT NULL FROM ptm.stat_info),
	       (SELECT count(*) FROM ptm.projection_lag WHERE projection = 'proj'),
	       ptm.metrics_text() LIKE '%# TYPE lease_acquisitions_total counter%',
	       (SELECT version FROM ptm.get_state('wf')),
	       (SELECT count(*) >= 0 FROM ptm.key_counters),
	       (SELECT count(*) > 0 FROM ptm.lease_audit))}),
	'3 t t t 1 t 1 t t',
	'the standby reads leases, metrics, histograms, stat_info, lag, metrics_text, state and audit');
is($standby->safe_psql('postgres', q{
	SELECT string_agg("check" || '=' || status, ' ' ORDER BY "check") FROM ptm.health()
	 WHERE "check" IN ('preload', 'version_match', 'launcher')}),
	'launcher=ok preload=ok version_match=ok', 'health() on the standby');
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'ptm_lease%'}),
	'0', 'no ptm_lease worker runs on the standby');

# 2. Writing on the standby: every public function of the extension has a
# sample call here; those that write must fail with 25006.  A function added
# to the extension without a line here fails the test, so that its
# behaviour on a standby is decided.
my %calls = (
	'ptm.acquire_partition_lease(text,integer,text,interval)' =>
	  "SELECT ptm.acquire_partition_lease('orders', 5, 'agent-s')",
	'ptm.renew_lease(text,integer,text,bigint,interval)' =>
	  "SELECT ptm.renew_lease('orders', 0, 'agent-a', $epoch{0})",
	'ptm.release_lease(text,integer,text,bigint)' =>
	  "SELECT ptm.release_lease('orders', 0, 'agent-a', $epoch{0})",
	'ptm.force_expire(text,integer,text,text,bigint,boolean)' =>
	  "SELECT ptm.force_expire('orders', 0, 'standby', agent_id => 'agent-a')",
	'ptm.advance_epoch_era(text)' => "SELECT ptm.advance_epoch_era('standby')",
	'ptm.sweep_expired_leases(integer)' => 'SELECT * FROM ptm.sweep_expired_leases()',
	'ptm.check_fence(text,integer,bigint)' => "SELECT ptm.check_fence('orders', 0, $epoch{0})",
	'ptm.acquire_partition_leases(text,text,integer,interval)' =>
	  "SELECT ptm.acquire_partition_leases('orders', 'agent-s', 2)",
	'ptm.renew_leases(text,text[],integer[],bigint[],interval)' =>
	  "SELECT ptm.renew_leases('agent-a', '{orders}', '{0}', ARRAY[$epoch{0}]::bigint[])",
	'ptm.ensure_partitions(text,integer)' => "SELECT ptm.ensure_partitions('orders', 16)",
	'ptm.try_commit(text,bigint,jsonb,text,text,integer,bigint)' =>
	  "SELECT ptm.try_commit('wf', 1, '{\"n\": 2}')",
	'ptm.claim_step(text,bigint,text,interval)' => "SELECT ptm.claim_step('wf', 1, 'worker-s')",
	'ptm.apply_projection(text,integer,bigint,text,jsonb,timestamp with time zone,text,integer,bigint)' =>
	  "SELECT ptm.apply_projection('proj', 0, 11, 'k', '{}')",
	'ptm.apply_projection_batch(text,integer,bigint[],text[],jsonb[],timestamp with time zone[],text,integer,bigint)' =>
	  "SELECT ptm.apply_projection_batch('proj', 0, '{11}', '{k}', ARRAY['{}']::jsonb[])",
	'ptm.reset_projection(text,integer,boolean,text)' => "SELECT ptm.reset_projection('proj')",
	'ptm.grant_agent(regrole)' => "SELECT ptm.grant_agent('svc')",
	'ptm.grant_operator(regrole)' => "SELECT ptm.grant_operator('svc')",
	# fair share and metric history (branches in progress when this was
	# written: a key whose function does not exist is not used)
	'ptm.rebalance(text,text,interval)' => "SELECT ptm.rebalance('orders', 'agent-a')",
	'ptm.leave_topic(text,text)' => "SELECT ptm.leave_topic('orders', 'agent-a')",
	'ptm.set_topic_limit(text,integer,boolean,text)' => "SELECT ptm.set_topic_limit('orders', 4)",
	'ptm.clear_topic_limit(text,text)' => "SELECT ptm.clear_topic_limit('orders')",
	'ptm.drain_agent(text,text)' => "SELECT ptm.drain_agent('agent-a')",
	'ptm.undrain_agent(text,text)' => "SELECT ptm.undrain_agent('agent-a')",
	'ptm.snapshot_metrics()' => 'SELECT ptm.snapshot_metrics()',
	'ptm.increase(text,interval,timestamp with time zone)' => 'read',
	'ptm.rate(text,interval,timestamp with time zone)' => 'read',
	'ptm.histogram_quantile(double precision,text,interval,timestamp with time zone)' => 'read',
	# readers, and the counters (kept per server, not in tables)
	'ptm.get_state(text)' => 'read',
	'ptm.health()' => 'read',
	'ptm.metrics_text()' => 'read',
	'ptm.role_functions()' => 'read',
	'ptm.reset_counters()' => 'read',
);
my $before = ptm_data_digest($standby, 'postgres');
my @functions = split /\n/, $standby->safe_psql('postgres', q{
	SELECT replace(p.oid::regprocedure::text, ', ', ',') FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_proc'::regclass
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ptm_lease')
	   AND p.proname !~ '^_' AND p.prorettype <> 'trigger'::regtype
	 ORDER BY 1});
ok(@functions >= 20, scalar(@functions) . ' public functions');
my @refused;
for my $f (@functions)
{
	if (!exists $calls{$f})
	{
		fail("093_failover.pl has a sample call for $f on a standby");
		next;
	}
	next if $calls{$f} eq 'read';
	my ($ret, $out, $err) = $standby->psql('postgres', "\\set VERBOSITY verbose\n$calls{$f}");
	push @refused, $f;
	like($err, qr/ERROR:  25006: cannot execute .* in a read-only transaction/,
		"on the standby $f fails with 25006");
}
ok(@refused >= 15, scalar(@refused) . ' writing functions refused');
is_deeply(ptm_data_digest($standby, 'postgres'), $before, 'the refused calls changed nothing on the standby');
is($standby->safe_psql('postgres', q{SELECT (ptm.get_state('wf')).version}), '1',
	'get_state works on the standby');

# 3. Failover: the primary dies, the standby is promoted.
my $max_epoch = $primary->safe_psql('postgres', 'SELECT last_value FROM ptm.lease_epoch_seq');
$primary->stop('immediate');
$standby->promote;
ok($standby->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker'", '1'),
	'after promotion the worker runs on the new primary');

my $new = $standby->safe_psql('postgres', q{
	SELECT lease_epoch FROM ptm.acquire_partition_lease('orders', 3, 'agent-d', '1 h')
	 WHERE result = 'acquired'});
ok($new > $max_epoch, "a new acquisition takes epoch $new, above every epoch of the old primary ($max_epoch)");
is($standby->safe_psql('postgres', qq{
	SELECT r.result || ':' || r.lease_epoch FROM ptm.renew_lease('orders', 0, 'agent-a', $epoch{0}, '1 h') r}),
	"renewed:$epoch{0}", 'a lease taken on the old primary is still valid and renews at its epoch');
is($standby->safe_psql('postgres', qq{SELECT 'fenced' FROM ptm.check_fence('orders', 0, $epoch{0})}),
	'fenced', 'and its epoch still passes the fence');

# Takeovers on the new primary: an operator ends agent-b's lease, agent-c's
# short lease expires and agent-e takes it.  Their old epochs are fenced.
my $forced = $standby->safe_psql('postgres', q{
	SELECT result || ':' || lease_epoch FROM ptm.force_expire('orders', 1, 'failover')});
like($forced, qr/^forced:(\d+)$/, 'force_expire works on the new primary');
ok((split /:/, $forced)[1] > $max_epoch, 'and raises the epoch above the old primary\'s');
ok((split /:/, $forced)[1] > 1000000000000000, 'into the era of the new timeline (above 10^15)');
ok($standby->poll_query_until('postgres', q{
	SELECT result FROM ptm.acquire_partition_lease('orders', 2, 'agent-e', '1 h')}, 'acquired'),
	'the short lease from the old primary expires on the database clock and is taken over');
for my $p (1, 2)
{
	my ($ret, $out, $err) = $standby->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT ptm.check_fence('orders', $p, $epoch{$p})");
	like($err, qr/ERROR:  PTM01/, "a fence on the old primary's epoch $epoch{$p} of orders-$p is rejected (PTM01)");
}
is($standby->safe_psql('postgres', qq{
	SELECT result FROM ptm.try_commit('wf', 1, '{"n": 2}', 'a2', 'orders', 1, $epoch{1})}),
	'fencing_reject', 'a commit fenced by the old epoch is a fencing_reject');
is($standby->safe_psql('postgres', qq{
	SELECT result FROM ptm.renew_lease('orders', 2, 'agent-c', $epoch{2})}),
	'stale_epoch', 'the old owner renewing learns its epoch is stale');
ok($standby->safe_psql('postgres', q{
	SELECT count(*) = count(DISTINCT lease_epoch) FROM ptm.partition_leases WHERE agent_id IS NOT NULL}) eq 't',
	'no two live leases share an epoch');
is(ptm_exercise($standby, 'postgres', 'promoted'), $PTM_EXERCISE_EXPECTED, 'every function works after promotion');

$standby->stop;
done_testing();
