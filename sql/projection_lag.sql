-- Two lags, one name each (issue 18).  For a partition idle since its last
-- event, psql's lag_ms showed 433312 while the gauge showed 3: the gauge
-- (projection_materializer_wm_lag_ms) is how old the last applied event was
-- when it was applied, lag_ms how old it is now.  projection_lag names them
-- wm_lag_ms and last_event_age_ms; lag_ms stays, as the 0.1.0 name of the
-- second.
SET search_path = public, ptm;

-- An event applied about 3 ms after its event time...
SELECT result FROM apply_projection('lag-idle', 0, 1, 'k', '{}', clock_timestamp() - interval '3 ms');
-- ...then 433 s of silence: the watermark's times are moved back by hand (the
-- table is not guarded, and waiting seven minutes is not a test).
UPDATE projection_watermarks
   SET last_event_time = last_event_time - interval '433312 ms',
       updated_at = updated_at - interval '433312 ms'
 WHERE projection = 'lag-idle';

-- Both values, each under its own name.
SELECT wm_lag_ms BETWEEN 3 AND 5000 AS wm_lag_is_the_apply_lag,
       wm_lag_ms = apply_lag_ms AS wm_lag_ms_is_apply_lag_ms,
       max_lag_ms = wm_lag_ms AS max_lag_ms_so_far,
       last_event_age_ms >= 433312 AS last_event_age_grew_while_idle,
       lag_ms = last_event_age_ms AS lag_ms_is_the_age,
       idle_ms >= 433312 AS idle_for_7_minutes
  FROM projection_lag WHERE projection = 'lag-idle';

-- The gauges are the columns of the same names, whichever way they are read:
-- ptm.projection_metrics, ptm.metrics (the exporter's query), metrics_text().
SELECT m.metric, m.value = l.wm_lag_ms AS equals_wm_lag_ms,
       m.value < l.last_event_age_ms AS not_the_age
  FROM projection_metrics m
  JOIN projection_lag l ON l.projection = m.labels->>'projection'
                       AND l.partition_id = (m.labels->>'partition')::integer
 WHERE l.projection = 'lag-idle' AND m.metric = 'projection_materializer_wm_lag_ms'
UNION ALL
SELECT m.metric, m.value = l.max_lag_ms, m.value < l.last_event_age_ms
  FROM metrics m
  JOIN projection_lag l ON l.projection = m.labels->>'projection'
 WHERE l.projection = 'lag-idle' AND m.metric = 'projection_materializer_max_lag_ms'
UNION ALL
SELECT m.metric, m.value = l.wm_lag_ms, m.value < l.last_event_age_ms
  FROM metrics m
  JOIN projection_lag l ON l.projection = m.labels->>'projection'
 WHERE l.projection = 'lag-idle' AND m.metric = 'projection_materializer_wm_lag_ms';
SELECT line = 'projection_materializer_wm_lag_ms{partition="0",projection="lag-idle"} '
              || (SELECT wm_lag_ms FROM projection_lag WHERE projection = 'lag-idle') AS text_is_wm_lag_ms
  FROM regexp_split_to_table(metrics_text(), E'\n') AS line
 WHERE line LIKE 'projection_materializer_wm_lag_ms{%lag-idle%';

-- The next event, applied 1 s after its time, moves the gauge; the age is
-- back to about a second.
SELECT result FROM apply_projection('lag-idle', 0, 2, 'k', '{}', clock_timestamp() - interval '1 s');
SELECT wm_lag_ms BETWEEN 1000 AND 6000 AS wm_lag_about_1s,
       last_event_age_ms BETWEEN 1000 AND 60000 AS age_about_1s,
       idle_ms < 60000 AS moved
  FROM projection_lag WHERE projection = 'lag-idle';

SELECT result, partitions_reset FROM reset_projection('lag-idle', reason => 'projection_lag test');
