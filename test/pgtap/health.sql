-- ptm.health() may be called by anyone (README, security.md, reference.md):
-- a readiness probe runs as the service's agent role, a monitoring check as
-- a role with no grant at all.  Called as each of them, not read off the
-- grant: every row comes back, the sweep backlog included (it counts rows of
-- ptm.partition_leases, which neither role may read).
BEGIN;
SELECT plan(9);

CREATE ROLE ptm_tap_health_agent;
CREATE ROLE ptm_tap_health_nobody;
-- an expired lease still owned: the backlog the health check counts
DO $$
BEGIN
  PERFORM ptm.grant_agent('ptm_tap_health_agent');
  PERFORM ptm.acquire_partition_lease('tap_health', 0, 'agent-h', '1 ms');
  PERFORM pg_sleep(0.01);
END $$;

CREATE TEMP TABLE owner_rows ON COMMIT DROP AS
  SELECT "check", status, value FROM ptm.health() WHERE "check" <> 'worker';
GRANT SELECT ON owner_rows TO PUBLIC;

SELECT ok(has_function_privilege('ptm_tap_health_nobody', 'ptm.health()', 'EXECUTE'),
          'PUBLIC may execute ptm.health()');
SELECT ok((SELECT prosecdef FROM pg_proc WHERE oid = 'ptm.health()'::regprocedure),
          'ptm.health() runs as the extension owner (SECURITY DEFINER)');
SELECT ok((SELECT proconfig @> ARRAY['search_path=pg_catalog, pg_temp']
             FROM pg_proc WHERE oid = 'ptm.health()'::regprocedure),
          'and pins its search_path');

-- The same three checks as each role: it calls, the backlog is counted,
-- and the rows are the owner's.
CREATE FUNCTION pg_temp.health_as(who text, what text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SET LOCAL ROLE %I', who);
  RETURN NEXT lives_ok('SELECT * FROM ptm.health()', what || ' calls ptm.health()');
  RETURN NEXT is((SELECT value FROM ptm.health() WHERE "check" = 'sweep_backlog'), '1',
                 what || ' sees the sweep backlog counted');
  RETURN NEXT set_eq('SELECT "check", status, value FROM ptm.health() WHERE "check" <> ''worker''',
                     'SELECT * FROM owner_rows', what || ' gets the rows the owner gets');
  RESET ROLE;
END $$;

SELECT pg_temp.health_as('ptm_tap_health_agent', 'an agent role (grant_agent)');
SELECT pg_temp.health_as('ptm_tap_health_nobody', 'a role with no grant');

SELECT * FROM finish();
ROLLBACK;
