# Loading: with shared_preload_libraries the extension has shared memory and
# keeps it across a restart; without it, CREATE EXTENSION still works and the
# shared-memory features raise SQLSTATE 55000 with a HINT naming the setting.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preloaded');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');

is($node->safe_psql('postgres', "SELECT value FROM ptm.health() WHERE \"check\" = 'preload'"),
	'yes', 'preloaded: health() says so');

$node->restart;
is($node->safe_psql('postgres', "SELECT count(*) FROM ptm.health() WHERE status <> 'ok'"),
	'0', 'after a restart every health check is ok');
ok($node->safe_psql('postgres', 'SELECT count(*) FROM ptm.metrics') > 0,
	'after a restart the counters are readable');
$node->stop;

my $plain = PostgreSQL::Test::Cluster->new('not_preloaded');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');
is($plain->safe_psql('postgres', "SELECT status || '/' || value FROM ptm.health() WHERE \"check\" = 'preload'"),
	'warning/no', 'not preloaded: health() warns');

my ($ret, $out, $err) = $plain->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM ptm.metrics");
isnt($ret, 0, 'not preloaded: ptm.metrics fails');
like($err, qr/ERROR:  55000: ptm\.metrics requires ptm_lease to be loaded via shared_preload_libraries/,
	'not preloaded: SQLSTATE 55000 and a clear message');
like($err, qr/HINT:  Add ptm_lease to shared_preload_libraries/, 'not preloaded: HINT names the setting');

# Every metrics object says so too.
for my $sql ('SELECT ptm.metrics_text()', 'SELECT * FROM ptm.stat_info',
	'SELECT * FROM ptm.top_workflow_conflicts', 'SELECT ptm.reset_counters()')
{
	($ret, $out, $err) = $plain->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	like($err, qr/ERROR:  55000: .* requires ptm_lease to be loaded via shared_preload_libraries/,
		"not preloaded: $sql fails with SQLSTATE 55000");
}
$plain->stop;

done_testing();
