-- Integer limits (issue 9): epochs, versions, claim epochs, steps and offsets
-- at 2^63 - 1 (and -2^63) give a clean ERROR with a fitting SQLSTATE, or the
-- ordinary result; never a wrap, never a change on error.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET search_path = pg_catalog, ptm;

-- Workflow versions: the last version is 2^63 - 1.
INSERT INTO ptm.workflow_state (workflow_key, version, state)
VALUES ('ovf-wf', 9223372036854775806, '{"n": "max-1"}');
SELECT * FROM ptm.try_commit('ovf-wf', 9223372036854775806, '{"n": "max"}', 'ovf-act');
SELECT * FROM ptm.try_commit('ovf-wf', 9223372036854775807, '{"n": "past"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.try_commit('ovf-wf', 9223372036854775807, '{"n": "past"}', 'ovf-act-2');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.try_commit('ovf-wf', -9223372036854775808, '{"n": "min"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the repeat of the last action still says duplicate
SELECT * FROM ptm.try_commit('ovf-wf', 9223372036854775806, '{"n": "max"}', 'ovf-act');
SELECT version, state FROM ptm.workflow_state WHERE workflow_key = 'ovf-wf';
SELECT count(*) AS dedup_rows FROM ptm.action_dedup_log WHERE workflow_key = 'ovf-wf';

-- Steps: the step at 2^63 - 1 can be claimed; one past it does not exist.
SELECT result, step, claim_epoch FROM ptm.claim_step('ovf-wf', 9223372036854775807, 'w1');
SELECT result FROM ptm.claim_step('ovf-wf', -9223372036854775808, 'w1');
-- a claim-fenced commit at the last version is the same clean error
SELECT * FROM ptm.try_commit('ovf-wf', 9223372036854775807, '{"n": "past"}', NULL, NULL, NULL, 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Claim epochs: a new claim on a claim epoch at 2^63 - 1 cannot take the next.
UPDATE ptm.workflow_state SET claim_epoch = 9223372036854775807, claim_expires_at = 0
 WHERE workflow_key = 'ovf-wf';
SELECT result FROM ptm.claim_step('ovf-wf', 9223372036854775807, 'w2');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT version, claim_worker, claim_epoch FROM ptm.workflow_state WHERE workflow_key = 'ovf-wf';

-- Lease epochs: the sequence at its maximum refuses a new epoch; nothing changes.
SELECT last_value AS saved_epoch FROM ptm.lease_epoch_seq \gset
SELECT setval('ptm.lease_epoch_seq', 9000000) AS epoch_base;
SELECT result, lease_epoch FROM ptm.acquire_partition_lease('ovf', 0, 'a');
SELECT setval('ptm.lease_epoch_seq', 9223372036854775807) AS epoch_max;
SELECT * FROM ptm.acquire_partition_lease('ovf', 1, 'a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.force_expire('ovf', 0, 'overflow test');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ptm.ensure_partitions('ovf', 3) AS created;
SELECT * FROM ptm.acquire_partition_leases('ovf', 'b', 2);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- renewing and the fence need no new epoch
SELECT result, lease_epoch FROM ptm.renew_lease('ovf', 0, 'a', 9000001);
SELECT ptm.check_fence('ovf', 0, 9000001);
SELECT topic, partition_id, agent_id, lease_epoch, state FROM ptm.partition_leases
 WHERE topic = 'ovf' ORDER BY partition_id;
SELECT count(*) AS audit_rows FROM ptm.lease_audit WHERE topic = 'ovf';
SELECT setval('ptm.lease_epoch_seq', :saved_epoch) IS NOT NULL AS restored;

-- Epoch arguments at the limits: the ordinary answers, or 22023.
SELECT result FROM ptm.renew_lease('ovf', 0, 'a', 9223372036854775807);
SELECT result FROM ptm.release_lease('ovf', 0, 'a', 9223372036854775807);
SELECT ptm.check_fence('ovf', 0, 9223372036854775807);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT result FROM ptm.renew_lease('ovf', 0, 'a', -9223372036854775808);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.try_commit('ovf-wf2', 0, '{}', NULL, 'ovf', 0, 9223372036854775807);
SELECT * FROM ptm.try_commit('ovf-wf2', 0, '{}', NULL, NULL, NULL, 9223372036854775807);
SELECT result FROM ptm.renew_leases('a', ARRAY['ovf'], ARRAY[0], ARRAY[9223372036854775807]::bigint[]);
SELECT result FROM ptm.renew_leases('a', ARRAY['ovf'], ARRAY[0], ARRAY[-9223372036854775808]::bigint[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT result FROM ptm.acquire_partition_leases('ovf', 'b', 2147483647);
SELECT ptm.ensure_partitions('ovf', 2147483647);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT result FROM ptm.acquire_partition_lease('ovf', 2147483647, 'a');

-- TTLs at the interval limits: 22023, not a wrap into a short or negative TTL.
SELECT * FROM ptm.acquire_partition_lease('ovf', 5, 'a', '178000000 years');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.acquire_partition_lease('ovf', 5, 'a', '-178000000 years');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.acquire_partition_lease('ovf', 5, 'a', '2562047788:00:54.775807');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.acquire_partition_lease('ovf', 5, 'a', '-2562047788:00:54.775807');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.acquire_partition_lease('ovf', 5, 'a', '1 month -30 days');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- parts of opposite signs are judged by their sum: huge and positive, then
-- huge and negative, then a few seconds that pass
SELECT * FROM ptm.acquire_partition_lease('ovf', 5, 'a', '2147483647 days -2562047788 hours');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.acquire_partition_lease('ovf', 5, 'a', '-2147483647 days 2562047788 hours');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT result, expires_at - now() < interval '1 min' AS short FROM ptm.acquire_partition_lease('ovf', 6, 'a', '1 day -86390 s');
SELECT * FROM ptm.claim_step('ovf-wf', 1, 'w', '-2147483648 months');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT result FROM ptm.acquire_partition_lease('ovf', 5, 'a', '1 ms');   -- the shortest TTL (below: lease_errors)
SELECT count(*) AS leases FROM ptm.partition_leases WHERE topic = 'ovf';

-- Projection offsets near 2^63: gaps and lag arithmetic do not overflow.
SELECT * FROM ptm.apply_projection('ovf-p', 0, 0, 'k', '{"o": 0}');
SELECT * FROM ptm.apply_projection('ovf-p', 0, 9223372036854775806, 'k', '{"o": "max-1"}');
SELECT * FROM ptm.apply_projection('ovf-p', 0, 9223372036854775807, 'k', '{"o": "max"}',
                                   '4713-01-01 00:00:00+00 BC');
SELECT * FROM ptm.apply_projection('ovf-p', 0, 9223372036854775807, 'k', '{"o": "again"}');
SELECT * FROM ptm.apply_projection('ovf-p', 0, 0, 'k', '{"o": "old"}');
SELECT * FROM ptm.apply_projection('ovf-p', 0, -9223372036854775808, 'k', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ptm.apply_projection('ovf-p', 0, 1, 'k', '{}', '294276-12-31 23:59:59+00');
SELECT * FROM ptm.apply_projection('ovf-p', 0, 1, 'k', '{}', 'infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT ordinality, "offset", result, watermark, final_watermark
  FROM ptm.apply_projection_batch('ovf-p', 1, ARRAY[9223372036854775807, 0, 9223372036854775806]::bigint[],
       ARRAY['a', 'b', 'c'], ARRAY['{}', '{}', '{}']::jsonb[])
 ORDER BY ordinality;
SELECT partition_id, "offset", previous_offset, applied_count, duplicate_count,
       regression_count, gap_count
  FROM ptm.projection_watermarks WHERE projection = 'ovf-p' ORDER BY partition_id;
SELECT projection, partition_id, watermark, lag_ms > 0 AS lagging, apply_lag_ms > 0 AS applied_late
  FROM ptm.projection_lag WHERE projection = 'ovf-p' ORDER BY partition_id;
SELECT key, data, source_offset FROM ptm.workflow_projection WHERE projection = 'ovf-p' ORDER BY key;

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'ovf';
DELETE FROM ptm.lease_audit WHERE topic IN ('ovf', 'ovf-p');
RESET session_replication_role;
DELETE FROM ptm.workflow_state WHERE workflow_key IN ('ovf-wf', 'ovf-wf2');
DELETE FROM ptm.action_dedup_log WHERE workflow_key IN ('ovf-wf', 'ovf-wf2');
DELETE FROM ptm.workflow_projection WHERE projection = 'ovf-p';
DELETE FROM ptm.projection_watermarks WHERE projection = 'ovf-p';
