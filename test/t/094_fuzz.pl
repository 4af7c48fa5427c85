# Hostile input fuzz (issue 9): a seeded random driver calls every public ptm
# function thousands of times with NULLs, empty, huge and odd strings
# (quotes, format directives, invalid UTF-8 escapes), epochs, versions and
# offsets at +-2^63, TTLs at the interval limits, infinite and ancient event
# times, deeply nested and ~10 MB jsonb, and malformed arrays; now and then
# it flips the settings (agent identity, name and TTL limits).  Each call
# runs as its own statement, and the checksum of every extension table is
# taken after it (so before it too: the session is the only writer).
# Afterwards:
#   - the server never crashed (still answers, nothing "terminated by signal"
#     in its log, every call was logged);
#   - no call failed with an internal error (SQLSTATE class XX);
#   - no failing call changed any extension table;
#   - every function had calls that passed and calls that failed.
#
# PTM_FUZZ_SEED (default 9) makes a run repeatable; PTM_FUZZ_CALLS (default
# 4000) and PTM_FUZZ_SECONDS (default 60) bound it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $seed = $ENV{PTM_FUZZ_SEED} // 9;
my $max_calls = $ENV{PTM_FUZZ_CALLS} // 4000;
my $max_seconds = $ENV{PTM_FUZZ_SECONDS} // 60;
srand($seed);
note("seed $seed, at most $max_calls calls in $max_seconds s");

my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
ptm_lease.database = 'postgres'
ptm_lease.max_tracked_keys = 50
max_stack_depth = '2MB'
log_statement = none
});
$node->start;
# In a database of its own, which ptm_lease.database leaves without a worker:
# a worker must not change the tables between the two checksums of a call.
$node->safe_psql('postgres', 'CREATE DATABASE fuzz');
$node->safe_psql('fuzz', q{
	CREATE EXTENSION ptm_lease;
	CREATE ROLE fuzz_agent;
	CREATE ROLE fuzz_oncall;
	SELECT count(*) FROM ptm.grant_agent('fuzz_agent');
	SELECT count(*) FROM ptm.grant_operator('fuzz_oncall');
	CREATE TABLE fuzz_log (id int, fn text, sqlstate text, after text);
	GRANT INSERT ON fuzz_log TO PUBLIC;
	-- every extension table, one checksum: a row's ctid and xmin change with
	-- every insert, update or delete, and cost nothing to read (the data
	-- itself may be 10 MB of jsonb)
	CREATE FUNCTION fuzz_sum() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog AS $$
	  SELECT md5(concat_ws('|',
	    (SELECT string_agg(ctid::text || xmin::text, ',') FROM ptm.partition_leases),
	    (SELECT string_agg(ctid::text || xmin::text, ',') FROM ptm.lease_audit),
	    (SELECT string_agg(ctid::text || xmin::text, ',') FROM ptm.workflow_state),
	    (SELECT string_agg(ctid::text || xmin::text, ',') FROM ptm.action_dedup_log),
	    (SELECT string_agg(ctid::text || xmin::text, ',') FROM ptm.projection_watermarks),
	    (SELECT string_agg(ctid::text || xmin::text, ',') FROM ptm.workflow_projection)))
	$$;
	GRANT EXECUTE ON FUNCTION fuzz_sum() TO PUBLIC;
	SELECT ptm.ensure_partitions('t0', 4);
	INSERT INTO fuzz_log VALUES (0, 'start', '00000', fuzz_sum());
	CREATE VIEW fuzz_calls AS
	  SELECT id, fn, sqlstate, lag(after) OVER (ORDER BY id) AS before, after
	    FROM fuzz_log;
});

# ---------------------------------------------------------------------
# Argument generators: mostly plausible values (so calls get deep), often
# hostile ones.
# ---------------------------------------------------------------------
sub pick { return $_[ int(rand(@_)) ]; }
sub chance { return rand() < $_[0]; }

sub name_arg
{
	return pick("'t0'", "'t1'", "'a1'", "'a2'", "'wf1'", "'wf2'", "'p1'") if chance(0.6);
	return pick(
		'NULL', "''", "' '", "repeat('x', 256)", "repeat('x', 257)", "repeat('é', 128)",
		"repeat('é', 129)", "repeat('y', 100000)", "repeat('z', 2000000)",
		"'%s%n%d%x'", "'O''Brien \"\\\\'", "E'tab\\there\\nnewline'", "'🦄𝔘nicode'",
		"E'\\u202Eevil'", "chr(1)", "convert_from('\\xc3a9'::bytea, 'UTF8')",
		"convert_from('\\xff'::bytea, 'UTF8')", "convert_from('\\xc3'::bytea, 'UTF8')",
		"E'\\xff'", "E'\\u0000'", "'postgres'", "'fuzz_agent'", "'pg_monitor'",
		"'t0' || chr(10)", "upper('t0')");
}

sub int4_arg
{
	return pick('0', '1', '2', '3') if chance(0.6);
	return pick('NULL', '-1', '-2147483648', '2147483647', '1000000', '1000001', '7');
}

sub epoch_arg
{
	return pick(
		"(SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 't0' AND partition_id = 0)",
		"(SELECT max(lease_epoch) FROM ptm.partition_leases)", '1', '2', '3')
	  if chance(0.6);
	return pick('NULL', '0', '-1', '-9223372036854775808', '9223372036854775807',
		'9223372036854775806', "(SELECT last_value FROM ptm.lease_epoch_seq)");
}

sub version_arg
{
	return pick("(SELECT version FROM ptm.workflow_state WHERE workflow_key = 'wf1')",
		'0', '1', '2')
	  if chance(0.6);
	return pick('NULL', '-1', '-9223372036854775808', '9223372036854775807',
		'9223372036854775806', "(SELECT claim_epoch FROM ptm.workflow_state WHERE workflow_key = 'wf1')");
}

sub offset_arg
{
	return pick('0', '1', '5', '10', "(SELECT max(\"offset\") + 1 FROM ptm.projection_watermarks)")
	  if chance(0.6);
	return pick('NULL', '-1', '-9223372036854775808', '9223372036854775807', '9223372036854775806');
}

sub ttl_arg
{
	return pick("'30 s'", "'1 s'", "'50 ms'") if chance(0.6);
	return pick(
		'NULL', "'0'", "'-1 s'", "'1 us'", "'0.001 ms'", "'1 h'", "'1 h 1 ms'",
		"'178000000 years'", "'-178000000 years'", "'2562047788:00:54.775807'",
		"'-2562047788:00:54.775807'", "'-2147483648 months'", "'2147483647 months'",
		"'1 mon -30 days'", "'1 day -86399 s'", "'-2147483648 days 2562047788:00:54.775807'");
}

sub ts_arg
{
	return pick('NULL', 'now()') if chance(0.6);
	return pick("'infinity'", "'-infinity'", "'4713-01-01 00:00:00+00 BC'",
		"'294276-12-31 23:59:59+00'", "now() + '1000 years'", "'epoch'");
}

sub jsonb_arg
{
	return pick("'{}'", "'{\"n\": 1}'", "'[1, 2]'", "'\"x\"'") if chance(0.6);
	return pick(
		'NULL', "'null'", "'1e308'", "'-0'", "'{\"a\": \"\\\\u0000\"}'",
		"repeat('[', 1000)::text || repeat(']', 1000)",
		"(repeat('[', 5000) || repeat(']', 5000))::jsonb",
		"(repeat('{\"a\":', 3000) || '1' || repeat('}', 3000))::jsonb",
		"(repeat('[', 100000) || repeat(']', 100000))::jsonb",
		"(SELECT jsonb_agg(g) FROM generate_series(1, 1300000) g)",
		"jsonb_build_object('s', repeat('x', 10 * 1024 * 1024))",
		"jsonb_build_object('s', repeat('x', 1024 * 1024 - 100))",
		"jsonb_build_object('s', repeat('x', 1024 * 1024 - 16))",
		"'{\"bad\": }'");
}

sub bool_arg { return pick('true', 'false', 'NULL'); }

sub array_of
{
	my ($elem, $type, $n) = @_;
	return pick('NULL', "'{}'::$type\[]", "ARRAY[NULL]::$type\[]",
		"'{{1},{2}}'::$type\[]", "array_fill(NULL::$type, ARRAY[100000])")
	  if chance(0.3);
	$n //= 1 + int(rand(4));
	return 'ARRAY[' . join(', ', map { $elem->() } 1 .. $n) . "]::$type\[]";
}

# One call per public function (and the views): name and SQL.
my @functions = (
	[ 'acquire_partition_lease', sub { sprintf('SELECT * FROM ptm.acquire_partition_lease(%s, %s, %s, %s)', name_arg(), int4_arg(), name_arg(), ttl_arg()) } ],
	[ 'renew_lease', sub { sprintf('SELECT * FROM ptm.renew_lease(%s, %s, %s, %s, %s)', name_arg(), int4_arg(), name_arg(), epoch_arg(), ttl_arg()) } ],
	[ 'release_lease', sub { sprintf('SELECT * FROM ptm.release_lease(%s, %s, %s, %s)', name_arg(), int4_arg(), name_arg(), epoch_arg()) } ],
	[ 'force_expire', sub { sprintf('SELECT * FROM ptm.force_expire(%s, %s, %s)', name_arg(), int4_arg(), name_arg()) } ],
	[ 'check_fence', sub {
		# now and then right after taking the lease, so that some fences pass
		chance(0.3) ? "SELECT ptm.check_fence('t0', 1, (SELECT lease_epoch FROM ptm.acquire_partition_lease('t0', 1, 'a1')))"
		  : sprintf('SELECT ptm.check_fence(%s, %s, %s)', name_arg(), int4_arg(), epoch_arg()) } ],
	[ 'acquire_partition_leases', sub { sprintf('SELECT * FROM ptm.acquire_partition_leases(%s, %s, %s, %s)', name_arg(), name_arg(), int4_arg(), ttl_arg()) } ],
	[ 'renew_leases', sub {
		return "SELECT * FROM ptm.renew_leases('a1', ARRAY['t0', 't0'], ARRAY[1, 2], ARRAY["
		  . "(SELECT greatest(lease_epoch, 1) FROM ptm.partition_leases WHERE topic = 't0' AND partition_id = 1), 1])"
		  if chance(0.3);
		my $n = 1 + int(rand(3));
		sprintf('SELECT * FROM ptm.renew_leases(%s, %s, %s, %s, %s)', name_arg(),
			array_of(\&name_arg, 'text', $n), array_of(\&int4_arg, 'int', chance(0.8) ? $n : undef),
			array_of(\&epoch_arg, 'bigint', chance(0.8) ? $n : undef), ttl_arg()) } ],
	# (not 1000000: a million lease rows would make every checksum slow)
	[ 'ensure_partitions', sub { sprintf('SELECT ptm.ensure_partitions(%s, %s)', name_arg(),
		pick('NULL', '-2147483648', '-1', '0', '1', '4', '1000001', '2147483647')) } ],
	[ 'try_commit', sub {
		my @fence = chance(0.5) ? ('NULL', 'NULL', 'NULL')
		  : chance(0.5) ? (name_arg(), int4_arg(), epoch_arg())
		  : ('NULL', 'NULL', version_arg());
		sprintf('SELECT * FROM ptm.try_commit(%s, %s, %s, %s, %s, %s, %s)', name_arg(), version_arg(),
			jsonb_arg(), chance(0.5) ? 'NULL' : name_arg(), @fence) } ],
	[ 'get_state', sub { sprintf('SELECT * FROM ptm.get_state(%s)', name_arg()) } ],
	[ 'claim_step', sub { sprintf('SELECT * FROM ptm.claim_step(%s, %s, %s, %s)', name_arg(), version_arg(), name_arg(), ttl_arg()) } ],
	[ 'apply_projection', sub {
		my @fence = chance(0.7) ? ('NULL', 'NULL', 'NULL') : (name_arg(), int4_arg(), epoch_arg());
		sprintf('SELECT * FROM ptm.apply_projection(%s, %s, %s, %s, %s, %s, %s, %s, %s)', name_arg(), int4_arg(),
			offset_arg(), name_arg(), jsonb_arg(), ts_arg(), @fence) } ],
	[ 'apply_projection_batch', sub {
		my $n = 1 + int(rand(4));
		my @fence = chance(0.7) ? ('NULL', 'NULL', 'NULL') : (name_arg(), int4_arg(), epoch_arg());
		sprintf('SELECT * FROM ptm.apply_projection_batch(%s, %s, %s, %s, %s, %s, %s, %s, %s)', name_arg(), int4_arg(),
			array_of(\&offset_arg, 'bigint', $n), array_of(\&name_arg, 'text', chance(0.8) ? $n : undef),
			array_of(\&jsonb_arg, 'jsonb', chance(0.8) ? $n : undef),
			chance(0.5) ? 'NULL' : array_of(\&ts_arg, 'timestamptz', chance(0.8) ? $n : undef), @fence) } ],
	[ 'reset_projection', sub { sprintf('SELECT * FROM ptm.reset_projection(%s, %s, %s, %s)', name_arg(), pick('NULL', int4_arg()), bool_arg(), name_arg()) } ],
	[ 'reset_counters', sub { 'SELECT ptm.reset_counters() IS NOT NULL' } ],
	[ 'metrics_text', sub { 'SELECT length(ptm.metrics_text())' } ],
	[ 'health', sub { 'SELECT count(*) FROM ptm.health()' } ],
	[ 'role_functions', sub { 'SELECT count(*) FROM ptm.role_functions()' } ],
	[ 'grant_agent', sub { sprintf('SELECT count(*) FROM ptm.grant_agent(%s)', pick("'fuzz_agent'", 'NULL', name_arg())) } ],
	[ 'grant_operator', sub { sprintf('SELECT count(*) FROM ptm.grant_operator(%s)', pick("'fuzz_oncall'", 'NULL', name_arg())) } ],
	[ 'views', sub { 'SELECT count(*) FROM ptm.' . pick(qw(lease_status metrics metric_series histograms
		commit_results claim_results lease_outcomes key_counters top_workflow_conflicts
		top_topic_conflicts stat_info projection_lag projection_metrics)) } ],
);

# Settings flipped now and then, as the superuser (the agent roles may not).
my @settings = (
	"SET ptm_lease.agent_identity = 'role'", "SET ptm_lease.agent_identity = 'any'",
	'SET ptm_lease.max_name_bytes = 1', 'SET ptm_lease.max_name_bytes = 8192',
	'RESET ptm_lease.max_name_bytes', "SET ptm_lease.max_ttl = '1ms'", 'RESET ptm_lease.max_ttl',
	'SET ptm_lease.max_state_bytes = 1', 'RESET ptm_lease.max_state_bytes',
	'SET ptm_lease.enable_counters = off', 'RESET ptm_lease.enable_counters');

# ---------------------------------------------------------------------
# Run: batches of calls, each in one psql session, as the superuser, an
# agent or an operator.
# ---------------------------------------------------------------------
my $start = time();
my $calls = 0;
my $batches = 0;
while ($calls < $max_calls && time() - $start < $max_seconds)
{
	my $role = pick('postgres', 'postgres', 'fuzz_agent', 'fuzz_oncall');
	my $sql = "\\set VERBOSITY terse\n";
	for (1 .. 100)
	{
		last if $calls >= $max_calls;
		$sql .= pick(@settings) . ";\n" if $role eq 'postgres' && chance(0.03);
		my $f = pick(@functions);
		my ($fn, $gen) = @$f;
		$calls++;
		$sql .= "SET ROLE $role;\n" if $role ne 'postgres';
		$sql .= $gen->() . ";\n";
		$sql .= "\\set st :SQLSTATE\n";
		$sql .= "RESET ROLE;\n" if $role ne 'postgres';
		$sql .= "INSERT INTO fuzz_log VALUES ($calls, '$fn', :'st', fuzz_sum());\n";
	}
	$batches++;
	my ($stdout, $stderr);
	my $rc = $node->psql('fuzz', $sql, stdout => \$stdout, stderr => \$stderr,
		on_error_stop => 0);
	if ($rc > 1)
	{
		diag("batch $batches (psql exit code $rc) stopped: " . substr($stderr // '', -2000));
		last;
	}
}
my $elapsed = time() - $start;
note(sprintf('%d calls in %d batches, %.1f s', $calls, $batches, $elapsed));

# ---------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------
is($node->safe_psql('fuzz', 'SELECT 1'), '1', 'the server still answers');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated|TRAP:|PANIC:/,
	'no backend crashed or hit an assertion');
is($node->safe_psql('fuzz', 'SELECT count(*) FROM fuzz_log WHERE id > 0'), $calls,
	"all $calls calls were logged");
ok($calls >= 1000, "thousands of calls ran ($calls)");

is($node->safe_psql('fuzz', q{SELECT count(*) FROM fuzz_log WHERE sqlstate LIKE 'XX%'}),
	'0', 'no internal error (SQLSTATE XX000 and the rest of class XX)')
  or diag($node->safe_psql('fuzz',
	q{SELECT id, fn, sqlstate FROM fuzz_log WHERE sqlstate LIKE 'XX%' ORDER BY id LIMIT 20}));

is($node->safe_psql('fuzz',
	q{SELECT count(*) FROM fuzz_calls WHERE sqlstate <> '00000' AND before IS DISTINCT FROM after}),
	'0', 'no failing call changed an extension table')
  or diag($node->safe_psql('fuzz',
	q{SELECT id, fn, sqlstate FROM fuzz_calls WHERE sqlstate <> '00000' AND before IS DISTINCT FROM after
	   ORDER BY id LIMIT 20}));

is($node->safe_psql('fuzz', q{
	SELECT string_agg(fn, ', ' ORDER BY fn) FROM (
	  SELECT fn FROM fuzz_log WHERE id > 0 GROUP BY fn
	  HAVING count(*) FILTER (WHERE sqlstate = '00000') = 0
	      OR (count(*) FILTER (WHERE sqlstate <> '00000') = 0
	          AND fn NOT IN ('health', 'metrics_text', 'reset_counters', 'role_functions', 'views'))) x}),
	'', 'every function had calls that passed, and each with arguments calls that failed');

ok($node->safe_psql('fuzz',
	q{SELECT count(*) FROM fuzz_calls WHERE sqlstate = '00000' AND before <> after}) > 100,
	'many calls changed state');

note("SQLSTATEs seen:\n" . $node->safe_psql('fuzz',
	q{SELECT sqlstate || ' ' || count(*) FROM fuzz_log WHERE id > 0 GROUP BY sqlstate ORDER BY count(*) DESC}));

$node->stop;
done_testing();
