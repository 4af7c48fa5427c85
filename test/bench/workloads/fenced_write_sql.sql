\set p random(0, :rows - 1)
BEGIN;
SELECT 1 FROM bench_leases WHERE topic = 'bench' AND partition_id = :p
   AND lease_epoch = (SELECT lease_epoch FROM bench_leases WHERE topic = 'bench' AND partition_id = :p)
   AND lease_expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint FOR SHARE;
SELECT 1;
COMMIT;
