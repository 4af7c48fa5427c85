-- The counter views exist from the start, every series at 0 after a reset,
-- and resetting is not for PUBLIC.  (Exact counts after a workload are tested
-- with each feature: leases, commits, projections.)
SET search_path = public, ptm;

SELECT ptm.reset_counters() <= now() + interval '1 minute' AS reset_done;
SELECT count(*) > 0 AS has_series, sum(value) AS total FROM ptm.metrics;

-- Every series, by family: each label value is there before anything happened.
SELECT metric, count(*) AS series,
       string_agg(COALESCE(labels->>'result', labels->>'reason', labels->>'le', ''), ',' ORDER BY labels::text) AS labels
  FROM ptm.metrics
 GROUP BY metric
 ORDER BY metric;

-- One family per metric name, one TYPE each; histogram series belong to theirs.
SELECT family, type, count(*) AS series
  FROM ptm.metric_series
 WHERE type <> 'counter'
 GROUP BY family, type
 ORDER BY family;
SELECT count(*) AS counters_not_own_family
  FROM ptm.metric_series WHERE type = 'counter' AND family <> metric;

-- Histograms as postgres_exporter wants them: bounds, cumulative counts, sum, count.
SELECT metric, bounds, bucket_counts, sum, count FROM ptm.histograms ORDER BY metric;

-- The runbooks' families.
SELECT * FROM ptm.commit_results ORDER BY result;
SELECT * FROM ptm.claim_results ORDER BY result;
SELECT * FROM ptm.lease_outcomes ORDER BY metric, result;

-- Per-key statistics: nothing tracked after a reset.
SELECT count(*) AS keys FROM ptm.key_counters;
SELECT count(*) AS workflows FROM ptm.top_workflow_conflicts;
SELECT count(*) AS topics FROM ptm.top_topic_conflicts;
SELECT stats_reset > now() - interval '1 minute' AS recently_reset,
       evictions, tracked_keys, max_tracked_keys
  FROM ptm.stat_info;

-- The hash is sized at server start.
SET ptm_lease.max_tracked_keys = 5000;
SHOW ptm_lease.max_tracked_keys;

-- Prometheus text: one HELP and one TYPE line per family, every series once,
-- and a final newline.
SELECT count(*) FILTER (WHERE line LIKE '# HELP %') AS help_lines,
       count(*) FILTER (WHERE line LIKE '# TYPE %') AS type_lines,
       count(*) FILTER (WHERE line NOT LIKE '#%') AS sample_lines,
       (SELECT count(*) FROM ptm.metrics) AS series,
       (SELECT count(DISTINCT family) FROM ptm.metric_series) AS families
  FROM regexp_split_to_table(rtrim(ptm.metrics_text(), E'\n'), E'\n') AS line;
SELECT right(ptm.metrics_text(), 1) = E'\n' AS ends_with_newline;
SELECT line
  FROM regexp_split_to_table(ptm.metrics_text(), E'\n') AS line
 WHERE line LIKE '%ptm_commit_total%' OR line LIKE '%recovery_latency_ms%'
    OR line LIKE '%duplicate_events_skipped%';

-- reset_counters() is revoked from PUBLIC; pg_monitor may read the views and
-- the text, PUBLIC may not.
CREATE ROLE ptm_test_nobody;
SET ROLE ptm_test_nobody;
SELECT ptm.reset_counters();
SELECT count(*) FROM ptm.metrics;
SELECT count(*) FROM ptm._metric_series();
SELECT length(ptm.metrics_text()) > 0;
SELECT count(*) FROM ptm.stat_info;
RESET ROLE;
GRANT pg_monitor TO ptm_test_nobody;
SET ROLE ptm_test_nobody;
SELECT count(*) > 0 AS monitor_can_read FROM ptm.metrics;
SELECT length(ptm.metrics_text()) > 0 AS monitor_can_scrape;
SELECT (SELECT count(*) FROM ptm.histograms) + (SELECT count(*) FROM ptm.commit_results)
     + (SELECT count(*) FROM ptm.claim_results) + (SELECT count(*) FROM ptm.lease_outcomes)
     + (SELECT count(*) FROM ptm.key_counters) + (SELECT count(*) FROM ptm.top_workflow_conflicts)
     + (SELECT count(*) FROM ptm.top_topic_conflicts) + (SELECT count(*) FROM ptm.stat_info) > 0
       AS monitor_reads_every_view;
SELECT ptm.reset_counters();
RESET ROLE;
DROP ROLE ptm_test_nobody;
