# Executable docs.  Every ```sql block of README.md and docs/**/*.md runs
# verbatim with psql (ON_ERROR_STOP), the blocks of one file in order, twice:
# in a fresh database (the extension and nothing else, so that an example that
# reads data it does not create fails), and in a database prepared with
# test/docs/sample_data.sql.  A block whose example needs data says so in an
# "*Expects:* ..." line before it, and is then run only against the sample
# data.  Both with search_path = "$user", public, ptm as the README tells DBAs;
# a failure names the block's file:line.  Every ```promql block is checked by
# promtool (each expression wrapped into a recording rule) and may only name
# series that ptm.metrics has.  docs/reference.md mentions every function,
# table, view, sequence and type of schema ptm, every ptm_lease.* setting with
# its default and context, every metric family, the workers and the NOTIFY
# channel, so that a new object without docs fails the suite.  And what the
# docs say about privileges is what pg_proc says: docs/security.md's table of
# who each function runs as, and every sentence of the docs that says a named
# function runs as its owner or as the caller.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IPC::Run qw(run);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PtmDocs;

my $root = $ENV{PTM_ROOT} or die 'PTM_ROOT is not set (run through test/run)';
my $fixture = "$root/test/docs/sample_data.sql";

my @files = ptm_doc_files($root);
my (%sql, %promql);
for my $f (@files)
{
	for my $b (ptm_doc_blocks("$root/$f"))
	{
		push @{ $sql{$f} }, $b if $b->[0] eq 'sql';
		push @{ $promql{$f} }, $b if $b->[0] eq 'promql';
	}
}

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');

# ---------------------------------------------------------------------------
# SQL blocks
# ---------------------------------------------------------------------------
my $nsql = 0;
$nsql += @{ $sql{$_} } for keys %sql;
ok($nsql >= 40, "the docs have ```sql blocks to run ($nsql)");
ok(-f $fixture, 'the sample data fixture exists');

# Run blocks of file $f in order in a new database, with the sample data or
# without; then drop the database and the roles the blocks created (e.g.
# CREATE ROLE svc), so that another file may create them again.
my $dbno = 0;
sub run_blocks
{
	my ($f, $with_data, @blocks) = @_;
	my $db = 'docs_' . ++$dbno;
	my $where = $with_data ? 'against the sample data' : 'on a fresh database';
	my %roles_before = map { $_ => 1 } split /\n/,
	  $node->safe_psql('postgres', 'SELECT rolname FROM pg_roles');

	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{CREATE EXTENSION ptm_lease;
		ALTER DATABASE $db SET search_path = "\$user", public, ptm;});
	if ($with_data)
	{
		my ($rc, $out, $err) = $node->psql($db, undef,
			extra_params => [ '-f', $fixture ], timeout => 120);
		is($rc, 0, "$f: the sample data loads into $db") or diag($err);
	}
	for my $b (@blocks)
	{
		my ($lang, $line, $body) = @$b;
		my $timed_out = 0;
		my ($rc, $out, $err) = $node->psql($db, $body,
			timeout => 120, timed_out => \$timed_out);
		ok($rc == 0 && !$timed_out, "$f:$line: the ```sql block runs $where")
		  or diag("$f:$line: " . ($timed_out ? 'timed out' : "psql exit $rc") . "\n$err\n"
			. ($with_data ? '' : "(an example that needs data it does not create says so in an"
				. " \"*Expects:* ...\" line before the block)\n")
			. "--- block ---\n$body");
	}

	$node->safe_psql('postgres', "DROP DATABASE $db");
	for my $r (split /\n/, $node->safe_psql('postgres', 'SELECT rolname FROM pg_roles'))
	{
		$node->safe_psql('postgres', qq{DROP ROLE "$r"}) unless $roles_before{$r};
	}
}

my $nexpects = 0;
for my $f (@files)
{
	next unless $sql{$f};
	my @fresh = grep { !defined $_->[3] } @{ $sql{$f} };
	$nexpects += @{ $sql{$f} } - @fresh;
	run_blocks($f, 0, @fresh) if @fresh;
	run_blocks($f, 1, @{ $sql{$f} });
}
note("$nexpects ```sql blocks say what data they expect and ran against the sample data only");

# ---------------------------------------------------------------------------
# PromQL blocks: promtool parses each expression, and each names only series
# that exist (as 061_promtool.pl checks for the alert rules).
# ---------------------------------------------------------------------------
my %series = map { $_ => 1 } split /\n/,
  $node->safe_psql('postgres', 'SELECT DISTINCT metric FROM ptm.metrics');
$series{$_} = 1 for split /\n/,
  $node->safe_psql('postgres', 'SELECT DISTINCT family FROM ptm.metric_series');
$series{$_} = 1 for qw(projection_materializer_wm_lag_ms projection_materializer_max_lag_ms);
my $known = qr/\b((?:ptm|lease|canonical_store|action_dedup|projection_materializer|recovery)_[a-z_]+)\b/;

my $tmp = tempdir(CLEANUP => 1);
my $npromql = 0;
for my $f (@files)
{
	for my $b (@{ $promql{$f} // [] })
	{
		my ($lang, $line, $body) = @$b;
		$npromql++;
		# One expression per line, except that a line continues the previous
		# one while brackets are open or an operator joins them; blank and
		# comment lines separate expressions.
		my $binop = qr{(?:[-+*/%^<>]|==|!=|\b(?:and|or|unless)\b)};
		my (@exprs, $cur);
		for my $l (split /\n/, $body)
		{
			if ($l =~ /^\s*(#.*)?$/) { push @exprs, $cur if defined $cur; undef $cur; next; }
			my $continues = defined $cur
			  && (($cur =~ tr/([{//) > ($cur =~ tr/)]}//)
				|| $cur =~ /$binop\s*$/ || $l =~ /^\s*$binop/);
			if ($continues) { $cur .= "\n$l"; }
			else { push @exprs, $cur if defined $cur; $cur = $l; }
		}
		push @exprs, $cur if defined $cur;
		my $rules = "groups:\n  - name: docs\n    rules:\n";
		my $i = 0;
		for my $e (@exprs)
		{
			$i++;
			(my $indented = $e) =~ s/^/          /mg;
			$rules .= "      - record: docs:block:expr$i\n        expr: |\n$indented\n";
		}
		my $file = "$tmp/block.yaml";
		open my $fh, '>', $file or die $!;
		print $fh $rules;
		close $fh;
		my ($o, $e2);
		ok(@exprs && run([ 'promtool', 'check', 'rules', $file ], '>', \$o, '2>', \$e2),
			"$f:$line: promtool parses the ```promql block (" . scalar(@exprs) . ' expressions)')
		  or diag("$o$e2\n--- block ---\n$body");
		my @unknown = grep { !$series{$_} && !$series{ $_ =~ s/_(bucket|sum|count)$//r } }
		  map { /$known/g } @exprs;
		is_deeply(\@unknown, [], "$f:$line: the ```promql block names only series of ptm.metrics");
	}
}
ok($npromql >= 5, "the runbooks have ```promql blocks ($npromql)");

# ---------------------------------------------------------------------------
# docs/reference.md covers the installed catalog.
# ---------------------------------------------------------------------------
my $ref = slurp_file("$root/docs/reference.md");

my @missing;
for my $fn (split /\n/, $node->safe_psql('postgres', q{
	SELECT DISTINCT p.proname FROM pg_proc p
	 WHERE p.pronamespace = 'ptm'::regnamespace ORDER BY 1}))
{
	push @missing, "function ptm.$fn()" unless $ref =~ /\bptm\.\Q$fn\E\(/;
}
for my $rel (split /\n/, $node->safe_psql('postgres', q{
	SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view'
	                      WHEN 'S' THEN 'sequence' END || ' ' || c.relname
	  FROM pg_class c
	 WHERE c.relnamespace = 'ptm'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S')
	 ORDER BY 1}))
{
	my ($kind, $name) = split / /, $rel;
	push @missing, "$kind ptm.$name" unless $ref =~ /\bptm\.\Q$name\E\b/;
}
for my $t (split /\n/, $node->safe_psql('postgres', q{
	SELECT t.typname FROM pg_type t
	 WHERE t.typnamespace = 'ptm'::regnamespace AND t.typtype IN ('c', 'e', 'd')
	   AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
	 ORDER BY 1}))
{
	push @missing, "type ptm.$t" unless $ref =~ /\bptm\.\Q$t\E\b/;
}
is_deeply(\@missing, [], 'docs/reference.md names every function, table, view, sequence and type of schema ptm');

# Settings: a table row "| `name` | `default` | context | ..." whose default is
# what SHOW says on a fresh server and whose context is pg_settings.context.
my @bad_gucs;
for my $g (split /\n/, $node->safe_psql('postgres', q{
	SELECT name || '|' || current_setting(name) || '|' || context
	  FROM pg_settings WHERE name LIKE 'ptm\_lease.%' ORDER BY name}))
{
	my ($name, $default, $context) = split /\|/, $g;
	my ($row) = $ref =~ /^(\|\s*`\Q$name\E`\s*\|.*)$/m;
	if (!$row) { push @bad_gucs, "$name: no row"; next; }
	my @cells = map { s/^\s+|\s+$//gr } split /\|/, $row;
	shift @cells;
	push @bad_gucs, "$name: default $cells[1], SHOW says `$default`" unless $cells[1] eq "`$default`";
	push @bad_gucs, "$name: context $cells[2], pg_settings says $context" unless $cells[2] eq $context;
}
is_deeply(\@bad_gucs, [], 'docs/reference.md has every ptm_lease.* setting with its default and context');

# Roles: the row of each function in ptm.role_functions() says who needs it.
my @bad_roles;
for my $rf (split /\n/, $node->safe_psql('postgres', q{
	SELECT DISTINCT p.proname || ' ' || rf.needed_by
	  FROM ptm.role_functions() rf JOIN pg_proc p ON p.oid = rf.function::oid ORDER BY 1}))
{
	my ($fn, $who) = split / /, $rf;
	my @rows = $ref =~ /^(\|[^\n]*`ptm\.\Q$fn\E\([^\n]*)$/mg;
	push @bad_roles, "$fn: no table row" unless @rows;
	push @bad_roles, "$fn: row does not say $who" if @rows && !grep { /\b$who\b/ } @rows;
}
is_deeply(\@bad_roles, [], 'each function\'s reference row names the role that needs it (ptm.role_functions)');

# ---------------------------------------------------------------------------
# What the docs say about privileges is what the catalog says.  A DBA grants
# what the docs say a caller needs: a function said to run "as the caller" has
# the caller's table privileges checked, one that runs as its owner
# (SECURITY DEFINER) needs only EXECUTE.
# ---------------------------------------------------------------------------
my %proc;    # name => [runs as: owner | caller | mixed, who may call it]
for my $row (split /\n/, $node->safe_psql('postgres', q{
	SELECT p.proname,
	       CASE WHEN bool_and(p.prosecdef) THEN 'owner' WHEN bool_or(p.prosecdef) THEN 'mixed'
	            ELSE 'caller' END,
	       coalesce(min(rf.needed_by),
	                CASE WHEN bool_or(has_function_privilege('public', p.oid, 'EXECUTE')) THEN 'PUBLIC'
	                     WHEN bool_or(has_function_privilege('pg_monitor', p.oid, 'EXECUTE')) THEN 'pg_monitor'
	                     ELSE 'owner' END)
	  FROM pg_proc p LEFT JOIN ptm.role_functions() rf ON rf.function = p.oid
	 WHERE p.pronamespace = 'ptm'::regnamespace
	 GROUP BY p.proname ORDER BY 1}))
{
	my ($name, $runs_as, $who) = split /\|/, $row;
	$proc{$name} = [ $runs_as, $who ];
}

# docs/security.md's table: a row "| `ptm.name()` | runs as | who may call it |
# what the caller needs besides EXECUTE |" for every function of schema ptm.
my @bad_table;
my %row;
for my $line (split /\n/, slurp_file("$root/docs/security.md"))
{
	next unless $line =~ /^\|\s*`ptm\.(\w+)\(\)`\s*\|/;
	my (undef, undef, $runs_as, $who, $needs) = map { s/^\s+|\s+$//gr =~ s/`//gr } split /\|/, $line;
	$row{$1} = 1;
	my $p = $proc{$1};
	if (!$p) { push @bad_table, "$1: no such function"; next; }
	push @bad_table, "$1: runs as $runs_as, pg_proc.prosecdef says $p->[0]" unless $runs_as eq $p->[0];
	push @bad_table, "$1: may be called by $who, the grants say $p->[1]" unless $who eq $p->[1];
	push @bad_table, "$1: runs as its owner, so its caller needs nothing but EXECUTE, not \"$needs\""
	  if $p->[0] eq 'owner' && ($needs // '') ne 'nothing';
}
push @bad_table, map { "$_: no row" } grep { !$row{$_} } sort keys %proc;
is_deeply(\@bad_table, [], 'docs/security.md says of every function whom it runs as and who may call it, as the catalog does');

# Every clause of the docs (a sentence, or a part of one between ':' and ';')
# that says functions run as the caller (or need table privileges) or as their
# owner is true of each function it names; one that says "as the caller" and
# names none speaks of the functions whose reference sections
# (### `ptm.name(...)`) the file holds, if any (else it speaks of none in
# particular, as the definitions in docs/security.md do).
my $invoker_claim = join '|', 'SECURITY INVOKER', 'as the caller', 'needs? (?:the )?table privileges',
  '(?<!no )needs? (?:SELECT|INSERT|UPDATE|DELETE|TRUNCATE|USAGE)\b';
$invoker_claim = qr/\b(?:$invoker_claim)/;
my $definer_claim = join '|', '\(`?SECURITY DEFINER`?[,)]', 'runs? as (?:the |its |their )?(?:extension(?:\'s)? )?owner\b',
  'as definer functions', 'no privileges? on the tables';
$definer_claim = qr/(?:$definer_claim)/i;
my @bad_claims;
my $nclaims = 0;
for my $f (@files)
{
	my $doc = ptm_doc_parse("$root/$f");
	my @documented = map { /^#{2,4} `ptm\.(\w+)\(/ ? $1 : () } @{ $doc->{headings} };
	for my $para (@{ $doc->{prose} })
	{
		my ($line, $text) = @$para;
		next if $f eq 'docs/security.md' && $text =~ /^\|\s*`ptm\.\w+\(\)`/;    # the table above
		for my $clause (split /(?<!e\.g)(?<!i\.e)[.;:!?]\s+/, $text)
		{
			my $invoker = $clause =~ $invoker_claim;
			my $definer = !$invoker && $clause =~ $definer_claim;
			next unless $invoker || $definer;
			$nclaims++;
			my @named = grep { $clause =~ /`(?:ptm\.)?\Q$_\E(?:\(|`)|\bptm\.\Q$_\E\(/ } sort keys %proc;
			@named = @documented if !@named && $invoker;
			for my $fn (@named)
			{
				my $says = $invoker ? 'caller' : 'owner';
				push @bad_claims, "$f:$line: pg_proc.prosecdef says $fn runs as the $proc{$fn}[0], not as the $says: $clause"
				  if $proc{$fn}[0] ne $says;
			}
		}
	}
}
ok($nclaims >= 3, "the docs say whom functions run as ($nclaims clauses)");
is_deeply(\@bad_claims, [], 'what the docs say a function runs as (owner or caller) is what pg_proc.prosecdef says');

my @families = split /\n/,
  $node->safe_psql('postgres', 'SELECT DISTINCT family FROM ptm.metric_series ORDER BY 1');
ok(@families >= 15, 'the metric families are listed by ptm.metric_series');
is_deeply([ grep { $ref !~ /`\Q$_\E[`{]/ } @families ], [], 'docs/reference.md names every metric family');

# The background workers (as pg_stat_activity shows them) and the NOTIFY channel.
ok($node->poll_query_until('postgres', q{
	SELECT count(DISTINCT backend_type) FROM pg_stat_activity WHERE backend_type LIKE 'ptm_lease %'}, '2'),
	'the launcher and the worker run');
my @types = split /\n/, $node->safe_psql('postgres', q{
	SELECT DISTINCT backend_type FROM pg_stat_activity WHERE backend_type LIKE 'ptm_lease %'});
is_deeply([ grep { $ref !~ /`\Q$_\E`/ } @types ], [], 'docs/reference.md names every background worker type');
like($ref, qr/`ptm_lease_events`/, 'docs/reference.md names the NOTIFY channel');

# Each alert's runbook names the alert (the on-call engineer lands there from
# the alert's runbook_url and must find it).
my $alerts = slurp_file("$root/docs/prometheus/ptm-alerts.yaml");
my @pairs = $alerts =~ /-\s*alert:\s*(\S+).*?runbook_url:\s*"([^"]+)"/gs;
ok(@pairs >= 20, 'the alert rules have runbook_urls');
my @unnamed;
while (my ($alert, $url) = splice(@pairs, 0, 2))
{
	my $text = -f "$root/$url" ? slurp_file("$root/$url") : '';
	push @unnamed, "$alert -> $url" unless $text =~ /`\Q$alert\E`/;
}
is_deeply(\@unnamed, [], 'every runbook names the alerts that link to it');

$node->stop;
done_testing();
