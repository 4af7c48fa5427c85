-- Seed 003 (Pure Reducer runbook): its SQL on workflow_state and
-- action_dedup_log runs verbatim with ptm on the search_path.
SET search_path = "$user", public, ptm;
SELECT result FROM ptm.try_commit('wf-seed-1', 0, '{"a": 1}', action_id => 'x1');
SELECT result FROM ptm.try_commit('wf-seed-1', 1, '{"a": 2}', action_id => 'x2');
SELECT result FROM ptm.try_commit('wf-seed-2', 0, '{"b": 1}', action_id => 'y1');

-- "Add indexes if missing": the primary key already is that index, so this
-- skips with a notice instead of adding a second index to maintain.
CREATE INDEX IF NOT EXISTS idx_workflow_state_workflow_key ON workflow_state(workflow_key);
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'ptm.workflow_state'::regclass;

-- "Check workflow state versions" (verbatim; then its rows, without the clock)
SELECT workflow_key, version, updated_at FROM workflow_state ORDER BY updated_at DESC LIMIT 10 \g /dev/null
\echo :ROW_COUNT rows
SELECT workflow_key, version, updated_at IS NOT NULL AS has_updated_at FROM (
SELECT workflow_key, version, updated_at FROM workflow_state ORDER BY updated_at DESC LIMIT 10
) AS runbook ORDER BY workflow_key;

-- "Check action dedup log" (verbatim; then sorted)
SELECT workflow_key, count(*) FROM action_dedup_log GROUP BY workflow_key \g /dev/null
\echo :ROW_COUNT rows
SELECT * FROM (
SELECT workflow_key, count(*) FROM action_dedup_log GROUP BY workflow_key
) AS runbook ORDER BY workflow_key;

-- pg_dump keeps the rows of both tables.
SELECT c.relname, array_length(e.extconfig, 1) > 0 AS dumped
  FROM pg_extension e, unnest(e.extconfig) AS t(oid)
  JOIN pg_class c ON c.oid = t.oid
 WHERE e.extname = 'ptm_lease' AND c.relname IN ('workflow_state', 'action_dedup_log')
 ORDER BY c.relname;

DELETE FROM ptm.action_dedup_log;
DELETE FROM ptm.workflow_state;
