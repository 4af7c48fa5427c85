# A psycopg 3 client through PgBouncer in transaction mode, set up as
# docs/poolers.md says (issue 18, item 8).  PgBouncer 1.18 (Debian's, started
# by test/t/PtmPgBouncer.pm) with two server connections; three clients in one
# process (test/pooler/client.py) take turns over them: acquire, renew, a
# fenced write in a transaction, get_state and try_commit, as the service role
# svc granted by ptm.grant_agent().
#
#   1. With the connect() function of docs/poolers.md, taken from its
#      ```python block as written: 120 calls, no error, and the three
#      clients' fenced writes ran on at most two server connections.
#   2. With psycopg's defaults (prepare_threshold 5): the clients fail before
#      the 100th call, with the error docs/poolers.md names.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PtmDocs;
use PtmPgBouncer;

my $root = $ENV{PTM_ROOT} or die 'PTM_ROOT is not set (run through test/run)';
my $py = '/usr/bin/python3';    # Debian's, with python3-psycopg
my $client = "$root/test/pooler/client.py";
my $doc = "$root/docs/poolers.md";
my $dir = PostgreSQL::Test::Utils::tempdir;
my $CALLS = 120;

my $node = PostgreSQL::Test::Cluster->new('pooler');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE pooldb');
$node->safe_psql('pooldb', q{
	CREATE EXTENSION ptm_lease;
	CREATE ROLE svc LOGIN;
	SELECT ptm.grant_agent('svc');
	CREATE TABLE pooled_writes (partition_id int, epoch bigint, backend int);
	GRANT INSERT, SELECT ON pooled_writes TO svc;});

my $pgb = PtmPgBouncer->new(dir => $dir, node => $node, dbname => 'pooldb',
	users => ['svc'], pool_size => 2);
ok($pgb->listening, 'PgBouncer listens (transaction mode, 2 server connections)');
like(`pgbouncer --version`, qr/PgBouncer 1\.(\d+)/, 'PgBouncer runs: ' . (`pgbouncer --version` =~ /^(.*)$/m)[0]);

# Run the clients with a connect() from $file; their JSON summary and exit status.
sub run_clients
{
	my ($file) = @_;
	my $dsn = $pgb->dsn('svc');
	my $out = `$py $client --connect $file --dsn '$dsn' --calls $CALLS 2>&1`;
	my $rc = $? >> 8;
	my ($json) = $out =~ /^(\{.*\})\s*\z/m;
	my $summary = eval { decode_json($json // '') } // {};
	diag($out) unless $json;
	return ($rc, $summary);
}

# 1. As docs/poolers.md says.
my $connect = ptm_doc_section_block($doc, qr/^### psycopg 3/, 1, 'python');
like($connect, qr/prepare_threshold=None/, 'docs/poolers.md: psycopg 3 connects with prepare_threshold=None');
append_to_file("$dir/connect_doc.py", $connect);
my ($rc, $s) = run_clients("$dir/connect_doc.py");
is($s->{error}, undef, 'the documented connect(): no error') or diag(explain($s->{error}));
is($rc, 0, 'the documented connect(): the clients exit 0');
cmp_ok($s->{calls} // 0, '>=', $CALLS, "the documented connect(): $s->{calls} calls through PgBouncer");
my @backends = @{ $s->{backends} // [] };
ok(@backends >= 1 && @backends <= 2,
	'three clients\' fenced writes ran on ' . scalar(@backends) . ' server connection(s) of the pool of 2');
is($node->safe_psql('pooldb', 'SELECT count(DISTINCT partition_id) FROM pooled_writes'), '3',
	'each client wrote under its lease');

# 2. psycopg's defaults.
append_to_file("$dir/connect_default.py", qq{import psycopg

def connect(dsn):
    return psycopg.connect(dsn, autocommit=True)
});
($rc, $s) = run_clients("$dir/connect_default.py");
is($rc, 1, 'psycopg\'s defaults: the clients fail');
my $e = $s->{error} // {};
ok(defined $e->{call} && $e->{call} < 100, "psycopg's defaults: the first error at call " . ($e->{call} // '?'));
like("$e->{class}: $e->{message}",
	qr/^(DuplicatePreparedStatement: prepared statement "_pg3_\d+" already exists|InvalidSqlStatementName: prepared statement "_pg3_\d+" does not exist)$/,
	'psycopg\'s defaults: a prepared statement error');
my $doc_text = slurp_file($doc);
my $shown = ($e->{message} // 'none') =~ s/_pg3_\d+/_pg3_0/r;
like($doc_text, qr/\Q$e->{class}: $shown\E/, "docs/poolers.md shows the error: $e->{class}: $shown")
  if $e->{class};

$pgb->stop;
$node->stop;
done_testing();
