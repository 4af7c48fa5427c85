# docs/scaling.md against the benchmark it quotes.  Its "What one node
# sustains" tables copy figures from test/bench/capacity.md (what
# test/bench/capacity wrote in its last full run, also in
# docs/performance.md): every row there must name a row of the benchmark's
# tables and repeat its figures exactly, so that a new run that changes them
# makes this test fail until the page says what was measured; the same for
# the takeover table of docs/leases.md ("How a standby should take over").
# And the page
# is linked from README.md and docs/architecture.md, and keeps its Citus
# examples out of ```sql blocks (test/t/070_docs.pl runs those on a server
# without Citus).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{PTM_ROOT} or die "PTM_ROOT is not set";
my $scaling = slurp_file("$root/docs/scaling.md");
my $bench = slurp_file("$root/test/bench/capacity.md");

# The rows of the markdown table whose header line starts with $head: a list
# of hashes keyed by the header's cells.
sub table
{
	my ($text, $head) = @_;
	my @lines = split /\n/, $text;
	my ($i) = grep { index($lines[$_], $head) == 0 } 0 .. $#lines;
	return [] unless defined $i;
	my @cols = cells($lines[$i]);
	my @rows;
	for (my $j = $i + 2; $j <= $#lines && $lines[$j] =~ /^\|/; $j++)
	{
		my @c = cells($lines[$j]);
		push @rows, { map { $cols[$_] => $c[$_] } 0 .. $#cols };
	}
	return \@rows;
}

sub cells
{
	my $line = shift;
	$line =~ s/^\|\s*//;
	$line =~ s/\s*\|\s*$//;
	return map { s/\*\*//gr } split /\s*\|\s*/, $line;
}

# Every row of the page's table $head repeats the figures of the
# benchmark's row with the same @key cells.
sub same_figures
{
	my ($page, $what, $head, $bench_head, @key) = @_;
	my $doc = table($page->[1], $head);
	my $measured = table($bench, $bench_head);
	ok(@$doc > 0, "$page->[0] has its $what table");
	for my $row (@$doc)
	{
		my $name = join(', ', map { $row->{$_} } @key);
		my ($m) = grep {
			my $b = $_;
			!grep { ($b->{$_} // '') ne $row->{$_} } @key
		} @$measured;
		ok($m, "$what: test/bench/capacity.md has the row $name") or next;
		for my $col (grep { my $c = $_; !grep { $_ eq $c } @key } sort keys %$row)
		{
			is($row->{$col}, $m->{$col}, "$what, $name: $col as measured");
		}
	}
}

my $scaling_page = [ 'scaling.md', $scaling ];
same_figures($scaling_page, 'capacity', '| live leases | sweep interval, batch | bulk renew p50 / p99 / max ms |',
	'| live leases | sweep interval, batch |', 'live leases', 'sweep interval, batch');
same_figures($scaling_page, 'takeover', '| holder | standby | from death p50 / p99 / max ms |',
	'| holder | standby |', 'holder', 'standby');
same_figures([ 'leases.md', slurp_file("$root/docs/leases.md") ], 'takeover',
	'| holder | standby | from death p50 / p99 / max ms |',
	'| holder | standby |', 'holder', 'standby');
like(slurp_file("$root/docs/leases.md"), qr/^## How a standby should take over$/m,
	'leases.md recommends a standby');

like(slurp_file("$root/README.md"), qr/\(docs\/scaling\.md\)/, 'README.md links docs/scaling.md');
like(slurp_file("$root/docs/architecture.md"), qr/\(scaling\.md\)/, 'docs/architecture.md links scaling.md');
unlike($scaling, qr/^```sql/m, 'no ```sql block in scaling.md: its Citus examples cannot run here');
like($scaling, qr/nothing under "Past one node" has\s+been run/,
	'scaling.md says that the Citus design is not tested');

done_testing();
