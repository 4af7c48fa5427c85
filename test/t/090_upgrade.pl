# Upgrades: the frozen 0.1.0 script installs; with the current library its
# lease, commit and projection functions refuse (SQLSTATE 55000, HINT: run
# ALTER EXTENSION ptm_lease UPDATE) while health() and the counters work;
# ALTER EXTENSION ptm_lease UPDATE brings a 0.1.0 database with data
# (written by INSERT, as a restore or the 0.1.0 library would have left it)
# to the current version, keeping the data and the leases, commits and
# watermarks in it; and the updated database's objects are exactly those of
# a fresh install (definitions, C symbols, columns, indexes, constraints,
# triggers, grants, initial privileges, comments, config_dump marks).  When
# the last check fails, its message lists every difference: an object added
# to sql/install/ but not to sql/upgrade/ptm_lease--0.1.0--0.2.0.sql, or
# added differently.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PtmExercise;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;

my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'ptm_lease'");
isnt($current, '0.1.0', "the current version is $current");
is($node->safe_psql('postgres', q{
	SELECT string_agg(target, ' ' ORDER BY target) FROM pg_extension_update_paths('ptm_lease')
	 WHERE source = '0.1.0' AND path IS NOT NULL}),
	$current, "0.1.0 has an update path to $current");

# 1. The oldest version, installed fresh, with the current library.
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', "CREATE EXTENSION ptm_lease VERSION '0.1.0'");
is($node->safe_psql('old', "SELECT extversion FROM pg_extension WHERE extname = 'ptm_lease'"),
	'0.1.0', 'CREATE EXTENSION ptm_lease VERSION 0.1.0');
is($node->safe_psql('old', q{
	SELECT string_agg("check" || '=' || status || '/' || value, ' ' ORDER BY "check")
	  FROM ptm.health() WHERE "check" IN ('extension_version', 'library_version', 'version_match')}),
	"extension_version=ok/0.1.0 library_version=ok/$current version_match=error/no",
	'health() at 0.1.0 says the library is newer and the extension needs an update');
like($node->safe_psql('old', q{SELECT detail FROM ptm.health() WHERE "check" = 'version_match'}),
	qr/the lease, commit and projection functions refuse until ALTER EXTENSION ptm_lease UPDATE/,
	'and that the lease, commit and projection functions refuse until then');

# Every 0.1.0 function whose C code reads or writes the ptm tables refuses,
# with one error and the command that ends it.
my @refused = (
	q{ptm.acquire_partition_lease('T', 0, 'agent-1', '1 h')},
	q{ptm.renew_lease('T', 0, 'agent-1', 1, '1 h')},
	q{ptm.release_lease('T', 0, 'agent-1', 1)},
	q{ptm.force_expire('T', 0, 'why')},
	q{ptm.check_fence('T', 0, 1)},
	q{ptm.acquire_partition_leases('T', 'agent-1', 2, '1 h')},
	q{ptm.renew_leases('agent-1', '{T}', '{0}', '{1}', '1 h')},
	q{ptm.ensure_partitions('T', 2)},
	q{ptm.try_commit('W', 0, '{}', 'a1')},
	q{ptm.get_state('W')},
	q{ptm.claim_step('W', 1, 'worker-1', '1 h')},
	q{ptm.apply_projection('P', 0, 1, 'k', '{}')},
	q{ptm.apply_projection_batch('P', 0, '{1}', '{k}', '{"{}"}')},
	q{ptm.reset_projection('P', 0, false, 'why')});
for my $call (@refused)
{
	my ($rc, $out, $err) = $node->psql('old', "\\set VERBOSITY verbose\nSELECT * FROM $call");
	(my $name = $call) =~ s/\(.*//;
	ok($rc != 0
		  && $err =~ /ERROR:  55000: ptm_lease's SQL objects in this database are at version 0\.1\.0, the library at \Q$current\E/
		  && $err =~ /HINT:  Run ALTER EXTENSION ptm_lease UPDATE\./,
		"$name() at 0.1.0 refuses with 55000 and the hint")
	  or diag($err);
}
is($node->safe_psql('old', q{
	SELECT (SELECT count(*) > 0 FROM ptm.metrics WHERE metric = 'ptm_commit_total')
	       || ',' || (SELECT stats_reset IS NOT NULL FROM ptm.stat_info)
	       || ',' || (SELECT count(*) >= 0 FROM ptm.key_counters)
	       || ',' || (ptm.metrics_text() LIKE '%# TYPE ptm_commit_total counter%')
	       || ',' || (SELECT count(*) > 0 FROM ptm.health() WHERE "check" = 'preload' AND status = 'ok')}),
	'true,true,true,true,true', 'the counters, their views and health() work at 0.1.0');
my (undef, undef, $guard_err) = $node->psql('old', 'UPDATE ptm.partition_leases SET lease_expires_at = 0');
like($guard_err, qr/direct UPDATE of ptm.partition_leases is not allowed/,
	'the guard still refuses a hand-written UPDATE at 0.1.0');

# Data written at 0.1.0 that must survive the update and stay usable: live
# leases, a forced one with its audit row, a workflow at version 5 with the
# action ids that made it and a step claim, a projection watermark and its
# rows.  The functions refuse, so the rows are inserted as the 0.1.0 library
# left them (INSERT stays allowed, for pg_restore); epochs come from the
# sequence, as the functions take them.
$node->safe_psql('old', q{
	CREATE TEMP VIEW clock AS
	  SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms;
	INSERT INTO ptm.partition_leases
	       (topic, partition_id, agent_id, lease_epoch, lease_expires_at, state, acquired_at, renewed_at)
	SELECT 'keep', p, 'agent-keep', nextval('ptm.lease_epoch_seq'), c.now_ms + 3600000, 'active', now(), now()
	  FROM generate_series(0, 2) p, clock c;
	-- partition 3: held at one epoch, then forced out, which took the next
	INSERT INTO ptm.partition_leases
	       (topic, partition_id, agent_id, lease_epoch, lease_expires_at, state, acquired_at, ended_at,
	        previous_agent_id, previous_epoch)
	SELECT 'keep', 3, NULL, h.held + 1, c.now_ms, 'forced', now(), now(), 'agent-keep', h.held
	  FROM (SELECT nextval('ptm.lease_epoch_seq') AS held) h, clock c;
	SELECT nextval('ptm.lease_epoch_seq');
	INSERT INTO ptm.lease_audit (action, topic, partition_id, previous_agent_id, previous_epoch, new_epoch, reason)
	SELECT 'force_expire', topic, partition_id, previous_agent_id, previous_epoch, lease_epoch, 'before the update'
	  FROM ptm.partition_leases WHERE topic = 'keep' AND partition_id = 3;
	INSERT INTO ptm.workflow_state
	       (workflow_key, version, state, claim_worker, claim_step, claim_epoch, claim_expires_at)
	SELECT 'wf-keep', 5, '{"v": 5}', 'worker-keep', 5, 1, c.now_ms + 3600000 FROM clock c;
	INSERT INTO ptm.action_dedup_log (workflow_key, action_id, result_version, expires_at)
	SELECT 'wf-keep', 'act-' || v, v + 1, now() + interval '1 h' FROM generate_series(0, 4) v;
	INSERT INTO ptm.workflow_projection (projection, key, data, source_partition, source_offset, updated_at)
	SELECT 'proj-keep', 'k' || (o % 3), jsonb_build_object('o', o), 0, o, now() FROM generate_series(98, 100) o;
	INSERT INTO ptm.projection_watermarks
	       (projection, partition_id, "offset", previous_offset, updated_at, applied_count)
	VALUES ('proj-keep', 0, 100, 99, now(), 100);
});
my $keep_epoch = $node->safe_psql('old',
	"SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'keep' AND partition_id = 0");
my $max_epoch = $node->safe_psql('old', 'SELECT max(lease_epoch) FROM ptm.partition_leases');
my $columns = ptm_table_columns($node, 'old');
my $before = ptm_data_digest($node, 'old', $columns);
ok(scalar(keys %$before) >= 8, 'the digest covers the 0.1.0 tables and sequences ('
	. join(', ', sort keys %$before) . ')');

# 2. ALTER EXTENSION UPDATE.
$node->safe_psql('old', 'ALTER EXTENSION ptm_lease UPDATE');
is($node->safe_psql('old', "SELECT extversion FROM pg_extension WHERE extname = 'ptm_lease'"),
	$current, "ALTER EXTENSION ptm_lease UPDATE reaches $current");
is($node->safe_psql('old', q{SELECT status || '/' || value FROM ptm.health() WHERE "check" = 'version_match'}),
	'ok/yes', 'health() after the update: versions match');
is_deeply(ptm_data_digest($node, 'old', $columns), $before,
	'every row and sequence value written at 0.1.0 is unchanged by the update');

is($node->safe_psql('old', qq{
	SELECT r.result || ':' || (r.lease_epoch = $keep_epoch)
	  FROM ptm.renew_lease('keep', 0, 'agent-keep', $keep_epoch, '1 h') r}),
	'renewed:true', 'a lease taken at 0.1.0 is renewed at its epoch after the update');
is($node->safe_psql('old', qq{
	SELECT 'fenced' FROM ptm.check_fence('keep', 0, $keep_epoch)}),
	'fenced', 'and its epoch still passes check_fence');
is($node->safe_psql('old', q{
	SELECT result || ':' || version FROM ptm.try_commit('wf-keep', 4, '{}', 'act-4')}),
	'duplicate:5', 'an action committed at 0.1.0 is still a duplicate');
is($node->safe_psql('old', q{
	SELECT c.result || ':' || c.version FROM ptm.workflow_state w,
	       ptm.try_commit('wf-keep', 5, '{"v": 6}', 'act-5', fence_epoch => w.claim_epoch) c
	 WHERE w.workflow_key = 'wf-keep'}),
	'ok:6', 'a claim taken at 0.1.0 fences a commit after the update');
is($node->safe_psql('old', q{
	SELECT string_agg(result, ',' ORDER BY o) FROM generate_series(100, 101) o,
	       ptm.apply_projection('proj-keep', 0, o, 'k', '{}')}),
	'duplicate,applied', 'the watermark written at 0.1.0 holds after the update');
ok($node->safe_psql('old', q{
	SELECT lease_epoch FROM ptm.acquire_partition_lease('keep', 3, 'agent-new', '1 h')}) > $max_epoch,
	'a new acquisition takes an epoch above every epoch handed out at 0.1.0');
is(ptm_exercise($node, 'old', 'v020'), $PTM_EXERCISE_EXPECTED,
	'every function gives its documented results after the update');

# 3. The updated database has exactly the objects of a fresh install.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION ptm_lease');
my $fresh = ptm_catalog($node, 'fresh');
my $updated = ptm_catalog($node, 'old');
ok(scalar(grep { /^member function / } keys %$fresh) >= 20
	  && scalar(grep { /^column / } keys %$fresh) >= 40
	  && scalar(grep { /^comment / } keys %$fresh) >= 40,
	'the catalog comparison sees the functions, columns and comments ('
	  . scalar(keys %$fresh) . ' items)');
my @diff = ptm_catalog_diff($updated, $fresh, 'updated from 0.1.0', 'fresh install');
ok(!@diff, "0.1.0 updated to $current has the same objects as a fresh $current install")
  or diag("Differences (add the missing pieces to sql/upgrade/ptm_lease--0.1.0--$current.sql):\n"
	  . join("\n", @diff));

# The comparison notices what it is meant to notice: a comment, a grant, a
# column and a trigger changed in one transaction (rolled back).
my $changed = ptm_catalog($node, 'old', q{
	COMMENT ON FUNCTION ptm.health() IS 'changed';
	GRANT EXECUTE ON FUNCTION ptm.get_state(text) TO PUBLIC;
	ALTER TABLE ptm.workflow_state ADD COLUMN extra integer;
	ALTER TABLE ptm.lease_audit DISABLE TRIGGER lease_audit_guard;
	CREATE OR REPLACE VIEW ptm.lease_status AS SELECT * FROM ptm.lease_status WHERE topic <> ''});
is(join(' | ', map { (split /\n/)[0] } ptm_catalog_diff($changed, $fresh, 'changed', 'fresh')),
	join(' | ',
		'only in changed: column ptm.workflow_state.extra',
		'differs: comment function ptm.health()',
		'differs: function ptm.get_state(text)',
		'differs: trigger lease_audit_guard on ptm.lease_audit',
		'differs: view ptm.lease_status'),
	'the comparison reports a changed comment, grant, trigger, view and column');

# Back to 0.1.0 is not offered: no downgrade script.
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM pg_extension_update_paths('ptm_lease')
	 WHERE source = '$current' AND target = '0.1.0' AND path IS NOT NULL}),
	'0', 'no downgrade path');

$node->stop;
done_testing();
