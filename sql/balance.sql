-- Fair share and backpressure: each limit and its result "limited", the
-- counters by reason, bulk acquire stopping at a limit, the balance view,
-- rebalance, drain, and the audit rows of the operator functions.
SET search_path = public, ptm;
SELECT ptm.reset_counters() IS NOT NULL AS reset;
CREATE TEMP VIEW backpressure AS
  SELECT labels->>'reason' AS reason, value FROM ptm.metrics
   WHERE metric = 'ptm_backpressure_total' AND value > 0 ORDER BY 1;

-- Everything off: nothing limits, nothing is cached as configured.
SHOW ptm_lease.max_leases_per_agent;
SHOW ptm_lease.fair_share;
SELECT r.result, r.agent_id
  FROM generate_series(0, 2) p, LATERAL ptm.acquire_partition_lease('bal-free', p, 'agent-a') r;

-- 1. Per agent (worker_limit): counted over all topics; held and renew still work.
SET ptm_lease.max_leases_per_agent = 4;
SELECT result, agent_id FROM ptm.acquire_partition_lease('bal-worker', 0, 'agent-a');
SELECT result, agent_id, lease_epoch IS NULL AS no_epoch
  FROM ptm.acquire_partition_lease('bal-worker', 1, 'agent-a');
SELECT result FROM ptm.acquire_partition_lease('bal-worker', 0, 'agent-a');
SELECT result FROM ptm.renew_lease('bal-worker', 0, 'agent-a',
  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'bal-worker' AND partition_id = 0));
-- another agent is not limited by agent-a's leases
SELECT result, agent_id FROM ptm.acquire_partition_lease('bal-worker', 1, 'agent-b');
-- an existing, free row refused: the row is described as it stands
SELECT ptm.ensure_partitions('bal-worker', 4);
SELECT result, agent_id, lease_epoch FROM ptm.acquire_partition_lease('bal-worker', 2, 'agent-a');
SELECT * FROM backpressure;

-- Bulk acquire stops at the limit: agent-b holds 1, may take 3 more.
SELECT ptm.ensure_partitions('bal-bulk', 8);
SELECT result, partition_id, agent_id FROM ptm.acquire_partition_leases('bal-bulk', 'agent-b', 8);
SELECT count(*) AS none_left FROM ptm.acquire_partition_leases('bal-bulk', 'agent-b', 8);
SELECT * FROM backpressure;
-- a release makes room again
SELECT result FROM ptm.release_lease('bal-bulk', 0, 'agent-b',
  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'bal-bulk' AND partition_id = 0));
SELECT result, partition_id FROM ptm.acquire_partition_leases('bal-bulk', 'agent-b', 8);
RESET ptm_lease.max_leases_per_agent;

-- 2. Per topic (tenant_limit), set by an operator and audited.
SELECT topic, max_leases, fair_share, reason, updated_by
  FROM ptm.set_topic_limit('bal-tenant', 2, NULL, 'INC-7: noisy tenant');
SELECT result, agent_id FROM ptm.acquire_partition_lease('bal-tenant', 0, 'agent-a');
SELECT result, agent_id FROM ptm.acquire_partition_lease('bal-tenant', 1, 'agent-b');
SELECT result, agent_id FROM ptm.acquire_partition_lease('bal-tenant', 2, 'agent-c');
SELECT ptm.ensure_partitions('bal-tenant', 6);
SELECT count(*) AS bulk_took FROM ptm.acquire_partition_leases('bal-tenant', 'agent-c', 6);
SELECT * FROM backpressure;
-- per topic in ptm.key_counters: which tenant is noisy
SELECT key, labels->>'reason' AS reason, value FROM ptm.key_counters
 WHERE family = 'topic' AND metric = 'ptm_backpressure_total' ORDER BY key, reason;
-- 0 pauses the tenant; NULL lifts the limit but keeps the row
SELECT max_leases FROM ptm.set_topic_limit('bal-tenant', 0);
SELECT result FROM ptm.acquire_partition_lease('bal-tenant', 3, 'agent-a');
SELECT max_leases FROM ptm.set_topic_limit('bal-tenant', NULL);
SELECT result FROM ptm.acquire_partition_lease('bal-tenant', 3, 'agent-a');
SELECT ptm.clear_topic_limit('bal-tenant', 'INC-7 over') AS cleared,
       ptm.clear_topic_limit('bal-tenant') AS cleared_again;
SELECT result FROM ptm.acquire_partition_lease('bal-tenant', 4, 'agent-c');
SELECT action, topic, reason, details, current_user_name = current_user AS by_me
  FROM ptm.lease_audit WHERE topic = 'bal-tenant' ORDER BY audit_id;

-- 3. Fair share: agent-a alone takes all 4; agent-b joins through rebalance();
-- agent-a learns which 2 to hand back and cannot take them again.
SET ptm_lease.fair_share = on;
SELECT ptm.ensure_partitions('bal-fair', 4);
SELECT result, partition_id FROM ptm.acquire_partition_leases('bal-fair', 'agent-a', 8);
SELECT agent_id, leases, fair_share, excess, balance, partitions, capacity, live_agents
  FROM ptm.balance WHERE topic = 'bal-fair' ORDER BY agent_id;
SELECT result, partition_id FROM ptm.rebalance('bal-fair', 'agent-b');
SELECT agent_id, leases, fair_share, excess, balance, live_agents,
       member_until > now() AS member
  FROM ptm.balance WHERE topic = 'bal-fair' ORDER BY agent_id;
-- the least recently renewed go first: renew 0 and 1, so 2 and 3 are handed back
SELECT result FROM ptm.renew_leases('agent-a', ARRAY['bal-fair', 'bal-fair'], ARRAY[0, 1],
  ARRAY(SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'bal-fair' AND partition_id < 2
         ORDER BY partition_id));
CREATE TEMP TABLE hand_back AS SELECT * FROM ptm.rebalance('bal-fair', 'agent-a');
SELECT result, partition_id, agent_id FROM hand_back ORDER BY partition_id;
SELECT r.result, r.partition_id
  FROM hand_back h, LATERAL ptm.release_lease(h.topic, h.partition_id, h.agent_id, h.lease_epoch) r
 ORDER BY r.partition_id;
-- agent-a is at its share while agent-b is below: limited, not conflict
SELECT result, agent_id FROM ptm.acquire_partition_lease('bal-fair', 2, 'agent-a');
SELECT count(*) AS bulk_took FROM ptm.acquire_partition_leases('bal-fair', 'agent-a', 8);
SELECT result, partition_id FROM ptm.acquire_partition_leases('bal-fair', 'agent-b', 8);
SELECT agent_id, leases, fair_share, excess, balance
  FROM ptm.balance WHERE topic = 'bal-fair' ORDER BY agent_id;
SELECT count(*) AS nothing_to_hand_back FROM ptm.rebalance('bal-fair', 'agent-a');
-- an agent that has not joined counts itself as live: agent-c (0 of ceil(4/3)) may take a free one
SELECT result FROM ptm.release_lease('bal-fair', 0, 'agent-a',
  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'bal-fair' AND partition_id = 0));
SELECT result, agent_id FROM ptm.acquire_partition_lease('bal-fair', 0, 'agent-c');
SELECT * FROM backpressure;
-- leaving: the membership ends; agent-b still holds leases, so it stays live
SELECT ptm.leave_topic('bal-fair', 'agent-b') AS was_member,
       ptm.leave_topic('bal-fair', 'agent-b') AS again;
SELECT agent_id, leases, member_until IS NULL AS no_membership
  FROM ptm.balance WHERE topic = 'bal-fair' ORDER BY agent_id;
RESET ptm_lease.fair_share;

-- Fair share per topic, with the setting off.
SELECT fair_share FROM ptm.set_topic_limit('bal-fair2', NULL, true);
SELECT ptm.ensure_partitions('bal-fair2', 2);
SELECT count(*) FROM ptm.rebalance('bal-fair2', 'agent-b');
SELECT result FROM ptm.acquire_partition_lease('bal-fair2', 0, 'agent-a');
SELECT result FROM ptm.acquire_partition_lease('bal-fair2', 1, 'agent-a');
SELECT ptm.clear_topic_limit('bal-fair2');
SELECT result FROM ptm.acquire_partition_lease('bal-fair2', 1, 'agent-a');

-- 4. Drain: agent-b renews but cannot acquire; rebalance hands back everything.
SELECT ptm.drain_agent('agent-b', 'deploy 42') AS live_leases;
SELECT agent_id, since <= now() AS since_ok, reason, drained_by = current_user AS by_me
  FROM ptm.agent_drains;
SELECT result FROM ptm.acquire_partition_lease('bal-drain', 0, 'agent-b');
SELECT count(*) AS bulk_took FROM ptm.acquire_partition_leases('bal-bulk', 'agent-b', 8);
SELECT result FROM ptm.renew_lease('bal-fair', 2, 'agent-b',
  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'bal-fair' AND partition_id = 2));
SELECT agent_id, draining, leases, fair_share, excess, balance, live_agents
  FROM ptm.balance WHERE topic = 'bal-fair' ORDER BY agent_id;
SELECT result, partition_id FROM ptm.rebalance('bal-fair', 'agent-b') ORDER BY partition_id;
SELECT ptm.undrain_agent('agent-b', 'deploy done') AS was_drained,
       ptm.undrain_agent('agent-b') AS again;
SELECT result FROM ptm.acquire_partition_lease('bal-drain', 0, 'agent-b');
SELECT action, previous_agent_id, reason, details->>'agent_id' AS agent, details->'live_leases' AS live
  FROM ptm.lease_audit WHERE action IN ('drain_agent', 'undrain_agent') ORDER BY audit_id;
SELECT * FROM backpressure;

-- 5. Recovery latency: a takeover after a release is observed.
SELECT count AS before FROM ptm.histograms WHERE metric = 'recovery_latency_ms' \gset
SELECT result FROM ptm.release_lease('bal-drain', 0, 'agent-b',
  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'bal-drain' AND partition_id = 0));
SELECT result FROM ptm.acquire_partition_lease('bal-drain', 0, 'agent-c');
SELECT count - :before AS observed FROM ptm.histograms WHERE metric = 'recovery_latency_ms';

-- 6. The seed 002 check "all partitions owned by a single agent" as one query.
SELECT topic, agent_id, leases, partitions, live_agents, leases = partitions AS single_owner
  FROM ptm.balance WHERE topic = 'bal-bulk';

-- cleanup
SET session_replication_role = replica;  -- test cleanup only: bypasses the DML guard
DELETE FROM ptm.partition_leases WHERE topic LIKE 'bal-%';
DELETE FROM ptm.topic_agents WHERE topic LIKE 'bal-%';
DELETE FROM ptm.topic_generations WHERE topic LIKE 'bal-%';
DELETE FROM ptm.lease_audit WHERE topic LIKE 'bal-%' OR action LIKE '%drain_agent';
RESET session_replication_role;
SELECT count(*) AS limits_left FROM ptm.topic_limits;
SELECT count(*) AS drains_left FROM ptm.agent_drains;
