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
    ('ptm.force_expire(text, integer, text)', 'operator'),
    ('ptm.reset_counters()', 'operator'),
    ('ptm.reset_projection(text, integer, boolean, text)', 'operator'),
    ('ptm.snapshot_metrics()', 'operator')
  ) AS f(name, needed_by), pg_catalog.to_regprocedure(f.name) AS p
  WHERE p IS NOT NULL
$$;
