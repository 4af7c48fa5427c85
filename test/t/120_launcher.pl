# CREATE EXTENSION and go: with nothing but shared_preload_libraries, the
# launcher gives a worker to every database where ptm_lease is installed,
# and to no other (docs/workers.md):
#  - two databases, the extension installed in one and later in the other:
#    each gets its worker within the bound (CREATE EXTENSION wakes the
#    launcher when it commits), and it sweeps;
#  - a database without the extension, template1 and "postgres" get none;
#    the look for the extension leaves no worker behind;
#  - DROP EXTENSION ends the worker, and CREATE EXTENSION brings it back;
#  - DROP DATABASE, ALTER DATABASE RENAME and CREATE DATABASE ... TEMPLATE
#    of a database with a worker succeed at once (the worker steps aside,
#    for the database's owner only);
#  - a database created from a template with the extension gets a worker,
#    the template none;
#  - ptm_lease.database restricts: a database left out has no worker and
#    health() says warning, with the setting to change; '' is none; a list
#    with bad syntax is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# CREATE EXTENSION is noticed when it commits: the worker attaches well
# within this (docs/workers.md states 5 s as the bound for every path).
my $bound = 5;

my $node = PostgreSQL::Test::Cluster->new('launcher');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.sweep_interval = '200ms'
});
$node->start;

is($node->safe_psql('postgres', 'SHOW ptm_lease.database'), '*',
	'ptm_lease.database selects every database by default');

# Workers of a database: every one, and those serving it (the look for the
# extension has no application_name yet).
sub workers
{
	my ($db) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'ptm_lease worker' AND datname = '$db'});
}
sub serving_q
{
	my ($db) = @_;
	return qq{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'ptm_lease worker' AND application_name = 'ptm_lease worker'
		  AND datname = '$db'};
}
# Seconds until a worker serves $db.
sub time_to_worker
{
	my ($db) = @_;
	my $t0 = time;
	$node->poll_query_until('postgres', serving_q($db), '1') or return 999;
	return time - $t0;
}
sub health
{
	my ($db, $check) = @_;
	return $node->safe_psql($db, qq{
		SELECT status || '/' || value || '/' || coalesce(detail, '')
		  FROM ptm.health() WHERE "check" = '$check'});
}

$node->safe_psql('postgres', 'CREATE DATABASE svc_a');
$node->safe_psql('postgres', 'CREATE DATABASE svc_b');
$node->safe_psql('postgres', 'CREATE DATABASE plain');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker'}, '0'),
	'databases without the extension keep no worker');

# The extension in svc_a: a worker within the bound, that sweeps.
my $offset = -s $node->logfile;
$node->safe_psql('svc_a', 'CREATE EXTENSION ptm_lease');
my $t = time_to_worker('svc_a');
cmp_ok($t, '<=', $bound, sprintf('svc_a gets its worker %.1f s after CREATE EXTENSION', $t));
ok($node->wait_for_log(qr/ptm_lease worker for database "svc_a" started/, $offset),
	'the server log says the worker started');
$node->safe_psql('svc_a', "SELECT ptm.acquire_partition_lease('t', 0, 'agent-a', '50 ms')");
ok($node->poll_query_until('svc_a',
	"SELECT state FROM ptm.partition_leases WHERE topic = 't'", 'expired'),
	'the worker of svc_a sweeps its expired lease');
ok($node->poll_query_until('svc_a', q{
	SELECT status || '/' || value FROM ptm.health() WHERE "check" = 'worker'}, 'ok/running'),
	'health() in svc_a: worker ok, running');
# a worker the launcher starts in svc_b (a database it has not looked at
# yet, e.g. on the rescan that svc_a's CREATE EXTENSION asks for) only looks
# for the extension and leaves: none stays
ok($node->poll_query_until('postgres', qq{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'ptm_lease worker' AND datname = 'svc_b'}, '0'),
	'svc_b, still without the extension, keeps no worker');

# Later, svc_b too.
$node->safe_psql('svc_b', 'CREATE EXTENSION ptm_lease');
$t = time_to_worker('svc_b');
cmp_ok($t, '<=', $bound, sprintf('svc_b gets its worker %.1f s after CREATE EXTENSION', $t));
like(health('svc_b', 'worker'), qr{^ok/(running|starting)/}, 'health() in svc_b: worker ok');

# One worker per database with the extension, none elsewhere.
sleep(6);	# more than a rescan of the launcher
is($node->safe_psql('postgres', q{
	SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
	 WHERE backend_type = 'ptm_lease worker'}),
	'svc_a,svc_b', 'after a rescan: one worker in svc_a, one in svc_b, none in plain, postgres or the templates');
unlike(slurp_file($node->logfile, $offset), qr/worker for database "(plain|postgres)" started/,
	'no worker ever served plain or postgres');

# DROP EXTENSION ends the worker; CREATE EXTENSION brings it back.
$node->safe_psql('svc_b', 'DROP EXTENSION ptm_lease');
my $t0 = time;
ok($node->poll_query_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname = 'svc_b'", '0'),
	'DROP EXTENSION ends the worker of svc_b');
cmp_ok(time - $t0, '<=', $bound, 'promptly');
sleep(6);
is(workers('svc_b'), '0', 'and the launcher does not start it again');
$node->safe_psql('svc_b', 'CREATE EXTENSION ptm_lease');
$t = time_to_worker('svc_b');
cmp_ok($t, '<=', $bound, 'CREATE EXTENSION again: the worker is back');

# DROP DATABASE with the extension and its worker: at once, not after the
# 5 s wait for other sessions that ends in "being accessed by other users".
$offset = -s $node->logfile;
$t0 = time;
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE svc_b');
my $took = time - $t0;
is($rc, 0, 'DROP DATABASE of a database with the extension succeeds') or diag($err);
cmp_ok($took, '<', 3, sprintf('in %.1f s', $took));
sleep(6);
is(workers('svc_b'), '0', 'no worker is left for the dropped database');
unlike(slurp_file($node->logfile, $offset), qr/FATAL/,
	'and none tries to connect to it again');

# ALTER DATABASE RENAME and CREATE DATABASE ... TEMPLATE of a served database.
($rc, $out, $err) = $node->psql('postgres', 'ALTER DATABASE svc_a RENAME TO svc_c');
is($rc, 0, 'ALTER DATABASE RENAME of a database with a worker succeeds') or diag($err);
$t = time_to_worker('svc_c');
cmp_ok($t, '<=', $bound, 'the renamed database gets its worker back');
($rc, $out, $err) = $node->psql('postgres', 'CREATE DATABASE svc_copy TEMPLATE svc_c');
is($rc, 0, 'CREATE DATABASE ... TEMPLATE a database with a worker succeeds') or diag($err);
$t = time_to_worker('svc_copy');
cmp_ok($t, '<=', $bound, 'the copy, which has the extension, gets a worker');
$t = time_to_worker('svc_c');
cmp_ok($t, '<=', $bound, 'and the template database gets its worker back');

# A template with the extension gets no worker (it would make CREATE
# DATABASE fail); a database created from it gets one.
$node->safe_psql('template1', 'CREATE EXTENSION ptm_lease');
$node->safe_psql('postgres', 'CREATE DATABASE svc_new');
$t = time_to_worker('svc_new');
cmp_ok($t, '<=', $bound, 'a database created from a template with the extension gets a worker');
is(workers('template1'), '0', 'template1 gets none');
like(health('template1', 'worker'), qr{^warning/template/.*CREATE DATABASE},
	'health() in template1: worker warning, and why');
$node->safe_psql('template1', 'DROP EXTENSION ptm_lease');

# ptm_lease.database restricts: a database left out has no worker, and
# health() says warning with the setting to change.
$node->safe_psql('postgres', "ALTER SYSTEM SET ptm_lease.database = 'svc_c, postgres'");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname IN ('svc_copy', 'svc_new')", '0'),
	'databases left out of ptm_lease.database lose their worker');
is(workers('svc_c'), '1', 'the one listed keeps it');
like(health('svc_copy', 'worker'),
	qr{^warning/not configured/ptm_lease.database = 'svc_c, postgres' leaves out database "svc_copy"\. Set ptm_lease.database = '\*'},
	'health() in a database left out: worker warning, naming the setting');
like(health('svc_copy', 'history'), qr{^ok/no worker/}, 'the history row points at the worker row');
is($node->safe_psql('svc_copy', q{SELECT count(*) FROM ptm.health() WHERE status <> 'ok'}), '1',
	'one warning for one cause');

$node->safe_psql('postgres', "ALTER SYSTEM SET ptm_lease.database = ''");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker'", '0'),
	"ptm_lease.database = '' runs no worker");
like(health('svc_c', 'worker'), qr{^warning/not configured/ptm_lease.database is empty},
	'health() says the list is empty');

($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET ptm_lease.database = '"svc_c'});
isnt($rc, 0, 'a list with bad syntax is refused');
like($err, qr/invalid value for parameter "ptm_lease.database".*\n.*DETAIL:  List syntax is invalid/,
	'with a DETAIL saying how to write it');
is($node->safe_psql('postgres', 'SHOW ptm_lease.database'), '', 'and the setting is unchanged');

$node->safe_psql('postgres', 'ALTER SYSTEM RESET ptm_lease.database');
$node->reload;
for my $db ('svc_c', 'svc_copy', 'svc_new')
{
	$t = time_to_worker($db);
	cmp_ok($t, '<=', $bound, "back to '*': $db has its worker again");
}
# after the reload the launcher may start a worker in plain that only looks
# for the extension and leaves: none stays
ok($node->poll_query_until('postgres', qq{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'ptm_lease worker' AND datname = 'plain'}, '0'),
	'plain still has none');

# A role that may not drop the database does not make its worker step aside.
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ptm_lease worker' AND datname = 'svc_c'");
$node->safe_psql('postgres', 'CREATE ROLE someone LOGIN');
($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE svc_c', extra_params => [ '-U', 'someone' ]);
like($err, qr/must be owner of database svc_c/, 'a role that does not own svc_c may not drop it');
is($node->safe_psql('postgres', serving_q('svc_c') . " AND pid = $pid"), '1',
	'and the worker of svc_c stayed');

# The launcher restarts a worker that was terminated.
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres', serving_q('svc_c') . " AND pid <> $pid", '1'),
	'a terminated worker is started again');

$node->stop;
done_testing();
