\set off :off + 500
SELECT count(*) FROM ptm.apply_projection_batch('batch', :client_id,
       ARRAY(SELECT :off::bigint - 500 + g FROM generate_series(1, 500) g),
       ARRAY(SELECT 'b-' || (:client_id * 500 + g) FROM generate_series(1, 500) g),
       ARRAY(SELECT '{"v": 1}'::jsonb FROM generate_series(1, 500) g),
       array_fill(now(), ARRAY[500]))
 WHERE result = 'applied';
