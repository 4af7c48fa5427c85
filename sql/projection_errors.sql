-- Bad input to the projection functions: an ERROR naming the argument, with
-- SQLSTATE 22004 (null), 22023 (invalid value) or 2202E (array shape), and
-- nothing changes.
SET search_path = public, ptm;
\set VERBOSITY default
SELECT ptm.reset_counters() IS NOT NULL AS counters_reset;
SELECT result FROM apply_projection('err', 0, 7, 'k', '{"v": 7}');

-- Each statement's SQLSTATE and message, caught, so the file shows both.
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TEMP TABLE before AS
  SELECT (SELECT pg_catalog.jsonb_agg(w ORDER BY projection, partition_id)
            FROM (SELECT projection, partition_id, "offset", applied_count, duplicate_count,
                         regression_count, gap_count FROM projection_watermarks) w) AS wm,
         (SELECT pg_catalog.jsonb_agg(p ORDER BY projection, key)
            FROM (SELECT projection, key, data, source_offset FROM workflow_projection) p) AS rows;

-- apply_projection
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection(NULL, 0, 8, 'k', '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('', 0, 8, 'k', '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection(repeat('p', 257), 0, 8, 'k', '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', NULL, 8, 'k', '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', -1, 8, 'k', '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, NULL, 'k', '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, -1, 'k', '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, NULL, '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, '', '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, repeat('k', 300), '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, 'k', '{}', 'infinity')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, 'k', '{}', NULL, 't', NULL, NULL)$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, 'k', '{}', NULL, NULL, 0, 1)$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, 'k', '{}', NULL, '', 0, 1)$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, 'k', '{}', NULL, 't', -1, 1)$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, 'k', '{}', NULL, 't', 0, 0)$$);

-- apply_projection_batch
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch(NULL, 0, '{8}', '{k}', '{"{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', -1, '{8}', '{k}', '{"{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, NULL, '{k}', '{"{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8}', NULL, '{"{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8}', '{k}', NULL)$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8, 9}', '{k}', '{"{}", "{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8, 9}', '{k, l}', '{"{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8}', '{k}', '{"{}"}', '{now, now}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{{8}}', '{{k}}', '{{"{}"}}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8, NULL}', '{k, l}', '{"{}", "{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8, -9}', '{k, l}', '{"{}", "{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8, 9}', '{k, NULL}', '{"{}", "{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8, 9}', '{k, ""}', '{"{}", "{}"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8}', '{k}', '{"{}"}', '{-infinity}')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8}', '{k}', '{"{}"}', NULL, 't', 0, NULL)$$);

-- Row data above ptm_lease.max_data_bytes: 54000, single and per batch element
SET ptm_lease.max_data_bytes = 64;
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection('err', 0, 8, 'k', jsonb_build_object('pad', repeat('x', 100)))$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM apply_projection_batch('err', 0, '{8, 9}', '{k, l}',
  ARRAY['{}'::jsonb, jsonb_build_object('pad', repeat('x', 100))])$$);
SELECT * FROM apply_projection('err', 0, 8, 'k', jsonb_build_object('pad', repeat('x', 100)));
RESET ptm_lease.max_data_bytes;

-- reset_projection
SELECT pg_temp.sqlstate_of($$SELECT * FROM reset_projection(NULL)$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM reset_projection('')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM reset_projection('err', -1)$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM reset_projection('err', 0, NULL)$$);

-- Nothing changed, nothing was counted, nothing was audited.
SELECT b.wm = (SELECT pg_catalog.jsonb_agg(w ORDER BY projection, partition_id)
                 FROM (SELECT projection, partition_id, "offset", applied_count, duplicate_count,
                              regression_count, gap_count FROM projection_watermarks) w) AS watermarks_unchanged,
       b.rows = (SELECT pg_catalog.jsonb_agg(p ORDER BY projection, key)
                   FROM (SELECT projection, key, data, source_offset FROM workflow_projection) p) AS rows_unchanged
  FROM before b;
SELECT metric, value FROM ptm.metrics WHERE metric LIKE 'projection%' ORDER BY metric;
SELECT count(*) AS audit_rows FROM lease_audit WHERE action = 'reset_projection' AND topic = 'err';

-- The messages as a client sees them.
SELECT * FROM apply_projection('err', 0, -5, 'k', '{}');
SELECT * FROM apply_projection_batch('err', 0, '{8, 9}', '{k}', '{"{}", "{}"}');
SELECT * FROM apply_projection('err', 0, 8, 'k', '{}', NULL, 't', NULL, NULL);
SELECT * FROM reset_projection('err');
SELECT count(*) AS reset_done FROM projection_watermarks WHERE projection = 'err';

-- Privileges (docs/projections.md, docs/security.md): the functions run as the
-- extension owner, so EXECUTE is all a caller needs.  A role with no grant is
-- refused (42501); an agent applies and an operator resets, with no privilege
-- on any table (they cannot read them directly).
CREATE ROLE ptm_proj_nobody;
CREATE ROLE ptm_proj_agent;
CREATE ROLE ptm_proj_oncall;
SELECT count(*) > 0 AS granted FROM ptm.grant_agent('ptm_proj_agent');
SELECT count(*) > 0 AS granted FROM ptm.grant_operator('ptm_proj_oncall');
SET ROLE ptm_proj_nobody;
SELECT pg_temp.sqlstate_of($$SELECT * FROM ptm.reset_projection('err-roles')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM ptm.apply_projection('err-roles', 0, 1, 'k', '{}')$$);
SET ROLE ptm_proj_agent;
SELECT pg_temp.sqlstate_of($$SELECT * FROM ptm.workflow_projection$$);
SELECT result FROM ptm.apply_projection('err-roles', 0, 1, 'k', '{"v": 1}');
SELECT result FROM ptm.apply_projection_batch('err-roles', 0, '{2, 3}', '{k, l}', '{"{}", "{}"}');
SELECT pg_temp.sqlstate_of($$SELECT * FROM ptm.reset_projection('err-roles')$$);
SET ROLE ptm_proj_oncall;
SELECT pg_temp.sqlstate_of($$DELETE FROM ptm.projection_watermarks WHERE projection = 'err-roles'$$);
SELECT result, partitions_reset, rows_deleted
  FROM ptm.reset_projection('err-roles', delete_rows => true, reason => 'roles test');
RESET ROLE;
SELECT current_user_name, details IS NOT NULL AS has_details
  FROM lease_audit WHERE action = 'reset_projection' AND topic = 'err-roles';
DROP OWNED BY ptm_proj_nobody, ptm_proj_agent, ptm_proj_oncall;
DROP ROLE ptm_proj_nobody, ptm_proj_agent, ptm_proj_oncall;
