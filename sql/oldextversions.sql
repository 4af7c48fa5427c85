-- The oldest version installs as it was and updates to the current one, in
-- a database of its own (as pg_stat_statements' oldextversions test does).
-- The objects and privileges of 0.1.0 are listed here once: that version is
-- frozen.  test/t/090_upgrade.pl compares the updated catalog with a fresh
-- install in full.
\set regress_db :DBNAME
CREATE DATABASE ptm_oldext;
\c ptm_oldext
CREATE EXTENSION ptm_lease VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'ptm_lease';

-- Every object of 0.1.0.
CREATE TEMP TABLE v010 AS
SELECT pg_describe_object(d.classid, d.objid, 0) AS object
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ptm_lease');
SELECT object FROM v010 ORDER BY object;

-- Who may execute what at 0.1.0 (beyond the owner).
SELECT p.oid::regprocedure AS function,
       coalesce(string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                           ', ' ORDER BY 1), '') AS executable_by
  FROM pg_proc p
  LEFT JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
         ON a.grantee <> p.proowner
 WHERE p.pronamespace = 'ptm'::regnamespace
 GROUP BY p.oid ORDER BY p.oid::regprocedure::text;

-- The current library serves the 0.1.0 declarations and says an update is due.
SELECT "check", status, value = (SELECT default_version FROM pg_available_extensions
                                  WHERE name = 'ptm_lease') AS is_current
  FROM ptm.health() WHERE "check" IN ('library_version', 'version_match') ORDER BY 1;
SELECT result, lease_epoch > 0 AS has_epoch
  FROM ptm.acquire_partition_lease('oldext', 0, 'agent-1', '1 h');
SELECT result, version FROM ptm.try_commit('oldext-wf', 0, '{"n": 1}', 'a1');
-- the hot paths without SQL (src/row_access.c) read and write the 0.1.0 tables
SELECT r.result, r.lease_epoch = l.lease_epoch AS same_epoch
  FROM ptm.partition_leases l,
       ptm.renew_lease('oldext', 0, 'agent-1', l.lease_epoch, '30 min') r
 WHERE l.topic = 'oldext' AND l.partition_id = 0;
SELECT result, agent_id FROM ptm.acquire_partition_lease('oldext', 0, 'agent-2', '1 h');
SELECT result, version FROM ptm.try_commit('oldext-wf', 1, '{"n": 1.5}');
SELECT result, version, state FROM ptm.try_commit('oldext-wf', 1, '{"n": 1.6}');

-- Update along the path to the current version.
SELECT source, target, path FROM pg_extension_update_paths('ptm_lease')
 WHERE source = '0.1.0' AND path IS NOT NULL ORDER BY target;
ALTER EXTENSION ptm_lease UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions
                     WHERE name = 'ptm_lease') AS is_current
  FROM pg_extension WHERE extname = 'ptm_lease';
SELECT "check", status, value FROM ptm.health() WHERE "check" = 'version_match';

-- Nothing of 0.1.0 is lost (a signature change would show here), and what
-- was written at 0.1.0 carries on.  One change is deliberate: force_expire
-- gained arguments with defaults in 0.2.0 (agent_id, lease_epoch,
-- end_holder), so every 0.1.0 call of it still resolves (the call below).
SELECT object AS missing_after_update FROM v010
EXCEPT
SELECT pg_describe_object(d.classid, d.objid, 0)
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ptm_lease');
SELECT result, agent_id FROM ptm.force_expire('oldext-none', 0, 'a 0.1.0 call');
SELECT r.result, r.partition_id
  FROM ptm.partition_leases l,
       ptm.renew_leases('agent-1', ARRAY[l.topic], ARRAY[l.partition_id], ARRAY[l.lease_epoch], '1 h') r
 WHERE l.topic = 'oldext';
SELECT result, version FROM ptm.try_commit('oldext-wf', 0, '{"n": 1}', 'a1');
SELECT result, version FROM ptm.try_commit('oldext-wf', 2, '{"n": 2}', 'a2');
SELECT result, version FROM ptm.try_commit('oldext-wf', 3, '{"n": 3}');
SELECT r.result FROM ptm.partition_leases l,
       ptm.renew_lease('oldext', 0, 'agent-1', l.lease_epoch, '30 min') r
 WHERE l.topic = 'oldext' AND l.partition_id = 0;

\c :regress_db
DROP DATABASE ptm_oldext;
