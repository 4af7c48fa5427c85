-- Per-key statistics after a known workload: every outcome that went wrong
-- is counted per workflow key and per topic, successes only overall.
-- Keys of their own (kc-*), so other tests' counts do not show here.
SET search_path = ptm, public;

-- A workflow: ok (not counted per key), cas_conflict, duplicate, fencing_reject
SELECT result FROM try_commit('kc-wf', 0, '{"n": 1}');
SELECT result FROM try_commit('kc-wf', 0, '{"n": 1}');
SELECT result FROM try_commit('kc-wf', 1, '{"n": 2}', 'kc-a1');
SELECT result FROM try_commit('kc-wf', 1, '{"n": 2}', 'kc-a1');
SELECT result FROM try_commit('kc-wf', 2, '{"n": 3}', NULL, 'kc-topic', 0, 1);
-- claims: stale, out_of_order, claimed (not counted per key), busy
SELECT result FROM claim_step('kc-wf', 1, 'kc-w1');
SELECT result FROM claim_step('kc-wf', 5, 'kc-w1');
SELECT result FROM claim_step('kc-wf', 2, 'kc-w1');
SELECT result FROM claim_step('kc-wf', 2, 'kc-w2');

SELECT * FROM top_workflow_conflicts WHERE workflow_key = 'kc-wf';
SELECT metric, labels->>'result' AS result, value FROM key_counters
 WHERE family = 'workflow' AND key = 'kc-wf' ORDER BY metric, result;

-- A topic: acquired (not per key), conflict, a failed renewal, a rejected
-- fence, a forced expiry, then the old owner's stale epoch twice
SELECT lease_epoch AS e FROM acquire_partition_lease('kc-topic', 0, 'kc-agent-a') \gset
SELECT result FROM acquire_partition_lease('kc-topic', 0, 'kc-agent-b');
SELECT result FROM renew_lease('kc-topic', 0, 'kc-agent-b', :e);
SELECT result FROM force_expire('kc-topic', 0, 'top_conflicts test');
SELECT result FROM renew_lease('kc-topic', 0, 'kc-agent-a', :e);
\set VERBOSITY sqlstate
SELECT check_fence('kc-topic', 0, :e);
\set VERBOSITY default

SELECT * FROM top_topic_conflicts WHERE topic = 'kc-topic';
SELECT metric, labels->>'result' AS result, value FROM key_counters
 WHERE family = 'topic' AND key = 'kc-topic' ORDER BY metric, result;

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'kc-topic';
DELETE FROM ptm.lease_audit WHERE topic = 'kc-topic';
RESET session_replication_role;
DELETE FROM ptm.workflow_state WHERE workflow_key = 'kc-wf';
DELETE FROM ptm.action_dedup_log WHERE workflow_key = 'kc-wf';
