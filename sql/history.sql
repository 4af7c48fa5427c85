-- Metric history: ptm.increase(), ptm.rate() and ptm.histogram_quantile() on a
-- synthetic history (fixed times, so the results are exact), then
-- ptm.snapshot_metrics() on the live counters, bad input and privileges.
-- The regression database has no worker (it is not in ptm_lease.database),
-- so nothing else writes ptm.metric_history here.
SET search_path = public, ptm;
SET timezone = 'UTC';

-- ptm_commit_total, one sample every 30 s from 12:00:00 to 12:06:00:
--   ok:             +3 per sample, steadily
--   cas_conflict:   10 20 30 then a reset (a crash): 5 15 25 ...
--   fencing_reject: appears at 12:03:00 (4, 6, 9, ...)
--   duplicate:      one sample only, at 12:04:00
INSERT INTO ptm.metric_history (sampled_at, metric, labels, value)
SELECT t, 'ptm_commit_total', '{"result": "ok"}', 3 * i
  FROM generate_series(0, 12) AS i,
       LATERAL (SELECT timestamptz '2025-01-01 12:00:00+00' + i * interval '30 s' AS t) AS s;
INSERT INTO ptm.metric_history (sampled_at, metric, labels, value)
SELECT timestamptz '2025-01-01 12:00:00+00' + i * interval '30 s', 'ptm_commit_total',
       '{"result": "cas_conflict"}', v
  FROM unnest(ARRAY[10, 20, 30, 5, 15, 25, 35, 45, 55, 65, 75, 85, 95]) WITH ORDINALITY AS u(v, n),
       LATERAL (SELECT n - 1 AS i) AS s;
INSERT INTO ptm.metric_history (sampled_at, metric, labels, value) VALUES
  ('2025-01-01 12:03:00+00', 'ptm_commit_total', '{"result": "fencing_reject"}', 4),
  ('2025-01-01 12:03:30+00', 'ptm_commit_total', '{"result": "fencing_reject"}', 6),
  ('2025-01-01 12:04:00+00', 'ptm_commit_total', '{"result": "fencing_reject"}', 9),
  ('2025-01-01 12:04:30+00', 'ptm_commit_total', '{"result": "fencing_reject"}', 9),
  ('2025-01-01 12:05:00+00', 'ptm_commit_total', '{"result": "fencing_reject"}', 12),
  ('2025-01-01 12:04:00+00', 'ptm_commit_total', '{"result": "duplicate"}', 7);

-- The window (11:59:00, 12:01:00] holds 12:00:00, 12:00:30 and 12:01:00.
SELECT labels->>'result' AS result, increase, samples, first_sample, last_sample
  FROM ptm.increase('ptm_commit_total', '2 min', '2025-01-01 12:01:00+00');

-- Five minutes ending 12:05:00: samples 12:00:30 .. 12:05:00 (the start is
-- excluded, 12:05:30 and later are after the window).
--   ok:             27 over 270 s = 0.1/s
--   cas_conflict:   20 -> 30 (+10), the reset to 5 (+5), then +10 seven times: 85 over 270 s
--   fencing_reject: 12 - 4 = 8 over its own 120 s
--   duplicate:      one sample: no increase, no rate
SELECT labels->>'result' AS result, increase, samples
  FROM ptm.increase('ptm_commit_total', '5 min', '2025-01-01 12:05:00+00');
SELECT labels->>'result' AS result, round(rate::numeric, 6) AS rate, samples,
       last_sample - first_sample AS span
  FROM ptm.rate('ptm_commit_total', '5 min', '2025-01-01 12:05:00+00');

-- The reset, step by step: 20 -> 30 (+10), 30 -> 5 is a restart (+5), 5 -> 15
-- (+10): 25, where last minus first would say -5.
SELECT increase FROM ptm.increase('ptm_commit_total', '2 min', '2025-01-01 12:02:00+00')
 WHERE labels->>'result' = 'cas_conflict';

-- The runbook's questions: sum(rate(ptm_commit_total{result="fencing_reject"}[5m])),
-- sum by (result) (...), and a ratio.
SELECT round(sum(rate)::numeric, 6) AS fencing_reject_per_s
  FROM ptm.rate('ptm_commit_total', '5 min', '2025-01-01 12:05:00+00')
 WHERE labels->>'result' = 'fencing_reject';
SELECT round((sum(rate) FILTER (WHERE labels->>'result' = 'cas_conflict')
              / sum(rate))::numeric, 4) AS cas_conflict_share
  FROM ptm.rate('ptm_commit_total', '5 min', '2025-01-01 12:05:00+00');

-- A window with no sample at all: no rows.
SELECT count(*) AS rows_before_history
  FROM ptm.rate('ptm_commit_total', '1 hour', '2025-01-01 11:00:00+00');

-- A metric the library does not know is accepted when it has samples (an
-- older version's counter, say).
INSERT INTO ptm.metric_history (sampled_at, metric, labels, value) VALUES
  ('2025-01-01 12:00:00+00', 'legacy_total', '{}', 1),
  ('2025-01-01 12:01:00+00', 'legacy_total', '{}', 61);
SELECT labels, rate FROM ptm.rate('legacy_total', '10 min', '2025-01-01 12:05:00+00');

-- histogram_quantile: 100 observations between two samples, 50 of them
-- <= 1 ms, 90 <= 5 ms, all <= 10 ms (cumulative buckets, as Prometheus).
INSERT INTO ptm.metric_history (sampled_at, metric, labels, value)
SELECT t, 'canonical_store_commit_latency_ms_bucket', jsonb_build_object('le', le), v * f
  FROM (VALUES ('0.5', 20), ('1', 50), ('5', 90), ('10', 100), ('+Inf', 100)) AS b(le, v),
       (VALUES (timestamptz '2025-01-01 12:00:00+00', 0), ('2025-01-01 12:01:00+00', 1)) AS s(t, f);
SELECT q, ptm.histogram_quantile(q, 'canonical_store_commit_latency_ms_bucket', '5 min',
                                 '2025-01-01 12:02:00+00') AS ms
  FROM unnest(ARRAY[0.1, 0.5, 0.95, 1]) AS q;
-- Observations above the largest bound: the quantile is that bound.
INSERT INTO ptm.metric_history (sampled_at, metric, labels, value)
VALUES ('2025-01-01 12:03:00+00', 'canonical_store_commit_latency_ms_bucket', '{"le": "0.5"}', 20),
       ('2025-01-01 12:03:00+00', 'canonical_store_commit_latency_ms_bucket', '{"le": "1"}', 50),
       ('2025-01-01 12:03:00+00', 'canonical_store_commit_latency_ms_bucket', '{"le": "5"}', 90),
       ('2025-01-01 12:03:00+00', 'canonical_store_commit_latency_ms_bucket', '{"le": "10"}', 100),
       ('2025-01-01 12:03:00+00', 'canonical_store_commit_latency_ms_bucket', '{"le": "+Inf"}', 200);
SELECT ptm.histogram_quantile(0.99, 'canonical_store_commit_latency_ms_bucket', '150 s',
                              '2025-01-01 12:03:00+00') AS above_largest_bound;
-- No observation in the window, or a single sample: NULL.
SELECT ptm.histogram_quantile(0.95, 'canonical_store_commit_latency_ms_bucket', '1 min',
                              '2025-01-01 12:01:59+00') AS one_sample,
       ptm.histogram_quantile(0.95, 'recovery_latency_ms_bucket', '1 hour') AS no_history;

-- Bad input: an ERROR naming the problem, nothing else happens.
SELECT * FROM ptm.rate(NULL, '5 min');
SELECT * FROM ptm.rate('ptm_commit_total', NULL);
SELECT * FROM ptm.rate('ptm_commit_total', '5 min', NULL);
SELECT * FROM ptm.rate('ptm_commit_total', '0 s');
SELECT * FROM ptm.rate('ptm_commit_total', '-5 min');
SELECT * FROM ptm.increase('ptm_commit_total', '1 mon -31 days');
SELECT * FROM ptm.rate('ptm_commit_total', '5 min', 'infinity');
SELECT * FROM ptm.rate('no_such_metric_total', '5 min');
SELECT * FROM ptm.rate('projection_materializer_wm_lag_ms', '5 min');
SELECT * FROM ptm.rate('canonical_store_commit_latency_ms', '5 min');
SELECT ptm.histogram_quantile(NULL, 'canonical_store_commit_latency_ms_bucket', '5 min');
SELECT ptm.histogram_quantile(1.5, 'canonical_store_commit_latency_ms_bucket', '5 min');
SELECT ptm.histogram_quantile('NaN', 'canonical_store_commit_latency_ms_bucket', '5 min');
SELECT ptm.histogram_quantile(0.95, 'canonical_store_commit_latency_ms_count', '5 min');
SELECT ptm.histogram_quantile(0.95, 'canonical_store_commit_latency_ms_bucket', '0 s');

-- Live counters: a snapshot writes every counter and histogram series (not
-- the gauges), at one time; three commits between two snapshots are an
-- increase of exactly 3.
DELETE FROM ptm.metric_history;
SELECT ptm.snapshot_metrics() = (SELECT count(*) FROM ptm.metric_series
                                  WHERE type IN ('counter', 'histogram')) AS every_series;
SELECT count(DISTINCT sampled_at) AS times, count(*) FILTER (WHERE metric LIKE '%lag_ms') AS gauges
  FROM ptm.metric_history;
SELECT result FROM ptm.try_commit('history-wf', 0, '{"n": 1}');
SELECT result FROM ptm.try_commit('history-wf', 1, '{"n": 2}');
SELECT result FROM ptm.try_commit('history-wf', 2, '{"n": 3}');
SELECT ptm.snapshot_metrics() > 0 AS second_snapshot;
SELECT labels->>'result' AS result, increase, samples
  FROM ptm.increase('ptm_commit_total', '1 hour') ORDER BY 1;
SELECT labels, increase FROM ptm.increase('ptm_claim_cleanup_deleted_total', '1 hour');

-- Who may: a snapshot is an operator's (or the worker's) act; reading is
-- pg_monitor's.
CREATE ROLE history_nobody;
CREATE ROLE history_monitor IN ROLE pg_monitor;
CREATE ROLE history_oncall;
SELECT count(*) > 0 AS granted FROM ptm.grant_operator('history_oncall');
SET ROLE history_nobody;
SELECT ptm.snapshot_metrics();
SELECT * FROM ptm.rate('ptm_commit_total', '5 min');
SELECT count(*) FROM ptm.metric_history;
SET ROLE history_monitor;
SELECT count(*) >= 0 AS monitor_reads FROM ptm.rate('ptm_commit_total', '5 min');
SELECT ptm.snapshot_metrics();
SET ROLE history_oncall;
SELECT ptm.snapshot_metrics() > 0 AS operator_snapshots;
RESET ROLE;
SELECT needed_by FROM ptm.role_functions() WHERE function = 'ptm.snapshot_metrics()'::regprocedure;
DROP OWNED BY history_oncall;
DROP ROLE history_nobody, history_monitor, history_oncall;
DELETE FROM ptm.metric_history;
