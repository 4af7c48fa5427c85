-- Counters in shared memory (needs shared_preload_libraries).
CREATE FUNCTION ptm._counters(
    OUT metric text, OUT labels jsonb, OUT help text, OUT value double precision)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_counters';

COMMENT ON FUNCTION ptm._counters() IS
  'Raw counter slots behind ptm.metrics; use the view';

CREATE VIEW ptm.metrics AS
  SELECT metric, labels, value FROM ptm._counters();

COMMENT ON VIEW ptm.metrics IS
  'One row per metric series (metric, labels, value), names as the runbooks spell them';

CREATE FUNCTION ptm.reset_counters()
RETURNS timestamptz
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_reset_counters';

COMMENT ON FUNCTION ptm.reset_counters() IS
  'Set every counter to zero; returns the new stats_reset time';

CREATE FUNCTION ptm._stats_reset()
RETURNS timestamptz
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_stat_info';

CREATE VIEW ptm.stat_info AS
  SELECT ptm._stats_reset() AS stats_reset;

COMMENT ON VIEW ptm.stat_info IS
  'When the counters last started from zero (reset, crash or first start)';

REVOKE ALL ON FUNCTION ptm.reset_counters() FROM PUBLIC;
GRANT SELECT ON ptm.metrics, ptm.stat_info TO pg_monitor;
