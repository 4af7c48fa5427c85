-- API contract of the projections: tables the runbooks read, function
-- signatures and results, views, and who may call what.
BEGIN;
SELECT plan(30);

SELECT has_table('ptm', 'workflow_projection', 'ptm.workflow_projection exists');
SELECT col_is_pk('ptm', 'workflow_projection', ARRAY['projection', 'key'], 'workflow_projection PK is (projection, key)');
SELECT col_type_is('ptm', 'workflow_projection', 'data', 'jsonb', 'workflow_projection.data is jsonb');
SELECT col_type_is('ptm', 'workflow_projection', 'source_offset', 'bigint', 'workflow_projection.source_offset is bigint');
SELECT has_table('ptm', 'projection_watermarks', 'ptm.projection_watermarks exists');
SELECT col_is_pk('ptm', 'projection_watermarks', ARRAY['projection', 'partition_id'], 'projection_watermarks PK is (projection, partition_id)');
SELECT col_type_is('ptm', 'projection_watermarks', 'offset', 'bigint', 'projection_watermarks.offset is bigint');
SELECT col_type_is('ptm', 'projection_watermarks', 'updated_at', 'timestamp with time zone', 'projection_watermarks.updated_at is timestamptz (seed 003 orders by it)');
SELECT col_type_is('ptm', 'projection_watermarks', 'last_event_time', 'timestamp with time zone', 'projection_watermarks.last_event_time is timestamptz');
SELECT col_type_is('ptm', 'projection_watermarks', 'max_lag_ms', 'bigint', 'projection_watermarks.max_lag_ms is bigint');

SELECT has_function('ptm', 'apply_projection',
    ARRAY['text', 'integer', 'bigint', 'text', 'jsonb', 'timestamp with time zone', 'text', 'integer', 'bigint'],
    'apply_projection(projection, partition_id, offset, key, data, event_time, fence_topic, fence_partition, fence_epoch)');
SELECT function_returns('ptm', 'apply_projection',
    ARRAY['text', 'integer', 'bigint', 'text', 'jsonb', 'timestamp with time zone', 'text', 'integer', 'bigint'], 'record');
SELECT is((SELECT pronargdefaults FROM pg_proc WHERE oid = 'ptm.apply_projection'::regproc), 4::int2,
    'apply_projection: event_time and the fence arguments are optional');
SELECT is((SELECT proisstrict FROM pg_proc WHERE oid = 'ptm.apply_projection'::regproc), false,
    'apply_projection is not STRICT (NULL arguments get an error naming them)');
SELECT is((SELECT array_agg(result ORDER BY result) FROM (
             SELECT (ptm.apply_projection('pgtap', 0, o, 'k', '{}')).result
               FROM unnest(ARRAY[1, 1, 0]) o) r),
          ARRAY['applied', 'duplicate', 'regression'], 'apply_projection results are values');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'ptm.apply_projection'::regproc),
    ARRAY['search_path=pg_catalog, pg_temp'], 'apply_projection pins search_path');

SELECT has_function('ptm', 'apply_projection_batch',
    ARRAY['text', 'integer', 'bigint[]', 'text[]', 'jsonb[]', 'timestamp with time zone[]', 'text', 'integer', 'bigint'],
    'apply_projection_batch(projection, partition_id, offsets, keys, datas, event_times, fence_topic, fence_partition, fence_epoch)');
SELECT function_returns('ptm', 'apply_projection_batch',
    ARRAY['text', 'integer', 'bigint[]', 'text[]', 'jsonb[]', 'timestamp with time zone[]', 'text', 'integer', 'bigint'], 'setof record');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = 'ptm.apply_projection_batch'::regproc)[10:15],
    ARRAY['ordinality', 'offset', 'key', 'result', 'watermark', 'final_watermark'],
    'apply_projection_batch returns one row per event');

SELECT has_function('ptm', 'reset_projection', ARRAY['text', 'integer', 'boolean', 'text'],
    'reset_projection(projection, partition_id, delete_rows, reason)');
SELECT function_privs_are('ptm', 'reset_projection', ARRAY['text', 'integer', 'boolean', 'text'],
    'public', ARRAY[]::text[], 'PUBLIC cannot reset projections');
SELECT function_privs_are('ptm', 'apply_projection',
    ARRAY['text', 'integer', 'bigint', 'text', 'jsonb', 'timestamp with time zone', 'text', 'integer', 'bigint'],
    'public', ARRAY[]::text[], 'apply_projection is granted per role (grant_agent), not to PUBLIC');

SELECT has_view('ptm', 'projection_lag', 'ptm.projection_lag exists');
SELECT columns_are('ptm', 'projection_lag', ARRAY['projection', 'partition_id', 'watermark', 'last_event_time',
    'updated_at', 'lag_ms', 'apply_lag_ms', 'max_lag_ms', 'idle_ms', 'applied_count', 'duplicate_count',
    'regression_count', 'gap_count', 'wm_lag_ms', 'last_event_age_ms', 'replay_count', 'race_count']);
SELECT has_view('ptm', 'projection_metrics', 'ptm.projection_metrics exists');
SELECT columns_are('ptm', 'projection_metrics', ARRAY['metric', 'labels', 'value']);
SELECT table_privs_are('ptm', 'projection_lag', 'pg_monitor', ARRAY['SELECT'], 'pg_monitor reads ptm.projection_lag');
SELECT table_privs_are('ptm', 'projection_watermarks', 'pg_monitor', ARRAY['SELECT'], 'pg_monitor reads ptm.projection_watermarks');

-- Seed 003 runs its queries with ptm on search_path.
SET LOCAL search_path = public, ptm;
SELECT lives_ok('SELECT * FROM projection_watermarks ORDER BY updated_at DESC LIMIT 10',
    'seed 003: SELECT * FROM projection_watermarks ORDER BY updated_at DESC LIMIT 10');
SELECT ok((SELECT count(*) FROM pg_catalog.pg_extension e, unnest(e.extconfig) c
            WHERE e.extname = 'ptm_lease'
              AND c IN ('ptm.workflow_projection'::regclass, 'ptm.projection_watermarks'::regclass)) = 2,
    'pg_dump keeps projection rows and watermarks');

SELECT * FROM finish();
ROLLBACK;
