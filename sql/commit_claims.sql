-- claim_step and commits fenced by the claim (PTM task chains, seed 000).
SET search_path = public, ptm;

-- A workflow that does not exist has no step to claim yet.
SELECT result, workflow_key, step, worker_id, claim_epoch, expires_at
  FROM ptm.claim_step('task-1', 1, 'w1');
SELECT * FROM ptm.try_commit('task-1', 0, '{"done": []}');

-- claimed: the next step is the current version (1 after creation).
SELECT result, workflow_key, step, worker_id, claim_epoch,
       expires_at > now() AND expires_at <= now() + interval '31 s' AS expires_in_30s
  FROM ptm.claim_step('task-1', 1, 'w1');
-- The holder claims again (a redelivered message): same epoch, expiry extended.
SELECT result, worker_id, claim_epoch,
       expires_at > now() + interval '50 s' AS extended
  FROM ptm.claim_step('task-1', 1, 'w1', '1 min');

-- busy: another worker, while the claim is live; the holder is shown.
SELECT result, step, worker_id, claim_epoch FROM ptm.claim_step('task-1', 1, 'w2');
-- out_of_order: ahead of the next step.  stale: already committed.
SELECT result, step, worker_id, claim_epoch FROM ptm.claim_step('task-1', 2, 'w2');
SELECT result, step, worker_id, claim_epoch FROM ptm.claim_step('task-1', 0, 'w2');

-- A commit fenced by the claim: fence_epoch without fence_topic.
SELECT * FROM ptm.try_commit('task-1', 1, '{"done": [1]}', fence_epoch => 1);
-- ... ends the claim: the next step is free, with a new epoch.
SELECT claim_worker, claim_step, claim_epoch, claim_expires_at
  FROM ptm.workflow_state WHERE workflow_key = 'task-1';
SELECT result, step, worker_id, claim_epoch FROM ptm.claim_step('task-1', 1, 'w2');
SELECT result, step, worker_id, claim_epoch FROM ptm.claim_step('task-1', 2, 'w2');
-- The old epoch no longer fences anything: fencing_reject, even at the right version.
SELECT * FROM ptm.try_commit('task-1', 2, '{"done": [1, "w1"]}', fence_epoch => 1);
-- A wrong version under the right claim is a cas_conflict, and keeps the claim.
SELECT * FROM ptm.try_commit('task-1', 1, '{"done": [1, "w2"]}', fence_epoch => 2);
SELECT * FROM ptm.try_commit('task-1', 2, '{"done": [1, 2]}', fence_epoch => 2);

-- Claim expiry, then a re-claim by another worker: the old worker is fenced.
SELECT result, worker_id, claim_epoch FROM ptm.claim_step('task-1', 3, 'w1', '20 ms');
SELECT pg_sleep(0.05);
-- Expired but not re-claimed: the claim no longer fences a write either.
SELECT * FROM ptm.try_commit('task-1', 3, '{"done": [1, 2, 3]}', fence_epoch => 3);
SELECT result, worker_id, claim_epoch FROM ptm.claim_step('task-1', 3, 'w2');
SELECT * FROM ptm.try_commit('task-1', 3, '{"done": [1, 2, "w1"]}', fence_epoch => 3);
-- The old worker's claim is gone: it cannot take the step back while w2 holds it.
SELECT result, worker_id, claim_epoch FROM ptm.claim_step('task-1', 3, 'w1');
SELECT * FROM ptm.try_commit('task-1', 3, '{"done": [1, 2, 3]}', fence_epoch => 4);

-- An expired claim re-claimed by the same worker gets a new epoch as well.
SELECT result, worker_id, claim_epoch FROM ptm.claim_step('task-1', 4, 'w1', '20 ms');
SELECT pg_sleep(0.05);
SELECT result, worker_id, claim_epoch FROM ptm.claim_step('task-1', 4, 'w1');

-- An unfenced commit moves the version: the claim on the old step is void,
-- its holder sees a cas_conflict, and the next step is free for anyone.
SELECT * FROM ptm.try_commit('task-1', 4, '{"done": "by hand"}');
SELECT * FROM ptm.try_commit('task-1', 4, '{"done": [1, 2, 3, 4]}', fence_epoch => 6);
SELECT result, step, worker_id, claim_epoch FROM ptm.claim_step('task-1', 5, 'w2');

-- A claim fence on a workflow that does not exist is a fencing_reject.
SELECT * FROM ptm.try_commit('task-none', 0, '{}', fence_epoch => 1);
SELECT * FROM ptm.try_commit('task-none', 3, '{}', fence_epoch => 1);

-- The claim fence and the action id together.
SELECT * FROM ptm.try_commit('task-1', 5, '{"n": 5}', action_id => 'msg-5', fence_epoch => 7);
SELECT * FROM ptm.try_commit('task-1', 5, '{"n": 5}', action_id => 'msg-5', fence_epoch => 7);
SELECT * FROM ptm.try_commit('task-1', 6, '{"n": 6}', action_id => 'msg-6', fence_epoch => 7);
SELECT count(*) FROM ptm.action_dedup_log WHERE action_id = 'msg-6';

-- Epochs only went up.
SELECT version, claim_epoch FROM ptm.workflow_state WHERE workflow_key = 'task-1';

DELETE FROM ptm.action_dedup_log;
DELETE FROM ptm.workflow_state;
