\set p :client_id
UPDATE bench_leases SET agent_id = 'agent-' || :p, lease_epoch = lease_epoch + 1,
       lease_expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 30000
 WHERE topic = 'cycle' AND partition_id = :p
   AND (agent_id IS NULL OR lease_expires_at <= (extract(epoch FROM clock_timestamp()) * 1000)::bigint OR agent_id = 'agent-' || :p)
RETURNING lease_epoch AS e \gset
UPDATE bench_leases SET agent_id = NULL, lease_expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
 WHERE topic = 'cycle' AND partition_id = :p AND agent_id = 'agent-' || :p AND lease_epoch = :e;
