-- Who may call what.  Every ptm function is revoked from PUBLIC where it is
-- created; a DBA grants a service role the agent functions, and an on-call
-- role the operator functions, with one call each (docs/security.md).

CREATE FUNCTION ptm.agent_functions()
RETURNS SETOF regprocedure
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p FROM pg_catalog.unnest(ARRAY[
    'ptm.acquire_partition_lease(text, integer, text, interval)',
    'ptm.renew_lease(text, integer, text, bigint, interval)',
    'ptm.release_lease(text, integer, text, bigint)',
    'ptm.check_fence(text, integer, bigint)',
    'ptm.acquire_partition_leases(text, text, integer, interval)',
    'ptm.renew_leases(text, text[], integer[], bigint[], interval)',
    'ptm.ensure_partitions(text, integer)',
    'ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)',
    'ptm.get_state(text)',
    'ptm.claim_step(text, bigint, text, interval)',
    'ptm.apply_projection(text, integer, bigint, text, jsonb, timestamptz, text, integer, bigint)',
    'ptm.apply_projection_batch(text, integer, bigint[], text[], jsonb[], timestamptz[], text, integer, bigint)'
  ]) AS f(name), pg_catalog.to_regprocedure(f.name) AS p
  WHERE p IS NOT NULL
$$;
COMMENT ON FUNCTION ptm.agent_functions() IS
  'The functions an agent role needs: leases, fences, commits, claims, projections';

CREATE FUNCTION ptm.operator_functions()
RETURNS SETOF regprocedure
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p FROM pg_catalog.unnest(ARRAY[
    'ptm.force_expire(text, integer, text)',
    'ptm.reset_counters()',
    'ptm.reset_projection(text, integer, boolean, text)'
  ]) AS f(name), pg_catalog.to_regprocedure(f.name) AS p
  WHERE p IS NOT NULL
$$;
COMMENT ON FUNCTION ptm.operator_functions() IS
  'The functions only an operator role may call: forced expiry, resets';

-- Grant EXECUTE on the agent functions, and the operator functions too when
-- asked; one body for both grant functions.
CREATE FUNCTION ptm._grant_execute(role regrole, operator boolean)
RETURNS SETOF regprocedure
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f regprocedure;
BEGIN
  IF role IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed', MESSAGE = 'role must not be null';
  END IF;
  FOR f IN SELECT * FROM ptm.agent_functions()
           UNION ALL SELECT * FROM ptm.operator_functions() WHERE operator LOOP
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
    RETURN NEXT f;
  END LOOP;
  IF operator THEN
    EXECUTE pg_catalog.format('GRANT pg_monitor TO %s', role);
  END IF;
END $$;

CREATE FUNCTION ptm.grant_agent(role regrole)
RETURNS SETOF regprocedure
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ptm._grant_execute(role, false) $$;
COMMENT ON FUNCTION ptm.grant_agent(regrole) IS
  'Grant a role EXECUTE on the agent functions; returns what was granted';

CREATE FUNCTION ptm.grant_operator(role regrole)
RETURNS SETOF regprocedure
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ptm._grant_execute(role, true) $$;
COMMENT ON FUNCTION ptm.grant_operator(regrole) IS
  'Grant a role EXECUTE on the agent and operator functions and membership in pg_monitor';

REVOKE ALL ON FUNCTION ptm._grant_execute(regrole, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION ptm.grant_agent(regrole), ptm.grant_operator(regrole) FROM PUBLIC;
