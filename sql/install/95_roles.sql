-- Who may call what.  Every ptm function is revoked from PUBLIC where it is
-- created; a DBA grants a service role the agent functions, and an on-call
-- role the operator functions, with one call each (docs/security.md).

-- Which role needs which function: one list.  An entry whose function does
-- not exist (yet) is skipped.
CREATE FUNCTION ptm.role_functions(OUT function regprocedure, OUT needed_by text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p, f.needed_by FROM (VALUES
    ('ptm.acquire_partition_lease(text, integer, text, interval)', 'agent'),
    ('ptm.renew_lease(text, integer, text, bigint, interval)', 'agent'),
    ('ptm.release_lease(text, integer, text, bigint)', 'agent'),
    ('ptm.check_fence(text, integer, bigint)', 'agent'),
    ('ptm.acquire_partition_leases(text, text, integer, interval)', 'agent'),
    ('ptm.renew_leases(text, text[], integer[], bigint[], interval)', 'agent'),
    ('ptm.ensure_partitions(text, integer)', 'agent'),
    ('ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)', 'agent'),
    ('ptm.get_state(text)', 'agent'),
    ('ptm.claim_step(text, bigint, text, interval)', 'agent'),
    ('ptm.apply_projection(text, integer, bigint, text, jsonb, timestamptz, text, integer, bigint)', 'agent'),
    ('ptm.apply_projection_batch(text, integer, bigint[], text[], jsonb[], timestamptz[], text, integer, bigint)', 'agent'),
    ('ptm.rebalance(text, text, interval)', 'agent'),
    ('ptm.leave_topic(text, text)', 'agent'),
    ('ptm.force_expire(text, integer, text, text, bigint, boolean)', 'operator'),
    ('ptm.advance_epoch_era(text)', 'operator'),
    ('ptm.sweep_expired_leases(integer)', 'operator'),
    ('ptm.set_topic_limit(text, integer, boolean, text)', 'operator'),
    ('ptm.clear_topic_limit(text, text)', 'operator'),
    ('ptm.drain_agent(text, text)', 'operator'),
    ('ptm.undrain_agent(text, text)', 'operator'),
    ('ptm.reset_counters()', 'operator'),
    ('ptm.reset_projection(text, integer, boolean, text)', 'operator'),
    ('ptm.snapshot_metrics()', 'operator')
  ) AS f(name, needed_by), pg_catalog.to_regprocedure(f.name) AS p
  WHERE p IS NOT NULL
$$;
COMMENT ON FUNCTION ptm.role_functions() IS
  'The functions an agent role needs, and those only an operator may call (needed_by = agent | operator)';

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
  FOR f IN SELECT rf.function FROM ptm.role_functions() rf
            WHERE rf.needed_by = 'agent' OR operator LOOP
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

-- The DML guard fires whoever changes the table (a trigger's EXECUTE right is
-- checked only when the trigger is created), so nobody needs to call it.
REVOKE ALL ON FUNCTION ptm._refuse_direct_dml() FROM PUBLIC;
