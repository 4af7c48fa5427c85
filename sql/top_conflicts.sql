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

-- Ranking (issue 18): split-brain suspects come first.  Ten topics where a
-- polling agent was refused 40 times each (harmless), and one where an old
-- owner kept acting after a takeover: 5 stale epochs (2 renewals, 3 fence
-- checks), 3 fence rejects and 1 forced expiry.  Ordered by lease_conflicts +
-- acquire_conflicts, as before, it came 11th of 11 and the runbook's LIMIT 10
-- dropped it.
SELECT count(*) AS owned
  FROM generate_series(1, 10) AS t,
       LATERAL acquire_partition_lease('kc-rank-poll-' || lpad(t::text, 2, '0'), 0, 'kc-owner') AS a
 WHERE a.result = 'acquired';
SELECT count(*) FILTER (WHERE result = 'conflict') AS refused_polls
  FROM (SELECT (acquire_partition_lease('kc-rank-poll-' || lpad(t::text, 2, '0'), 0, 'kc-poller')).result
          FROM generate_series(1, 10) AS t, generate_series(1, 40) AS i) AS polls;
SELECT lease_epoch AS old FROM acquire_partition_lease('kc-rank-split', 0, 'kc-old') \gset
SELECT result FROM force_expire('kc-rank-split', 0, 'kc-old stopped answering');
SELECT result FROM acquire_partition_lease('kc-rank-split', 0, 'kc-new');
SELECT result FROM renew_lease('kc-rank-split', 0, 'kc-old', :old);
SELECT result FROM renew_lease('kc-rank-split', 0, 'kc-old', :old);
\set VERBOSITY sqlstate
SELECT check_fence('kc-rank-split', 0, :old);
SELECT check_fence('kc-rank-split', 0, :old);
SELECT check_fence('kc-rank-split', 0, :old);
\set VERBOSITY default
SELECT topic, split_brain_signals, lease_conflicts, acquire_conflicts, renew_failures,
       fence_rejects, forced_expirations
  FROM top_topic_conflicts WHERE topic LIKE 'kc-rank-%';
-- The runbook's query (docs/runbooks/partition-lease-conflicts.md, Step 2),
-- among these topics: the suspect is first, whatever the polls add up to.
SELECT place, topic
  FROM (SELECT row_number() OVER () AS place, topic
          FROM (SELECT topic FROM top_topic_conflicts WHERE topic LIKE 'kc-rank-%' LIMIT 10) AS top) AS ranked
 WHERE topic = 'kc-rank-split';

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'kc-topic' OR topic LIKE 'kc-rank-%';
DELETE FROM ptm.lease_audit WHERE topic = 'kc-topic' OR topic LIKE 'kc-rank-%';
RESET session_replication_role;
DELETE FROM ptm.workflow_state WHERE workflow_key = 'kc-wf';
DELETE FROM ptm.action_dedup_log WHERE workflow_key = 'kc-wf';
