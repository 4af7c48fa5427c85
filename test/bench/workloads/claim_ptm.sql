\set k random(0, :rows - 1)
SELECT result FROM ptm.claim_step('wf-' || :k,
       (SELECT version FROM ptm.workflow_state WHERE workflow_key = 'wf-' || :k),
       'w-' || :client_id, '1 ms');
