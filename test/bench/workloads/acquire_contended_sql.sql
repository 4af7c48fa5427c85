\set p random(0, 1)
\set a random(1, 64)
UPDATE bench_leases SET agent_id = 'agent-' || :a, lease_epoch = lease_epoch + 1,
       lease_expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 50
 WHERE topic = 'hot' AND partition_id = :p
   AND (agent_id IS NULL OR lease_expires_at <= (extract(epoch FROM clock_timestamp()) * 1000)::bigint OR agent_id = 'agent-' || :a)
RETURNING lease_epoch;
