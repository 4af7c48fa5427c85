# The direct paths (src/row_access.c, src/keyed_tables.c) keep the OIDs of
# the ptm tables and their key indexes per backend and must find them again
# after any invalidation of those tables.  An invalidation is read whenever a
# lock is taken, so one that arrives between the lock of the table and that
# of its index must not leave the caller half-informed.  On main before this
# test, a GRANT/REVOKE loop on the tables made check_fence fail within a
# second with "could not open relation with OID 0"; autovacuum's statistics
# updates do the same in service, rarely.
#
# Two pgbench clients run every direct path (renew_lease, the contended
# acquire's read, check_fence, try_commit's version update, claim_step)
# while other sessions send invalidations: GRANT and REVOKE on the tables,
# VACUUM ANALYZE of them, and REINDEX INDEX CONCURRENTLY of the key indexes
# (new index OIDs under the same names).  Every call must answer.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $seconds = $ENV{PTM_INVAL_SECONDS} // 6;

my $node = PostgreSQL::Test::Cluster->new('invalidations');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'ptm_lease'
ptm_lease.database = ''
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	CREATE ROLE inval_probe;
	CREATE TABLE held (p int PRIMARY KEY, epoch bigint NOT NULL);
	INSERT INTO held
	SELECT g, (ptm.acquire_partition_lease('inv', g, 'agent-' || g, '1 hour')).lease_epoch
	  FROM generate_series(0, 19) g;
	SELECT count(ptm.try_commit('wf-' || g, 0, '{"n": 0}')) FROM generate_series(0, 19) g;
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM ptm.partition_leases WHERE agent_id IS NOT NULL}),
	'20', '20 leases held');

my $work = $node->basedir;
sub script
{
	my ($name, $text) = @_;
	my $path = "$work/$name.sql";
	open my $fh, '>', $path or die;
	print $fh $text;
	close $fh;
	return $path;
}

my $calls = script('calls', q{
\set p random(0, 19)
SELECT epoch AS e FROM held WHERE p = :p \gset
SELECT result FROM ptm.renew_lease('inv', :p, 'agent-' || :p, :e, '1 hour');
SELECT result FROM ptm.acquire_partition_lease('inv', :p, 'rival', '1 minute');
BEGIN;
SELECT ptm.check_fence('inv', :p, :e);
SELECT result FROM ptm.try_commit('wf-' || :p, (ptm.get_state('wf-' || :p)).version, '{"n": 1}');
COMMIT;
SELECT result FROM ptm.claim_step('wf-' || :p, 1, 'worker-' || :client_id, '1 s');
});

my @storms = (
	script('grants', q{
GRANT SELECT ON ptm.partition_leases, ptm.workflow_state TO inval_probe;
REVOKE SELECT ON ptm.partition_leases, ptm.workflow_state FROM inval_probe;
}),
	script('vacuum', q{
VACUUM ANALYZE ptm.partition_leases;
VACUUM ANALYZE ptm.workflow_state;
}),
	script('reindex', q{
REINDEX INDEX CONCURRENTLY ptm.partition_leases_pkey;
REINDEX INDEX CONCURRENTLY ptm.idx_workflow_state_workflow_key;
}));

my @conn = ('-h', $node->host, '-p', $node->port, 'postgres');
my $pkey_before = $node->safe_psql('postgres', q{SELECT 'ptm.partition_leases_pkey'::regclass::oid});

my %storm_out;
my @storm_runs = map {
	my $s = $_;
	$storm_out{$s} = '';
	IPC::Run::start([ 'pgbench', '-n', '-c', '1', '-T', $seconds + 1, '-f', $s, @conn ],
		'>', \$storm_out{$s}, '2>&1');
} @storms;

my ($out, $err) = ('', '');
IPC::Run::run([ 'pgbench', '-n', '-M', 'prepared', '-c', '2', '-j', '2', '-T', $seconds,
		'-f', $calls, @conn ], '>', \$out, '2>', \$err);
my $rc = $? >> 8;
$_->finish for @storm_runs;

is($rc, 0, 'every client ran to the end') or diag($err);
unlike($err, qr/ERROR/, 'no call failed') or diag($err);
my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
ok(($done // 0) > 100, "the clients made calls throughout (" . ($done // 0) . ")") or diag($out);

for my $s (@storms)
{
	my ($n) = $storm_out{$s} =~ /number of transactions actually processed: (\d+)/;
	ok(($n // 0) > 0, "the storm " . ($s =~ s{.*/}{}r) . " ran (" . ($n // 0) . " rounds)") or diag($storm_out{$s});
}
isnt($node->safe_psql('postgres', q{SELECT 'ptm.partition_leases_pkey'::regclass::oid}),
	$pkey_before, 'the key index has a new OID');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ptm.partition_leases l JOIN held h ON h.p = l.partition_id
	 WHERE l.topic = 'inv' AND l.agent_id = 'agent-' || h.p AND l.lease_epoch = h.epoch
	   AND l.lease_expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint}),
	'20', 'every lease is still held by its agent at its epoch (renewed, never taken)');

# After the storm, a new backend and an old one both find the current index.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM held h, ptm.renew_lease('inv', h.p, 'agent-' || h.p, h.epoch, '1 hour') r
	 WHERE r.result = 'renewed'}), '20', 'renew_lease answers after the storm');

done_testing();
