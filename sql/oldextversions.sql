-- The oldest version installs as it was and updates to the current one, in
-- a database of its own (as pg_stat_statements' oldextversions test does).
-- The objects and privileges of 0.1.0 are listed here once: that version is
-- frozen.  Between the new library's start and the update, 0.1.0's lease,
-- commit and projection functions refuse with one error and a HINT, and
-- health() and the counters work; after ALTER EXTENSION UPDATE the same
-- calls succeed.  test/t/090_upgrade.pl compares the updated catalog with a
-- fresh install in full.
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

-- Which C symbol each C function of 0.1.0 names.  The current library
-- defines every one of them: those of the functions that read or write the
-- ptm tables refuse (src/old_versions.c), the others work as before.
CREATE TEMP TABLE c010 AS
SELECT p.proname, p.oid::regprocedure::text AS function, p.prosrc AS symbol
  FROM pg_proc p
 WHERE p.pronamespace = 'ptm'::regnamespace
   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c');
SELECT function, symbol FROM c010 ORDER BY 1;

-- What keeps working at 0.1.0, so that monitoring sees the window between
-- the restart and the update: health() (it says the update is due, and
-- what refuses until then), the counters and their views, the reset, and
-- the guard that refuses hand-written changes of the tables.
SELECT "check", status, value = (SELECT default_version FROM pg_available_extensions
                                  WHERE name = 'ptm_lease') AS is_current
  FROM ptm.health() WHERE "check" IN ('library_version', 'version_match') ORDER BY 1;
SELECT detail FROM ptm.health() WHERE "check" = 'version_match';
SELECT ptm.reset_counters() IS NOT NULL AS reset;
SELECT count(*) > 0 AS has_series FROM ptm.metrics;
SELECT stats_reset IS NOT NULL AS has_stats_reset FROM ptm.stat_info;
SELECT count(*) AS tracked FROM ptm.key_counters;
SELECT ptm.metrics_text() LIKE '%# TYPE ptm_commit_total counter%' AS exposition;
UPDATE ptm.partition_leases SET lease_expires_at = 0;

-- Every function whose C code reads or writes the ptm tables refuses, with
-- one error and the command that ends it.
SELECT * FROM ptm.acquire_partition_lease('oldext', 0, 'agent-1', '1 h');
SELECT * FROM ptm.renew_lease('oldext', 0, 'agent-1', 1, '1 h');
SELECT * FROM ptm.release_lease('oldext', 0, 'agent-1', 1);
SELECT * FROM ptm.force_expire('oldext', 0, 'a 0.1.0 call');
SELECT ptm.check_fence('oldext', 0, 1);
SELECT * FROM ptm.acquire_partition_leases('oldext', 'agent-1', 2, '1 h');
SELECT * FROM ptm.renew_leases('agent-1', '{oldext}', '{0}', '{1}', '1 h');
SELECT ptm.ensure_partitions('oldext', 2);
SELECT * FROM ptm.try_commit('oldext-wf', 0, '{"n": 1}', 'a1');
SELECT * FROM ptm.get_state('oldext-wf');
SELECT * FROM ptm.claim_step('oldext-wf', 1, 'worker-1', '1 h');
SELECT * FROM ptm.apply_projection('oldext-p', 0, 1, 'k1', '{"v": 1}');
SELECT * FROM ptm.apply_projection_batch('oldext-p', 0, '{1}', '{k1}', ARRAY['{"v": 1}']::jsonb[]);
SELECT * FROM ptm.reset_projection('oldext-p', 0, false, 'a 0.1.0 call');

-- Rows written at 0.1.0 (here by hand: INSERT stays allowed, as for a
-- restore) carry across the update: a live lease, a workflow with an
-- applied action, a watermark.
INSERT INTO ptm.partition_leases
       (topic, partition_id, agent_id, lease_epoch, lease_expires_at, state, acquired_at, renewed_at)
VALUES ('oldext', 0, 'agent-1', pg_catalog.nextval('ptm.lease_epoch_seq'),
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 3600000, 'active', now(), now());
INSERT INTO ptm.workflow_state (workflow_key, version, state) VALUES ('oldext-wf', 1, '{"n": 1}');
INSERT INTO ptm.action_dedup_log (workflow_key, action_id, result_version, expires_at)
VALUES ('oldext-wf', 'a1', 1, now() + interval '1 h');
INSERT INTO ptm.projection_watermarks (projection, partition_id, "offset", updated_at)
VALUES ('oldext-p', 0, 10, now());

-- Update along the path to the current version.
SELECT source, target, path FROM pg_extension_update_paths('ptm_lease')
 WHERE source = '0.1.0' AND path IS NOT NULL ORDER BY target;
ALTER EXTENSION ptm_lease UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions
                     WHERE name = 'ptm_lease') AS is_current
  FROM pg_extension WHERE extname = 'ptm_lease';
SELECT "check", status, value FROM ptm.health() WHERE "check" = 'version_match';

-- Nothing of 0.1.0 is lost (a signature change would show here).  One
-- change is deliberate: force_expire gained arguments with defaults in 0.2.0
-- (agent_id, lease_epoch, end_holder), so every 0.1.0 call of it still
-- resolves (the call below).
SELECT object AS missing_after_update FROM v010
EXCEPT
SELECT pg_describe_object(d.classid, d.objid, 0)
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ptm_lease');

-- The refused functions are bound to the current library's symbols, the
-- others keep theirs.
SELECT p.oid::regprocedure AS function, p.prosrc AS symbol
  FROM pg_proc p
 WHERE p.pronamespace = 'ptm'::regnamespace AND p.proname IN (SELECT proname FROM c010)
 ORDER BY p.oid::regprocedure::text;

-- The same calls succeed, on the rows written at 0.1.0.
SELECT r.result, r.lease_epoch = l.lease_epoch AS same_epoch
  FROM ptm.partition_leases l,
       ptm.renew_lease('oldext', 0, 'agent-1', l.lease_epoch, '30 min') r
 WHERE l.topic = 'oldext' AND l.partition_id = 0;
SELECT 'fenced' AS fence FROM ptm.partition_leases l, ptm.check_fence('oldext', 0, l.lease_epoch)
 WHERE l.topic = 'oldext' AND l.partition_id = 0;
SELECT result, agent_id FROM ptm.acquire_partition_lease('oldext', 0, 'agent-2', '1 h');
SELECT ptm.ensure_partitions('oldext', 2);
SELECT result, partition_id FROM ptm.acquire_partition_leases('oldext', 'agent-1', 2, '1 h');
SELECT r.result, r.partition_id
  FROM (SELECT array_agg(topic) t, array_agg(partition_id) p, array_agg(lease_epoch) e
          FROM ptm.partition_leases WHERE topic = 'oldext' AND agent_id = 'agent-1') l,
       ptm.renew_leases('agent-1', l.t, l.p, l.e, '1 h') r ORDER BY 2;
SELECT r.result FROM ptm.partition_leases l,
       ptm.release_lease('oldext', 1, 'agent-1', l.lease_epoch) r
 WHERE l.topic = 'oldext' AND l.partition_id = 1;
SELECT result, agent_id FROM ptm.force_expire('oldext', 0, 'a 0.1.0 call');
SELECT result, version FROM ptm.try_commit('oldext-wf', 0, '{"n": 1}', 'a1');
SELECT result, version FROM ptm.try_commit('oldext-wf', 1, '{"n": 2}', 'a2');
SELECT version, state FROM ptm.get_state('oldext-wf');
SELECT result, step FROM ptm.claim_step('oldext-wf', 2, 'worker-1', '1 h');
SELECT result, watermark FROM ptm.apply_projection('oldext-p', 0, 10, 'k1', '{"v": 1}');
SELECT "offset", result FROM ptm.apply_projection_batch('oldext-p', 0, '{11,12}', '{k1,k2}',
       ARRAY['{"v": 2}', '{"v": 3}']::jsonb[]);
SELECT result, partitions_reset FROM ptm.reset_projection('oldext-p', 0, false, 'a 0.1.0 call');

\c :regress_db
DROP DATABASE ptm_oldext;
