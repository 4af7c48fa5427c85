-- Benchmark data: the extension's tables and the plain-SQL baseline tables a
-- user would write without ptm_lease (same columns, same primary keys).
CREATE EXTENSION IF NOT EXISTS ptm_lease;

CREATE TABLE IF NOT EXISTS bench_leases (
    topic text NOT NULL, partition_id int NOT NULL, agent_id text,
    lease_epoch bigint NOT NULL DEFAULT 0, lease_expires_at bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition_id));

-- Seed 002's "Option 5" recipe: advisory xact lock + SELECT ... FOR UPDATE + UPDATE.
CREATE OR REPLACE FUNCTION bench_acquire_recipe(p_topic text, p_partition int, p_agent text, p_ttl_ms bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  r record;
BEGIN
  PERFORM pg_try_advisory_xact_lock(hashtext(concat(p_topic, '-', p_partition::text)));
  SELECT * INTO r FROM bench_leases WHERE topic = p_topic AND partition_id = p_partition FOR UPDATE;
  UPDATE bench_leases
     SET agent_id = p_agent, lease_epoch = lease_epoch + 1, lease_expires_at = now_ms + p_ttl_ms
   WHERE topic = p_topic AND partition_id = p_partition
     AND (lease_expires_at < now_ms OR agent_id = p_agent);
  RETURN FOUND;
END $$;

-- :rows partitions of topic 'bench' in both tables; partition i owned by agent-i.
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic IN ('bench', 'hot');
RESET session_replication_role;
TRUNCATE bench_leases;
SELECT ptm.ensure_partitions('bench', :rows);
SELECT count(*) FROM ptm.partition_leases l,
       LATERAL ptm.acquire_partition_lease('bench', l.partition_id, 'agent-' || l.partition_id, '1 h') a
 WHERE l.topic = 'bench';
INSERT INTO bench_leases SELECT topic, partition_id, agent_id, lease_epoch, lease_expires_at
  FROM ptm.partition_leases WHERE topic = 'bench';
SELECT ptm.ensure_partitions('hot', 2);
INSERT INTO bench_leases VALUES ('hot', 0, NULL, 0, 0), ('hot', 1, NULL, 0, 0);
VACUUM ANALYZE;
