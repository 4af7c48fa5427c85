\set c :client_id
UPDATE bench_leases SET lease_expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 3600000
 WHERE topic = 'bulk' AND partition_id BETWEEN :c * 500 AND :c * 500 + 499
   AND agent_id = 'bulk-' || :c AND lease_epoch = partition_id + 1
   AND lease_expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
