-- Agent identity (issue 9): by default an agent id is only a name, so any
-- role granted the agent functions can act on another agent's lease.  With
-- ptm_lease.agent_identity = 'role' an agent or worker id must be the calling
-- role or a role it is a member of, and a fenced write must come from the
-- owner's role: anything else is SQLSTATE 42501 and changes nothing.
\set VERBOSITY default
SELECT setval('ptm.lease_epoch_seq', 8000000) AS epoch_base;
CREATE ROLE ptm_id_a;
CREATE ROLE ptm_id_b;
CREATE ROLE ptm_id_svc;                      -- a shared identity ...
CREATE ROLE ptm_id_pod IN ROLE ptm_id_svc;   -- ... and a member of it
SELECT count(*) AS granted FROM (
  SELECT ptm.grant_agent('ptm_id_a') UNION ALL SELECT ptm.grant_agent('ptm_id_b')
  UNION ALL SELECT ptm.grant_agent('ptm_id_pod')) g;

-- 'any' (the default): b acts as a
SHOW ptm_lease.agent_identity;
SET ROLE ptm_id_a;
SELECT result, agent_id, lease_epoch FROM ptm.acquire_partition_lease('ident', 0, 'ptm_id_a');
SET ROLE ptm_id_b;
SELECT result, agent_id FROM ptm.release_lease('ident', 0, 'ptm_id_a', 8000001);
RESET ROLE;

-- 'role': only the superuser may choose it, and an agent cannot undo it
SET ptm_lease.agent_identity = 'role';
SET ROLE ptm_id_b;
SET ptm_lease.agent_identity = 'any';
RESET ptm_lease.agent_identity;
SHOW ptm_lease.agent_identity;
SET ptm_lease.agent_identity = 'nobody';
RESET ROLE;
SET ptm_lease.agent_identity = 'nobody';

-- the agent itself
SET ROLE ptm_id_a;
SELECT result, agent_id, lease_epoch FROM ptm.acquire_partition_lease('ident', 0, 'ptm_id_a');
SELECT result, lease_epoch FROM ptm.renew_lease('ident', 0, 'ptm_id_a', 8000002);
SELECT ptm.check_fence('ident', 0, 8000002);
SELECT result, version FROM ptm.try_commit('ident-wf', 0, '{"by": "a"}', NULL, 'ident', 0, 8000002);
SELECT result, watermark FROM ptm.apply_projection('ident-p', 0, 1, 'k', '{}', NULL, 'ident', 0, 8000002);

-- another agent naming it, or writing under its lease
SET ROLE ptm_id_b;
SELECT * FROM ptm.acquire_partition_lease('ident', 0, 'ptm_id_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.renew_lease('ident', 0, 'ptm_id_a', 8000002);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.release_lease('ident', 0, 'ptm_id_a', 8000002);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.acquire_partition_leases('ident', 'ptm_id_a', 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.renew_leases('ptm_id_a', ARRAY['ident'], ARRAY[0], ARRAY[8000002]::bigint[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ptm.check_fence('ident', 0, 8000002);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.try_commit('ident-wf', 1, '{"by": "b"}', NULL, 'ident', 0, 8000002);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.apply_projection('ident-p', 0, 2, 'k', '{"by": "b"}', NULL, 'ident', 0, 8000002);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.rebalance('ident', 'ptm_id_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ptm.leave_topic('ident', 'ptm_id_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- ids that are no role at all, or a longer name that a truncation would match
SELECT * FROM ptm.acquire_partition_lease('ident', 1, 'agent-1');
SELECT * FROM ptm.acquire_partition_lease('ident', 1, 'ptm_id_b' || repeat('x', 60));
-- as itself, b gets the ordinary answers
SELECT result, agent_id FROM ptm.acquire_partition_lease('ident', 0, 'ptm_id_b');
SELECT result FROM ptm.try_commit('ident-wf', 1, '{"by": "b"}', NULL, 'ident', 0, 8000001);
SELECT result FROM ptm.apply_projection('ident-p', 0, 2, 'k', '{"by": "b"}', NULL, 'ident', 0, 8000001);

-- a member of a shared identity role acts as it; others do not
SET ROLE ptm_id_pod;
SELECT result, agent_id FROM ptm.acquire_partition_lease('ident', 2, 'ptm_id_svc');
SELECT * FROM ptm.acquire_partition_lease('ident', 3, 'ptm_id_b');
SET ROLE ptm_id_b;
SELECT * FROM ptm.acquire_partition_lease('ident', 2, 'ptm_id_svc');

-- step claims: the worker id, and commits fenced by the claim
SET ROLE ptm_id_a;
SELECT result, worker_id, claim_epoch FROM ptm.claim_step('ident-wf', 1, 'ptm_id_a');
SET ROLE ptm_id_b;
SELECT * FROM ptm.claim_step('ident-wf', 1, 'ptm_id_a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.try_commit('ident-wf', 1, '{"by": "b"}', NULL, NULL, NULL, 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a claim epoch nobody was given (the next one a guess would name)
SELECT * FROM ptm.try_commit('ident-wf', 1, '{"by": "b"}', NULL, NULL, NULL, 2);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET ROLE ptm_id_a;
SELECT result, version FROM ptm.try_commit('ident-wf', 1, '{"by": "a"}', NULL, NULL, NULL, 1);
-- b claims the next step as itself; a stale claim epoch is the ordinary fencing_reject
SET ROLE ptm_id_b;
SELECT result, worker_id, claim_epoch FROM ptm.claim_step('ident-wf', 2, 'ptm_id_b');
SELECT result, version FROM ptm.try_commit('ident-wf', 2, '{"by": "b"}', NULL, NULL, NULL, 1);
SELECT result, version FROM ptm.try_commit('ident-wf', 2, '{"by": "b"}', NULL, NULL, NULL, 2);
RESET ROLE;

-- nothing the refused calls tried happened
SELECT topic, partition_id, agent_id, lease_epoch, state FROM ptm.partition_leases
 WHERE topic = 'ident' ORDER BY partition_id;
SELECT version, state, claim_worker, claim_epoch FROM ptm.workflow_state WHERE workflow_key = 'ident-wf';
SELECT "offset" FROM ptm.projection_watermarks WHERE projection = 'ident-p';
SELECT key, data FROM ptm.workflow_projection WHERE projection = 'ident-p';

-- the owner (a superuser is a member of every role) acts as anyone
SELECT result, agent_id FROM ptm.renew_lease('ident', 0, 'ptm_id_a', 8000002);
RESET ptm_lease.agent_identity;

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'ident';
RESET session_replication_role;
DELETE FROM ptm.workflow_state WHERE workflow_key = 'ident-wf';
DELETE FROM ptm.workflow_projection WHERE projection = 'ident-p';
DELETE FROM ptm.projection_watermarks WHERE projection = 'ident-p';
DROP OWNED BY ptm_id_a, ptm_id_b, ptm_id_pod;
DROP ROLE ptm_id_a, ptm_id_b, ptm_id_svc, ptm_id_pod;
