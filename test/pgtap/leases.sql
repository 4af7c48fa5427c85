-- Lease API contract: signatures, result columns, table columns the runbooks
-- use, privileges.
BEGIN;
SELECT plan(30);

SELECT has_table('ptm', 'partition_leases', 'ptm.partition_leases exists');
SELECT col_type_is('ptm', 'partition_leases', 'topic', 'text', 'topic is text');
SELECT col_type_is('ptm', 'partition_leases', 'partition_id', 'integer', 'partition_id is integer');
SELECT col_type_is('ptm', 'partition_leases', 'agent_id', 'text', 'agent_id is text');
SELECT col_is_null('ptm', 'partition_leases', 'agent_id', 'agent_id is NULL when free');
SELECT col_type_is('ptm', 'partition_leases', 'lease_epoch', 'bigint', 'lease_epoch is bigint');
SELECT col_type_is('ptm', 'partition_leases', 'lease_expires_at', 'bigint', 'lease_expires_at is bigint (Unix ms)');
SELECT col_is_pk('ptm', 'partition_leases', ARRAY['topic', 'partition_id'], 'one lease per (topic, partition_id)');

SELECT has_function('ptm', 'acquire_partition_lease', ARRAY['text', 'integer', 'text', 'interval']);
SELECT has_function('ptm', 'renew_lease', ARRAY['text', 'integer', 'text', 'bigint', 'interval']);
SELECT has_function('ptm', 'release_lease', ARRAY['text', 'integer', 'text', 'bigint']);
SELECT has_function('ptm', 'force_expire', ARRAY['text', 'integer', 'text', 'text', 'bigint', 'boolean']);
SELECT has_function('ptm', 'check_fence', ARRAY['text', 'integer', 'bigint']);
SELECT has_function('ptm', 'acquire_partition_leases', ARRAY['text', 'text', 'integer', 'interval']);
SELECT has_function('ptm', 'renew_leases', ARRAY['text', 'text[]', 'integer[]', 'bigint[]', 'interval']);
SELECT has_function('ptm', 'sweep_expired_leases', ARRAY['integer']);
SELECT function_returns('ptm', 'acquire_partition_lease', ARRAY['text', 'integer', 'text', 'interval'], 'ptm.lease_result');
SELECT function_returns('ptm', 'check_fence', ARRAY['text', 'integer', 'bigint'], 'void');
SELECT function_returns('ptm', 'renew_leases', ARRAY['text', 'text[]', 'integer[]', 'bigint[]', 'interval'], 'setof ptm.lease_result');
SELECT function_returns('ptm', 'sweep_expired_leases', ARRAY['integer'], 'record');

SELECT has_type('ptm', 'lease_result', 'ptm.lease_result exists');
SELECT is(
  (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
    WHERE attrelid = 'ptm.lease_result'::regclass AND attnum > 0),
  ARRAY['result', 'topic', 'partition_id', 'agent_id', 'lease_epoch', 'expires_at'],
  'lease functions return (result, topic, partition_id, agent_id, lease_epoch, expires_at)');

-- The contract's defaults: ttl 30 s, reason NULL.
SELECT is((SELECT result FROM ptm.acquire_partition_lease('tap', 0, 'a')), 'acquired', 'ttl has a default');
SELECT ok((SELECT expires_at BETWEEN clock_timestamp() + '29 s' AND clock_timestamp() + '31 s'
             FROM ptm.acquire_partition_lease('tap', 0, 'a')), 'default ttl is 30 s');

SELECT function_privs_are('ptm', 'force_expire', ARRAY['text', 'integer', 'text', 'text', 'bigint', 'boolean'], 'public', ARRAY[]::text[],
                          'force_expire is not for PUBLIC');
SELECT function_privs_are('ptm', 'sweep_expired_leases', ARRAY['integer'], 'public', ARRAY[]::text[],
                          'sweep_expired_leases is not for PUBLIC');
SELECT function_privs_are('ptm', 'acquire_partition_lease', ARRAY['text', 'integer', 'text', 'interval'], 'public', ARRAY[]::text[],
                          'acquire is granted per role (grant_agent), not to PUBLIC');
SELECT table_privs_are('ptm', 'partition_leases', 'pg_monitor', ARRAY['SELECT'], 'pg_monitor reads leases');
SELECT table_privs_are('ptm', 'partition_leases', 'public', ARRAY[]::text[], 'PUBLIC has no direct DML on leases');
SELECT throws_ok($$UPDATE ptm.partition_leases SET lease_expires_at = 0$$, '42501', NULL,
                 'direct UPDATE is refused');

SELECT * FROM finish();
ROLLBACK;
