-- Commit API contract: signatures and defaults, result columns, the table
-- columns the runbooks use, privileges.
BEGIN;
SELECT plan(38);

-- Tables and the columns seed 003 reads.
SELECT has_table('ptm', 'workflow_state', 'ptm.workflow_state exists');
SELECT col_type_is('ptm', 'workflow_state', 'workflow_key', 'text', 'workflow_key is text');
SELECT col_type_is('ptm', 'workflow_state', 'version', 'bigint', 'version is bigint');
SELECT col_type_is('ptm', 'workflow_state', 'state', 'jsonb', 'state is jsonb');
SELECT col_type_is('ptm', 'workflow_state', 'updated_at', 'timestamp with time zone', 'updated_at is timestamptz');
SELECT col_is_pk('ptm', 'workflow_state', ARRAY['workflow_key'], 'one row per workflow');
SELECT has_index('ptm', 'workflow_state', 'idx_workflow_state_workflow_key', ARRAY['workflow_key'],
                 'the runbook''s index name is the primary key');
SELECT has_table('ptm', 'action_dedup_log', 'ptm.action_dedup_log exists');
SELECT col_type_is('ptm', 'action_dedup_log', 'workflow_key', 'text', 'action_dedup_log.workflow_key is text');
SELECT col_is_pk('ptm', 'action_dedup_log', ARRAY['workflow_key', 'action_id'], 'an action id once per workflow');

-- Signatures, with the contract's defaults.
SELECT has_function('ptm', 'try_commit',
    ARRAY['text', 'bigint', 'jsonb', 'text', 'text', 'integer', 'bigint']);
SELECT has_function('ptm', 'get_state', ARRAY['text']);
SELECT has_function('ptm', 'claim_step', ARRAY['text', 'bigint', 'text', 'interval']);
SELECT function_returns('ptm', 'try_commit',
    ARRAY['text', 'bigint', 'jsonb', 'text', 'text', 'integer', 'bigint'], 'record');
SELECT is(
  (SELECT pg_get_function_arguments('ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)'::regprocedure)),
  'workflow_key text, expected_version bigint, new_state jsonb, action_id text DEFAULT NULL::text, '
  'fence_topic text DEFAULT NULL::text, fence_partition integer DEFAULT NULL::integer, '
  'fence_epoch bigint DEFAULT NULL::bigint, OUT result text, OUT version bigint, OUT state jsonb',
  'try_commit: argument names, NULL defaults, result columns');
SELECT is(
  (SELECT pg_get_function_result('ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)'::regprocedure)),
  'record', 'try_commit returns one record');
SELECT is(
  (SELECT proargnames[8:] FROM pg_proc
    WHERE oid = 'ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)'::regprocedure),
  ARRAY['result', 'version', 'state'], 'try_commit returns (result, version, state)');
SELECT is(
  (SELECT proargnames[2:] FROM pg_proc WHERE oid = 'ptm.get_state(text)'::regprocedure),
  ARRAY['version', 'state', 'updated_at'], 'get_state returns (version, state, updated_at)');
SELECT is(
  (SELECT proargnames[5:] FROM pg_proc WHERE oid = 'ptm.claim_step(text, bigint, text, interval)'::regprocedure),
  ARRAY['result', 'workflow_key', 'step', 'worker_id', 'claim_epoch', 'expires_at'],
  'claim_step returns (result, workflow_key, step, worker_id, claim_epoch, expires_at)');
SELECT is(
  (SELECT pg_get_function_arguments('ptm.claim_step(text, bigint, text, interval)'::regprocedure)
     LIKE '%ttl interval DEFAULT ''00:00:30''::interval%'),
  true, 'claim_step: ttl defaults to 30 s');
SELECT volatility_is('ptm', 'try_commit',
    ARRAY['text', 'bigint', 'jsonb', 'text', 'text', 'integer', 'bigint'], 'volatile');
SELECT volatility_is('ptm', 'get_state', ARRAY['text'], 'stable');
SELECT isnt_strict('ptm', 'try_commit',
    ARRAY['text', 'bigint', 'jsonb', 'text', 'text', 'integer', 'bigint'],
    'try_commit is not strict: a NULL argument is an error, not a NULL row');

-- Every function runs as the owner with its search_path pinned: by a SET
-- clause, or for try_commit and claim_step (whose plain commit and claim run
-- no SQL) in C before SQL.
SELECT is(
  (SELECT count(*)::int FROM pg_proc
    WHERE pronamespace = 'ptm'::regnamespace AND proname IN ('get_state')
      AND proconfig @> ARRAY['search_path=pg_catalog, pg_temp'] AND prosecdef),
  1, 'search_path pinned and SECURITY DEFINER on get_state');
SELECT ok(
  (SELECT prosecdef AND proconfig IS NULL FROM pg_proc
    WHERE oid = 'ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)'::regprocedure),
  'try_commit: SECURITY DEFINER without a SET clause (pins search_path in C)');
SELECT ok(
  (SELECT prosecdef AND proconfig IS NULL FROM pg_proc
    WHERE oid = 'ptm.claim_step(text, bigint, text, interval)'::regprocedure),
  'claim_step: SECURITY DEFINER without a SET clause (pins search_path in C)');

-- Privileges: EXECUTE is granted by the DBA, not PUBLIC's default; the
-- tables are read by pg_monitor and written only through the functions.
SELECT function_privs_are('ptm', 'try_commit',
    ARRAY['text', 'bigint', 'jsonb', 'text', 'text', 'integer', 'bigint'], 'public', ARRAY[]::text[],
    'PUBLIC cannot commit');
SELECT function_privs_are('ptm', 'get_state', ARRAY['text'], 'public', ARRAY[]::text[],
    'PUBLIC cannot read state');
SELECT function_privs_are('ptm', 'claim_step', ARRAY['text', 'bigint', 'text', 'interval'],
    'public', ARRAY[]::text[], 'PUBLIC cannot claim');
SELECT table_privs_are('ptm', 'workflow_state', 'public', ARRAY[]::text[], 'PUBLIC has no table privilege');
SELECT table_privs_are('ptm', 'action_dedup_log', 'public', ARRAY[]::text[], 'PUBLIC has no dedup log privilege');
SELECT table_privs_are('ptm', 'workflow_state', 'pg_monitor', ARRAY['SELECT'], 'pg_monitor reads workflow_state');
SELECT table_privs_are('ptm', 'action_dedup_log', 'pg_monitor', ARRAY['SELECT'], 'pg_monitor reads action_dedup_log');

-- A service role granted EXECUTE commits without table privileges.
CREATE ROLE ptm_tap_service;
GRANT EXECUTE ON FUNCTION ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint),
                          ptm.get_state(text),
                          ptm.claim_step(text, bigint, text, interval) TO ptm_tap_service;
SET ROLE ptm_tap_service;
SELECT is((SELECT result FROM ptm.try_commit('tap-wf', 0, '{}')), 'ok', 'service role: try_commit');
SELECT is((SELECT version FROM ptm.get_state('tap-wf')), 1::bigint, 'service role: get_state');
SELECT is((SELECT result FROM ptm.claim_step('tap-wf', 1, 'w')), 'claimed', 'service role: claim_step');
SELECT throws_ok($$UPDATE ptm.workflow_state SET version = 9$$, '42501', NULL,
    'service role: no direct write');
RESET ROLE;

-- The settings exist with their defaults.
SELECT is(current_setting('ptm_lease.dedup_ttl'), '1d', 'ptm_lease.dedup_ttl defaults to one day');

SELECT * FROM finish();
ROLLBACK;
