-- A DBA owns the ptm tables too.  After each change a DBA may make, the calls
-- that find and change their row without SQL (renew_lease, a plain
-- try_commit, the lease fence, acquire's first read; src/row_access.c) must
-- do what the UPDATE statement of the SQL path does: every case below runs
-- on the direct path and again with ptm_lease.direct_row_access = off, and
-- the two answer alike.  Errors are shown terse: their DETAIL shows
-- timestamps.
SET search_path = public, ptm;
\set VERBOSITY terse
SELECT setval('ptm.lease_epoch_seq', 8000000);
SELECT result, lease_epoch FROM acquire_partition_lease('dba', 0, 'agent-a', '30 s');
SELECT result, version FROM try_commit('dba-wf', 0, '{"n": 0}');

-- 1. CHECK constraints, NOT VALID ones included, hold for the new version.
ALTER TABLE ptm.partition_leases ADD CONSTRAINT ttl_cap
  CHECK (lease_expires_at <= (extract(epoch FROM renewed_at) * 1000)::bigint + 60000) NOT VALID;
ALTER TABLE ptm.workflow_state ADD CONSTRAINT has_n CHECK (state ? 'n') NOT VALID;
SELECT result FROM renew_lease('dba', 0, 'agent-a', 8000001, '10 min');
SELECT result, version FROM try_commit('dba-wf', 1, '{"oops": 1}');
SELECT result FROM renew_lease('dba', 0, 'agent-a', 8000001, '30 s');
SELECT result, version FROM try_commit('dba-wf', 1, '{"n": 1}');
SET ptm_lease.direct_row_access = off;
SELECT result FROM renew_lease('dba', 0, 'agent-a', 8000001, '10 min');
SELECT result, version FROM try_commit('dba-wf', 2, '{"oops": 1}');
SELECT result FROM renew_lease('dba', 0, 'agent-a', 8000001, '30 s');
SELECT result, version FROM try_commit('dba-wf', 2, '{"n": 2}');
RESET ptm_lease.direct_row_access;
-- nothing of the refused calls was written
SELECT version, state FROM ptm.workflow_state WHERE workflow_key = 'dba-wf';
SELECT lease_expires_at <= (extract(epoch FROM renewed_at) * 1000)::bigint + 60000 AS within_cap
  FROM ptm.partition_leases WHERE topic = 'dba';

-- A CHECK that itself commits to the same table (a function a DBA wrote):
-- the inner call checks with expressions of its own, the outer one goes on.
CREATE FUNCTION public.dba_touch_other(s jsonb) RETURNS boolean LANGUAGE sql AS $$
  SELECT CASE WHEN s ? 'nest'
              THEN (SELECT result = 'ok' FROM ptm.try_commit('dba-other', 0, '{"n": 0}'))
              ELSE true END
$$;
ALTER TABLE ptm.workflow_state ADD CONSTRAINT touch_other CHECK (public.dba_touch_other(state));
SELECT result, version FROM try_commit('dba-wf', 3, '{"n": 3, "nest": 1}');
SELECT workflow_key, version FROM ptm.workflow_state WHERE workflow_key LIKE 'dba-%' ORDER BY 1;
-- a changed function is compiled again: now it refuses
CREATE OR REPLACE FUNCTION public.dba_touch_other(s jsonb) RETURNS boolean LANGUAGE sql AS $$
  SELECT NOT s ? 'nest'
$$;
SELECT result, version FROM try_commit('dba-wf', 4, '{"n": 4, "nest": 1}');
SELECT result, version FROM try_commit('dba-wf', 4, '{"n": 4}');
ALTER TABLE ptm.partition_leases DROP CONSTRAINT ttl_cap;
ALTER TABLE ptm.workflow_state DROP CONSTRAINT has_n, DROP CONSTRAINT touch_other;
DROP FUNCTION public.dba_touch_other(jsonb);

-- 2. A DBA's statement-level UPDATE trigger fires, as for UPDATE; a disabled
-- one does not.
CREATE TABLE public.dba_log (n serial, what text);
CREATE FUNCTION public.dba_log_it() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.dba_log (what) VALUES (TG_TABLE_NAME || ' ' || TG_WHEN || ' ' || TG_LEVEL);
  RETURN NULL;
END $$;
CREATE TRIGGER dba_after AFTER UPDATE ON ptm.partition_leases
  FOR EACH STATEMENT EXECUTE FUNCTION public.dba_log_it();
CREATE TRIGGER dba_before BEFORE UPDATE ON ptm.workflow_state
  FOR EACH STATEMENT EXECUTE FUNCTION public.dba_log_it();
SELECT result FROM renew_lease('dba', 0, 'agent-a', 8000001, '30 s');
SELECT result, version FROM try_commit('dba-wf', 5, '{"n": 5}');
ALTER TABLE ptm.partition_leases DISABLE TRIGGER dba_after;
SELECT result FROM renew_lease('dba', 0, 'agent-a', 8000001, '30 s');
SELECT n, what FROM public.dba_log ORDER BY n;
DROP TRIGGER dba_after ON ptm.partition_leases;
DROP TRIGGER dba_before ON ptm.workflow_state;

-- 3. Replica identity and publication row filters are checked, as UPDATE
-- checks them when it starts.
CREATE PUBLICATION dba_pub FOR TABLE ptm.workflow_state, ptm.partition_leases;
ALTER TABLE ptm.workflow_state REPLICA IDENTITY NOTHING;
SELECT result, version FROM try_commit('dba-wf', 6, '{"n": 6}');
SET ptm_lease.direct_row_access = off;
SELECT result, version FROM try_commit('dba-wf', 6, '{"n": 6}');
RESET ptm_lease.direct_row_access;
ALTER TABLE ptm.workflow_state REPLICA IDENTITY DEFAULT;
SELECT result, version FROM try_commit('dba-wf', 6, '{"n": 6}');
SELECT result FROM renew_lease('dba', 0, 'agent-a', 8000001, '30 s');
DROP PUBLICATION dba_pub;
CREATE PUBLICATION dba_pub FOR TABLE ptm.workflow_state WHERE (version > 0);
SELECT result, version FROM try_commit('dba-wf', 7, '{"n": 7}');
DROP PUBLICATION dba_pub;

-- 4. Dropped columns are stored as NULL: the old values (TOASTed here) go.
ALTER TABLE ptm.partition_leases ADD COLUMN pad text;
ALTER TABLE ptm.partition_leases ALTER COLUMN pad SET STORAGE EXTERNAL;
SET session_replication_role = replica;  -- past the guard trigger: test setup only
UPDATE ptm.partition_leases SET pad = repeat('x', 100000) WHERE topic = 'dba';
RESET session_replication_role;
ALTER TABLE ptm.partition_leases DROP COLUMN pad;
SELECT reltoastrelid::regclass AS lease_toast FROM pg_class
 WHERE oid = 'ptm.partition_leases'::regclass \gset
SELECT count(*) > 0 AS chunks_before FROM :lease_toast;
SELECT result FROM renew_lease('dba', 0, 'agent-a', 8000001, '30 s');
SELECT count(*) AS chunks_after FROM :lease_toast;

-- 5. A column of another type: the call takes SQL, which converts.
ALTER TABLE ptm.workflow_state ALTER COLUMN state TYPE json;
SELECT result, version, state FROM try_commit('dba-wf', 7, '{"n": 7}');
SELECT result, version, state FROM try_commit('dba-wf', 7, '{"n": 7}');
SELECT version, state ->> 'n' AS n FROM ptm.workflow_state WHERE workflow_key = 'dba-wf';
ALTER TABLE ptm.workflow_state ALTER COLUMN state TYPE jsonb;
ALTER TABLE ptm.workflow_state ALTER COLUMN version TYPE numeric;
SELECT result, version FROM try_commit('dba-wf', 8, '{"n": 8}');
SELECT result, version, state FROM try_commit('dba-wf', 8, '{"n": 8}');
SELECT result, version FROM try_commit('dba-wf', 9, '{"n": 9}', 'dba-action');
SELECT result, version FROM try_commit('dba-wf', 9, '{"n": 9}', 'dba-action');
SELECT version, state FROM get_state('dba-wf');
ALTER TABLE ptm.workflow_state ALTER COLUMN version TYPE bigint;
-- (The lease columns the calls read are used by the view ptm.lease_status,
-- so their type cannot be changed while the extension is installed.)
ALTER TABLE ptm.partition_leases ALTER COLUMN lease_expires_at TYPE numeric;

-- 7. An index entry of a version that is not a HOT update carries the
-- statement's "index unchanged" hint: the same for both paths, so an index
-- on a changed column grows alike.  Each commit in its own transaction.
CREATE PROCEDURE public.dba_churn(key text, n int) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ptm.try_commit(key, 0, jsonb_build_object('k', 'x', 'n', 0));
  COMMIT;
  FOR i IN 1..n LOOP
    PERFORM ptm.try_commit(key, i, jsonb_build_object('k', 'x', 'n', i));
    COMMIT;
  END LOOP;
END $$;
ALTER TABLE ptm.workflow_state SET (autovacuum_enabled = off);
VACUUM ptm.workflow_state;
CREATE INDEX dba_wf_k ON ptm.workflow_state ((state ->> 'k'));
CALL public.dba_churn('dba-churn-direct', 3000);
SELECT pg_relation_size('ptm.dba_wf_k') AS direct_size \gset
DROP INDEX ptm.dba_wf_k;
SET session_replication_role = replica;
DELETE FROM ptm.workflow_state WHERE workflow_key = 'dba-churn-direct';
RESET session_replication_role;
VACUUM ptm.workflow_state;
CREATE INDEX dba_wf_k ON ptm.workflow_state ((state ->> 'k'));
SET ptm_lease.direct_row_access = off;
CALL public.dba_churn('dba-churn-sql', 3000);
RESET ptm_lease.direct_row_access;
SELECT pg_relation_size('ptm.dba_wf_k') = :direct_size AS same_index_size;
DROP INDEX ptm.dba_wf_k;
ALTER TABLE ptm.workflow_state RESET (autovacuum_enabled);

-- The setting is the superuser's.
CREATE ROLE dba_changes_user;
SET ROLE dba_changes_user;
SET ptm_lease.direct_row_access = off;
RESET ROLE;
DROP ROLE dba_changes_user;

-- clean up
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'dba';
DELETE FROM ptm.lease_audit WHERE topic = 'dba';
DELETE FROM ptm.workflow_state WHERE workflow_key LIKE 'dba-%';
DELETE FROM ptm.action_dedup_log WHERE workflow_key LIKE 'dba-%';
RESET session_replication_role;
DROP TABLE public.dba_log;
DROP FUNCTION public.dba_log_it();
DROP PROCEDURE public.dba_churn(text, int);
