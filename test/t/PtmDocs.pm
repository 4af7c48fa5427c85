# The fenced blocks of the Markdown docs, for the tests that run them
# (test/t/070_docs.pl runs every one, test/t/074_runbook_queries.pl runs
# chosen runbook queries against an incident it stages).
#
#   my @files = ptm_doc_files($root);      # README.md, then docs/**/*.md sorted
#   for my $b (ptm_doc_blocks($path)) { my ($lang, $line, $body, $expects) = @$b; ... }
#   my $doc = ptm_doc_parse($path);        # {blocks, prose, headings}
#   my $sql = ptm_doc_section_block($path, qr/^### Step 5/, 1);   # 1st ```sql block of that section
#   my $py = ptm_doc_section_block($path, qr/^### psycopg 3/, 1, 'python');
#
# $expects is the text of an "*Expects:* ..." line standing between the
# previous block (or the start of the file) and this one: what the example
# needs that a fresh database does not have (docs/runbooks/README.md).
package PtmDocs;
use strict;
use warnings;
use File::Find;
use Exporter 'import';
our @EXPORT = qw(ptm_doc_files ptm_doc_parse ptm_doc_blocks ptm_doc_section_block);

sub ptm_doc_files
{
	my ($root) = @_;
	my @files;
	find({ wanted => sub { push @files, $File::Find::name =~ s{^\Q$root\E/}{}r if /\.md$/ },
		   no_chdir => 1 }, "$root/docs");
	return ('README.md', sort @files);
}

# A Markdown file, read once: {blocks => [[lang, first line of the body, body,
# expects or undef, heading of the section the block is in]], prose =>
# [[first line, paragraph]] (text outside the blocks, a paragraph or table
# row each), headings => [heading lines]}.
sub ptm_doc_parse
{
	my ($path) = @_;
	my (%doc, $fence, $lang, $start, $body, $expects, $heading, $para);
	my $n = 0;
	$doc{$_} = [] for qw(blocks prose headings);
	open my $fh, '<', $path or die "$path: $!";
	while (my $line = <$fh>)
	{
		$n++;
		if (defined $fence)
		{
			if ($line =~ /^\s*\Q$fence\E\s*$/)
			{
				push @{ $doc{blocks} }, [ $lang, $start, $body, $expects, $heading ];
				undef $fence;
				undef $expects;
			}
			else
			{
				$body .= $line;
			}
			next;
		}
		# a paragraph ends at a blank line, a block, a heading, a table row or
		# the next list item
		if ($line =~ /^\s*$|^\s*(`{3,}|~{3,})|^#{1,6} |^\s*\||^\s*(?:[-*+]|\d+\.)\s/ && $para)
		{
			push @{ $doc{prose} }, $para;
			undef $para;
		}
		if ($line =~ /^#{1,6} /)
		{
			$heading = $line =~ s/\s+$//r;
			push @{ $doc{headings} }, $heading;
		}
		elsif ($line =~ /^\s*\|/)
		{
			push @{ $doc{prose} }, [ $n, $line =~ s/\s+$//r ];
		}
		elsif ($line =~ /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/)
		{
			($fence, $lang, $start, $body) = ($2, lc $3, $n + 1, '');
		}
		elsif ($line =~ /\S/)
		{
			$expects = $1 if $line =~ /^\s*(?:[-*>]\s+)?\*Expects:\*\s*(\S.*?)\s*$/;
			$para = $para ? [ $para->[0], "$para->[1] " . ($line =~ s/^\s+|\s+$//gr) ]
			  : [ $n, $line =~ s/^\s+|\s+$//gr ];
		}
	}
	close $fh;
	push @{ $doc{prose} }, $para if $para;
	die "$path: unclosed ``` block starting at line " . ($start - 1) . "\n" if defined $fence;
	return \%doc;
}

sub ptm_doc_blocks { return @{ ptm_doc_parse($_[0])->{blocks} }; }

# The body of the $n-th ```sql block (from 1; ```$lang if given) of the
# section whose heading matches $heading_re; dies when there is none, so that
# a test notices a runbook whose steps were renamed.
sub ptm_doc_section_block
{
	my ($path, $heading_re, $n, $lang) = @_;
	$lang //= 'sql';
	my @found = grep { $_->[0] eq $lang && defined $_->[4] && $_->[4] =~ $heading_re }
	  ptm_doc_blocks($path);
	die "$path: no ```$lang block $n under a heading matching $heading_re\n" unless $found[ $n - 1 ];
	return $found[ $n - 1 ][2];
}

1;
