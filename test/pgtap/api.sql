-- API contract of the foundation: schema, functions, views and privileges.
BEGIN;
SELECT plan(40);

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

-- Issue 16: force_expire with the owner it means, the epoch era call, the
-- bounded waits and the counters of busy calls and ended holders.
SELECT has_function('ptm', 'force_expire', ARRAY['text', 'integer', 'text', 'text', 'bigint', 'boolean'],
                    'ptm.force_expire(topic, partition_id, reason, agent_id, lease_epoch, end_holder) exists');
SELECT hasnt_function('ptm', 'force_expire', ARRAY['text', 'integer', 'text'],
                      'the three-argument force_expire is replaced, not overloaded');
SELECT function_returns('ptm', 'force_expire', ARRAY['text', 'integer', 'text', 'text', 'bigint', 'boolean'],
                        'ptm.lease_result', 'force_expire returns ptm.lease_result');
SELECT is((SELECT proargnames || ARRAY[pronargdefaults::text] FROM pg_proc
            WHERE oid = 'ptm.force_expire(text, integer, text, text, bigint, boolean)'::regprocedure),
          ARRAY['topic', 'partition_id', 'reason', 'agent_id', 'lease_epoch', 'end_holder', '4'],
          'force_expire: argument names, the last four with defaults');
SELECT has_function('ptm', 'advance_epoch_era', ARRAY['text'], 'ptm.advance_epoch_era(reason) exists');
SELECT function_returns('ptm', 'advance_epoch_era', ARRAY['text'], 'bigint', 'advance_epoch_era returns the new floor');
SELECT is((SELECT pronargdefaults FROM pg_proc WHERE oid = 'ptm.advance_epoch_era(text)'::regprocedure),
          1::int2, 'advance_epoch_era: reason is optional');
SELECT is(current_setting('ptm_lease.lock_wait_timeout'), '500ms', 'ptm_lease.lock_wait_timeout defaults to 500 ms');
SELECT is(current_setting('ptm_lease.holder_grace'), '1s', 'ptm_lease.holder_grace defaults to 1 s');
SELECT set_has($$SELECT metric FROM ptm.metrics$$,
               $$VALUES ('lease_busy_total'), ('lease_holders_ended_total')$$,
               'ptm.metrics has lease_busy_total and lease_holders_ended_total');

-- Who may call them, called as the roles.
CREATE ROLE ptm_api_agent;
CREATE ROLE ptm_api_oncall;
SELECT ok((SELECT count(*) FROM ptm.grant_agent('ptm_api_agent')) > 0, 'agent role granted');
SELECT ok((SELECT count(*) FROM ptm.grant_operator('ptm_api_oncall')) > 0, 'operator role granted');
SELECT ptm.acquire_partition_lease('api-force', 0, 'agent-a', '1 h');
SET ROLE ptm_api_agent;
SELECT throws_ok($$SELECT ptm.force_expire('api-force', 0, 'agent tries', agent_id => 'agent-a')$$,
                 '42501', NULL, 'an agent may not force_expire');
SELECT throws_ok($$SELECT ptm.advance_epoch_era('agent tries')$$,
                 '42501', NULL, 'an agent may not advance the epoch era');
RESET ROLE;
SET ROLE ptm_api_oncall;
SELECT is((SELECT result FROM ptm.force_expire('api-force', 0, 'wrong owner', agent_id => 'agent-b')),
          'not_owner', 'an operator calls force_expire with agent_id: not_owner when it is not the owner');
SELECT is((SELECT result FROM ptm.force_expire('api-force', 0, 'on-call', agent_id => 'agent-a',
                                               end_holder => true)),
          'forced', 'an operator forces the owner it names');
SELECT cmp_ok(ptm.advance_epoch_era('pgtap'), '>=', 1000000000000000::bigint,
              'an operator advances the epoch era; the floor is an era start');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM ptm.lease_audit
            WHERE action IN ('force_expire', 'advance_epoch_era') AND current_user_name = 'ptm_api_oncall'),
          2, 'both are audited under the operator''s name');

SELECT * FROM finish();
ROLLBACK;
