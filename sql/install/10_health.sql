-- ptm.health(): one row per check, for monitoring.
CREATE FUNCTION ptm.health(
    OUT "check" text, OUT status text, OUT value text, OUT detail text)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_health';

COMMENT ON FUNCTION ptm.health() IS
  'One row per check (preload, library and extension versions, workers): alert on status <> ''ok''';
