\set p random(0, :rows - 1)
UPDATE bench_leases SET lease_expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 3600000
 WHERE topic = 'bench' AND partition_id = :p AND agent_id = 'agent-' || :p
   AND lease_epoch = :p + 1 AND lease_expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint
RETURNING lease_expires_at;
