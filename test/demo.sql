-- The demo scenario, run by test/demo against database ptm_demo
-- (search_path already includes ptm).
\pset footer off
\set QUIET 1
\set ON_ERROR_STOP 1
\echo
\echo '== 1. Is the extension healthy?'
SELECT "check", status, value FROM health();

\echo '== 2. Two agents race for partition orders-0: one acquires, the other learns who owns it'
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders', 0, 'agent-abc', '30 s');
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders', 0, 'agent-xyz', '30 s');

\echo '== 3. agent-abc writes under its lease: check_fence in the same transaction'
CREATE TABLE orders_log (partition_id int, epoch bigint, payload text);
\set QUIET 1
BEGIN;
SELECT check_fence('orders', 0, (SELECT lease_epoch FROM partition_leases WHERE topic = 'orders' AND partition_id = 0));
INSERT INTO orders_log SELECT 0, lease_epoch, 'order #1 by agent-abc' FROM partition_leases WHERE topic = 'orders' AND partition_id = 0;
COMMIT;

\echo '== 4. agent-abc hangs; the operator forces the lease to expire (fenced and audited)'
SELECT lease_epoch AS abc_epoch FROM partition_leases WHERE topic = 'orders' AND partition_id = 0 \gset
SELECT result, agent_id, lease_epoch FROM force_expire('orders', 0, 'agent-abc stopped answering (demo)');
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders', 0, 'agent-xyz', '30 s');

\echo '== 5. agent-abc wakes up and tries to write with its old epoch: rejected (SQLSTATE PTM01)'
\set ON_ERROR_STOP 0
\set VERBOSITY default
BEGIN;
SELECT check_fence('orders', 0, :abc_epoch);
INSERT INTO orders_log VALUES (0, :abc_epoch, 'stale write by agent-abc');
ROLLBACK;
\set ON_ERROR_STOP 1

\echo '== 6. The old runbook''s hand-written UPDATE is refused with a hint'
\set ON_ERROR_STOP 0
UPDATE partition_leases SET lease_expires_at = 0 WHERE topic = 'orders' AND partition_id = 0;
\set ON_ERROR_STOP 1

\echo '== 7. What a DBA sees'
SELECT topic, partition_id, agent_id, lease_epoch, status, previous_agent_id FROM lease_status;
SELECT action, topic, partition_id, previous_agent_id, previous_epoch, new_epoch, reason FROM lease_audit;
SELECT * FROM orders_log;
SELECT metric, labels, value FROM metrics WHERE value > 0 ORDER BY metric, labels::text;
