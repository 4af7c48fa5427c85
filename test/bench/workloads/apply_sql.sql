\set off :off + 1
\set k random(0, :rows - 1)
WITH wm AS (
  UPDATE bench_watermarks SET "offset" = :off, updated_at = now()
   WHERE projection = 'bench' AND partition_id = :client_id AND "offset" < :off
  RETURNING 1)
INSERT INTO bench_projection (projection, key, data, source_partition, source_offset, updated_at)
SELECT 'bench', 'k-' || :k, '{"v": 1}', :client_id, :off, now() FROM wm
ON CONFLICT (projection, key) DO UPDATE
   SET data = EXCLUDED.data, source_partition = EXCLUDED.source_partition,
       source_offset = EXCLUDED.source_offset, updated_at = EXCLUDED.updated_at;
