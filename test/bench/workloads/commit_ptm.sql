\set k random(0, :rows - 1)
SELECT version FROM ptm.try_commit('wf-' || :k,
       (SELECT version FROM ptm.workflow_state WHERE workflow_key = 'wf-' || :k), '{"a": 1}');
