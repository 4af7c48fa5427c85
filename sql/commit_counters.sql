-- The counters a known workload leaves behind (read right after a reset, in
-- this file, because pg_regress tests share the server).
SET search_path = public, ptm;
SELECT ptm.reset_counters() IS NOT NULL AS reset;

-- 3 ok (one with an action id), 2 cas_conflict, 1 duplicate
SELECT result FROM ptm.try_commit('wf-c', 0, '{}');
SELECT result FROM ptm.try_commit('wf-c', 1, '{}');
SELECT result FROM ptm.try_commit('wf-c', 2, '{}', action_id => 'a1');
SELECT result FROM ptm.try_commit('wf-c', 2, '{}', action_id => 'a1');
SELECT result FROM ptm.try_commit('wf-c', 1, '{}');
SELECT result FROM ptm.try_commit('wf-c', 0, '{}', action_id => 'a2');
-- 2 fencing_reject: one by claim, one by lease
SELECT result FROM ptm.try_commit('wf-c', 3, '{}', fence_epoch => 99);
SELECT result FROM ptm.try_commit('wf-c', 3, '{}',
    fence_topic => 'no-such-topic', fence_partition => 0, fence_epoch => 1);
-- claims: 1 claimed, 1 busy, 1 stale, 2 out_of_order
SELECT result FROM ptm.claim_step('wf-c', 3, 'w1');
SELECT result FROM ptm.claim_step('wf-c', 3, 'w2');
SELECT result FROM ptm.claim_step('wf-c', 2, 'w2');
SELECT result FROM ptm.claim_step('wf-c', 4, 'w2');
SELECT result FROM ptm.claim_step('wf-none', 1, 'w2');
-- errors count nothing
SELECT result FROM ptm.try_commit('wf-c', -1, '{}');

SELECT metric, labels, value FROM ptm.metrics
 WHERE metric IN ('ptm_commit_total', 'ptm_claim_total',
                  'canonical_store_state_commits_total', 'canonical_store_state_conflicts_total',
                  'action_dedup_checks_total', 'action_dedup_hits_total',
                  'action_dedup_records_total')
 ORDER BY metric, labels::text;

-- The runbook's ratios, from these counters.
SELECT sum(value) FILTER (WHERE metric = 'action_dedup_hits_total')
     / sum(value) FILTER (WHERE metric = 'action_dedup_checks_total') AS dedup_hit_rate,
       sum(value) FILTER (WHERE metric = 'canonical_store_state_conflicts_total')
     / sum(value) FILTER (WHERE metric IN ('canonical_store_state_commits_total',
                                           'canonical_store_state_conflicts_total')) AS conflict_rate
  FROM ptm.metrics;

DELETE FROM ptm.action_dedup_log;
DELETE FROM ptm.workflow_state;
