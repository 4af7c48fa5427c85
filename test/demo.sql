-- The demo scenario, run by test/demo against database ptm_demo
-- (search_path already includes ptm).  Two statements fail on purpose (steps 5
-- and 6): each is announced by a line "expected: ERROR ...", and nothing after
-- it depends on it.
\pset footer off
\set QUIET 1
\set ON_ERROR_STOP 1
\echo
\echo '== 1. Is the extension healthy? Every check and what it found; then the worker of this database'
-- The launcher starts a worker for each database with the extension: give it
-- up to 10 s to report on this one, created a moment ago.
DO $$
BEGIN
    FOR i IN 1..20 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM health()
                               WHERE "check" = 'worker' AND (status <> 'ok' OR value = 'starting'));
        PERFORM pg_sleep(0.5);
    END LOOP;
END $$;
SELECT "check", status, value FROM health();
\x on
\pset tuples_only on
SELECT "check", status, value, detail FROM health() WHERE "check" = 'worker';
\pset tuples_only off
\x off

\echo '== 2. Two agents race for partition orders-0: one acquires, the other learns who owns it'
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders', 0, 'agent-abc', '30 s');
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders', 0, 'agent-xyz', '30 s');

\echo '== 3. agent-abc writes under its lease: check_fence in the same transaction'
CREATE TABLE orders_log (partition_id int, epoch bigint, payload text);
BEGIN;
SELECT check_fence('orders', 0, (SELECT lease_epoch FROM partition_leases WHERE topic = 'orders' AND partition_id = 0));
INSERT INTO orders_log SELECT 0, lease_epoch, 'order #1 by agent-abc' FROM partition_leases WHERE topic = 'orders' AND partition_id = 0;
COMMIT;

\echo '== 4. agent-abc hangs; the operator forces the lease to expire (fenced and audited)'
SELECT lease_epoch AS abc_epoch FROM partition_leases WHERE topic = 'orders' AND partition_id = 0 \gset
SELECT result, agent_id, lease_epoch FROM force_expire('orders', 0, 'agent-abc stopped answering (demo)');
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders', 0, 'agent-xyz', '30 s');

\echo '== 5. agent-abc wakes up and tries to write with its old epoch: its fence check fails'
\echo '   expected: ERROR stale epoch rejected (SQLSTATE PTM01), and agent-abc rolls back instead of writing'
\set ON_ERROR_STOP 0
BEGIN;
SELECT check_fence('orders', 0, :abc_epoch);
\if :ERROR
\echo '   refused as intended, SQLSTATE' :SQLSTATE ': agent-abc rolls back; its INSERT never runs'
ROLLBACK;
\else
INSERT INTO orders_log VALUES (0, :abc_epoch, 'stale write by agent-abc');
COMMIT;
\endif
\set ON_ERROR_STOP 1

\echo '== 6. The old runbook''s hand-written UPDATE is refused with a hint'
\echo '   expected: ERROR direct UPDATE of ptm.partition_leases is not allowed (SQLSTATE 42501)'
\set ON_ERROR_STOP 0
UPDATE partition_leases SET lease_expires_at = 0 WHERE topic = 'orders' AND partition_id = 0;
\set ON_ERROR_STOP 1
\echo '   refused as intended, SQLSTATE' :SQLSTATE

\echo '== 7. What a DBA sees: the lease, the audit trail, the one write that committed, the counters'
SELECT topic, partition_id, agent_id, lease_epoch, status, previous_agent_id FROM lease_status;
SELECT action, topic, partition_id, previous_agent_id, previous_epoch, new_epoch, reason FROM lease_audit;
SELECT * FROM orders_log;
-- Histogram buckets left out (ptm.histograms has them, in order).
SELECT metric, labels, value FROM metrics
 WHERE value > 0 AND metric NOT LIKE '%\_bucket' ORDER BY metric, labels::text;
