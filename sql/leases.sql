-- Partition leases: every result value of every lease function.
SET search_path = public, ptm;
SELECT ptm.reset_counters() IS NOT NULL AS reset;

-- Epochs come from one sequence shared by all leases; move it forward to a
-- known value so that this file's epochs do not depend on other tests.
SELECT setval('ptm.lease_epoch_seq', 1000000) AS epoch_base;

-- acquired: a new lease, epoch raised
SELECT result, topic, partition_id, agent_id, lease_epoch AS epoch,
       expires_at > clock_timestamp() AS live
  FROM acquire_partition_lease('orders', 0, 'agent-abc', '30 s');

-- held: the owner asks again (safe retry after an ambiguous commit): same epoch
SELECT result, agent_id, lease_epoch AS epoch FROM acquire_partition_lease('orders', 0, 'agent-abc');

-- conflict: another agent, the lease is live; the row names the owner
SELECT result, agent_id, lease_epoch AS epoch FROM acquire_partition_lease('orders', 0, 'agent-xyz');

-- renewed: never changes the epoch
SELECT result, agent_id, lease_epoch AS epoch FROM renew_lease('orders', 0, 'agent-abc', 1000001, '1 min');
-- a renew (or held acquire) never moves the expiry earlier: an expiry once
-- reported to the owner still holds, even when two of its calls cross
SELECT result, expires_at > clock_timestamp() + interval '50 s' AS still_a_minute
  FROM renew_lease('orders', 0, 'agent-abc', 1000001, '1 s');
SELECT result, expires_at > clock_timestamp() + interval '50 s' AS still_a_minute
  FROM acquire_partition_lease('orders', 0, 'agent-abc', '1 s');
-- stale_epoch: an older epoch
SELECT result, agent_id, lease_epoch AS epoch FROM renew_lease('orders', 0, 'agent-abc', 1000000);
-- not_owner: right epoch, wrong agent
SELECT result, agent_id, lease_epoch AS epoch FROM renew_lease('orders', 0, 'agent-xyz', 1000001);
-- not_owner: no such lease
SELECT result, agent_id, lease_epoch FROM renew_lease('orders', 99, 'agent-abc', 1);

-- The runbook's Step 1 query works verbatim.
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

-- expired: the TTL passed, even though nobody took over (the runbook's EXPIRED state)
SELECT result, lease_epoch AS epoch FROM acquire_partition_lease('orders', 1, 'agent-abc', '10 ms');
SELECT pg_sleep(0.05);
SELECT result, agent_id, lease_epoch AS epoch
  FROM renew_lease('orders', 1, 'agent-abc', 1000002);
SELECT result FROM release_lease('orders', 1, 'agent-abc', 1000002);
SELECT status FROM lease_status WHERE topic = 'orders' AND partition_id = 1;
-- taking an expired lease raises the epoch
SELECT result, agent_id, lease_epoch AS epoch FROM acquire_partition_lease('orders', 1, 'agent-xyz');

-- released: frees at once, keeps the epoch; the next owner gets a higher one
SELECT result, agent_id, lease_epoch AS epoch FROM release_lease('orders', 1, 'agent-xyz', 1000003);
SELECT result FROM release_lease('orders', 1, 'agent-xyz', 1000003);
SELECT result FROM renew_lease('orders', 1, 'agent-xyz', 1000003);
SELECT status, previous_agent_id FROM lease_status WHERE topic = 'orders' AND partition_id = 1;
SELECT result, agent_id, lease_epoch AS epoch FROM acquire_partition_lease('orders', 1, 'agent-abc');
-- stale_epoch on release too
SELECT result FROM release_lease('orders', 1, 'agent-xyz', 1000003);

-- forced: ends the lease now, raises the epoch (old owner fenced), audited
SELECT result, agent_id, lease_epoch AS epoch, expires_at <= clock_timestamp() AS ended
  FROM force_expire('orders', 0, 'agent-abc is dead (INC-42)');
SELECT action, topic, partition_id, previous_agent_id, previous_epoch AS prev, new_epoch AS new,
       reason, session_user_name = session_user AS who, current_user_name = current_user AS as_whom
  FROM ptm.lease_audit ORDER BY audit_id;
-- the old owner is fenced: renew says stale_epoch
SELECT result FROM renew_lease('orders', 0, 'agent-abc', 1000001);
-- no_lease: nothing to force
SELECT result, agent_id, lease_epoch AS epoch FROM force_expire('orders', 0);
SELECT result, agent_id, lease_epoch FROM force_expire('orders', 42);
-- re-acquiring after a forced expiry raises the epoch again
SELECT result, agent_id, lease_epoch AS epoch FROM acquire_partition_lease('orders', 0, 'agent-xyz');

-- check_fence: silent when current and live
SELECT check_fence('orders', 0, 1000006);
-- stale epoch: the documented SQLSTATE PTM01, a message naming both epochs,
-- a detail naming the current owner
SELECT check_fence('orders', 0, 1000001);
\set VERBOSITY sqlstate
SELECT check_fence('orders', 0, 1000001);
\set VERBOSITY default
SELECT check_fence('orders', 0, 1000100);
SELECT check_fence('orders', 7, 1);
-- released lease at its own epoch
SELECT result FROM release_lease('orders', 0, 'agent-xyz', 1000006);
\set VERBOSITY terse
SELECT check_fence('orders', 0, 1000006);
\set VERBOSITY default
-- expired lease at its own epoch
SELECT result FROM acquire_partition_lease('orders', 2, 'agent-abc', '10 ms');
SELECT pg_sleep(0.05);
\set VERBOSITY terse
SELECT check_fence('orders', 2, 1000007);
\set VERBOSITY default

-- Counters after the workload above (exact).
SELECT metric, labels, value FROM ptm.metrics
 WHERE metric LIKE 'lease%' AND value > 0 ORDER BY metric, labels::text;

SELECT * FROM lease_status WHERE false;

-- Test cleanup only: session_replication_role = replica skips the DML guard
-- (the escape hatch pg_restore --disable-triggers uses too).
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases;
RESET session_replication_role;
