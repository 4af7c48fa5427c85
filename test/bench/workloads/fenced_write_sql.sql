\set p random(0, :rows - 1)
BEGIN;
SELECT 1 FROM bench_leases WHERE topic = 'bench' AND partition_id = :p
   AND lease_epoch = :p + 1 AND lease_expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint FOR SHARE;
UPDATE bench_writes SET n = n + 1 WHERE id = :p;
COMMIT;
