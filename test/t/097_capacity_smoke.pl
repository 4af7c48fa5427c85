# The capacity and takeover benchmark's smoke mode
# (PTM_BENCH_SMOKE=1 test/bench/capacity) against a node of our own, with a
# worker sweeping its database every 100 ms: leases are renewed in bulk and
# none is lost, the leases left to expire are announced and taken back, every
# (holder, standby) cell of the takeover benchmark takes over without a
# failure and never before the holder's expiry, and the report has both
# sections.  It asserts nothing about speed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PtmBench;
use JSON::PP;

my $node = PostgreSQL::Test::Cluster->new('capacity_smoke');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.database = 'ptm_capacity'
ptm_lease.sweep_interval = '100ms'
ptm_lease.holder_grace = '200ms'
max_connections = 60
});
$node->start;

my $out = PostgreSQL::Test::Utils::tempdir;
my ($ok, $stdout, $stderr) = PtmBench::smoke($node, 'test/bench/capacity', $out);
ok($ok, 'smoke run ends without an error') or diag($stderr);
like($stdout, qr/capacity benchmark done/, 'smoke run reaches its end');

sub jsonl
{
	my $f = shift;
	return [ map { decode_json($_) } grep { /\S/ } split /\n/, slurp_file($f) ];
}

# 1. Capacity: one step of 2000 leases.
my $cap = jsonl("$out/capacity.jsonl");
is(scalar @$cap, 1, 'one capacity step');
my $c = $cap->[0] // {};
is_deeply($c->{errors}, [], 'no driver errors');
cmp_ok($c->{calls_measured}, '>', 0, 'bulk renewals were measured');
ok(defined $c->{renew_p99_ms} && $c->{renew_p50_ms} <= $c->{renew_p99_ms}, 'p50 <= p99');
is($c->{lost}, 0, 'no lease lost: every renewal answered renewed')
  or diag(explain $c->{lost_examples});
cmp_ok($c->{dropped}, '>', 0, 'the agents left leases to expire');
cmp_ok($c->{expired_events}, '>', 0, 'the sweeper announced expired leases');
cmp_ok($c->{takeovers}, '>', 0, 'expired leases were taken back');
ok($c->{expired_events} <= $c->{dropped} && $c->{takeovers} <= $c->{dropped},
	'only leases left to expire were announced or taken back');
is($c->{held_by_agents}, $c->{leases} - $c->{dropped} + $c->{takeovers},
	'the agents hold what they took, less what they left, plus what they took back');
cmp_ok($c->{live_in_table}, '>=', $c->{held_by_agents}, 'every lease the agents hold is live');
ok(defined $c->{server_cores} && defined $c->{machine_busy_pct}, 'CPU was measured');
is($c->{sweep_backlog}, 'ok', 'the sweeper kept up');

# 2. Takeovers: three holders by four standbys, two takeovers each.
my $tk = jsonl("$out/takeover.jsonl");
is(scalar @$tk, 12, 'twelve takeover cells');
for my $r (@$tk)
{
	my $name = "$r->{scenario}/$r->{strategy}";
	is($r->{failures}, 0, "$name: no failed takeover") or diag(explain $r->{errors});
	is($r->{takeovers}, 2, "$name: two takeovers");
	cmp_ok($r->{after_expiry_min_ms} // -1, '>=', 0, "$name: never before the holder's expiry");
	ok($r->{from_death_p50_ms} <= $r->{from_death_p99_ms}, "$name: p50 <= p99");
}

# 3. The report.
my $report = slurp_file("$out/capacity.md");
like($report, qr/^## Capacity of one node$/m, 'the report has the capacity section');
like($report, qr/^\| 2,000 \|/m, 'with a row for the step');
like($report, qr/^## Takeover latency$/m, 'and the takeover section');
like($report, qr/^\| stop in fence \| deadline \|/m, 'with a row per cell');

done_testing();
