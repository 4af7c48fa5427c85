# Epochs never go back: across a crash (immediate stop), a clean restart and a
# lease row deleted and created again, every new owner gets a higher epoch.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('epochs');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'ptm_lease'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION ptm_lease');

sub take
{
	my ($agent) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT lease_epoch FROM ptm.acquire_partition_lease('orders', 0, '$agent', '50 ms')
		 WHERE result = 'acquired'});
}

my $e1 = take('agent-1');
ok($e1 > 0, "first epoch $e1");
# committed acquisitions, then a crash
my $e2;
for my $i (1 .. 20) { $node->safe_psql('postgres', 'SELECT pg_sleep(0.06)'); $e2 = take("agent-$i"); }
ok($e2 > $e1, "epochs rose before the crash ($e1 -> $e2)");
$node->stop('immediate');
$node->start;
$node->safe_psql('postgres', 'SELECT pg_sleep(0.06)');
my $e3 = take('agent-after-crash');
ok($e3 > $e2, "after a crash the next epoch is higher ($e2 -> $e3)");

$node->restart;
$node->safe_psql('postgres', 'SELECT pg_sleep(0.06)');
my $e4 = take('agent-after-restart');
ok($e4 > $e3, "after a clean restart the next epoch is higher ($e3 -> $e4)");

# A superuser deletes the row by bypassing the guard; the new row's epoch is still higher.
$node->safe_psql('postgres', q{
	SET session_replication_role = replica;
	DELETE FROM ptm.partition_leases WHERE topic = 'orders';});
my $e5 = take('agent-after-delete');
ok($e5 > $e4, "after the row was deleted and re-created the epoch is higher ($e4 -> $e5)");

$node->stop;
done_testing();
