# Metric history and claim cleanup by the worker: snapshots of every counter
# and histogram series appear in ptm.metric_history within a couple of
# history intervals, ptm.increase() reads the worker's history exactly, a
# reloaded history_interval takes effect (1h: none; 200ms: again), rows past
# ptm_lease.history_retention are deleted in batches, health() reports the
# last snapshot, and step claims expired for longer than
# ptm_lease.claim_retention are cleared (epoch kept, results unchanged) and
# counted in ptm_claim_cleanup_deleted_total.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('history');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.sweep_interval = '100ms'
ptm_lease.cleanup_interval = '200ms'
ptm_lease.history_interval = '300ms'
ptm_lease.claim_retention = '1s'
ptm_lease.sweep_batch_size = 100
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');

my $series = $node->safe_psql('postgres',
	"SELECT count(*) FROM ptm.metric_series WHERE type IN ('counter', 'histogram')");
ok($series > 50, "there are $series counter and histogram series");

# Snapshots appear, each one complete, taken at one time.
ok($node->poll_query_until('postgres',
	'SELECT count(DISTINCT sampled_at) >= 3 FROM ptm.metric_history'),
	'the worker writes snapshots into ptm.metric_history');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT sampled_at FROM ptm.metric_history
	                       GROUP BY sampled_at HAVING count(*) <> }.$series.q{) AS s}),
	'0', 'every snapshot holds every counter and histogram series');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ptm.metric_history WHERE metric LIKE 'projection_materializer%lag_ms'}),
	'0', 'gauges are not sampled');
like($node->safe_psql('postgres', q{
	SELECT status || '|' || value FROM ptm.health() WHERE "check" = 'history'}),
	qr/^ok\|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, 'health() shows the last snapshot time');

# Seven commits: the worker's history sees exactly seven more.
$node->safe_psql('postgres', q{
	SELECT ptm.try_commit('hist-wf', v, '{}') FROM generate_series(0, 6) AS v});
ok($node->poll_query_until('postgres', q{
	SELECT increase FROM ptm.increase('ptm_commit_total', '1 hour')
	 WHERE labels->>'result' = 'ok'}, '7'),
	'ptm.increase() over the worker\'s snapshots counts the seven commits');
ok($node->safe_psql('postgres', q{
	SELECT rate > 0 FROM ptm.rate('ptm_commit_total', '1 hour') WHERE labels->>'result' = 'ok'}) eq 't',
	'ptm.rate() is positive');

# Reload: history_interval = 1h takes no more snapshots, 200ms resumes.
$node->append_conf('postgresql.conf', "ptm_lease.history_interval = '1h'");
$node->reload;
# Wait (60 s at most) until no snapshot came for 2 s: the worker has
# reloaded; then none may come for 3 s more (at 300 ms there would be ten).
my $snapshots = 'SELECT count(DISTINCT sampled_at) FROM ptm.metric_history';
my $before = $node->safe_psql('postgres', $snapshots);
for (my $waited = 0; $waited < 60; $waited += 2)
{
	sleep(2);
	my $now = $node->safe_psql('postgres', $snapshots);
	last if $now == $before;
	$before = $now;
}
sleep(3);
is($node->safe_psql('postgres', $snapshots), $before,
	'with history_interval = 1h no snapshot is taken');
$node->append_conf('postgresql.conf', "ptm_lease.history_interval = '200ms'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT count(DISTINCT sampled_at) >= $before + 3 FROM ptm.metric_history"),
	'after reloading 200ms snapshots resume');

# history_interval = 0: health() says off.
$node->append_conf('postgresql.conf', "ptm_lease.history_interval = 0");
$node->reload;
ok($node->poll_query_until('postgres', q{
	SELECT status || '/' || value FROM ptm.health() WHERE "check" = 'history'}, 'ok/off'),
	'with history_interval = 0 health() says off');
$node->append_conf('postgresql.conf', "ptm_lease.history_interval = '200ms'");
$node->reload;

# Retention: rows older than ptm_lease.history_retention (1 day) go, in
# batches (2500 rows, sweep_batch_size 100, so over several cleanups);
# recent ones stay.
$node->safe_psql('postgres', q{
	INSERT INTO ptm.metric_history (sampled_at, metric, labels, value)
	SELECT now() - interval '2 days' - g * interval '1 ms', 'old_total', '{}', g
	  FROM generate_series(1, 2500) AS g});
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM ptm.metric_history WHERE metric = 'old_total'", '0'),
	'rows past ptm_lease.history_retention are deleted');
ok($node->safe_psql('postgres',
	"SELECT count(*) FROM ptm.metric_history WHERE sampled_at > now() - interval '1 hour'") > 0,
	'recent snapshots are kept');

# Claims: 2500 workflows whose 100 ms claims expire, one live claim, one
# claim ended by a fenced commit.  With slices of 100 workflows and 10 per
# cleanup, the walk resumes where it stopped three times before it wraps.
$node->safe_psql('postgres', q{
	SELECT ptm.try_commit('bulk-' || g, 0, '{}') FROM generate_series(1, 2500) AS g;
	SELECT ptm.claim_step('bulk-' || g, 1, 'worker-a', '100 ms') FROM generate_series(1, 2500) AS g;
	SELECT ptm.try_commit(k, 0, '{}') FROM unnest(ARRAY['claim-live', 'claim-ended']) AS k;
	SELECT ptm.claim_step('claim-live', 1, 'worker-b', '1 h');
	SELECT ptm.try_commit('claim-ended', 1, '{"done": true}', NULL, NULL, NULL,
	       (SELECT claim_epoch FROM ptm.claim_step('claim-ended', 1, 'worker-c', '1 h')));
});
my $epoch = $node->safe_psql('postgres',
	"SELECT claim_epoch FROM ptm.workflow_state WHERE workflow_key = 'bulk-7'");
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM ptm.workflow_state WHERE workflow_key LIKE 'bulk-%' AND claim_worker IS NOT NULL},
	'0'), 'expired claims are cleared once claim_retention has passed');
is($node->safe_psql('postgres', q{
	SELECT value FROM ptm.metrics WHERE metric = 'ptm_claim_cleanup_deleted_total'}),
	'2500', 'ptm_claim_cleanup_deleted_total counts them');
is($node->safe_psql('postgres', q{
	SELECT string_agg(workflow_key || ':' || coalesce(claim_worker, '-') || ':'
	                  || (claim_expires_at IS NOT NULL), ' ' ORDER BY workflow_key)
	  FROM ptm.workflow_state WHERE workflow_key LIKE 'claim-%'}),
	'claim-ended:worker-c:false claim-live:worker-b:true',
	'a live claim and an ended one are left alone');
is($node->safe_psql('postgres',
	"SELECT claim_epoch FROM ptm.workflow_state WHERE workflow_key = 'bulk-7'"),
	$epoch, 'a cleared claim keeps its epoch');

# What claim_step and try_commit say is what they said before the cleanup.
is($node->safe_psql('postgres', q{
	SELECT string_agg(r, ' ') FROM (
	  SELECT (ptm.try_commit('bulk-7', 1, '{}', NULL, NULL, NULL, }.$epoch.q{)).result AS r
	  UNION ALL SELECT (ptm.claim_step('bulk-7', 0, 'worker-d')).result
	  UNION ALL SELECT (ptm.claim_step('bulk-7', 5, 'worker-d')).result) AS s}),
	'fencing_reject stale out_of_order',
	'the old claim fences its commit off; stale and out_of_order come from the version');
is($node->safe_psql('postgres', q{
	SELECT result || ':' || (claim_epoch = }.$epoch.q{ + 1) FROM ptm.claim_step('bulk-7', 1, 'worker-d')}),
	'claimed:true', 'a new claim takes the next epoch');

$node->stop;
done_testing();
