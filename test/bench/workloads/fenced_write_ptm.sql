\set p random(0, :rows - 1)
BEGIN;
SELECT ptm.check_fence('bench', :p, (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'bench' AND partition_id = :p));
SELECT 1;
COMMIT;
