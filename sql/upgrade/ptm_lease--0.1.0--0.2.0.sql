-- ptm_lease 0.1.0 -> 0.2.0 (ALTER EXTENSION ptm_lease UPDATE TO '0.2.0').
-- Every object added or changed in sql/install/ since 0.1.0 is also created
-- here, so an updated database ends up with the same objects as a fresh
-- install (test/t/090_upgrade.pl compares the two catalogs).

\echo Use "ALTER EXTENSION ptm_lease UPDATE TO '0.2.0'" to load this file. \quit

-- Metrics: the projection lag gauges join ptm.metric_series (so ptm.metrics,
-- ptm.metrics_text() and the exporter have them), and wm_lag_ms is the lag of
-- the last applied event rather than a clock that grows while idle.
-- The two lag gauges in the shape of ptm.metrics, labelled per projection
-- and partition.  wm_lag_ms is the lag of the last applied event when it was
-- applied (apply_lag_ms), the materializer's own lag that seed 003 wants under
-- 100 ms; it does not grow while a projection is idle, so a quiet stream does
-- not page.  A stalled materializer shows in ptm.projection_lag.idle_ms.
CREATE OR REPLACE VIEW ptm.projection_metrics AS
  SELECT 'projection_materializer_wm_lag_ms'::text AS metric,
         pg_catalog.jsonb_build_object('projection', w.projection,
                                       'partition', w.partition_id::text) AS labels,
         w.apply_lag_ms::double precision AS value
    FROM ptm.projection_watermarks w
   WHERE w.apply_lag_ms IS NOT NULL
  UNION ALL
  SELECT 'projection_materializer_max_lag_ms'::text,
         pg_catalog.jsonb_build_object('projection', w.projection,
                                       'partition', w.partition_id::text),
         w.max_lag_ms::double precision
    FROM ptm.projection_watermarks w
   WHERE w.max_lag_ms IS NOT NULL;

-- The one list of series: ptm.metrics and ptm.metrics_text() read it, so a
-- series added here (a gauge computed from a table, UNION ALL) appears in
-- both.  The projection lag gauges come from this database's watermarks;
-- the counters are the server's.  Histogram series are one row per _bucket
-- (label le), _sum and _count.
CREATE OR REPLACE VIEW ptm.metric_series AS
  SELECT family, type, help, metric, labels, value FROM ptm._metric_series()
  UNION ALL
  SELECT m.metric, 'gauge',
         CASE m.metric
           WHEN 'projection_materializer_wm_lag_ms'
             THEN 'Lag of the last event applied to a projection partition, from its event_time to when it was applied (ms).'
           ELSE 'Highest wm_lag_ms a projection partition has seen since its watermark was created or reset (ms).'
         END,
         m.metric, m.labels, m.value
    FROM ptm.projection_metrics m;


-- ---------------------------------------------------------------------
-- Metric history, rates, claim cleanup (issue 7; sql/install/92_history.sql,
-- and ptm.snapshot_metrics() in the operator list of sql/install/95_roles.sql)
-- ---------------------------------------------------------------------

CREATE TABLE ptm.metric_history (
    sampled_at timestamptz      NOT NULL,
    metric     text             NOT NULL,
    labels     jsonb            NOT NULL DEFAULT '{}',
    value      double precision NOT NULL,
    -- Leading metric, then time: what ptm.rate() reads is one index range.
    CONSTRAINT metric_history_pkey PRIMARY KEY (metric, sampled_at, labels)
);

-- For the retention cleanup (oldest first) and health()'s newest snapshot.
CREATE INDEX metric_history_sampled_at_idx ON ptm.metric_history (sampled_at);

COMMENT ON TABLE ptm.metric_history IS
  'Snapshots of the counter and histogram series of ptm.metric_series (server-wide), one row per series and sample; kept for ptm_lease.history_retention';
COMMENT ON COLUMN ptm.metric_history.sampled_at IS
  'When the counters were read (clock_timestamp() of the snapshot); the same for every row of one snapshot';
COMMENT ON COLUMN ptm.metric_history.metric IS
  'Series name as in ptm.metrics (histograms: name_bucket, name_sum, name_count)';
COMMENT ON COLUMN ptm.metric_history.labels IS
  'Labels as in ptm.metrics (le for histogram buckets)';
COMMENT ON COLUMN ptm.metric_history.value IS
  'Counter value at sampled_at: monotonic, except that it restarts from 0 after a crash or ptm.reset_counters()';
COMMENT ON INDEX ptm.metric_history_sampled_at_idx IS
  'For the retention cleanup and the newest snapshot';

-- Kept in dumps: the history is what a postmortem reads.
SELECT pg_catalog.pg_extension_config_dump('ptm.metric_history', '');

-- One snapshot now: every counter and histogram series, at one time.
CREATE FUNCTION ptm.snapshot_metrics()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  at timestamptz := pg_catalog.clock_timestamp();
  n integer;
BEGIN
  INSERT INTO ptm.metric_history AS h (sampled_at, metric, labels, value)
  SELECT at, s.metric, s.labels, s.value
    FROM ptm.metric_series AS s
   WHERE s.type IN ('counter', 'histogram')
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

COMMENT ON FUNCTION ptm.snapshot_metrics() IS
  'Write one snapshot of every counter and histogram series into ptm.metric_history; returns the rows written';

-- Checks the arguments of the functions below (NULLs, a window that is not
-- positive, a metric that is neither a counter nor a histogram series and has
-- never been sampled) and returns the start of the window.
CREATE FUNCTION ptm._history_window(metric text, "window" interval, at timestamptz)
RETURNS timestamptz
LANGUAGE c STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_history_window';

COMMENT ON FUNCTION ptm._history_window(text, interval, timestamptz) IS
  'Validates the arguments of ptm.increase() and ptm.rate(); returns at - window';

-- Per label set, the increase over the samples in (at - window, at], with
-- counter resets handled as Prometheus does: a value below the previous one
-- means the counter restarted from 0, so the whole new value is an increase.
-- No extrapolation to the window's edges (docs/workers.md says how this
-- differs from Prometheus).  increase is NULL with fewer than two samples.
CREATE FUNCTION ptm.increase(
    metric text, "window" interval, at timestamptz DEFAULT pg_catalog.now(),
    OUT labels jsonb, OUT increase double precision, OUT samples integer,
    OUT first_sample timestamptz, OUT last_sample timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  since timestamptz := ptm._history_window($1, $2, $3);
BEGIN
  RETURN QUERY
  SELECT d.labels,
         CASE WHEN pg_catalog.count(*) >= 2 THEN pg_catalog.sum(d.delta) END,
         pg_catalog.count(*)::integer,
         pg_catalog.min(d.sampled_at),
         pg_catalog.max(d.sampled_at)
    FROM (SELECT h.labels, h.sampled_at,
                 CASE WHEN pg_catalog.lag(h.value) OVER w IS NULL THEN 0
                      WHEN h.value >= pg_catalog.lag(h.value) OVER w
                        THEN h.value - pg_catalog.lag(h.value) OVER w
                      ELSE h.value          -- a reset: counted from 0
                 END AS delta
            FROM ptm.metric_history AS h
           WHERE h.metric = $1 AND h.sampled_at > since AND h.sampled_at <= $3
          WINDOW w AS (PARTITION BY h.labels ORDER BY h.sampled_at)) AS d
   GROUP BY d.labels
   ORDER BY d.labels;
END $$;

COMMENT ON FUNCTION ptm.increase(text, interval, timestamptz) IS
  'Per label set, how much a counter grew over the samples of ptm.metric_history in (at - window, at], counter resets counted as Prometheus does';

-- Per-second rate: the increase divided by the time between the first and the
-- last sample of the window.
CREATE FUNCTION ptm.rate(
    metric text, "window" interval, at timestamptz DEFAULT pg_catalog.now(),
    OUT labels jsonb, OUT rate double precision, OUT samples integer,
    OUT first_sample timestamptz, OUT last_sample timestamptz)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT i.labels,
         i.increase / NULLIF(pg_catalog.date_part('epoch', i.last_sample - i.first_sample), 0),
         i.samples, i.first_sample, i.last_sample
    FROM ptm.increase($1, $2, $3) AS i
$$;

COMMENT ON FUNCTION ptm.rate(text, interval, timestamptz) IS
  'Per label set, per-second rate of a counter over (at - window, at] from ptm.metric_history, like PromQL rate() without extrapolation';

-- PromQL's histogram_quantile(q, rate(name_bucket[window])): the q-quantile
-- of the observations in the window, interpolated linearly inside the bucket
-- it falls in; the largest finite bound when it falls in the +Inf bucket;
-- NULL when the window holds no observation or fewer than two samples.
CREATE FUNCTION ptm.histogram_quantile(
    quantile double precision, metric text, "window" interval,
    at timestamptz DEFAULT pg_catalog.now())
RETURNS double precision
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  result double precision;
BEGIN
  IF quantile IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed', MESSAGE = 'quantile must not be null';
  END IF;
  IF quantile = 'NaN' OR quantile < 0 OR quantile > 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
      MESSAGE = 'quantile must be between 0 and 1',
      DETAIL = pg_catalog.format('The value given was %s.', quantile);
  END IF;
  IF metric IS NOT NULL AND pg_catalog.right(metric, 7) <> '_bucket' THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
      MESSAGE = pg_catalog.format('metric %s is not the _bucket series of a histogram', metric),
      HINT = 'Name the bucket series, as PromQL does: histogram_quantile(0.95, rate(canonical_store_commit_latency_ms_bucket[5m])) is ptm.histogram_quantile(0.95, ''canonical_store_commit_latency_ms_bucket'', ''5 min'').';
  END IF;
  PERFORM ptm._history_window(metric, "window", at);

  WITH b AS (
    -- cumulative counts, kept monotonic in le as Prometheus does
    SELECT (i.labels->>'le')::double precision AS le,
           pg_catalog.max(i.increase) OVER (ORDER BY (i.labels->>'le')::double precision) AS cum,
           pg_catalog.bool_and(i.increase IS NOT NULL) OVER () AS complete
      FROM ptm.increase(metric, "window", at) AS i
     WHERE i.labels ? 'le'
  ), p AS (
    SELECT b.le, b.cum,
           pg_catalog.lag(b.le) OVER (ORDER BY b.le) AS prev_le,
           COALESCE(pg_catalog.lag(b.cum) OVER (ORDER BY b.le), 0) AS prev_cum,
           pg_catalog.max(b.cum) FILTER (WHERE b.le = 'Infinity') OVER () AS total
      FROM b
     WHERE b.complete
  )
  SELECT CASE
           WHEN p.le = 'Infinity' THEN p.prev_le
           WHEN p.prev_le IS NULL AND p.le <= 0 THEN p.le
           WHEN p.cum = p.prev_cum THEN COALESCE(p.prev_le, 0)
           ELSE COALESCE(p.prev_le, 0) + (p.le - COALESCE(p.prev_le, 0))
                * (quantile * p.total - p.prev_cum) / (p.cum - p.prev_cum)
         END
    INTO result
    FROM p
   WHERE p.total > 0 AND p.cum >= quantile * p.total
   ORDER BY p.le
   LIMIT 1;
  RETURN result;
END $$;

COMMENT ON FUNCTION ptm.histogram_quantile(double precision, text, interval, timestamptz) IS
  'PromQL histogram_quantile(quantile, rate(metric[window])) from ptm.metric_history: the quantile of the observations in (at - window, at]';

-- Expired step claims are cleared by the worker (docs/workers.md); the scan
-- walks workflow_state by its primary key, so no index is added here: an
-- index on claim_expires_at would make every claim and claim-fenced commit a
-- non-HOT update.

REVOKE ALL ON ptm.metric_history FROM PUBLIC;
GRANT SELECT ON ptm.metric_history TO pg_monitor;
REVOKE ALL ON FUNCTION ptm.snapshot_metrics(), ptm._history_window(text, interval, timestamptz),
                       ptm.increase(text, interval, timestamptz), ptm.rate(text, interval, timestamptz),
                       ptm.histogram_quantile(double precision, text, interval, timestamptz)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ptm._history_window(text, interval, timestamptz),
                          ptm.increase(text, interval, timestamptz), ptm.rate(text, interval, timestamptz),
                          ptm.histogram_quantile(double precision, text, interval, timestamptz)
  TO pg_monitor;

-- ptm.role_functions(): ptm.snapshot_metrics() is an operator's.

-- ---------------------------------------------------------------------
-- Fair share and backpressure (issue 11, docs/balancing.md): topic limits,
-- drains, membership, ptm.balance, rebalance/leave_topic and the operator
-- functions, as in sql/install/25_balance.sql; role_functions lists them.
-- ---------------------------------------------------------------------


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

-- One list for both sections above (history: snapshot_metrics; balance), and
-- for ptm.sweep_expired_leases() at the end of this script.
CREATE OR REPLACE FUNCTION ptm.role_functions(OUT function regprocedure, OUT needed_by text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p, f.needed_by FROM (VALUES
    ('ptm.acquire_partition_lease(text, integer, text, interval)', 'agent'),
    ('ptm.renew_lease(text, integer, text, bigint, interval)', 'agent'),
    ('ptm.release_lease(text, integer, text, bigint)', 'agent'),
    ('ptm.check_fence(text, integer, bigint)', 'agent'),
    ('ptm.acquire_partition_leases(text, text, integer, interval)', 'agent'),
    ('ptm.renew_leases(text, text[], integer[], bigint[], interval)', 'agent'),
    ('ptm.ensure_partitions(text, integer)', 'agent'),
    ('ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)', 'agent'),
    ('ptm.get_state(text)', 'agent'),
    ('ptm.claim_step(text, bigint, text, interval)', 'agent'),
    ('ptm.apply_projection(text, integer, bigint, text, jsonb, timestamptz, text, integer, bigint)', 'agent'),
    ('ptm.apply_projection_batch(text, integer, bigint[], text[], jsonb[], timestamptz[], text, integer, bigint)', 'agent'),
    ('ptm.rebalance(text, text, interval)', 'agent'),
    ('ptm.leave_topic(text, text)', 'agent'),
    ('ptm.force_expire(text, integer, text, text, bigint, boolean)', 'operator'),
    ('ptm.advance_epoch_era(text)', 'operator'),
    ('ptm.sweep_expired_leases(integer)', 'operator'),
    ('ptm.set_topic_limit(text, integer, boolean, text)', 'operator'),
    ('ptm.clear_topic_limit(text, text)', 'operator'),
    ('ptm.drain_agent(text, text)', 'operator'),
    ('ptm.undrain_agent(text, text)', 'operator'),
    ('ptm.reset_counters()', 'operator'),
    ('ptm.reset_projection(text, integer, boolean, text)', 'operator'),
    ('ptm.snapshot_metrics()', 'operator')
  ) AS f(name, needed_by), pg_catalog.to_regprocedure(f.name) AS p
  WHERE p IS NOT NULL
$$;
-- ---------------------------------------------------------------------
-- Hardening (issue 9, roles and hostile input): sql/install/95_roles.sql
-- ---------------------------------------------------------------------
REVOKE ALL ON FUNCTION ptm._refuse_direct_dml() FROM PUBLIC;

-- ---------------------------------------------------------------------
-- Per-key counts: every outcome that went wrong is counted per workflow key
-- and per topic, successes only overall; the top views lose the columns
-- that could never be filled (commits, acquisitions, renewals, ratios).
-- ---------------------------------------------------------------------
DROP VIEW ptm.top_workflow_conflicts;
DROP VIEW ptm.top_topic_conflicts;
-- "Identify top workflows by conflict count" (seed 003), and split-brain
-- suspects by topic (seed 002).  Rows are pivoted from ptm.key_counters, so a
-- key appears once it has counted anything.  Only outcomes that went wrong
-- are counted per key: counting every success would cost a shared-hash
-- lookup per call and let busy, healthy keys evict the troubled ones.
CREATE VIEW ptm.top_workflow_conflicts AS
  SELECT key AS workflow_key,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_commit_total' AND labels->>'result' = 'cas_conflict'), 0)::bigint AS cas_conflicts,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_commit_total' AND labels->>'result' = 'fencing_reject'), 0)::bigint AS fencing_rejects,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_commit_total' AND labels->>'result' = 'duplicate'), 0)::bigint AS duplicates,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_claim_total' AND labels->>'result' = 'stale'), 0)::bigint AS stale_claims,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_claim_total' AND labels->>'result' = 'out_of_order'), 0)::bigint AS out_of_order_claims,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_claim_total' AND labels->>'result' = 'busy'), 0)::bigint AS busy_claims
    FROM ptm.key_counters
   WHERE family = 'workflow'
   GROUP BY key
   ORDER BY cas_conflicts DESC, fencing_rejects DESC, workflow_key;

COMMENT ON VIEW ptm.top_workflow_conflicts IS
  'Tracked workflow keys by what went wrong (cas_conflict, fencing_reject, duplicate; stale, out_of_order, busy claims), most cas_conflicts first';

-- Split-brain suspects first (issue 18): a topic whose agents act with an
-- epoch that is no longer current (stale epochs, fence rejects) or whose
-- owner an operator had to force out is the one to look at, however many
-- harmless acquire conflicts a polling agent piles up elsewhere.  The sum of
-- those three is split_brain_signals; ties go to stale epochs, then fence
-- rejects, then forced expirations, then the rest.
CREATE VIEW ptm.top_topic_conflicts AS
  SELECT topic,
         lease_conflicts + fence_rejects + forced_expirations AS split_brain_signals,
         lease_conflicts, acquire_conflicts, renew_failures, fence_rejects,
         forced_expirations, limited
    FROM (
  SELECT key AS topic,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_conflicts_total'), 0)::bigint AS lease_conflicts,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_acquisitions_total' AND labels->>'result' = 'conflict'), 0)::bigint AS acquire_conflicts,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_renewals_total' AND labels->>'result' = 'failure'), 0)::bigint AS renew_failures,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_fence_checks_total' AND labels->>'result' = 'reject'), 0)::bigint AS fence_rejects,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_forced_expirations_total'), 0)::bigint AS forced_expirations,
         COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_backpressure_total'), 0)::bigint AS limited
    FROM ptm.key_counters
   WHERE family = 'topic'
   GROUP BY key) AS per_topic
   ORDER BY split_brain_signals DESC, lease_conflicts DESC, fence_rejects DESC,
            forced_expirations DESC, renew_failures DESC, acquire_conflicts DESC,
            limited DESC, topic;

COMMENT ON VIEW ptm.top_topic_conflicts IS
  'Tracked topics by what went wrong (stale epochs, refused acquisitions, failed renewals, fence rejects, forced expirations, limited), split-brain suspects first: most split_brain_signals (stale epochs + fence rejects + forced expirations)';

GRANT SELECT ON ptm.top_workflow_conflicts, ptm.top_topic_conflicts TO pg_monitor;

-- ---------------------------------------------------------------------
-- HOT renewals (sql/install/20_leases.sql, docs/workers.md): no index covers
-- lease_expires_at any more.  The sweeper finds due leases through sweep_at,
-- a lower bound of the expiry that renewals leave alone; per-agent counts
-- get their own partial index; fillfactor 80 leaves room for HOT updates.
-- ---------------------------------------------------------------------

ALTER TABLE ptm.partition_leases ADD COLUMN sweep_at bigint;
COMMENT ON COLUMN ptm.partition_leases.sweep_at IS 'When the sweeper next looks at an owned lease, Unix epoch milliseconds; never after lease_expires_at (renewals leave it behind)';

-- The guard refuses direct UPDATE; this one backfill is the extension's own.
ALTER TABLE ptm.partition_leases DISABLE TRIGGER partition_leases_guard;
UPDATE ptm.partition_leases SET sweep_at = lease_expires_at;
ALTER TABLE ptm.partition_leases ENABLE TRIGGER partition_leases_guard;

DROP INDEX ptm.partition_leases_expiry_idx;
CREATE INDEX partition_leases_sweep_idx
    ON ptm.partition_leases (sweep_at) WHERE agent_id IS NOT NULL;
CREATE INDEX partition_leases_agent_idx
    ON ptm.partition_leases (agent_id) WHERE agent_id IS NOT NULL;

-- Applies to pages written from now on (existing pages fill as they are).
ALTER TABLE ptm.partition_leases SET (fillfactor = 80);

-- A row inserted with an owner but without sweep_at (pg_restore of a 0.1.0
-- dump, a hand-written INSERT) would never be swept: fill it from the expiry.
-- The functions' own INSERT always sets it, so the WHEN clause skips them.
CREATE FUNCTION ptm._fill_sweep_at()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  NEW.sweep_at := NEW.lease_expires_at;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION ptm._fill_sweep_at() IS
  'Trigger: sets sweep_at of an owned lease row inserted without one (restore, hand-written INSERT)';
REVOKE ALL ON FUNCTION ptm._fill_sweep_at() FROM PUBLIC;
CREATE TRIGGER partition_leases_fill_sweep_at
  BEFORE INSERT ON ptm.partition_leases
  FOR EACH ROW WHEN (NEW.agent_id IS NOT NULL AND NEW.sweep_at IS NULL)
  EXECUTE FUNCTION ptm._fill_sweep_at();

-- ptm.health() counts the sweep backlog in ptm.partition_leases, which PUBLIC
-- may not read: it runs as the owner, so that anyone may call it
-- (sql/install/10_health.sql).
ALTER FUNCTION ptm.health() SECURITY DEFINER;

-- renew_lease, release_lease, acquire_partition_lease, check_fence,
-- try_commit and claim_step lose their SET clause: see "Entry points named by version" at
-- the end of this script.

-- ---------------------------------------------------------------------
-- One batch of the worker's expiry sweep on demand (sql/install/20_leases.sql;
-- an operator function: role_functions above lists it).
-- ---------------------------------------------------------------------
CREATE FUNCTION ptm.sweep_expired_leases(
    max_leases integer DEFAULT NULL,
    OUT expired bigint, OUT rescheduled bigint)
RETURNS record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_sweep_expired_leases';
COMMENT ON FUNCTION ptm.sweep_expired_leases(integer) IS
  'Operator: one batch of the worker''s expiry sweep in this transaction (max_leases NULL: ptm_lease.sweep_batch_size); leases past expiry marked expired, logged and NOTIFYed, renewed ones rescheduled; locked rows skipped';
REVOKE ALL ON FUNCTION ptm.sweep_expired_leases(integer) FROM PUBLIC;

-- ---------------------------------------------------------------------
-- Fencing under faults (issue 16): eras of epochs (sql/install/21_epochs.sql)
-- and force_expire with the owner it means, a bounded wait and end_holder
-- (sql/install/20_leases.sql).  force_expire keeps the grants it had.
-- ---------------------------------------------------------------------
CREATE TABLE ptm.epoch_eras (
    era_offset  integer     NOT NULL CHECK (era_offset > 0),
    changed_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    reason      text
);
COMMENT ON TABLE ptm.epoch_eras IS
  'Era offsets of lease epochs: era = (timeline - 1) + max(era_offset); written by ptm.advance_epoch_era()';
SELECT pg_catalog.pg_extension_config_dump('ptm.epoch_eras', '');
CREATE TRIGGER epoch_eras_guard
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ptm.epoch_eras
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._refuse_direct_dml();
REVOKE ALL ON ptm.epoch_eras FROM PUBLIC;
GRANT SELECT ON ptm.epoch_eras TO pg_monitor;

CREATE FUNCTION ptm.advance_epoch_era(reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_advance_epoch_era';
COMMENT ON FUNCTION ptm.advance_epoch_era(text) IS
  'Operator, after a restore from a logical dump: move lease epochs to the next era, above any epoch the dumped cluster could have handed out; returns the new floor (audited)';
REVOKE ALL ON FUNCTION ptm.advance_epoch_era(text) FROM PUBLIC;

DO $upgrade$
DECLARE
  grantees regrole[];
  g regrole;
BEGIN
  SELECT pg_catalog.array_agg(a.grantee::regrole) INTO grantees
    FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
   WHERE p.oid = 'ptm.force_expire(text, integer, text)'::pg_catalog.regprocedure
     AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;
  DROP FUNCTION ptm.force_expire(text, integer, text);
  CREATE FUNCTION ptm.force_expire(
      topic text, partition_id integer, reason text DEFAULT NULL,
      agent_id text DEFAULT NULL, lease_epoch bigint DEFAULT NULL,
      end_holder boolean DEFAULT false)
  RETURNS ptm.lease_result
  LANGUAGE c VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'ptm_force_expire_0_2';
  COMMENT ON FUNCTION ptm.force_expire(text, integer, text, text, bigint, boolean) IS
    'Operator: end a lease now, raise its epoch so the old owner is fenced, and audit it: forced, no_lease, not_owner or stale_epoch (agent_id / lease_epoch given and the lease moved on), busy (row held past ptm_lease.lock_wait_timeout; end_holder => true ends the holding transaction first)';
  REVOKE ALL ON FUNCTION ptm.force_expire(text, integer, text, text, bigint, boolean) FROM PUBLIC;
  FOREACH g IN ARRAY coalesce(grantees, '{}') LOOP
    EXECUTE pg_catalog.format(
      'GRANT EXECUTE ON FUNCTION ptm.force_expire(text, integer, text, text, bigint, boolean) TO %s', g);
  END LOOP;
END
$upgrade$;

-- ---------------------------------------------------------------------
-- Projection lag under names that say which lag, and replays told from
-- races (issue 18, sql/install/40_projections.sql, src/replays.c):
-- wm_lag_ms is the gauge, last_event_age_ms grows while idle (lag_ms stays as
-- its 0.1.0 name); the watermark row remembers its last skipped event, so
-- that a replay (routine) and a race between two materializers are counted
-- apart.  The new columns have constant defaults: no table rewrite.
-- ---------------------------------------------------------------------
ALTER TABLE ptm.projection_watermarks
  ADD COLUMN last_skipped_offset bigint,
  ADD COLUMN last_skip_watermark bigint,
  ADD COLUMN replay_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN last_replay_at timestamptz,
  ADD COLUMN race_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN last_race_at timestamptz;
COMMENT ON COLUMN ptm.projection_watermarks.last_skipped_offset IS
  'Offset of the last event skipped at or below the watermark (a replay or a race tells itself by the next one)';
COMMENT ON COLUMN ptm.projection_watermarks.last_skip_watermark IS
  'The watermark when last_skipped_offset was skipped';
COMMENT ON COLUMN ptm.projection_watermarks.replay_count IS
  'Replays begun: a materializer went back below the watermark (routine: the events are skipped)';
COMMENT ON COLUMN ptm.projection_watermarks.last_replay_at IS
  'When the last replay began';
COMMENT ON COLUMN ptm.projection_watermarks.race_count IS
  'Events below the watermark after another writer moved it since the stream''s previous one: two materializers on this partition';
COMMENT ON COLUMN ptm.projection_watermarks.last_race_at IS
  'When the last such event came';
CREATE OR REPLACE VIEW ptm.projection_lag AS
  SELECT w.projection,
         w.partition_id,
         w."offset" AS watermark,
         w.last_event_time,
         w.updated_at,
         pg_catalog.round(pg_catalog.date_part('epoch',
             pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) w.last_event_time)
             OPERATOR(pg_catalog.*) 1000)::bigint AS lag_ms,
         w.apply_lag_ms,
         w.max_lag_ms,
         pg_catalog.round(pg_catalog.date_part('epoch',
             pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) w.updated_at)
             OPERATOR(pg_catalog.*) 1000)::bigint AS idle_ms,
         w.applied_count,
         w.duplicate_count,
         w.regression_count,
         w.gap_count,
         w.apply_lag_ms AS wm_lag_ms,
         pg_catalog.round(pg_catalog.date_part('epoch',
             pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) w.last_event_time)
             OPERATOR(pg_catalog.*) 1000)::bigint AS last_event_age_ms,
         w.replay_count,
         w.race_count
    FROM ptm.projection_watermarks w;

COMMENT ON VIEW ptm.projection_lag IS
  'Watermarks with their lag: wm_lag_ms (= apply_lag_ms, the gauge projection_materializer_wm_lag_ms: how old the last applied event was when applied), max_lag_ms (projection_materializer_max_lag_ms), last_event_age_ms (how old that event is now, growing while idle; lag_ms is its 0.1.0 name), idle_ms (since the watermark moved); the counts, replays and races among them';

-- ---------------------------------------------------------------------
-- Entry points named by version (docs/architecture.md, "Versions of the SQL
-- objects and the library").  The C code of these functions reads and writes
-- the 0.2.0 tables; its symbols end in _0_2, and the symbols 0.1.0 named
-- raise "run ALTER EXTENSION ptm_lease UPDATE" (src/old_versions.c).  Each
-- is redefined here exactly as a fresh install defines it (sql/install/),
-- keeping its grants and comment; force_expire got its _0_2 symbol above.
-- renew_lease, release_lease, acquire_partition_lease, check_fence,
-- try_commit and claim_step have no SET clause any more: their hot path runs no SQL
-- (src/row_access.c) and they pin search_path in C before any, which saves
-- every call a GUC save and restore.
-- ---------------------------------------------------------------------
CREATE OR REPLACE FUNCTION ptm.acquire_partition_lease(
    topic text, partition_id integer, agent_id text,
    ttl interval DEFAULT '30 s')
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_acquire_partition_lease_0_2';

CREATE OR REPLACE FUNCTION ptm.renew_lease(
    topic text, partition_id integer, agent_id text, lease_epoch bigint,
    ttl interval DEFAULT '30 s')
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_renew_lease_0_2';

CREATE OR REPLACE FUNCTION ptm.release_lease(
    topic text, partition_id integer, agent_id text, lease_epoch bigint)
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_release_lease_0_2';

CREATE OR REPLACE FUNCTION ptm.check_fence(
    topic text, partition_id integer, lease_epoch bigint)
RETURNS void
LANGUAGE c VOLATILE SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_check_fence_0_2';

CREATE OR REPLACE FUNCTION ptm.acquire_partition_leases(
    topic text, agent_id text, max_leases integer,
    ttl interval DEFAULT '30 s')
RETURNS SETOF ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_acquire_partition_leases_0_2';

CREATE OR REPLACE FUNCTION ptm.renew_leases(
    agent_id text, topics text[], partition_ids integer[], lease_epochs bigint[],
    ttl interval DEFAULT '30 s')
RETURNS SETOF ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_renew_leases_0_2';

CREATE OR REPLACE FUNCTION ptm.ensure_partitions(topic text, partitions integer)
RETURNS integer
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_ensure_partitions_0_2';

CREATE OR REPLACE FUNCTION ptm.try_commit(
    workflow_key text,
    expected_version bigint,
    new_state jsonb,
    action_id text DEFAULT NULL,
    fence_topic text DEFAULT NULL,
    fence_partition integer DEFAULT NULL,
    fence_epoch bigint DEFAULT NULL,
    OUT result text, OUT version bigint, OUT state jsonb)
RETURNS record
LANGUAGE c VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_try_commit_0_2';

CREATE OR REPLACE FUNCTION ptm.get_state(
    workflow_key text,
    OUT version bigint, OUT state jsonb, OUT updated_at timestamptz)
RETURNS record
LANGUAGE c STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_get_state_0_2';

CREATE OR REPLACE FUNCTION ptm.claim_step(
    workflow_key text,
    step bigint,
    worker_id text,
    ttl interval DEFAULT '30 s',
    OUT result text, OUT workflow_key text, OUT step bigint, OUT worker_id text,
    OUT claim_epoch bigint, OUT expires_at timestamptz)
RETURNS record
LANGUAGE c VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_claim_step_0_2';

CREATE OR REPLACE FUNCTION ptm.apply_projection(
    projection text, partition_id integer, "offset" bigint, key text, data jsonb,
    event_time timestamptz DEFAULT NULL,
    fence_topic text DEFAULT NULL, fence_partition integer DEFAULT NULL,
    fence_epoch bigint DEFAULT NULL,
    OUT result text, OUT watermark bigint, OUT previous_watermark bigint, OUT skipped bigint)
RETURNS record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_apply_projection_0_2';

CREATE OR REPLACE FUNCTION ptm.apply_projection_batch(
    projection text, partition_id integer, offsets bigint[], keys text[], datas jsonb[],
    event_times timestamptz[] DEFAULT NULL,
    fence_topic text DEFAULT NULL, fence_partition integer DEFAULT NULL,
    fence_epoch bigint DEFAULT NULL,
    OUT ordinality integer, OUT "offset" bigint, OUT key text, OUT result text,
    OUT watermark bigint, OUT final_watermark bigint)
RETURNS SETOF record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_apply_projection_batch_0_2';

CREATE OR REPLACE FUNCTION ptm.reset_projection(
    projection text, partition_id integer DEFAULT NULL,
    delete_rows boolean DEFAULT false, reason text DEFAULT NULL,
    OUT result text, OUT partitions_reset integer, OUT rows_deleted bigint)
RETURNS record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_reset_projection_0_2';
