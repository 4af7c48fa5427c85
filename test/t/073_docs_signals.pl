# What the docs say each signal is, checked against what the server does
# (issue 18).  Projection lag: docs/projections.md's table of lag columns says
# which one is which gauge and which ones grow while a partition is idle; for
# a partition applied 3 ms late and then idle for 433 s, each column must be
# its gauge's value, and grow or stay as the table says.  The runbook's SLA
# row must name the gauge and the column equal to it.  Alert severities:
# every place in docs/ that gives an alert's severity gives the one in
# docs/prometheus/ptm-alerts.yaml (a replay must not page in one place and
# not in another).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Find;
use FindBin;

my $root = "$FindBin::RealBin/../..";

my $node = PostgreSQL::Test::Cluster->new('docs_signals');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	SELECT ptm.apply_projection('docs-idle', 0, 1, 'k', '{}', clock_timestamp() - interval '3 ms');
	UPDATE ptm.projection_watermarks
	   SET last_event_time = last_event_time - interval '433312 ms',
	       updated_at = updated_at - interval '433312 ms'
	 WHERE projection = 'docs-idle';
});

# 1. The lag table of docs/projections.md.
my $projections = slurp_file("$root/docs/projections.md");
my ($table) = $projections =~ /Two different things are called lag[^\n]*\n\n((?:\|[^\n]*\n)+)/;
ok($table, 'docs/projections.md has its table of lag columns');
my @rows = grep { /^\| `/ } split /\n/, ($table // '');
ok(@rows >= 4, 'with a row per column');
for my $row (@rows)
{
	my @cells = map { s/^\s+|\s+$//gr } split /\|/, $row;
	shift @cells;
	my ($column, $gauge, $meaning, $idle) = @cells;
	$column =~ s/`//g;
	my $value = $node->safe_psql('postgres',
		"SELECT $column FROM ptm.projection_lag WHERE projection = 'docs-idle'");
	if ($gauge =~ /`(projection_materializer_\w+)`/)
	{
		my $metric = $1;
		is($node->safe_psql('postgres', qq{
			SELECT value::bigint FROM ptm.metrics
			 WHERE metric = '$metric' AND labels->>'projection' = 'docs-idle'}),
			$value, "$column is the gauge $metric, as the table says");
	}
	if ($idle eq 'grows')
	{
		ok($value >= 433312, "$column grew while the partition was idle, as the table says ($value)");
	}
	elsif ($idle eq 'stays')
	{
		ok($value < 433312, "$column stayed while the partition was idle, as the table says ($value)");
	}
	else
	{
		fail("$column: the table says \"$idle\" while idle, neither grows nor stays");
	}
}

# 2. The runbook's SLA row: the gauge, and the column equal to it.
my $runbook = slurp_file("$root/docs/runbooks/pure-reducer-operations.md");
my ($sla) = $runbook =~ /^(\| projection lag \|[^\n]*)$/m;
ok($sla, 'the runbook has an SLA row for projection lag');
my ($sla_gauge) = ($sla // '') =~ /`(projection_materializer_\w+)`/;
my ($sla_column) = ($sla // '') =~ /`ptm\.projection_lag\.(\w+)`/;
is($sla_gauge, 'projection_materializer_wm_lag_ms', 'it names the gauge the alert reads');
ok($sla_column && $node->safe_psql('postgres', qq{
	SELECT l.$sla_column = m.value
	  FROM ptm.projection_lag l, ptm.metrics m
	 WHERE l.projection = 'docs-idle' AND m.metric = 'projection_materializer_wm_lag_ms'
	   AND m.labels->>'projection' = 'docs-idle'}) eq 't',
	'and a projection_lag column equal to it (' . ($sla_column // 'none') . ')');

# 3. Alert severities: the rules file against every doc that states one.
my $rules = slurp_file("$root/docs/prometheus/ptm-alerts.yaml");
my %severity;
while ($rules =~ /-\s*alert:\s*(\w+).*?severity:\s*(\w+)/gs)
{
	$severity{$1} = $2;
}
ok(keys(%severity) >= 10, 'the rules give severities');
my $sev = qr/(critical|high|warning|info)/;
my @stated;
find(sub {
	return unless /\.md$/;
	my $rel = $File::Find::name =~ s{^\Q$root\E/}{}r;
	my $n = 0;
	for my $line (split /\n/, slurp_file($File::Find::name))
	{
		$n++;
		for my $re (qr/^\|\s*`(\w+)`\s*\|\s*$sev\s*\|/,                  # runbooks/README.md
					qr/^\|\s*`(\w+)`\s*\|.*\|\s*$sev\s*\|\s*`docs\/runbooks/,   # metrics.md
					qr/^#+\s*`(\w+)`\s*\($sev\)/,                              # a runbook's heading
					qr/^-\s*`(\w+)`\s*\($sev\)/)                               # a runbook's alert list
		{
			push @stated, [ "$rel:$n", $1, $2 ] if $line =~ $re && $severity{$1};
		}
	}
}, "$root/docs");
ok(@stated >= 20, 'the docs state alert severities in ' . scalar(@stated) . ' places');
is_deeply([ map { "$_->[0]: $_->[1] is $_->[2]" } grep { $_->[2] ne $severity{ $_->[1] } } @stated ],
	[], 'each one is the severity of the rule');
is($severity{ProjectionWatermarkRegressions}, 'info', 'a replay informs (ProjectionWatermarkRegressions)');
is($severity{ProjectionMaterializersRacing}, 'high', 'a race pages (ProjectionMaterializersRacing)');

$node->stop;
done_testing();
