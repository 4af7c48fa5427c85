# A small workload for the metrics TAP tests, through whichever public
# functions the build has (each feature counts its own outcomes), so that the
# counters are not all zero once the features count.
package PtmMetricsWorkload;
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(ptm_metrics_workload);

# [function (by name: features may add parameters) that must exist, statements]
my @steps = (
	[ 'acquire_partition_lease',
	  q{SELECT ptm.acquire_partition_lease('orders', 0, 'agent-a');
	    SELECT ptm.acquire_partition_lease('orders', 0, 'agent-b');} ],
	[ 'try_commit',
	  q{SELECT ptm.try_commit('wf-1', 0, '{"n": 1}');
	    SELECT ptm.try_commit('wf-1', 0, '{"n": 2}');} ],
	# event times in the past give the lag gauges a value
	[ 'apply_projection',
	  q{SELECT ptm.apply_projection('orders_by_customer', 0, 1, 'c-1', '{"n": 1}',
	                                now() - interval '250 ms');
	    SELECT ptm.apply_projection('orders_by_customer', 0, 2, 'c-1', '{"n": 2}',
	                                now() - interval '40 ms');} ],
);

# Runs the steps whose function exists; returns how many ran.
sub ptm_metrics_workload
{
	my ($node) = @_;
	my $ran = 0;
	for my $step (@steps)
	{
		my ($function, $sql) = @$step;
		next unless $node->safe_psql('postgres',
			"SELECT EXISTS (SELECT FROM pg_proc WHERE proname = '$function' "
			  . "AND pronamespace = 'ptm'::regnamespace)") eq 't';
		$node->safe_psql('postgres', $sql);
		$ran++;
	}
	return $ran;
}

1;
