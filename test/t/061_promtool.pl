# The Prometheus side, checked with Prometheus' own tool: ptm.metrics_text()
# parses (promtool check metrics) and its linter reports exactly the findings
# docs/metrics.md lists, the alert rules load and pass their unit
# tests (promtool check rules, promtool test rules, with a counter reset in the
# input), and the rules and the Grafana dashboard only name series that exist.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run qw(run);
use JSON::PP;
use PtmMetricsWorkload;

my $root = $ENV{PTM_ROOT} or die 'PTM_ROOT is not set (run through test/run)';
my $promdir = "$root/docs/prometheus";

my $have_promtool = run([ 'promtool', '--version' ], '>', \my $v, '2>', \my $e);
ok($have_promtool, 'promtool is installed (Debian package prometheus; test/run installs it)')
  or BAIL_OUT('promtool missing');

# Rules: syntax, then the unit tests (run from their directory: rule_files are
# relative to the test file).
my ($out, $err);
ok(run([ 'promtool', 'check', 'rules', "$promdir/ptm-alerts.yaml" ], '>', \$out, '2>', \$err),
	'promtool check rules ptm-alerts.yaml') or diag("$out$err");
ok(run([ 'sh', '-c', "cd '$promdir' && promtool test rules ptm-alerts.test.yaml" ],
		'>', \$out, '2>', \$err),
	'promtool test rules ptm-alerts.test.yaml') or diag("$out$err");

# The exposition.  promtool's linter also reports style findings (exit 3) on
# names the runbooks fixed; docs/metrics.md lists each one in a table, with
# "always" or "with projection lag" (the lag gauges have series only once an
# event with an event_time was applied).  promtool must report exactly those
# rows: on a fresh server the "always" ones, after the workload all of them.
my $metrics_md = slurp_file("$root/docs/metrics.md");
my (@documented, @documented_always);
while ($metrics_md =~ /^\| `([a-z_]+)` \| ([^|]+?) \| (always|with projection lag) \|/mg)
{
	push @documented, "$1 $2";
	push @documented_always, "$1 $2" if $3 eq 'always';
}
ok(@documented_always >= 1 && @documented > @documented_always,
	'docs/metrics.md lists the promtool findings, some of them only with projection lag')
  or diag(explain(\@documented));

# promtool check metrics on ptm.metrics_text(): its exit code and its findings, sorted
sub promtool_findings
{
	my ($node) = @_;
	my $text = $node->safe_psql('postgres', 'SELECT ptm.metrics_text()') . "\n";
	my ($out, $err);
	run([ 'promtool', 'check', 'metrics' ], '<', \$text, '>', \$out, '2>', \$err);
	return ($? >> 8, [ sort grep { $_ ne '' } split /\n/, "$out$err" ]);
}

my $node = PostgreSQL::Test::Cluster->new('promtool');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');

my ($rc, $findings) = promtool_findings($node);
is($rc, 3, 'promtool check metrics parses ptm.metrics_text() of a fresh server, with findings (exit 3)');
is_deeply($findings, [ sort @documented_always ],
	'on a fresh server promtool reports exactly the findings docs/metrics.md marks "always"');

ptm_metrics_workload($node);
($rc, $findings) = promtool_findings($node);
is($rc, 3, 'promtool check metrics parses ptm.metrics_text() after a workload (exit 3)');
is_deeply($findings, [ sort @documented ],
	'after a workload with projection lag promtool reports exactly the findings docs/metrics.md lists');

# Every series named by the rules and the dashboard exists in ptm.metrics (the
# workload applied a projection, so the lag gauges are there too).
my %series = map { $_ => 1 } split /\n/,
  $node->safe_psql('postgres', 'SELECT DISTINCT metric FROM ptm.metrics');
my $known = qr/\b((?:ptm|lease|canonical_store|action_dedup|projection_materializer|recovery)_[a-z_]+)\b/;

my $rules = slurp_file("$promdir/ptm-alerts.yaml");
my %in_rules = map { $_ => 1 } map { /$known/g } grep { !/^\s*#/ } split /\n/, $rules;
my @rule_metrics = grep { !/^ptm_lease/ } keys %in_rules;
ok(@rule_metrics >= 10, 'the rules name the runbooks\' series');
is_deeply([ sort grep { !$series{$_} } @rule_metrics ], [], 'every series in the rules exists');

my $dashboard_text = slurp_file("$promdir/grafana-dashboard.json");
my $dashboard = eval { decode_json($dashboard_text) };
ok($dashboard, 'the Grafana dashboard is valid JSON') or diag($@);
my @vars = map { $_->{name} } @{ $dashboard->{templating}{list} // [] };
ok((grep { $_ eq 'datasource' } @vars), 'the dashboard has a datasource variable');
my @targets = map { @{ $_->{targets} // [] } } @{ $dashboard->{panels} // [] };
ok(@targets >= 8, 'the dashboard has panels with queries');
my @rates = grep { $_->{expr} =~ /\b(rate|increase)\(/ } @targets;
ok(@rates && !(grep { $_->{expr} !~ /\[\$__rate_interval\]/ } @rates),
	'every rate() in the dashboard uses $__rate_interval');
my %in_dashboard = map { $_ => 1 } map { $_->{expr} =~ /$known/g } @targets;
is_deeply([ sort grep { !$series{$_} && !$series{ $_ =~ s/_(bucket|sum|count)$//r } } keys %in_dashboard ],
	[], 'every series in the dashboard exists');

# runbook_url points at the runbooks in this repository.
my @urls = $rules =~ /runbook_url:\s*"([^"]+)"/g;
ok(@urls >= 10 && !(grep { !m{^docs/runbooks/[a-z0-9-]+\.md$} } @urls),
	'every alert has a runbook_url under docs/runbooks/');
SKIP:
{
	skip 'docs/runbooks/ not written yet', 1 unless -d "$root/docs/runbooks";
	is_deeply([ grep { !-f "$root/$_" } @urls ], [], 'every runbook_url names a runbook that exists');
}

$node->stop;
done_testing();
