-- apply_projection(): applied, duplicate, regression, gaps,
-- deletes, fencing, the batch form, lag, reset, and the exact counter deltas.
SET search_path = public, ptm;
\set VERBOSITY default
SELECT ptm.reset_counters() IS NOT NULL AS counters_reset;

-- A new partition: the first event is applied whatever its offset.
SELECT * FROM apply_projection('orders', 0, 5, 'wf-1', '{"state": "new"}');
SELECT * FROM apply_projection('orders', 0, 6, 'wf-2', '{"state": "new"}');
-- The same offset again: duplicate, nothing written.
SELECT * FROM apply_projection('orders', 0, 6, 'wf-2', '{"state": "changed"}');
-- Below the watermark: regression, skipped (a replay: logged at LOG, at most once a
-- minute per partition; sql/projection_replays.sql shows the messages).
SELECT * FROM apply_projection('orders', 0, 3, 'wf-1', '{"state": "old"}');
-- Offsets are not dense: a gap is applied and counted.
SELECT * FROM apply_projection('orders', 0, 10, 'wf-1', '{"state": "paid"}');
-- NULL data deletes the row.
SELECT * FROM apply_projection('orders', 0, 11, 'wf-2', NULL);
-- Deleting a key that has no row is applied all the same.
SELECT * FROM apply_projection('orders', 0, 12, 'wf-404', NULL);
-- Another partition of the same projection has its own watermark.
SELECT * FROM apply_projection('orders', 1, 0, 'wf-3', '{"state": "new"}',
                               now() - interval '2 seconds');

SELECT projection, key, data, source_partition, source_offset
  FROM workflow_projection WHERE projection = 'orders' ORDER BY projection, key;
SELECT projection, partition_id, "offset", previous_offset, applied_count,
       duplicate_count, regression_count, gap_count,
       last_regression_at IS NOT NULL AS regressed
  FROM projection_watermarks WHERE projection = 'orders' ORDER BY projection, partition_id;

-- The runbook's queries (seed 003) run verbatim (their rows carry times).
\o /dev/null
SELECT * FROM projection_watermarks ORDER BY updated_at DESC LIMIT 10;
\o
\echo rows: :ROW_COUNT
\o /dev/null
SELECT * FROM projection_watermarks ORDER BY updated_at DESC LIMIT 20;
\o
\echo rows: :ROW_COUNT
\o /dev/null
SELECT * FROM projection_watermarks;
\o
\echo rows: :ROW_COUNT
\o /dev/null
SELECT * FROM projection_watermarks ORDER BY updated_at DESC;
\o
\echo rows: :ROW_COUNT

-- Lag: partition 1's event was 2 s old when applied.
SELECT projection, partition_id, watermark,
       apply_lag_ms BETWEEN 2000 AND 60000 AS apply_lag_about_2s,
       max_lag_ms >= apply_lag_ms AS max_covers_last,
       lag_ms >= apply_lag_ms AS lag_grows_to_now,
       idle_ms >= 0 AS idle_known
  FROM projection_lag WHERE projection = 'orders' ORDER BY projection, partition_id;
SELECT metric, labels FROM projection_metrics WHERE labels->>'projection' = 'orders'
 ORDER BY metric, labels::text;

-- A later, fresher event: the lag shrinks, the max stays.
SELECT result FROM apply_projection('orders', 1, 1, 'wf-3', '{"state": "paid"}', now());
SELECT apply_lag_ms < 2000 AS lag_shrank, max_lag_ms >= 2000 AS max_kept
  FROM projection_lag WHERE projection = 'orders' AND partition_id = 1;
-- An event without event_time keeps the last known one.
SELECT result FROM apply_projection('orders', 1, 2, 'wf-3', '{"state": "shipped"}');
SELECT last_event_time IS NOT NULL AS event_time_kept
  FROM projection_watermarks WHERE projection = 'orders' AND partition_id = 1;

-- Batch: out of order input is applied in offset order; duplicates within the
-- batch and below the watermark are reported per event.
SELECT * FROM apply_projection_batch('orders', 0,
    ARRAY[14, 13, 13, 9, 12, 20, 21]::bigint[],
    ARRAY['wf-5', 'wf-4', 'wf-4x', 'wf-1', 'wf-1', 'wf-4', 'wf-5'],
    ARRAY['{"v": 14}', '{"v": 13}', '{"v": 0}', '{"v": 9}', '{"v": 12}', '{"v": 20}', NULL]::jsonb[]);
-- wf-4 holds the last of its events (offset 20); wf-5 was written then deleted.
SELECT key, data, source_offset FROM workflow_projection
 WHERE projection = 'orders' AND key IN ('wf-4', 'wf-4x', 'wf-5') ORDER BY key;
-- A batch on a new partition creates its watermark; event_times give the lag.
SELECT ordinality, "offset", result, watermark, final_watermark
  FROM apply_projection_batch('invoices', 3, ARRAY[100, 101]::bigint[], ARRAY['a', 'b'],
                              ARRAY['{}', '{}']::jsonb[],
                              ARRAY[now() - interval '5 s', now() - interval '1 s']);
SELECT "offset", previous_offset, applied_count, gap_count,
       apply_lag_ms BETWEEN 1000 AND 60000 AS last_lag_1s,
       max_lag_ms BETWEEN 5000 AND 60000 AS max_lag_5s
  FROM projection_watermarks WHERE projection = 'invoices';
-- An empty batch changes nothing and returns no rows.
SELECT * FROM apply_projection_batch('invoices', 3, '{}', '{}', '{}');

-- Fenced apply: the lease epoch must be current and live.  Epoch 1 was
-- taken over by epoch 2.
SELECT lease_epoch AS old_epoch FROM acquire_partition_lease('orders-topic', 0, 'm0') \gset
SELECT result FROM force_expire('orders-topic', 0, 'm0 moved away');
SELECT lease_epoch AS epoch FROM acquire_partition_lease('orders-topic', 0, 'm1') \gset
SELECT :epoch > :old_epoch AS epoch_raised;
SELECT * FROM apply_projection('orders', 0, 30, 'wf-6', '{"v": 30}', NULL,
                               'orders-topic', 0, :epoch);
SELECT * FROM apply_projection('orders', 0, 31, 'wf-6', '{"v": 31}', NULL,
                               'orders-topic', 0, :old_epoch);
SELECT * FROM apply_projection('orders', 0, 31, 'wf-6', '{"v": 31}', NULL,
                               'no-such-topic', 0, 1);
SELECT result FROM force_expire('orders-topic', 0, 'materializer m1 is stuck');
SELECT * FROM apply_projection('orders', 0, 31, 'wf-6', '{"v": 31}', NULL,
                               'orders-topic', 0, :epoch);
SELECT ordinality, result, watermark, final_watermark
  FROM apply_projection_batch('orders', 0, ARRAY[31, 32]::bigint[], ARRAY['wf-6', 'wf-6'],
                              ARRAY['{}', '{}']::jsonb[], NULL, 'orders-topic', 0, :epoch);
SELECT data FROM workflow_projection WHERE projection = 'orders' AND key = 'wf-6';
-- A fencing_reject on a partition without a watermark reports none.
SELECT * FROM apply_projection('nothing-yet', 0, 1, 'k', '{}', NULL, 'orders-topic', 0, :epoch);

-- Exact counter deltas since the reset at the top.
-- (lag gauges in whole seconds: the clock moves a few ms between the calls)
SELECT metric, labels,
       CASE WHEN metric LIKE '%\_lag\_ms' THEN floor(value / 1000) * 1000 ELSE value END AS value
  FROM ptm.metrics WHERE metric LIKE 'projection%' ORDER BY metric, labels;

-- Reset: operator only, audited.
SELECT * FROM reset_projection('orders', 1, reason => 'replay partition 1');
SELECT count(*) AS rows_kept FROM workflow_projection WHERE projection = 'orders' AND source_partition = 1;
SELECT * FROM apply_projection('orders', 1, 0, 'wf-3', '{"state": "replayed"}');
SELECT * FROM reset_projection('orders', delete_rows => true, reason => 'rebuild');
SELECT count(*) AS rows_left FROM workflow_projection WHERE projection = 'orders';
SELECT count(*) AS watermarks_left FROM projection_watermarks WHERE projection = 'orders';
SELECT * FROM reset_projection('orders');
SELECT action, topic, partition_id, reason, details, session_user_name = session_user AS by_me
  FROM lease_audit WHERE action = 'reset_projection' AND topic = 'orders' ORDER BY audit_id;

CREATE ROLE ptm_test_materializer;
SET ROLE ptm_test_materializer;
SELECT * FROM ptm.reset_projection('invoices');
RESET ROLE;
DROP ROLE ptm_test_materializer;
SELECT count(*) AS invoices_untouched FROM projection_watermarks WHERE projection = 'invoices';
