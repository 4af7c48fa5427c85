-- API contract of the foundation: schema, functions, views and privileges.
BEGIN;
SELECT plan(22);

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

-- Metrics (issue 6): every view and the text exposition, readable by pg_monitor only.
SELECT has_view('ptm', v, format('ptm.%s view exists', v))
  FROM unnest(ARRAY['metric_series', 'histograms', 'commit_results', 'claim_results',
                    'lease_outcomes', 'key_counters', 'top_workflow_conflicts',
                    'top_topic_conflicts']) AS v;
SELECT columns_are('ptm', 'stat_info', ARRAY['stats_reset', 'evictions', 'tracked_keys', 'max_tracked_keys']);
SELECT function_returns('ptm', 'metrics_text', ARRAY[]::text[], 'text');
SELECT function_privs_are('ptm', 'metrics_text', ARRAY[]::text[], 'pg_monitor', ARRAY['EXECUTE'],
                          'pg_monitor may scrape metrics_text()');
SELECT function_privs_are('ptm', 'metrics_text', ARRAY[]::text[], 'public', ARRAY[]::text[],
                          'PUBLIC may not scrape metrics_text()');

SELECT * FROM finish();
ROLLBACK;
