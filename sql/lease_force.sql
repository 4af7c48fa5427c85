-- force_expire with the owner it means (issue 16): agent_id and lease_epoch
-- name the lease the operator wants to end; if it moved on the answer is a
-- value (not_owner, stale_epoch, no_lease) and nothing changes.  Bad input is
-- an ERROR like the other lease functions' (22004, 22023).  The new settings'
-- bounds, and who may call advance_epoch_era().
SET search_path = public, ptm;
\set VERBOSITY default
SELECT setval('ptm.lease_epoch_seq', 6000000) AS epoch_base;
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('force-owner', 0, 'agent-a', '1 h');

-- Bad input: nothing changes.
SELECT * FROM force_expire('force-owner', 0, 'why', lease_epoch => 0);
SELECT * FROM force_expire('force-owner', 0, 'why', lease_epoch => -1);
SELECT * FROM force_expire('force-owner', 0, 'why', agent_id => 'agent-a', lease_epoch => -9223372036854775808);
SELECT * FROM force_expire('force-owner', 0, 'why', agent_id => '');
SELECT * FROM force_expire('force-owner', 0, 'why', agent_id => repeat('é', 200));
SELECT * FROM force_expire('force-owner', 0, 'why', agent_id => repeat('x', 257), end_holder => true);
SELECT * FROM force_expire('', 0, 'why', agent_id => 'agent-a');

-- The lease moved on: the answers name it as it stands, nothing changes.
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 0, 'wrong owner', agent_id => 'agent-b');
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 0, 'wrong epoch', agent_id => 'agent-a', lease_epoch => 6000002);
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 0, 'wrong epoch', lease_epoch => 5999999);
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 1, 'no lease here', agent_id => 'agent-a');
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 1, 'no lease here', lease_epoch => 6000001);
SELECT topic, partition_id, agent_id, lease_epoch, state FROM partition_leases WHERE topic = 'force-owner';
SELECT count(*) AS audited FROM lease_audit WHERE topic = 'force-owner';

-- The right owner and epoch: forced, audited; NULLs mean "any", as before.
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 0, 'right owner', agent_id => 'agent-a', lease_epoch => 6000001);
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 0, 'again', agent_id => 'agent-a');
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('force-owner', 0, 'agent-b', '1 h');
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 0, 'any owner', NULL, NULL, false);
SELECT action, previous_agent_id, previous_epoch, new_epoch, reason
  FROM lease_audit WHERE topic = 'force-owner' ORDER BY audit_id;
-- end_holder => true without a holder changes nothing but the force itself
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('force-owner', 2, 'agent-c', '1 h');
SELECT result, agent_id, lease_epoch FROM force_expire('force-owner', 2, 'nobody holds it', agent_id => 'agent-c', end_holder => true);
SELECT count(*) AS holders_ended FROM lease_audit WHERE topic = 'force-owner' AND action = 'end_holder';

-- Settings: ptm_lease.lock_wait_timeout is per session, 0 .. 1 h;
-- ptm_lease.holder_grace only in postgresql.conf, -1 = never.
SHOW ptm_lease.lock_wait_timeout;
SET ptm_lease.lock_wait_timeout = -1;
SET ptm_lease.lock_wait_timeout = '2h';
SET ptm_lease.lock_wait_timeout = 0;
SHOW ptm_lease.lock_wait_timeout;
SET ptm_lease.lock_wait_timeout = '250ms';
SHOW ptm_lease.lock_wait_timeout;
RESET ptm_lease.lock_wait_timeout;
SHOW ptm_lease.holder_grace;
SET ptm_lease.holder_grace = 0;

-- advance_epoch_era(): operators only (not called here: it would move every
-- later test's epochs to the next era; test/t/111_epoch_eras.pl calls it).
CREATE ROLE ptm_force_agent;
CREATE ROLE ptm_force_oncall;
SELECT count(*) > 0 AS granted FROM grant_agent('ptm_force_agent');
SELECT count(*) > 0 AS granted FROM grant_operator('ptm_force_oncall');
SELECT has_function_privilege('ptm_force_agent', 'ptm.advance_epoch_era(text)', 'EXECUTE') AS agent_may,
       has_function_privilege('ptm_force_oncall', 'ptm.advance_epoch_era(text)', 'EXECUTE') AS oncall_may,
       has_function_privilege('public', 'ptm.advance_epoch_era(text)', 'EXECUTE') AS public_may;
SET ROLE ptm_force_agent;
SELECT ptm.advance_epoch_era('agent tries');
SELECT result FROM ptm.force_expire('force-owner', 0, 'agent tries', agent_id => 'agent-b');
RESET ROLE;
SELECT count(*) AS era_rows FROM ptm.epoch_eras;

-- Past the last era a bigint holds (9222): 54000, and nothing changes (the
-- offset row, written by hand here, is rolled back with the error).
BEGIN;
INSERT INTO ptm.epoch_eras (era_offset, reason) VALUES (9222, 'regression: the last era');
SELECT ptm.advance_epoch_era('one era too far');
ROLLBACK;
SELECT count(*) AS era_rows, (SELECT last_value < 1000000000000000 FROM ptm.lease_epoch_seq) AS still_era_0
  FROM ptm.epoch_eras;

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'force-owner';
DELETE FROM ptm.lease_audit WHERE topic = 'force-owner';  -- later tests read the whole audit
RESET session_replication_role;
DROP OWNED BY ptm_force_agent, ptm_force_oncall;
DROP ROLE ptm_force_agent, ptm_force_oncall;
