# A database whose extension is still at 0.1.0 after the library was
# upgraded (docs/workers.md): its worker starts but runs no pass, because
# the library's statements are written for its own version of the schema;
# ptm.health() says it waits for ALTER EXTENSION ptm_lease UPDATE, and an
# expired lease stays as it is.  The update pokes the worker when it
# commits: the same worker then serves the database (health ok, the lease
# swept, epoch kept).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# ALTER EXTENSION is noticed when it commits, as CREATE EXTENSION is.
my $bound = 5;

my $node = PostgreSQL::Test::Cluster->new('old_version');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.sweep_interval = '200ms'
});
$node->start;

sub health
{
	my ($check) = @_;
	return $node->safe_psql('v010', qq{
		SELECT status || '/' || value || '/' || coalesce(detail, '')
		  FROM ptm.health() WHERE "check" = '$check'});
}
my $serving_q = q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'ptm_lease worker' AND application_name = 'ptm_lease worker'
	  AND datname = 'v010'};
my $lease_q = q{SELECT state || '/' || coalesce(agent_id, '-') || '/' || coalesce(previous_agent_id, '-')
	FROM ptm.partition_leases WHERE topic = 'old'};

$node->safe_psql('postgres', 'CREATE DATABASE v010');
my $offset = -s $node->logfile;
$node->safe_psql('v010', "CREATE EXTENSION ptm_lease VERSION '0.1.0'");
my $library = $node->safe_psql('v010',
	q{SELECT value FROM ptm.health() WHERE "check" = 'library_version'});
isnt($library, '0.1.0', "the library is newer ($library)");

# The worker starts, finds 0.1.0, and waits.
ok($node->poll_query_until('postgres', $serving_q, '1'), 'a worker runs in the database at 0.1.0');
ok($node->wait_for_log(
	qr/ptm_lease worker for database "v010" waits: the extension there is version 0\.1\.0, the library \Q$library\E/,
	$offset), 'the server log says it waits, and why');
like(slurp_file($node->logfile, $offset), qr/HINT:  Run ALTER EXTENSION ptm_lease UPDATE in database "v010"/,
	'with a HINT naming the command');
ok($node->poll_query_until('v010',
	q{SELECT status || '/' || value FROM ptm.health() WHERE "check" = 'worker'},
	'warning/waiting for update'), 'health(): worker warning, waiting for update');
like(health('worker'), qr{waits for ALTER EXTENSION ptm_lease UPDATE: the extension in database "v010" is version 0\.1\.0},
	'its detail names the command and the versions');
like(health('history'), qr{^ok/no worker/}, 'the history row points at the worker row');
is($node->safe_psql('v010', q{SELECT count(*) FROM ptm.health() WHERE "check" = 'sweep_backlog'}), '0',
	'no sweep backlog row: the library cannot count it in a 0.1.0 schema');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname = 'v010'");

# An expired lease, written as a superuser (the lease functions of 0.1.0
# are not this library's to serve; INSERT passes the DML guard): not swept.
$node->safe_psql('v010', q{
	INSERT INTO ptm.partition_leases
	       (topic, partition_id, agent_id, lease_epoch, lease_expires_at, state, acquired_at)
	VALUES ('old', 0, 'agent-o', 7,
	        (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1000, 'active', now())});
sleep(2);	# ten sweep intervals
is($node->safe_psql('v010', $lease_q), 'active/agent-o/-', 'the worker does not sweep a database at 0.1.0');
is($node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname = 'v010'"),
	$pid, 'and stays, waiting');

# ALTER EXTENSION ptm_lease UPDATE: the same worker serves the database.
$offset = -s $node->logfile;
my $t0 = time;
$node->safe_psql('v010', 'ALTER EXTENSION ptm_lease UPDATE');
ok($node->poll_query_until('v010', $lease_q, 'expired/-/agent-o'),
	'after ALTER EXTENSION ptm_lease UPDATE the worker sweeps the expired lease');
my $took = time - $t0;
cmp_ok($took, '<=', $bound, sprintf('%.1f s after the update', $took));
is($node->safe_psql('v010', q{
	SELECT previous_epoch = lease_epoch FROM ptm.partition_leases WHERE topic = 'old'}),
	't', 'with its epoch kept');
ok($node->wait_for_log(
	qr/ptm_lease worker for database "v010" serves it: the extension is now version \Q$library\E/, $offset),
	'the server log says it serves the database now');
ok($node->poll_query_until('v010',
	q{SELECT status || '/' || value FROM ptm.health() WHERE "check" = 'worker'}, 'ok/running'),
	'health(): worker ok, running');
like(health('worker'), qr{^ok/running/pid $pid; .* 1 leases expired$}, 'the worker that waited serves, and counts the lease');
is($node->safe_psql('v010', q{SELECT status || '/' || value FROM ptm.health() WHERE "check" = 'sweep_backlog'}),
	'ok/0', 'health(): no sweep backlog');

$node->stop;
done_testing();
