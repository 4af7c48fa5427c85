\set off :off + 500
WITH wm AS (
  UPDATE bench_watermarks SET "offset" = :off, updated_at = now()
   WHERE projection = 'batch' AND partition_id = :client_id AND "offset" < :off::bigint - 499
  RETURNING 1)
INSERT INTO bench_projection (projection, key, data, source_partition, source_offset, updated_at)
SELECT 'batch', e.key, e.data, :client_id, e.off, now()
  FROM wm, unnest(ARRAY(SELECT :off::bigint - 500 + g FROM generate_series(1, 500) g),
                  ARRAY(SELECT 'b-' || (:client_id * 500 + g) FROM generate_series(1, 500) g),
                  ARRAY(SELECT '{"v": 1}'::jsonb FROM generate_series(1, 500) g),
                  array_fill(now(), ARRAY[500])) AS e(off, key, data, event_time)
ON CONFLICT (projection, key) DO UPDATE
   SET data = EXCLUDED.data, source_partition = EXCLUDED.source_partition,
       source_offset = EXCLUDED.source_offset, updated_at = EXCLUDED.updated_at;
