# Dump and restore: pg_dump keeps the rows of every ptm table and the
# sequences (pg_extension_config_dump), pg_restore loads them through the DML
# guard (INSERT is allowed), and the restored database carries on: the same
# rows, objects and grants, epochs continuing above every epoch handed out
# before the dump, and leases, fences, commits and watermarks taken before the
# dump still valid.  Both the custom format with pg_restore and a plain SQL
# dump through psql.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PtmExercise;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
# No worker in src and its copies: a sweep or a metric snapshot between the
# dump and the comparison would change the rows compared.
$node->append_conf('postgresql.conf', qq{shared_preload_libraries = 'ptm_lease'
ptm_lease.database = 'postgres'});
$node->start;
my @conn = ('-h', $node->host, '-p', $node->port);

$node->safe_psql('postgres', q{
	CREATE DATABASE src;
	CREATE ROLE svc LOGIN;
	CREATE ROLE oncall LOGIN;});
$node->safe_psql('src', q{
	CREATE EXTENSION ptm_lease;
	SELECT count(*) FROM ptm.grant_agent('svc');
	SELECT count(*) FROM ptm.grant_operator('oncall');});

# A workload: every function once, then live leases, workflows with dedup
# entries and a claim, a projection, and audited operator actions.
is(ptm_exercise($node, 'src', 'before'), $PTM_EXERCISE_EXPECTED, 'workload before the dump');
$node->safe_psql('src', q{
	SELECT ptm.acquire_partition_lease('orders', p, 'agent-' || p, '1 h') FROM generate_series(0, 7) p;
	SELECT ptm.acquire_partition_lease('orders', p, 'agent-x', '1 h') FROM generate_series(0, 7) p;  -- conflicts
	SELECT ptm.force_expire('orders', 7, 'before the dump');
	SELECT ptm.try_commit('wf-' || w, v, jsonb_build_object('w', w, 'v', v + 1), 'act-' || w || '-' || v)
	  FROM generate_series(1, 20) w, generate_series(0, 3) v ORDER BY w, v;
	SELECT ptm.claim_step('wf-1', 4, 'worker-1', '1 h');
	SELECT ptm.apply_projection('orders-view', p, o, 'k' || (o % 10), jsonb_build_object('o', o))
	  FROM generate_series(0, 3) p, generate_series(1, 50) o ORDER BY p, o;});
my $epoch0 = $node->safe_psql('src',
	"SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'orders' AND partition_id = 0");
my $forced_epoch = $node->safe_psql('src',
	"SELECT previous_epoch FROM ptm.partition_leases WHERE topic = 'orders' AND partition_id = 7");
my $max_epoch = $node->safe_psql('src', 'SELECT last_value FROM ptm.lease_epoch_seq');
ok($max_epoch >= 10, "epochs handed out before the dump: up to $max_epoch");

# Every table and sequence of the extension keeps state worth restoring, so
# each is marked for pg_dump, unless listed here with the reason it is not.
my %not_dumped = ();
is(join(' ', grep { !exists $not_dumped{$_} } split /\n/, $node->safe_psql('src', q{
	SELECT c.oid::regclass FROM pg_depend d JOIN pg_class c ON c.oid = d.objid, pg_extension e
	 WHERE e.extname = 'ptm_lease' AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
	   AND d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind IN ('r', 'p', 'S')
	   AND c.oid <> ALL (e.extconfig)
	 ORDER BY 1})),
	'', 'every table and sequence of the extension is marked with pg_extension_config_dump');

my $digest = ptm_data_digest($node, 'src');
my %rows = ('ptm.action_dedup_log' => 83, 'ptm.lease_audit' => 3, 'ptm.partition_leases' => 14,
	'ptm.projection_watermarks' => 5, 'ptm.workflow_projection' => 11, 'ptm.workflow_state' => 21,
	'ptm.lease_epoch_seq' => 'seq', 'ptm.lease_audit_audit_id_seq' => 'seq');
is(join(' ', map { "$_=" . (($digest->{$_} // '') =~ /rows=(\d+)/ ? $1 : $digest->{$_} ? 'seq' : 'missing') }
		sort keys %rows),
	join(' ', map { "$_=$rows{$_}" } sort keys %rows),
	'the dump will carry the workload: rows of every table, the sequences');
my $catalog = ptm_catalog($node, 'src');

my $dir = PostgreSQL::Test::Utils::tempdir;
$node->command_ok([ 'pg_dump', @conn, '-Fc', '-f', "$dir/src.dump", 'src' ], 'pg_dump -Fc');
$node->command_ok([ 'pg_dump', @conn, '-Fp', '-f', "$dir/src.sql", 'src' ], 'pg_dump -Fp');
like(slurp_file("$dir/src.sql"), qr/SELECT pg_catalog\.setval\('ptm\.lease_epoch_seq', $max_epoch, true\)/,
	'the dump carries the epoch sequence');

# Work after the dump must not matter to the restored copies.
$node->safe_psql('src', q{
	SELECT ptm.acquire_partition_lease('after-dump', 0, 'agent-z', '1 h')});

$node->safe_psql('postgres', 'CREATE DATABASE dst_custom; CREATE DATABASE dst_plain;');
$node->command_ok([ 'pg_restore', @conn, '--exit-on-error', '-d', 'dst_custom', "$dir/src.dump" ],
	'pg_restore into a new database');
$node->command_ok([ 'psql', @conn, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
	  '-f', "$dir/src.sql", 'dst_plain' ],
	'the plain dump loads with psql');

for my $db ('dst_custom', 'dst_plain')
{
	is_deeply(ptm_data_digest($node, $db), $digest, "$db: every row and sequence value as dumped");
	my @diff = ptm_catalog_diff(ptm_catalog($node, $db), $catalog, $db, 'src');
	ok(!@diff, "$db: the same objects, grants and comments as the source")
	  or diag(join("\n", @diff));

	ok($node->safe_psql($db, q{
		SELECT lease_epoch FROM ptm.acquire_partition_lease('orders', 8, 'agent-new', '1 h')}) > $max_epoch,
		"$db: the next epoch is above every epoch handed out before the dump");
	is($node->safe_psql($db, qq{
		SELECT r.result || ':' || (r.lease_epoch = $epoch0)
		  FROM ptm.renew_lease('orders', 0, 'agent-0', $epoch0, '1 h') r}),
		'renewed:true', "$db: a lease taken before the dump renews at its epoch");
	is($node->safe_psql($db, qq{SELECT 'fenced' FROM ptm.check_fence('orders', 0, $epoch0)}),
		'fenced', "$db: and passes check_fence");
	my ($ret, $out, $err) = $node->psql($db, qq{
		\\set VERBOSITY verbose
		SELECT ptm.check_fence('orders', 7, $forced_epoch)});
	like($err, qr/ERROR:  PTM01/, "$db: the lease forced before the dump stays fenced (PTM01)");
	is($node->safe_psql($db, q{
		SELECT string_agg(c.result || ':' || c.version, ' ' ORDER BY n)
		  FROM (VALUES (1, 3, 'act-2-3'), (2, 4, 'act-2-4'), (3, 4, 'act-2-4b')) AS a(n, v, act),
		       ptm.try_commit('wf-2', a.v, '{}', a.act) c}),
		'duplicate:4 ok:5 cas_conflict:5', "$db: dedup and versions continue");
	is($node->safe_psql($db, q{
		SELECT c.result || ':' || c.version FROM ptm.workflow_state w,
		       ptm.try_commit('wf-1', 4, '{}', 'claimed', fence_epoch => w.claim_epoch) c
		 WHERE w.workflow_key = 'wf-1'}),
		'ok:5', "$db: a step claim taken before the dump fences a commit");
	is($node->safe_psql($db, q{
		SELECT string_agg(result, ',' ORDER BY o) FROM generate_series(49, 51) o,
		       ptm.apply_projection('orders-view', 0, o, 'k', '{}')}),
		'regression,duplicate,applied', "$db: watermarks hold");
	($ret, $out, $err) = $node->psql($db, 'UPDATE ptm.partition_leases SET lease_expires_at = 0');
	like($err, qr/permission denied|refuse|not allowed/i, "$db: the DML guard is back");
	is(ptm_exercise($node, $db, 'after'), $PTM_EXERCISE_EXPECTED, "$db: every function works");
	is($node->safe_psql($db, q{
		SET ROLE svc;
		SELECT result FROM ptm.acquire_partition_lease('svc-topic', 0, 'svc-agent')}),
		'acquired', "$db: the agent role granted before the dump still acquires");
}

$node->stop;
done_testing();
