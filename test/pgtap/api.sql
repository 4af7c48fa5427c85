-- API contract of the foundation: schema, functions, views and privileges.
BEGIN;
SELECT plan(10);

SELECT has_schema('ptm');
SELECT has_function('ptm', 'health', ARRAY[]::text[], 'ptm.health() exists');
SELECT function_returns('ptm', 'health', ARRAY[]::text[], 'setof record');
SELECT has_view('ptm', 'metrics', 'ptm.metrics view exists');
SELECT columns_are('ptm', 'metrics', ARRAY['metric', 'labels', 'value']);
SELECT col_type_is('ptm', 'metrics', 'labels', 'jsonb', 'metrics.labels is jsonb');
SELECT col_type_is('ptm', 'metrics', 'value', 'double precision', 'metrics.value is double precision');
SELECT has_view('ptm', 'stat_info', 'ptm.stat_info view exists');
SELECT function_privs_are('ptm', 'reset_counters', ARRAY[]::text[], 'public', ARRAY[]::text[],
                          'PUBLIC cannot reset counters');
SELECT table_privs_are('ptm', 'metrics', 'pg_monitor', ARRAY['SELECT'], 'pg_monitor reads ptm.metrics');

SELECT * FROM finish();
ROLLBACK;
