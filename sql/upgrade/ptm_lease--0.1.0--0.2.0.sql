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

