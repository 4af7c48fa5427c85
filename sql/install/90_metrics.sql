-- Counters, histograms and per-key statistics in shared memory (they need
-- shared_preload_libraries), the runbooks' views over them, and the Prometheus
-- text exposition.  See docs/metrics.md.  Everything here is readable by
-- pg_monitor; the functions behind the views are not for PUBLIC.

CREATE FUNCTION ptm._metric_series(
    OUT family text, OUT type text, OUT help text,
    OUT metric text, OUT labels jsonb, OUT value double precision)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_metric_series';

COMMENT ON FUNCTION ptm._metric_series() IS
  'Every series kept in shared memory, with its family, type and help; use ptm.metric_series';

-- The one list of series: ptm.metrics and ptm.metrics_text() read it, so a
-- series added here (a gauge computed from a table, UNION ALL) appears in
-- both.  The projection lag gauges come from this database's watermarks;
-- the counters are the server's.  Histogram series are one row per _bucket
-- (label le), _sum and _count.
CREATE VIEW ptm.metric_series AS
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

COMMENT ON VIEW ptm.metric_series IS
  'Every metric series with its Prometheus family, TYPE and HELP: what ptm.metrics and ptm.metrics_text() show';

CREATE VIEW ptm.metrics AS
  SELECT metric, labels, value FROM ptm.metric_series;

COMMENT ON VIEW ptm.metrics IS
  'One row per metric series (metric, labels, value), names as the runbooks spell them';

-- Histograms in the shape postgres_exporter's HISTOGRAM columns want: upper
-- bounds without +Inf, cumulative counts for those bounds, sum and count.
CREATE VIEW ptm.histograms AS
  SELECT family AS metric,
         pg_catalog.array_agg((labels->>'le')::double precision
                              ORDER BY (labels->>'le')::double precision)
           FILTER (WHERE metric = family || '_bucket' AND labels->>'le' <> '+Inf') AS bounds,
         pg_catalog.array_agg(value::bigint ORDER BY (labels->>'le')::double precision)
           FILTER (WHERE metric = family || '_bucket' AND labels->>'le' <> '+Inf') AS bucket_counts,
         pg_catalog.max(value) FILTER (WHERE metric = family || '_sum') AS sum,
         (pg_catalog.max(value) FILTER (WHERE metric = family || '_count'))::bigint AS count
    FROM ptm.metric_series
   WHERE type = 'histogram'
   GROUP BY family;

COMMENT ON VIEW ptm.histograms IS
  'One row per histogram: bucket upper bounds (ms, without +Inf), cumulative counts per bound, sum and count';

-- The runbooks' families, one view each.
CREATE VIEW ptm.commit_results AS
  SELECT labels->>'result' AS result, value::bigint AS total
    FROM ptm.metrics WHERE metric = 'ptm_commit_total';

COMMENT ON VIEW ptm.commit_results IS
  'try_commit() calls by result (ptm_commit_total): ok, cas_conflict, fencing_reject, duplicate';

CREATE VIEW ptm.claim_results AS
  SELECT labels->>'result' AS result, value::bigint AS total
    FROM ptm.metrics WHERE metric = 'ptm_claim_total';

COMMENT ON VIEW ptm.claim_results IS
  'claim_step() calls by result (ptm_claim_total): claimed, stale, out_of_order, busy';

CREATE VIEW ptm.lease_outcomes AS
  SELECT metric, labels->>'result' AS result, value::bigint AS total
    FROM ptm.metrics WHERE metric LIKE 'lease\_%';

COMMENT ON VIEW ptm.lease_outcomes IS
  'Every lease counter (acquisitions, renewals, conflicts, releases, forced expirations, expirations, fence checks) by result';

-- Per-key statistics of the current database.
CREATE FUNCTION ptm._key_counters(
    OUT family text, OUT key text, OUT metric text, OUT labels jsonb,
    OUT value double precision)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_key_counters';

COMMENT ON FUNCTION ptm._key_counters() IS
  'Non-zero counts per tracked topic and workflow key of this database; use ptm.key_counters';

CREATE VIEW ptm.key_counters AS
  SELECT family, key, metric, labels, value FROM ptm._key_counters();

COMMENT ON VIEW ptm.key_counters IS
  'Counts per topic (family topic) and per workflow key (family workflow), for the keys still tracked (ptm_lease.max_tracked_keys)';

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

-- State of the counters themselves.
CREATE FUNCTION ptm._stat_info(
    OUT stats_reset timestamptz, OUT evictions bigint,
    OUT tracked_keys bigint, OUT max_tracked_keys integer)
RETURNS record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_stat_info';

COMMENT ON FUNCTION ptm._stat_info() IS
  'Backs ptm.stat_info; use the view';

CREATE VIEW ptm.stat_info AS
  SELECT stats_reset, evictions, tracked_keys, max_tracked_keys FROM ptm._stat_info();

COMMENT ON VIEW ptm.stat_info IS
  'When the counters last started from zero (reset, crash, first start), and per-key entries evicted, tracked and allowed';

CREATE FUNCTION ptm.reset_counters()
RETURNS timestamptz
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_reset_counters';

COMMENT ON FUNCTION ptm.reset_counters() IS
  'Set every counter and histogram to zero and forget tracked keys; returns the new stats_reset time';

-- Prometheus text exposition format 0.0.4.  Families are grouped (one HELP and
-- TYPE each), histogram buckets in ascending le, label values and HELP text
-- escaped as the format requires, values as Prometheus spells them (+Inf, NaN).
CREATE FUNCTION ptm.metrics_text()
RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  WITH series AS (
    SELECT s.family, s.type, s.help, s.metric, s.value,
           (SELECT COALESCE('{' || string_agg(
                      l.key || '="' ||
                      replace(replace(replace(l.value, '\', '\\'), '"', '\"'), E'\n', '\n') || '"',
                      ',' ORDER BY l.key = 'le', l.key) || '}', '')
              FROM jsonb_each_text(s.labels) AS l) AS label_text,
           CASE WHEN s.labels ? 'le' THEN (s.labels->>'le')::double precision END AS le
      FROM ptm.metric_series AS s
  ), families AS (
    SELECT family, min(type) AS type, min(help) AS help,
           string_agg(metric || label_text || ' ' ||
                        CASE WHEN value = 'Infinity' THEN '+Inf'
                             WHEN value = '-Infinity' THEN '-Inf'
                             ELSE value::text END,
                      E'\n' ORDER BY metric, le, label_text) AS lines
      FROM series
     GROUP BY family
  )
  SELECT COALESCE(string_agg(
           '# HELP ' || family || ' ' ||
             replace(replace(help, '\', '\\'), E'\n', '\n') || E'\n' ||
           '# TYPE ' || family || ' ' || type || E'\n' || lines || E'\n',
           '' ORDER BY family), '')
    FROM families;
END;

COMMENT ON FUNCTION ptm.metrics_text() IS
  'Every series of ptm.metric_series in Prometheus text format 0.0.4, with HELP and TYPE lines';

-- Readable by pg_monitor, not by PUBLIC; reset only by the owner and whom it grants.
REVOKE ALL ON FUNCTION ptm._metric_series(), ptm._key_counters(), ptm._stat_info(),
                       ptm.metrics_text(), ptm.reset_counters() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ptm._metric_series(), ptm._key_counters(), ptm._stat_info(),
                          ptm.metrics_text() TO pg_monitor;
GRANT SELECT ON ptm.metric_series, ptm.metrics, ptm.histograms, ptm.commit_results,
                ptm.claim_results, ptm.lease_outcomes, ptm.key_counters,
                ptm.top_workflow_conflicts, ptm.top_topic_conflicts, ptm.stat_info
   TO pg_monitor;
