-- try_commit and get_state: every result, and what each returns.
SET search_path = public, ptm;

-- A workflow that does not exist reads as version 0, which creates it.
SELECT * FROM ptm.get_state('wf-1');
SELECT * FROM ptm.try_commit('wf-1', 0, '{"step": "created"}');
SELECT version, state, updated_at IS NOT NULL AS has_updated_at FROM ptm.get_state('wf-1');

-- ok: the version moves by one.
SELECT * FROM ptm.try_commit('wf-1', 1, '{"step": "a"}');
SELECT * FROM ptm.try_commit('wf-1', 2, '{"step": "b"}');

-- cas_conflict: the current version and state come back, nothing changes.
SELECT * FROM ptm.try_commit('wf-1', 1, '{"step": "late"}');
SELECT * FROM ptm.try_commit('wf-1', 7, '{"step": "ahead"}');
SELECT * FROM ptm.try_commit('wf-1', 0, '{"step": "again"}');
SELECT version, state FROM ptm.get_state('wf-1');

-- cas_conflict on a workflow that does not exist: version 0, state NULL.
SELECT * FROM ptm.try_commit('wf-missing', 3, '{}');
SELECT count(*) FROM ptm.workflow_state WHERE workflow_key = 'wf-missing';

-- The reducer loop needs no second read: retry with what cas_conflict returned.
SELECT (c).result, (c).version
  FROM (SELECT ptm.try_commit('wf-1', v.version, '{"step": "c"}') AS c
          FROM ptm.try_commit('wf-1', 1, '{"step": "stale"}') AS v) AS retry;

-- duplicate: an action id applies once; a repeat returns the version it produced.
SELECT * FROM ptm.try_commit('wf-2', 0, '{"n": 0}', action_id => 'act-create');
SELECT * FROM ptm.try_commit('wf-2', 1, '{"n": 1}', action_id => 'act-1');
SELECT * FROM ptm.try_commit('wf-2', 1, '{"n": 1}', action_id => 'act-1');
-- ... even with another expected version, and with the state only while current.
SELECT * FROM ptm.try_commit('wf-2', 2, '{"n": 2}', action_id => 'act-2');
SELECT * FROM ptm.try_commit('wf-2', 2, '{"n": 99}', action_id => 'act-1');
SELECT * FROM ptm.try_commit('wf-2', 0, '{"n": 0}', action_id => 'act-create');
SELECT version, state FROM ptm.get_state('wf-2');
-- Action ids are per workflow.
SELECT * FROM ptm.try_commit('wf-1', 4, '{"step": "d"}', action_id => 'act-1');

-- A refused commit does not remember its action: the retry applies.
SELECT * FROM ptm.try_commit('wf-2', 1, '{"n": 3}', action_id => 'act-3');
SELECT * FROM ptm.try_commit('wf-2', 3, '{"n": 3}', action_id => 'act-3');
SELECT workflow_key, action_id, result_version,
       expires_at - created_at = interval '1 day' AS one_day
  FROM ptm.action_dedup_log ORDER BY workflow_key, action_id;

-- An expired action id is forgotten: the action applies again.
UPDATE ptm.action_dedup_log SET expires_at = now() - interval '1 s'
 WHERE workflow_key = 'wf-2' AND action_id = 'act-1';
SELECT * FROM ptm.try_commit('wf-2', 4, '{"n": 4}', action_id => 'act-1');
SELECT result_version FROM ptm.action_dedup_log
 WHERE workflow_key = 'wf-2' AND action_id = 'act-1';

-- ptm_lease.dedup_ttl sets the expiry of new entries.
SET ptm_lease.dedup_ttl = '10min';
SELECT * FROM ptm.try_commit('wf-2', 5, '{"n": 5}', action_id => 'act-5');
SELECT expires_at - created_at AS ttl FROM ptm.action_dedup_log
 WHERE workflow_key = 'wf-2' AND action_id = 'act-5';
RESET ptm_lease.dedup_ttl;

-- Everything in one transaction rolls back together, the action id included.
BEGIN;
SELECT * FROM ptm.try_commit('wf-2', 6, '{"n": 6}', action_id => 'act-6');
ROLLBACK;
SELECT version FROM ptm.get_state('wf-2');
SELECT count(*) FROM ptm.action_dedup_log WHERE action_id = 'act-6';

-- A JSON null is a state like any other; states are stored as given.
SELECT * FROM ptm.try_commit('wf-3', 0, 'null');
SELECT * FROM ptm.try_commit('wf-3', 1, '[1, {"a": [true, null]}, "x"]');

-- The last version: a clean error, the row stays as it was.
UPDATE ptm.workflow_state SET version = 9223372036854775806 WHERE workflow_key = 'wf-3';
SELECT * FROM ptm.try_commit('wf-3', 9223372036854775806, '{"last": true}');
SELECT * FROM ptm.try_commit('wf-3', 9223372036854775807, '{"past": true}');
SELECT version, state FROM ptm.get_state('wf-3');

-- One call per row of a set-based statement, each deciding on its own.
SELECT k, (ptm.try_commit(k, 0, jsonb_build_object('k', k))).result
  FROM (VALUES ('wf-a'), ('wf-b'), ('wf-a')) AS t(k);

DELETE FROM ptm.action_dedup_log;
DELETE FROM ptm.workflow_state;
