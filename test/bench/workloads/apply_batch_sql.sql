\set off :off + 500
WITH wm AS (
  UPDATE bench_watermarks SET "offset" = :off, updated_at = now()
   WHERE projection = 'batch' AND partition_id = :client_id AND "offset" < :off::bigint - 499
  RETURNING 1)
INSERT INTO bench_projection (projection, key, data, source_partition, source_offset, updated_at)
SELECT 'batch', 'b-' || (:client_id * 500 + g), '{"v": 1}', :client_id, :off::bigint - 500 + g, now()
  FROM wm, generate_series(1, 500) g
ON CONFLICT (projection, key) DO UPDATE
   SET data = EXCLUDED.data, source_partition = EXCLUDED.source_partition,
       source_offset = EXCLUDED.source_offset, updated_at = EXCLUDED.updated_at;
