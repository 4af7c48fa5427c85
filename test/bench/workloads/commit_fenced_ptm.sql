\set k random(0, :rows - 1)
\set a random(1, 2000000000)
SELECT result FROM ptm.try_commit('wf-' || :k,
       (SELECT version FROM ptm.workflow_state WHERE workflow_key = 'wf-' || :k), '{"a": 1}',
       action_id => 'act-' || :a, fence_topic => 'bench', fence_partition => :k,
       fence_epoch => :k + 1);
