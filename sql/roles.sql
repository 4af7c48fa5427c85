-- Privileges: a plain role can do nothing until granted; grant_agent() gives
-- it the agent functions (which run as the owner: no table privileges needed),
-- grant_operator() adds force_expire and resets.  The audit names the caller.
SET search_path = public, ptm;
CREATE ROLE ptm_test_agent LOGIN;
CREATE ROLE ptm_test_oncall LOGIN;

SET ROLE ptm_test_agent;
SELECT result FROM ptm.acquire_partition_lease('roles', 0, 'agent-1');
UPDATE ptm.partition_leases SET agent_id = 'me';
RESET ROLE;

SELECT count(*) AS granted FROM ptm.grant_agent('ptm_test_agent');
SET ROLE ptm_test_agent;
SELECT result, agent_id FROM ptm.acquire_partition_lease('roles', 0, 'agent-1');
-- still no direct access to the tables, and no operator functions
SELECT count(*) FROM ptm.partition_leases;
SELECT result FROM ptm.force_expire('roles', 0, 'agent tries to force');
SELECT ptm.reset_counters();
SELECT count(*) FROM ptm.grant_agent('ptm_test_agent');
RESET ROLE;

SELECT count(*) AS granted FROM ptm.grant_operator('ptm_test_oncall');
SET ROLE ptm_test_oncall;
SELECT result FROM ptm.force_expire('roles', 0, 'on-call forced it');
SELECT count(*) > 0 AS reads_metrics FROM ptm.metrics;
RESET ROLE;
SELECT action, reason, current_user_name FROM ptm.lease_audit WHERE topic = 'roles';

SELECT ptm.grant_agent(NULL);
SELECT ptm.grant_agent('no_such_role');

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'roles';
RESET session_replication_role;
DROP OWNED BY ptm_test_agent, ptm_test_oncall;
DROP ROLE ptm_test_agent, ptm_test_oncall;
