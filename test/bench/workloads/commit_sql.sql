\set k random(0, :rows - 1)
UPDATE bench_state SET version = version + 1, state = '{"a": 1}', updated_at = now()
 WHERE workflow_key = 'wf-' || :k
   AND version = (SELECT version FROM bench_state WHERE workflow_key = 'wf-' || :k)
RETURNING version;
