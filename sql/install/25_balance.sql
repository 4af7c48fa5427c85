-- Fair share and backpressure (docs/balancing.md): per-topic limits, drained
-- agents, topic membership, the balance view, rebalance and drain.

-- Per-topic settings; a topic is the "tenant" of seed 004.  Changed only
-- through ptm.set_topic_limit() and ptm.clear_topic_limit() (audited).
CREATE TABLE ptm.topic_limits (
    topic       text        PRIMARY KEY,
    max_leases  integer,                -- live leases of the topic, all agents; NULL: no limit
    fair_share  boolean,                -- NULL: follow ptm_lease.fair_share
    reason      text,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_by  text        NOT NULL,
    CONSTRAINT topic_limits_max_leases_check CHECK (max_leases >= 0)
);
COMMENT ON TABLE ptm.topic_limits IS
  'Per-topic limits: max_leases (live leases of the topic, all agents) and a fair_share override; change through set_topic_limit()';

-- Agents an operator drains for a deploy: they renew but acquire nothing.
CREATE TABLE ptm.agent_drains (
    agent_id    text        PRIMARY KEY,
    since       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    reason      text,
    drained_by  text        NOT NULL
);
COMMENT ON TABLE ptm.agent_drains IS
  'Drained agents: renew but cannot acquire; rebalance() hands back all their leases; change through drain_agent()/undrain_agent()';

-- Topic membership: an agent that calls ptm.rebalance() is live on the topic
-- until member_until, even while it holds no lease yet (a newcomer).
CREATE TABLE ptm.topic_agents (
    topic        text        NOT NULL,
    agent_id     text        NOT NULL,
    member_until bigint      NOT NULL,  -- Unix epoch ms, database clock
    joined_at    timestamptz NOT NULL,
    seen_at      timestamptz NOT NULL,
    PRIMARY KEY (topic, agent_id)
);
COMMENT ON TABLE ptm.topic_agents IS
  'Agents that called rebalance() on a topic, live until member_until (Unix ms); written by rebalance() and leave_topic()';

-- The live agents of each topic as last announced on ptm_lease_events.
CREATE TABLE ptm.topic_generations (
    topic       text        PRIMARY KEY,
    agents      text[]      NOT NULL,
    generation  bigint      NOT NULL,
    changed_at  timestamptz NOT NULL
);
COMMENT ON TABLE ptm.topic_generations IS
  'Each topic''s set of live agents as last announced (event agents_changed); generation rises with every change';

SELECT pg_catalog.pg_extension_config_dump('ptm.topic_limits', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.agent_drains', '');
-- Dumped too: generations must keep rising after a restore (listeners compare
-- them), and memberships expire on their own.
SELECT pg_catalog.pg_extension_config_dump('ptm.topic_agents', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.topic_generations', '');

-- Backends cache whether any topic limit or drain exists, so that an
-- acquisition pays nothing while there is none; every change of these tables
-- (by any path, replicas included) invalidates that cache.
CREATE FUNCTION ptm._balance_changed()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'ptm_balance_changed';
COMMENT ON FUNCTION ptm._balance_changed() IS
  'Trigger: tells every backend that topic limits or drains changed';
-- A trigger's EXECUTE right is checked when the trigger is created, not when
-- it fires: nobody needs to call it.
REVOKE ALL ON FUNCTION ptm._balance_changed() FROM PUBLIC;

CREATE TRIGGER topic_limits_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ptm.topic_limits
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._balance_changed();
CREATE TRIGGER agent_drains_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ptm.agent_drains
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._balance_changed();
ALTER TABLE ptm.topic_limits ENABLE ALWAYS TRIGGER topic_limits_changed;
ALTER TABLE ptm.agent_drains ENABLE ALWAYS TRIGGER agent_drains_changed;

CREATE TRIGGER topic_limits_guard
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ptm.topic_limits
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._refuse_direct_dml();
CREATE TRIGGER agent_drains_guard
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ptm.agent_drains
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._refuse_direct_dml();

-- Per topic and agent: leases held, fair share, over or under.  The live
-- agents of a topic are those holding a live lease on it or with a live
-- membership (rebalance()), less the drained ones; each one's fair share is
-- ceil(capacity / live agents), capacity being the topic's partitions (lease
-- rows), capped by topic_limits.max_leases.  A drained agent's share is 0.
-- acquire_partition_lease applies the same rule (src/lease_limits.c).
CREATE VIEW ptm.balance AS
WITH clock AS (
  SELECT (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint AS now_ms
),
agents AS (
  SELECT u.topic, u.agent_id,
         pg_catalog.sum(u.leases)::integer AS leases,
         pg_catalog.min(u.oldest) AS oldest_acquired_at,
         pg_catalog.max(u.newest) AS newest_acquired_at,
         pg_catalog.min(u.renewed) AS least_recently_renewed_at,
         pg_catalog.max(u.member_until) AS member_until
    FROM (SELECT l.topic, l.agent_id, pg_catalog.count(*) AS leases,
                 pg_catalog.min(l.acquired_at) AS oldest, pg_catalog.max(l.acquired_at) AS newest,
                 pg_catalog.min(l.renewed_at) AS renewed, NULL::bigint AS member_until
            FROM ptm.partition_leases l, clock c
           WHERE l.agent_id IS NOT NULL AND l.lease_expires_at > c.now_ms
           GROUP BY l.topic, l.agent_id
          UNION ALL
          SELECT m.topic, m.agent_id, 0, NULL, NULL, NULL, m.member_until
            FROM ptm.topic_agents m, clock c
           WHERE m.member_until > c.now_ms) u
   GROUP BY u.topic, u.agent_id
),
topics AS (
  SELECT l.topic, pg_catalog.count(*)::integer AS partitions
    FROM ptm.partition_leases l GROUP BY l.topic
),
shares AS (
  SELECT a.*, d.agent_id IS NOT NULL AS draining,
         coalesce(t.partitions, 0) AS partitions,
         LEAST(coalesce(t.partitions, 0),
                          coalesce(lim.max_leases, coalesce(t.partitions, 0))) AS capacity,
         pg_catalog.count(*) FILTER (WHERE d.agent_id IS NULL)
           OVER (PARTITION BY a.topic)::integer AS live_agents
    FROM agents a
    LEFT JOIN topics t ON t.topic = a.topic
    LEFT JOIN ptm.topic_limits lim ON lim.topic = a.topic
    LEFT JOIN ptm.agent_drains d ON d.agent_id = a.agent_id
)
SELECT s.topic, s.agent_id, s.draining, s.leases, f.fair_share,
       s.leases - f.fair_share AS excess,
       CASE WHEN s.draining THEN 'draining'
            WHEN s.leases > f.fair_share THEN 'over'
            WHEN s.leases < s.capacity / GREATEST(s.live_agents, 1) THEN 'under'
            ELSE 'fair' END AS balance,
       s.partitions, s.capacity, s.live_agents,
       s.oldest_acquired_at, s.newest_acquired_at, s.least_recently_renewed_at,
       pg_catalog.to_timestamp(s.member_until / 1000.0) AS member_until
  FROM shares s,
       LATERAL (SELECT CASE WHEN s.draining OR s.live_agents = 0 THEN 0
                            ELSE (s.capacity + s.live_agents - 1) / s.live_agents END AS fair_share) f;
COMMENT ON VIEW ptm.balance IS
  'Per topic and live agent: leases held, fair share (ceil(capacity / live agents)), excess, balance over/under/fair/draining';

-- Agents: learn which leases to hand back, and join or leave a topic.
CREATE FUNCTION ptm.rebalance(
    topic text, agent_id text, ttl interval DEFAULT '30 s')
RETURNS SETOF ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_rebalance';
COMMENT ON FUNCTION ptm.rebalance(text, text, interval) IS
  'Join the topic for ttl and list the leases to hand back (result release: above the fair share, least recently renewed first; all when drained)';

CREATE FUNCTION ptm.leave_topic(topic text, agent_id text)
RETURNS boolean
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_leave_topic';
COMMENT ON FUNCTION ptm.leave_topic(text, text) IS
  'End the agent''s membership of the topic (on shutdown, after releasing its leases); true when it was a member';

-- Operators: limits and drain, audited in ptm.lease_audit.
CREATE FUNCTION ptm.set_topic_limit(
    topic text, max_leases integer, fair_share boolean DEFAULT NULL, reason text DEFAULT NULL)
RETURNS ptm.topic_limits
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_set_topic_limit';
COMMENT ON FUNCTION ptm.set_topic_limit(text, integer, boolean, text) IS
  'Operator: limit the live leases of a topic (NULL: no limit) and override ptm_lease.fair_share for it; audited';

CREATE FUNCTION ptm.clear_topic_limit(topic text, reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_clear_topic_limit';
COMMENT ON FUNCTION ptm.clear_topic_limit(text, text) IS
  'Operator: remove a topic''s limits; true when it had some; audited';

CREATE FUNCTION ptm.drain_agent(agent_id text, reason text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_drain_agent';
COMMENT ON FUNCTION ptm.drain_agent(text, text) IS
  'Operator: the agent may renew but not acquire, and rebalance() hands back all its leases; returns its live leases; audited';

CREATE FUNCTION ptm.undrain_agent(agent_id text, reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_undrain_agent';
COMMENT ON FUNCTION ptm.undrain_agent(text, text) IS
  'Operator: end a drain; true when the agent was drained; audited';

GRANT SELECT ON ptm.topic_limits, ptm.agent_drains, ptm.topic_agents, ptm.topic_generations,
  ptm.balance TO pg_monitor;
REVOKE ALL ON FUNCTION
  ptm.rebalance(text, text, interval),
  ptm.leave_topic(text, text),
  ptm.set_topic_limit(text, integer, boolean, text),
  ptm.clear_topic_limit(text, text),
  ptm.drain_agent(text, text),
  ptm.undrain_agent(text, text)
FROM PUBLIC;
REVOKE ALL ON ptm.topic_limits, ptm.agent_drains, ptm.topic_agents, ptm.topic_generations,
  ptm.balance FROM PUBLIC;
