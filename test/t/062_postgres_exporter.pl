# The real postgres_exporter (Debian prometheus-postgres-exporter 0.11) with
# docs/prometheus/queries.yaml, against a test node, as a role that is only in
# pg_monitor: every series of ptm.metrics comes out under the runbooks' exact
# name, with the same labels (plus the exporter's "server") and the same value.
# The exporter listens on loopback only and runs for a bounded time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run qw(start timeout);
use HTTP::Tiny;
use Time::HiRes qw(usleep);
use PtmMetricsWorkload;

my $root = $ENV{PTM_ROOT} or die 'PTM_ROOT is not set (run through test/run)';
my $exporter = '/usr/bin/prometheus-postgres-exporter';
ok(-x $exporter, 'postgres_exporter is installed (Debian package prometheus-postgres-exporter; test/run installs it)')
  or BAIL_OUT('prometheus-postgres-exporter missing');

my $node = PostgreSQL::Test::Cluster->new('exporter');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	CREATE ROLE ptm_exporter LOGIN IN ROLE pg_monitor;});

my $counted = ptm_metrics_workload($node);

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d user=ptm_exporter dbname=postgres sslmode=disable',
	$node->host, $node->port);
my ($out, $err) = ('', '');
my $h = start(
	[ $exporter, "--web.listen-address=127.0.0.1:$port",
	  "--extend.query-path=$root/docs/prometheus/queries.yaml" ],
	'>', \$out, '2>', \$err,
	init => sub { $ENV{DATA_SOURCE_NAME} = $dsn },
	timeout(120));

# Scrape until our series are there (the exporter connects lazily), 30 s at most.
my $http = HTTP::Tiny->new(timeout => 5);
my $scrape = '';
for (my $i = 0; $i < 300; $i++)
{
	my $res = $http->get("http://127.0.0.1:$port/metrics");
	$scrape = $res->{content} if $res->{success};
	last if $scrape =~ /^ptm_commit_total\{/m;
	usleep(100_000);
}
# The values the database had at the scrape (nothing counts in between).
my $expected = $node->safe_psql('postgres', q{
	SELECT metric || ' ' || COALESCE((SELECT string_agg(key || '=' || value, ',' ORDER BY key)
	                                    FROM jsonb_each_text(labels)), '') || ' ' || value
	  FROM ptm.metrics ORDER BY 1});
my $stat = $node->safe_psql('postgres',
	'SELECT extract(epoch FROM stats_reset), evictions, tracked_keys, max_tracked_keys FROM ptm.stat_info');
$h->kill_kill;
ok($scrape =~ /^ptm_commit_total\{/m, 'the exporter serves ptm_lease series') or diag($err);

# Parse the scrape: "name{labels} value", labels sorted, the server label apart.
my (%got, %server);
for my $line (split /\n/, $scrape)
{
	next if $line =~ /^#/;
	my ($name, $labels, $value) = $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
	  or next;
	my %l = ($labels // '') =~ /([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g;
	$server{$name} = delete $l{server} if exists $l{server};
	$got{ join(' ', $name, join(',', map { "$_=$l{$_}" } sort keys %l)) } = $value;
}

ok(scalar(split /\n/, $expected) >= 60, 'ptm.metrics has every series to compare');
my @missing;
my @wrong;
for my $row (split /\n/, $expected)
{
	my ($name, $labels, $value) = split / /, $row;
	$labels //= '';
	my $key = "$name $labels";
	if (!exists $got{$key}) { push @missing, $key; next; }
	push @wrong, "$key: exporter $got{$key}, ptm.metrics $value" if $got{$key} != $value;
}
is_deeply(\@missing, [], 'every series of ptm.metrics is exported under its exact name and labels');
is_deeply(\@wrong, [], 'every exported value equals ptm.metrics');
ok(scalar(grep { /^(ptm_commit_total|canonical_store_commit_latency_ms_bucket) / } keys %got) >= 2,
	'the runbooks\' series are there');
ok(defined $server{ptm_commit_total}, 'the exporter adds its server label');

# The exporter adds nothing to our families that ptm.metrics does not have.
my %ours = map { (split / /)[0] => 1 } split /\n/, $expected;
my $families = qr/^(ptm_commit|ptm_claim|ptm_backpressure|lease|canonical_store|action_dedup|projection_materializer|recovery)_/;
is_deeply([ sort grep { !$ours{$_} } grep { /$families/ } map { (split / /)[0] } keys %got ],
	[], 'no extra series in our families');

# Types and the counters' own state.
like($scrape, qr/^# TYPE ptm_commit_total counter$/m, 'ptm_commit_total is a counter');
like($scrape, qr/^# TYPE canonical_store_commit_latency_ms histogram$/m,
	'canonical_store_commit_latency_ms is a histogram');
like($scrape, qr/^# TYPE projection_materializer_duplicate_events_skipped counter$/m,
	'projection_materializer_duplicate_events_skipped is a counter');
my ($reset, $evictions, $tracked, $max) = split /\|/, $stat;
ok(abs($got{'ptm_counters_reset_timestamp_seconds '} - $reset) < 0.001,
	'ptm_counters_reset_timestamp_seconds is stats_reset');
is($got{'ptm_counters_max_tracked_keys '}, $max, 'ptm_counters_max_tracked_keys is exported');
my @load = grep { /^pg_exporter_user_queries_load_error / } keys %got;
ok(@load && !(grep { $got{$_} != 0 } @load), 'the queries file loads without error');
unlike($err, qr/Error running query on database/, 'every query ran') or diag($err);
SKIP:
{
	skip 'no counting function in this build yet', 1 unless $counted;
	ok((grep { /^(ptm_commit_total|lease_acquisitions_total) / && $got{$_} > 0 } keys %got),
		'the workload shows in the exported values');
}

$node->stop;
done_testing();
