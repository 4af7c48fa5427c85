# Issue 16, reproduction 1: no epoch is ever handed out twice (epoch eras,
# docs/operations.md).
#
#  1. Asynchronous failover that lost WAL: a standby stops receiving WAL, the
#     primary hands out 100 epochs on one partition (50 x force_expire +
#     acquire), crashes, and the stale standby is promoted.  The same 100 calls
#     on the new primary hand out none of the old epochs, all above every old
#     one, and a fence with the old primary's last epoch fails with PTM01.
#  2. Point-in-time recovery to a restore point before some acquisitions,
#     then promotion: the epochs after it are above every epoch of the
#     original timeline.
#  3. A crash with synchronous_commit = off: no epoch a client has seen before
#     the crash is handed out again.
#  4. A restore from a logical dump into a fresh cluster, then
#     ptm.advance_epoch_era(): its floor is above every epoch the dumped
#     cluster handed out, including those issued after the dump; the next
#     acquire is above the floor; the call is audited.
# On a cluster that never failed over, epochs stay small (< 1000 here).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use List::Util qw(max min);

my $ERA = 1_000_000_000_000_000;    # 10^15: the epochs of era n start above n * 10^15

# $n x (force_expire + acquire) on one partition, one autocommit statement
# each, in one psql run.  Returns the epochs in the order handed out; every
# call must have done what it says (after a crash the first force_expire may
# find no owner: tolerate_first).  With fence => [epochs], after every
# acquire the test asks which of these epochs pass check_fence('topic', 0, e);
# the answers (a list of passing epochs, usually empty) are the second list.
sub force_and_acquire
{
	my ($node, $db, $topic, $tag, $n, %opt) = @_;
	$n //= 50;
	my $sql = '';
	for my $i (1 .. $n)
	{
		$sql .= "SELECT result || ':' || lease_epoch FROM ptm.force_expire('$topic', 0, '$tag $i');\n";
		$sql .= "SELECT result || ':' || lease_epoch FROM ptm.acquire_partition_lease('$topic', 0, '$tag-agent-$i', '1 h');\n";
		$sql .= "SELECT public.fences_passing('$topic', '{" . join(',', @{ $opt{fence} }) . "}');\n"
		  if $opt{fence};
	}
	my @lines = split /\n/, $node->safe_psql($db, $sql);
	my @fence = map { /^fence:(.*)$/ ? $1 : () } @lines;
	@lines = grep { !/^fence:/ } @lines;
	shift @lines if $opt{tolerate_first} && $lines[0] =~ /^no_lease:/;
	my @bad = grep { !/^(forced|acquired):\d+$/ } @lines;
	is(scalar(@bad) . ' ' . join(',', @bad[0 .. min($#bad, 2)]), '0 ',
		"$tag: $n force_expire + acquire_partition_lease calls are forced/acquired");
	my @epochs = map { (split /:/)[1] // 0 } @lines;
	my @sorted = sort { $a <=> $b } @epochs;
	is_deeply(\@epochs, \@sorted, "$tag: the epochs rise");
	return wantarray && $opt{fence} ? (\@epochs, \@fence) : @epochs;
}

sub overlap
{
	my ($a, $b) = @_;
	my %seen = map { $_ => 1 } @$a;
	return grep { $seen{$_} } @$b;
}

sub fence_fails_ptm01
{
	my ($node, $db, $topic, $epoch, $name) = @_;
	my ($ret, $out, $err) = $node->psql($db,
		"\\set VERBOSITY verbose\nSELECT ptm.check_fence('$topic', 0, $epoch)");
	like($err, qr/ERROR:  PTM01/, $name);
}

# --- 1. Failover to a standby that lags -----------------------------------
my $primary = PostgreSQL::Test::Cluster->new('eras_primary');
$primary->init(allows_streaming => 1, has_archiving => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	CREATE FUNCTION public.fences_passing(t text, es bigint[]) RETURNS text LANGUAGE plpgsql AS $$
	DECLARE
	  e bigint;
	  passing text := '';
	BEGIN
	  FOREACH e IN ARRAY es LOOP
	    BEGIN
	      PERFORM ptm.check_fence(t, 0, e);
	      passing := passing || ' ' || e;
	    EXCEPTION WHEN SQLSTATE 'PTM01' THEN
	      NULL;
	    END;
	  END LOOP;
	  RETURN 'fence:' || passing;
	END $$;});
my $first = $primary->safe_psql('postgres', q{
	SELECT lease_epoch FROM ptm.acquire_partition_lease('eras', 0, 'agent-first', '1 h')});
is($first, '1', 'on a new cluster the first epoch is 1');
$primary->backup('bk');

my $standby = PostgreSQL::Test::Cluster->new('eras_standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->append_conf('postgresql.conf', 'archive_mode = off');
$standby->start;
my @before_split = map { $primary->safe_psql('postgres', qq{
	SELECT lease_epoch FROM ptm.acquire_partition_lease('eras', $_, 'agent-$_', '1 h')}) } 1 .. 5;
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT max(lease_epoch) FROM ptm.partition_leases}),
	max(@before_split), 'the standby has every epoch handed out so far');

# The standby stops receiving WAL; the primary carries on.
$standby->stop;
my @restore_point_epochs = map { $primary->safe_psql('postgres', qq{
	SELECT lease_epoch FROM ptm.acquire_partition_lease('eras', $_, 'agent-$_', '1 h')}) } 6 .. 10;
$primary->safe_psql('postgres', "SELECT pg_create_restore_point('eras_before_loop')");
my @old = force_and_acquire($primary, 'postgres', 'eras', 'old');
my $old_last = $old[-1];
my $old_max = max(@old, @before_split, @restore_point_epochs);
ok($old_max < 1000, "on the cluster that never failed over the epochs are small (max $old_max)");
is($primary->safe_psql('postgres', q{
	SELECT agent_id || ':' || lease_epoch FROM ptm.partition_leases WHERE topic = 'eras' AND partition_id = 0}),
	"old-agent-50:$old_last", "the old primary's last epoch $old_last belongs to old-agent-50");

# Archive everything up to here for the point-in-time recovery below.
my $seg = $primary->safe_psql('postgres', 'SELECT pg_walfile_name(pg_switch_wal())');
ok($primary->poll_query_until('postgres',
	"SELECT last_archived_wal >= '$seg' FROM pg_stat_archiver"), "WAL up to $seg archived");

# The primary crashes; the stale standby is promoted.
$primary->stop('immediate');
$standby->start;
$standby->promote;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'the stale standby is promoted');
is($standby->safe_psql('postgres', q{
	SELECT max(lease_epoch) FROM ptm.partition_leases}), max(@before_split),
	'the promoted standby lost the WAL of the last epochs (the reproduction holds)');

my ($new, $fence) = force_and_acquire($standby, 'postgres', 'eras', 'new', 50, fence => \@old);
my @new = @$new;
is(join('', @$fence), '',
	"after every acquire on the new primary, check_fence with each epoch of the old primary fails");
my @reused = overlap(\@old, \@new);
is(scalar(@reused), 0, 'no epoch handed out by the new primary was handed out by the old one')
  or diag("reused: @reused[0 .. min($#reused, 9)]");
cmp_ok(min(@new), '>', $old_max, "every new epoch (from $new[0]) is above every old epoch (max $old_max)");
ok($new[0] > $ERA && $new[-1] < 2 * $ERA,
	"after one promotion the epochs are in era 1 ($new[0] .. $new[-1])");
fence_fails_ptm01($standby, 'postgres', 'eras', $old_last,
	"check_fence with the old primary's last epoch $old_last fails with PTM01 on the new primary");
for my $p (6 .. 10)
{
	my $e = $restore_point_epochs[$p - 6];
	my $got = $standby->safe_psql('postgres', qq{
		SELECT result || ':' || (lease_epoch > $old_max)
		  FROM ptm.acquire_partition_lease('eras', $p, 'new-owner-$p', '1 h')});
	is($got, 'acquired:true', "orders lost with the WAL: partition $p is acquired above the old epochs");
	fence_fails_ptm01($standby, 'postgres', 'eras', $e,
		"and a fence with its lost epoch $e fails with PTM01") if $p == 6;
}
# What a DBA reads after the failover: the sequence in the new era, and why.
is($standby->safe_psql('postgres', q{
	SELECT (SELECT last_value FROM ptm.lease_epoch_seq) > 1000000000000000}), 't',
	'the epoch sequence stands in the era of the new timeline');
ok($standby->log_contains(qr/ptm_lease: lease epochs continue at 1000000000000001 on timeline 2/),
	'and the server log says where epochs continue, and on which timeline');
$standby->stop;

# --- 2. Point-in-time recovery to an earlier point ------------------------
my $pitr = PostgreSQL::Test::Cluster->new('eras_pitr');
$pitr->init_from_backup($primary, 'bk', has_restoring => 1, standby => 0);
$pitr->append_conf('postgresql.conf', qq{
archive_mode = off
recovery_target_name = 'eras_before_loop'
recovery_target_action = 'promote'
});
$pitr->start;
ok($pitr->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'),
	'point-in-time recovery to the restore point ends in a promotion');
is($pitr->safe_psql('postgres', q{
	SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'eras' AND partition_id = 0}),
	$first, 'the recovered cluster is at the earlier point: the 100 later epochs are not in it');
is($pitr->safe_psql('postgres', q{SELECT max(lease_epoch) FROM ptm.partition_leases}),
	max(@restore_point_epochs), 'it has the epochs handed out before the restore point');
my @pitr = force_and_acquire($pitr, 'postgres', 'eras', 'pitr');
@reused = overlap(\@old, \@pitr);
is(scalar(@reused), 0, 'after PITR no epoch of the original timeline is handed out again')
  or diag("reused: @reused[0 .. min($#reused, 9)]");
cmp_ok(min(@pitr), '>', $old_max, "every epoch after PITR (from $pitr[0]) is above the original timeline's (max $old_max)");
fence_fails_ptm01($pitr, 'postgres', 'eras', $old_last,
	"check_fence with the original timeline's last epoch $old_last fails with PTM01 after PITR");
$pitr->stop;

# --- 3. Crash with synchronous_commit = off ---------------------------------
# The WAL writer would write the commits only after 10 s: what the clients
# saw before the crash is lost unless the epoch's commit was synchronous.
my $node = PostgreSQL::Test::Cluster->new('eras_async');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
synchronous_commit = off
wal_writer_delay = '10s'
wal_writer_flush_after = '1GB'
checkpoint_timeout = '1h'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	SELECT ptm.acquire_partition_lease('async', 0, 'agent-0', '1 h');
	CHECKPOINT;});
is($node->safe_psql('postgres', 'SHOW synchronous_commit'), 'off', 'synchronous_commit is off');
my @seen = force_and_acquire($node, 'postgres', 'async', 'before-crash', 20);
$node->stop('immediate');
$node->start;
my @after = force_and_acquire($node, 'postgres', 'async', 'after-crash', 20, tolerate_first => 1);
@reused = overlap(\@seen, \@after);
is(scalar(@reused), 0, 'after a crash with synchronous_commit = off no epoch a client saw is handed out again')
  or diag("reused: @reused[0 .. min($#reused, 9)]");
cmp_ok(min(@after), '>', max(@seen), 'the epochs after the crash are above those seen before it');
cmp_ok(max(@after), '<', 1000, 'a crash does not change the era: the epochs stay small');

# --- 4. Restore from a logical dump into a fresh cluster ------------------
my $dir = PostgreSQL::Test::Utils::tempdir;
$node->command_ok([ 'pg_dump', '-h', $node->host, '-p', $node->port, '-Fc', '-f', "$dir/eras.dump", 'postgres' ],
	'pg_dump of the source cluster');
# The source carries on after the dump: these epochs are not in the dump.
my @after_dump = force_and_acquire($node, 'postgres', 'async', 'after-dump', 10);
my $source_max = $node->safe_psql('postgres', 'SELECT last_value FROM ptm.lease_epoch_seq');
cmp_ok($source_max, '>=', max(@after_dump), "the source handed out epochs up to $source_max");

my $restored = PostgreSQL::Test::Cluster->new('eras_restored');
$restored->init;
$restored->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$restored->start;
$restored->safe_psql('postgres', 'CREATE DATABASE dst');
$restored->command_ok([ 'pg_restore', '-h', $restored->host, '-p', $restored->port, '--exit-on-error',
	  '-d', 'dst', "$dir/eras.dump" ], 'pg_restore into a fresh cluster');
cmp_ok($restored->safe_psql('dst', 'SELECT last_value FROM ptm.lease_epoch_seq'), '<', max(@after_dump),
	'the restored sequence is behind the epochs handed out after the dump (the reproduction holds)');
my $floor = $restored->safe_psql('dst', q{SELECT ptm.advance_epoch_era('restored from dump')});
like($floor, qr/^\d+$/, "advance_epoch_era() returns the new floor $floor");
cmp_ok($floor, '>', $source_max, 'the floor is above every epoch the dumped cluster handed out, after the dump too');
is($floor % $ERA, 0, 'the floor is the start of an era');
my @restored_epochs = force_and_acquire($restored, 'dst', 'async', 'restored', 1);
cmp_ok($restored_epochs[0], '>=', $floor + 1, "the next epoch-raising call gets $restored_epochs[0], floor + 1 or more");
my $next = $restored_epochs[-1];
fence_fails_ptm01($restored, 'dst', 'async', $after_dump[-1],
	"check_fence with an epoch issued after the dump ($after_dump[-1]) fails with PTM01");
is($restored->safe_psql('dst', q{
	SELECT count(*) FROM ptm.lease_audit
	 WHERE action = 'advance_epoch_era' AND reason = 'restored from dump'}),
	'1', 'a lease_audit row with action advance_epoch_era');
my $floor2 = $restored->safe_psql('dst', q{SELECT ptm.advance_epoch_era('again')});
cmp_ok($floor2, '>', $next, "calling it again lifts the floor above the epochs since ($floor2)");

$restored->stop;
$node->stop;
done_testing();
