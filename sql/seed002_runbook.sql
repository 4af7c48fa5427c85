-- Every SQL statement of the "Partition Lease Conflicts" runbook (seed 002),
-- verbatim, with ptm on the search_path as the README tells a DBA to set it.
SET search_path = "$user", public, ptm;
SELECT setval('ptm.lease_epoch_seq', 5000000) AS epoch_base;
SET session_replication_role = replica;  -- start from an empty lease table (test only)
DELETE FROM ptm.partition_leases;
RESET session_replication_role;
SELECT result, lease_epoch FROM acquire_partition_lease('orders', 0, 'agent-abc');

-- Step 1: Identify Conflicting Agents (expires_at depends on the clock: not shown)
\o /dev/null
SELECT
  topic,
  partition_id,
  agent_id,
  lease_epoch,
  to_timestamp(lease_expires_at / 1000) AS expires_at,
  CASE
    WHEN lease_expires_at > EXTRACT(EPOCH FROM NOW()) * 1000 THEN 'ACTIVE'
    ELSE 'EXPIRED'
  END AS status
FROM partition_leases
WHERE topic = 'orders' AND partition_id = 0;
\o
SELECT
  topic,
  partition_id,
  agent_id,
  lease_epoch,
  CASE
    WHEN lease_expires_at > EXTRACT(EPOCH FROM NOW()) * 1000 THEN 'ACTIVE'
    ELSE 'EXPIRED'
  END AS status
FROM partition_leases
WHERE topic = 'orders' AND partition_id = 0;

-- Step 5: Check Database Health
SELECT count(*) FROM pg_stat_activity WHERE datname = 'streamhouse';
\o /dev/null
SELECT pid, now() - query_start AS duration, query
FROM pg_stat_activity
WHERE state != 'idle'
ORDER BY duration DESC
LIMIT 10;
\o
BEGIN;
SELECT check_fence('orders', 0, 5000001);
SELECT locktype, mode, granted FROM (
SELECT * FROM pg_locks
WHERE relation = 'partition_leases'::regclass
) l ORDER BY mode;
COMMIT;

-- Option 1: Force Lease Reset.  The runbook's UPDATE is refused and points at
-- force_expire(), which fences the old owner and writes the audit row.
UPDATE partition_leases
SET lease_expires_at = 0  -- Force expiration
WHERE topic = 'orders' AND partition_id = 0;
SELECT result, agent_id, lease_epoch FROM force_expire('orders', 0, 'agent-abc confirmed dead');
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders', 0, 'agent-xyz');
-- 4. Check which agent acquired the lease
SELECT agent_id, lease_epoch, lease_expires_at > 0 AS has_expiry FROM (
SELECT agent_id, lease_epoch, lease_expires_at
FROM partition_leases
WHERE topic = 'orders' AND partition_id = 0
) s;

-- Option 5: Verify all partitions owned by single agent
SELECT DISTINCT agent_id FROM partition_leases;

-- Verification 1: Check Lease Ownership is Stable
SELECT topic, partition_id, agent_id, lease_epoch
FROM partition_leases
ORDER BY topic, partition_id;

-- Option 6: connection usage
SELECT count(*), state
FROM pg_stat_activity
WHERE datname = 'streamhouse'
GROUP BY state;
