-- Bad input to the lease functions: a clear ERROR naming the argument, with
-- SQLSTATE 22004 (null) or 22023 (invalid value), and nothing changes.
SET search_path = public, ptm;
\set VERBOSITY default
SELECT setval('ptm.lease_epoch_seq', 2000000) AS epoch_base;
CREATE TEMP TABLE before AS SELECT count(*) AS n, max(lease_epoch) AS e FROM ptm.partition_leases;

SELECT * FROM acquire_partition_lease(NULL, 0, 'a');
SELECT * FROM acquire_partition_lease('', 0, 'a');
SELECT * FROM acquire_partition_lease('t', NULL, 'a');
SELECT * FROM acquire_partition_lease('t', -1, 'a');
SELECT * FROM acquire_partition_lease('t', 0, NULL);
SELECT * FROM acquire_partition_lease('t', 0, '');
SELECT * FROM acquire_partition_lease('t', 0, 'a', NULL);
SELECT * FROM acquire_partition_lease('t', 0, 'a', '0 s');
SELECT * FROM acquire_partition_lease('t', 0, 'a', '-5 s');
-- below 1 ms: refused, not rounded up to a lease ten or a thousand times longer
SELECT * FROM acquire_partition_lease('t', 0, 'a', '0.0001 s');
SELECT * FROM acquire_partition_lease('t', 0, 'a', '999 microseconds');
SELECT * FROM acquire_partition_lease('t', 0, 'a', '2 hours');
SELECT * FROM acquire_partition_lease('t', 0, 'a', '1000000 years');
SELECT * FROM acquire_partition_lease(repeat('x', 257), 0, 'a');
SELECT * FROM acquire_partition_lease('t', 0, repeat('é', 200));
-- the TTL limit is a setting
SET ptm_lease.max_ttl = '10s';
SELECT * FROM acquire_partition_lease('t', 0, 'a', '11 s');
RESET ptm_lease.max_ttl;

SELECT * FROM renew_lease('t', 0, 'a', NULL);
SELECT * FROM renew_lease('t', 0, 'a', 0);
SELECT * FROM renew_lease('t', 0, 'a', -9223372036854775808);
SELECT * FROM renew_lease('t', 0, 'a', 1, '-1 ms');
SELECT * FROM renew_lease('t', 0, 'a', 1, '0.5 ms');
SELECT * FROM release_lease('t', 0, NULL, 1);
SELECT * FROM release_lease('t', 0, 'a', -1);
SELECT * FROM force_expire(NULL, 0);
SELECT * FROM force_expire('t', -2147483648);
SELECT check_fence('t', 0, 0);
SELECT check_fence('t', 0, NULL);
SELECT check_fence('', 0, 1);

SELECT * FROM acquire_partition_leases('t', 'a', 0);
SELECT * FROM acquire_partition_leases('t', 'a', NULL);
SELECT * FROM acquire_partition_leases('t', 'a', 1, '1 microsecond');
SELECT * FROM renew_leases('a', ARRAY['t'], ARRAY[0, 1], ARRAY[1]::bigint[]);
SELECT * FROM renew_leases('a', ARRAY['t', NULL], ARRAY[0, 1], ARRAY[1, 2]::bigint[]);
SELECT * FROM renew_leases('a', ARRAY['t'], ARRAY[-1], ARRAY[1]::bigint[]);
SELECT * FROM renew_leases('a', ARRAY['t', ''], ARRAY[0, 1], ARRAY[1, 2]::bigint[]);
SELECT * FROM renew_leases('a', ARRAY[repeat('x', 257)], ARRAY[0], ARRAY[1]::bigint[]);
SELECT * FROM renew_leases('a', ARRAY['t'], ARRAY[0], ARRAY[0]::bigint[]);
SELECT * FROM renew_leases('a', ARRAY[['t']], ARRAY[[0]], ARRAY[[1]]::bigint[]);
SELECT * FROM renew_leases('a', NULL, ARRAY[0], ARRAY[1]::bigint[]);
SELECT * FROM renew_leases('a', ARRAY['t'], ARRAY[0], ARRAY[1]::bigint[], '0.9 ms');
SELECT ensure_partitions('t', 0);
SELECT ensure_partitions('t', NULL);

-- What a tired user types (README, Troubleshooting).  A TTL must be an
-- interval: the integer 30 matches no function (42883; there is no integer
-- overload, which would make every '30 s' ambiguous).  Without ptm on the
-- search_path nothing is found (42883), nor without EXECUTE (42501).
SELECT * FROM acquire_partition_lease('t', 0, 'a', 30);
SET search_path = public;
SELECT * FROM acquire_partition_lease('t', 0, 'a');
CREATE ROLE ptm_errors_nobody;
SET ROLE ptm_errors_nobody;
SELECT * FROM ptm.acquire_partition_lease('t', 0, 'a');
RESET ROLE;
DROP ROLE ptm_errors_nobody;
SET search_path = public, ptm;

-- Nothing changed.
SELECT (SELECT count(*) FROM ptm.partition_leases) = n AS same_rows,
       (SELECT max(lease_epoch) FROM ptm.partition_leases) IS NOT DISTINCT FROM e AS same_epochs
  FROM before;

-- Direct DML (the old runbook's Option 1) is refused with a HINT naming force_expire().
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders-dml', 0, 'agent-abc');
UPDATE partition_leases
SET lease_expires_at = 0  -- Force expiration
WHERE topic = 'orders-dml' AND partition_id = 0;
DELETE FROM partition_leases WHERE topic = 'orders-dml';
TRUNCATE partition_leases;
UPDATE ptm.lease_audit SET reason = 'rewritten';
DELETE FROM ptm.lease_audit;
-- the lease is untouched
SELECT agent_id, lease_epoch, lease_expires_at > 0 AS live FROM partition_leases WHERE topic = 'orders-dml';
-- INSERT stays allowed (pg_restore loads data that way)
INSERT INTO partition_leases (topic, partition_id) VALUES ('orders-dml', 1);
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('orders-dml', 1, 'agent-abc');
-- the guard function cannot be called directly
SELECT ptm._refuse_direct_dml();

-- An interval without a unit is in seconds: '3000' is 50 minutes, under the
-- 1 h ptm_lease.max_ttl, so it is taken (README, Troubleshooting).
SELECT result, expires_at - now() BETWEEN interval '49 min' AND interval '51 min' AS fifty_minutes
  FROM acquire_partition_lease('t-3000', 0, 'a', '3000');

-- Test cleanup only: session_replication_role = replica skips the DML guard
-- (the escape hatch pg_restore --disable-triggers uses too).
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases;
RESET session_replication_role;
