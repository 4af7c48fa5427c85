-- ptm.health() and the basics of the install: schema, versions, preload.

SET search_path = public, ptm;

SELECT nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'ptm_lease';

-- The test cluster (test/run) preloads the library and sets
-- ptm_lease.database = 'postgres', so that no worker sweeps this database:
-- every check is ok but the worker's, which says why and what to set.
SELECT "check", status FROM ptm.health() ORDER BY "check";
SELECT count(*) AS problems FROM ptm.health() WHERE status <> 'ok';
SELECT "check", value, detail FROM ptm.health() WHERE "check" IN ('worker', 'history')
 ORDER BY "check" DESC;

-- With no worker here, lease events are sent by the changing sessions, and
-- the announcements row says so; per mode (ptm_lease.notify_owner_changes).
SELECT "check", status, value, detail FROM ptm.health() WHERE "check" = 'announcements';
SET ptm_lease.notify_owner_changes = inline;
SELECT value FROM ptm.health() WHERE "check" = 'announcements';
SET ptm_lease.notify_owner_changes = off;
SELECT value FROM ptm.health() WHERE "check" = 'announcements';
RESET ptm_lease.notify_owner_changes;

-- Library and extension versions are reported and agree with pg_extension.
SELECT h.value = e.extversion AS library_matches_catalog
  FROM ptm.health() h, pg_extension e
 WHERE h."check" = 'library_version' AND e.extname = 'ptm_lease';

-- Not relocatable: the schema is fixed by the control file.
CREATE SCHEMA elsewhere;
ALTER EXTENSION ptm_lease SET SCHEMA elsewhere;
DROP SCHEMA elsewhere;
