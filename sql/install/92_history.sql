-- Metric history (issue 7): snapshots of the counter and histogram series of
-- ptm.metric_series, taken by the background worker every
-- ptm_lease.history_interval (or on demand with ptm.snapshot_metrics()), and
-- the PromQL functions over them: ptm.increase(), ptm.rate(),
-- ptm.histogram_quantile().  See docs/workers.md.
--
-- The counters are per server; the table is per database.  Each database's
-- worker samples the same server-wide series into its own table, so a rate
-- in any database is the rate of the whole server.

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
