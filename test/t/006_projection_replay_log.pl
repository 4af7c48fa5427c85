# A routine replay does not page (issue 18).  A materializer that restarts
# from an older offset re-sends 130 events, one call each, that are at or
# below the watermark: the server log gets one LOG line for it and not one
# WARNING, and the counters say "a replay" (replays_total), not a failure.
# The same for a batch of 100.  A second materializer racing on a partition,
# its events below a watermark the first keeps moving, is another incident:
# one WARNING, and its events in wm_races_total and failed_total.  Each call
# is a connection of its own, as two materializers would be.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('projection_replay_log');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');

# The projection counters, as "name=value ..." (names without the prefix).
sub counters
{
	return $node->safe_psql('postgres', q{
		SELECT string_agg(replace(metric, 'projection_materializer_', '') || '=' || value, ' ' ORDER BY metric)
		  FROM ptm.metrics
		 WHERE metric IN ('projection_materializer_projections_materialized_total',
		                  'projection_materializer_duplicate_events_skipped',
		                  'projection_materializer_wm_regressions_total',
		                  'projection_materializer_replays_total',
		                  'projection_materializer_wm_races_total',
		                  'projection_materializer_projections_failed_total')});
}

# Lines of the server log written since $offset that match $re, leaving out
# the statements (the test cluster logs each one, and a message is followed
# by the STATEMENT it came from).
sub log_lines
{
	my ($offset, $re) = @_;
	return scalar(grep { /$re/ && !/LOG:  statement: |STATEMENT:  / }
				  split /\n/, slurp_file($node->logfile, $offset));
}

sub apply_each
{
	my ($partition, @offsets) = @_;
	return $node->safe_psql('postgres', join('', map {
		"SELECT result FROM ptm.apply_projection('orders_view', $partition, $_, 'k' || $_ % 7, '{}', now());\n"
	} @offsets));
}

sub apply_batch
{
	my ($partition, $from, $to) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(result || ':' || n, ' ' ORDER BY min)
		  FROM (SELECT result, count(*) AS n, min("offset")
		          FROM ptm.apply_projection_batch('orders_view', $partition,
		                 ARRAY(SELECT generate_series($from, $to)::bigint),
		                 ARRAY(SELECT 'k' || g % 7 FROM generate_series($from, $to) g),
		                 ARRAY(SELECT '{}'::jsonb FROM generate_series($from, $to)))
		         GROUP BY result) AS r});
}

# 1. 130 events applied, one call each.
apply_each(0, 1 .. 130);
$node->safe_psql('postgres', 'SELECT ptm.reset_counters()');

# 2. The materializer restarts from offset 1 and goes on to 140.
my $offset = -s $node->logfile;
my @results = split /\n/, apply_each(0, 1 .. 140);
is(join(' ', map { $results[$_ - 1] } 1, 129, 130, 131, 140), 'regression regression duplicate applied applied',
	'the replay: 1..129 regressions, 130 a duplicate, 131.. applied');
is(log_lines($offset, qr/WARNING/), 0, 'a replay of 130 events logs no WARNING');
is(log_lines($offset, qr/LOG:  replay of projection "orders_view" partition 0 from offset 1, at or below its watermark 130/), 1,
	'and one LOG line that says it is a replay');
is(log_lines($offset, qr/orders_view/), 1, 'and nothing else about it');
is(counters(),
	'duplicate_events_skipped=1 projections_failed_total=0 projections_materialized_total=10 replays_total=1 wm_races_total=0 wm_regressions_total=129',
	'counted as one replay of 130 events, no race, no failure');
is($node->safe_psql('postgres', q{
	SELECT replay_count || '/' || race_count || '/' || regression_count || '/' || duplicate_count
	  FROM ptm.projection_watermarks WHERE projection = 'orders_view' AND partition_id = 0}),
	'1/0/129/1', 'and so in the watermark row');

# 3. A batch replay: 100 events, then a restart that re-sends them with 10 more.
is(apply_batch(1, 1, 100), 'applied:100', 'partition 1: a batch of 100');
$node->safe_psql('postgres', 'SELECT ptm.reset_counters()');
$offset = -s $node->logfile;
is(apply_batch(1, 1, 110), 'regression:99 duplicate:1 applied:10', 'the batch replayed with 10 more');
is(log_lines($offset, qr/WARNING/), 0, 'a batch replay logs no WARNING');
is(log_lines($offset, qr/LOG:  replay of projection "orders_view" partition 1 from offset 1, at or below its watermark 100/), 1,
	'and one LOG line');
is(counters(),
	'duplicate_events_skipped=1 projections_failed_total=0 projections_materialized_total=10 replays_total=1 wm_races_total=0 wm_regressions_total=99',
	'counted as one replay');

# 4. A race on partition 2: the first materializer applies 1..50, then a
# second one starts from 1 while the first goes on: 51, 1, 52, 2, ... 70, 20.
apply_each(2, 1 .. 50);
$node->safe_psql('postgres', 'SELECT ptm.reset_counters()');
$offset = -s $node->logfile;
my %stale;
for my $i (1 .. 20)
{
	apply_each(2, 50 + $i);
	$stale{$i} = apply_each(2, $i);
}
is(join(' ', map { $stale{$_} } 1 .. 20), join(' ', ('regression') x 20), 'the stale stream is refused');
is(log_lines($offset, qr/WARNING:  watermark regression on projection "orders_view" partition 2: offset 2 < watermark 52/), 1,
	'the race: one WARNING, at the stale stream\'s second event');
is(log_lines($offset, qr/WARNING/), 1, 'and only one, for 19 raced events');
ok($node->log_contains(qr/DETAIL:  The watermark moved since this stream's previous event below it: another materializer is applying this partition at the same time/, $offset),
	'its DETAIL says what the server saw');
is(counters(),
	'duplicate_events_skipped=0 projections_failed_total=19 projections_materialized_total=20 replays_total=1 wm_races_total=19 wm_regressions_total=20',
	'the first stale event counts as a replay, the next 19 as races, and those as failures');
is($node->safe_psql('postgres', q{
	SELECT replay_count || '/' || race_count || '/' || (last_race_at IS NOT NULL)
	  FROM ptm.projection_watermarks WHERE projection = 'orders_view' AND partition_id = 2}),
	'1/19/true', 'the watermark row names the racing partition');

$node->stop;
done_testing();
