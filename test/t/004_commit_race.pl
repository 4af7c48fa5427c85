# A pgbench race of 8 clients on one workflow: each reads the state and
# commits the next version; many lose with cas_conflict.  Every version must
# have been committed exactly once (by one winner), the versions must be
# contiguous, and the counters must agree with what the clients saw.  A
# second race repeats a small set of action ids from every client: each
# action applies exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('commit_race');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->append_conf('postgresql.conf', "max_connections = 40");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	-- One row per ok commit, as the winning client saw it.
	CREATE TABLE commit_log (client int, version bigint, state_v bigint);
	CREATE TABLE action_log (client int, action_id text, result text, version bigint);
	SELECT ptm.reset_counters();
	SELECT result FROM ptm.try_commit('hot', 0, '{"v": 1}');
});

# Read, compute (v + 1), try_commit; log the commit when it won.
my $reducer = q{
INSERT INTO commit_log (client, version, state_v)
SELECT :client_id, c.version, (g.state->>'v')::bigint + 1
  FROM ptm.get_state('hot') AS g
 CROSS JOIN LATERAL ptm.try_commit('hot', g.version,
       jsonb_build_object('v', (g.state->>'v')::bigint + 1, 'by', :client_id)) AS c
 WHERE c.result = 'ok';
};

my $transactions = 200;
$node->pgbench(
	"--no-vacuum --client=8 --jobs=8 --transactions=$transactions",
	0,
	[qr{processed: 1600/1600}],
	[qr{^$}],
	'8 reducers race on one workflow',
	{ '004_reducer' => $reducer });

my ($commits, $distinct, $lo, $hi) = split /\|/, $node->safe_psql('postgres',
	'SELECT count(*), count(DISTINCT version), min(version), max(version) FROM commit_log');
ok($commits > 0, "some commits won ($commits of 1600 attempts)");
is($distinct, $commits, 'every version was committed exactly once');
is($lo, 2, 'the first commit after creation made version 2');
is($hi, $commits + 1, 'versions are contiguous: 2 .. commits + 1');

my ($version, $v) = split /\|/, $node->safe_psql('postgres',
	q{SELECT version, state->>'v' FROM ptm.get_state('hot')});
is($version, $hi, 'the workflow is at the last committed version');
is($v, $version, 'each winner computed from the state it read: no lost update');
is($node->safe_psql('postgres',
	'SELECT count(*) FROM commit_log WHERE state_v <> version'), '0',
	'every winner wrote the version it computed');

my %m = map { split /\|/ } split /\n/, $node->safe_psql('postgres', q{
	SELECT metric || coalesce(labels->>'result', ''), value FROM ptm.metrics
	 WHERE metric IN ('ptm_commit_total', 'canonical_store_state_commits_total',
	                  'canonical_store_state_conflicts_total')});
is($m{ptm_commit_totalok}, $commits + 1, 'ptm_commit_total{ok} counts every win (and the create)');
is($m{ptm_commit_totalcas_conflict}, 1600 - $commits, 'ptm_commit_total{cas_conflict} counts every loss');
is($m{canonical_store_state_commits_total}, $commits + 1, 'canonical_store_state_commits_total agrees');
is($m{canonical_store_state_conflicts_total}, 1600 - $commits, 'canonical_store_state_conflicts_total agrees');

# Actions: 8 clients submit actions act-1 .. act-50, each until it is ok or
# duplicate (retrying cas_conflict with the version it was given).
$node->safe_psql('postgres', q{
	SELECT result FROM ptm.try_commit('acts', 0, '{"applied": 0}');
	CREATE FUNCTION submit(client int, action text) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		r record;
		v bigint;
		s jsonb;
	BEGIN
		SELECT version, state INTO v, s FROM ptm.get_state('acts');
		LOOP
			SELECT * INTO r FROM ptm.try_commit('acts', v,
				jsonb_build_object('applied', (s->>'applied')::int + 1), action_id => action);
			EXIT WHEN r.result <> 'cas_conflict';
			v := r.version;
			s := r.state;
		END LOOP;
		INSERT INTO action_log VALUES (client, action, r.result, r.version);
	END
	$$;
});
$node->pgbench(
	'--no-vacuum --client=8 --jobs=8 --transactions=50',
	0,
	[qr{processed: 400/400}],
	[qr{^$}],
	'8 clients repeat the same 50 actions',
	{ '004_actions' => q{
\set n random(1, 50)
SELECT submit(:client_id, 'act-' || :n);
} });

my ($submitted, $ok, $dup, $actions) = split /\|/, $node->safe_psql('postgres', q{
	SELECT count(*), count(*) FILTER (WHERE result = 'ok'),
	       count(*) FILTER (WHERE result = 'duplicate'), count(DISTINCT action_id)
	  FROM action_log});
is($submitted, 400, 'every submission ended ok or duplicate');
is($ok, $actions, 'each distinct action applied exactly once');
is($ok + $dup, 400, 'every other submission was a duplicate');
is($node->safe_psql('postgres', q{SELECT state->>'applied' FROM ptm.get_state('acts')}),
	$actions, 'the state counted each action once');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM action_log a
	  JOIN ptm.action_dedup_log d ON d.workflow_key = 'acts' AND d.action_id = a.action_id
	 WHERE a.version <> d.result_version}), '0',
	'every duplicate returned the version its action produced');

$node->stop;
done_testing();
