-- ptm.health(): one row per check, for monitoring.  Anyone may call it (a
-- readiness probe runs as the service's role): it runs as the owner, because
-- the sweep backlog check counts rows of ptm.partition_leases, which PUBLIC
-- may not read.  It returns counts and states, never a row.
CREATE FUNCTION ptm.health(
    OUT "check" text, OUT status text, OUT value text, OUT detail text)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_health';

COMMENT ON FUNCTION ptm.health() IS
  'One row per check (preload, library and extension versions, workers): alert on status <> ''ok''';
