# The benchmark's smoke mode (PTM_BENCH_SMOKE=1 test/bench/run) against a
# node of our own: every workload script runs through pgbench without an
# error, every group reports a throughput and latencies for A and each
# baseline, the sweep measurement marks exactly the 1 % of leases it expired,
# and the report names the extension's shared memory.  It asserts nothing
# about speed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PtmBench;

my $node = PostgreSQL::Test::Cluster->new('bench_smoke');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
max_connections = 40
});
$node->start;

my $out = PostgreSQL::Test::Utils::tempdir;
my ($ok, $stdout, $stderr) = PtmBench::smoke($node, 'test/bench/run', $out);
ok($ok, 'smoke run ends without an error') or diag($stderr);
like($stdout, qr/benchmark done/, 'smoke run reaches its end');

# group -> number of baselines (B, C, ...) it compares A with
my %groups = (
	renew => 2, renew_bulk => 2, acquire_contended => 2, acquire_release => 1,
	acquire_release_quiet => 1, acquire_release_inline => 1, acquire_release_announce => 1,
	check_fence => 1, try_commit => 1, try_commit_conflict => 1,
	try_commit_fenced => 1, claim_step => 1, apply => 1, apply_batch => 2,
	scale_renew_1000 => 1, scale_commit_1000 => 1,
	scale_renew_sql_1000 => 1, scale_commit_sql_1000 => 1,
	counters_renew => 1, counters_commit => 1, counters_apply => 1);
my (%rows, @bad);
open(my $fh, '<', "$out/results.tsv") or die "no results.tsv: $!";
while (my $line = <$fh>)
{
	chomp $line;
	my @f = split /\t/, $line;
	$rows{ $f[0] }++;
	# ops/s of A and B above zero, p50 <= p99 for both, a ratio
	push @bad, $line
	  unless @f == 12 && $f[5] > 0 && $f[6] > 0
	  && $f[7] <= $f[8] && $f[9] <= $f[10] && $f[11] > 0;
}
close $fh;
# smoke: clients "1 4" for the main groups, one cell for scale and counting
my %cells = (map { $_ => 2 } grep { !/^(scale|counters)_/ } keys %groups);
$cells{$_} = 1 for grep { /^(scale|counters)_/ } keys %groups;
is_deeply(\%rows, { map { $_ => $groups{$_} * $cells{$_} } keys %groups },
	'every group reports each baseline in each cell');
is_deeply(\@bad, [], 'every row has throughputs, p50 <= p99 and a ratio');

my @sweep = grep { /^sweep / } split /\n/, slurp_file("$out/sweep.txt");
is(scalar @sweep, 3, 'three sweep repetitions');
is_deeply([ map { (split / /)[ 2, 5 ] } @sweep ], [ (10, 10) x 3 ],
	'each sweep pass marks exactly the 10 leases (1 % of 1000) that expired');

my $report = slurp_file("$out/report.md");
like($report, qr/\| ptm_lease metrics \| \d+ bytes/, 'the report shows the shared memory');
like($report, qr/## Targets/, 'the report lists the targets');

done_testing();
