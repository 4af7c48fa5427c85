-- Bad input to the balance functions: a clear ERROR with its SQLSTATE, and
-- nothing changed.  Limits and drain are for operators only.
SET search_path = public, ptm;
\set VERBOSITY sqlstate
SELECT ptm.set_topic_limit(NULL, 1);
SELECT ptm.set_topic_limit('', 1);
SELECT ptm.set_topic_limit('bad-limits', -1);
SELECT ptm.clear_topic_limit(NULL);
SELECT ptm.drain_agent(NULL);
SELECT ptm.drain_agent('');
SELECT ptm.drain_agent(repeat('x', 300));
SELECT ptm.undrain_agent(NULL);
SELECT * FROM ptm.rebalance(NULL, 'agent-a');
SELECT * FROM ptm.rebalance('bad-topic', NULL);
SELECT * FROM ptm.rebalance('bad-topic', 'agent-a', '0 s');
SELECT * FROM ptm.rebalance('bad-topic', 'agent-a', '-1 s');
SELECT * FROM ptm.rebalance('bad-topic', 'agent-a', '0.0001 s');
SELECT * FROM ptm.rebalance('bad-topic', 'agent-a', NULL);
SELECT ptm.leave_topic('bad-topic', NULL);
SET ptm_lease.max_leases_per_agent = -1;
SET ptm_lease.fair_share = 'maybe';
\set VERBOSITY default
SELECT ptm.set_topic_limit('bad-limits', -1);
SELECT * FROM ptm.rebalance('bad-topic', 'agent-a', '0 s');
-- nothing was written
SELECT (SELECT count(*) FROM ptm.topic_limits) AS limits,
       (SELECT count(*) FROM ptm.agent_drains) AS drains,
       (SELECT count(*) FROM ptm.topic_agents) AS members,
       (SELECT count(*) FROM ptm.lease_audit WHERE action LIKE '%topic_limit' OR action LIKE '%drain_agent') AS audits;

-- Direct DML on the settings is refused, as on the lease table.
SELECT topic FROM ptm.set_topic_limit('bad-limits', 5);
\set VERBOSITY sqlstate
UPDATE ptm.topic_limits SET max_leases = 1000;
DELETE FROM ptm.topic_limits;
TRUNCATE ptm.agent_drains;
\set VERBOSITY default
SELECT max_leases FROM ptm.topic_limits WHERE topic = 'bad-limits';
SELECT ptm.clear_topic_limit('bad-limits');

-- Privileges: an agent role rebalances but may not set limits or drain, nor
-- turn the settings off for itself; an operator may.
CREATE ROLE ptm_bal_agent;
CREATE ROLE ptm_bal_oncall;
SELECT count(*) > 0 AS granted FROM ptm.grant_agent('ptm_bal_agent');
SELECT count(*) > 0 AS granted FROM ptm.grant_operator('ptm_bal_oncall');
SET ROLE ptm_bal_agent;
\set VERBOSITY sqlstate
SELECT count(*) FROM ptm.rebalance('bal-roles', 'agent-a');
SELECT ptm.set_topic_limit('bal-roles', 1);
SELECT ptm.clear_topic_limit('bal-roles');
SELECT ptm.drain_agent('agent-b');
SELECT ptm.undrain_agent('agent-b');
SET ptm_lease.max_leases_per_agent = 0;
SET ptm_lease.fair_share = off;
SELECT count(*) FROM ptm.topic_limits;
\set VERBOSITY default
RESET ROLE;
SET ROLE ptm_bal_oncall;
SELECT max_leases, updated_by FROM ptm.set_topic_limit('bal-roles', 1);
SELECT ptm.drain_agent('agent-b', 'on-call drains') AS live;
SELECT agent_id, leases, live_agents FROM ptm.balance WHERE topic = 'bal-roles';
SELECT ptm.undrain_agent('agent-b');
SELECT ptm.clear_topic_limit('bal-roles');
RESET ROLE;
SELECT action, current_user_name FROM ptm.lease_audit
 WHERE topic = 'bal-roles' OR details->>'agent_id' = 'agent-b' ORDER BY audit_id;

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.topic_agents WHERE topic = 'bal-roles';
DELETE FROM ptm.topic_generations WHERE topic = 'bal-roles';
DELETE FROM ptm.lease_audit WHERE topic IN ('bal-roles', 'bad-limits') OR action LIKE '%drain_agent';
RESET session_replication_role;
DROP OWNED BY ptm_bal_agent, ptm_bal_oncall;
DROP ROLE ptm_bal_agent, ptm_bal_oncall;
