# A benchmark script of test/bench in its smoke mode against a node of the
# test's own (test/t/096_bench_smoke.pl, test/t/097_capacity_smoke.pl):
#
#   my ($ok, $stdout, $stderr) = PtmBench::smoke($node, 'test/bench/run', $outdir);
#
# It runs with PTM_BENCH_SMOKE=1 and PTM_BENCH_SERVER=1 (the node's server,
# not a temporary one of the script's), keeps its results in $outdir
# (PTM_BENCH_OUT) and returns whether it exited 0, with what it printed.
package PtmBench;
use strict;
use warnings;
use IPC::Run;

sub smoke
{
	my ($node, $script, $out) = @_;
	my $root = $ENV{PTM_ROOT} or die "PTM_ROOT is not set";
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(
		[ "$root/$script" ],
		'>', \$stdout, '2>', \$stderr,
		init => sub {
			$ENV{PTM_BENCH_SMOKE} = '1';
			$ENV{PTM_BENCH_SERVER} = '1';
			$ENV{PTM_BENCH_OUT} = $out;
			$ENV{PGHOST} = $node->host;
			$ENV{PGPORT} = $node->port;
			delete $ENV{PGUSER};
			delete $ENV{PGDATABASE};
		});
	return ($ok, $stdout, $stderr);
}

1;
