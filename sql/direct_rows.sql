-- renew_lease and a plain try_commit change their row without SQL
-- (src/row_access.c).  What an UPDATE statement would have done for them must
-- still hold: index entries when the new version leaves the page, read-only
-- transactions refused, each call seeing the one before, rollback undoing it,
-- and a DBA's row trigger firing (the call then runs its SQL statement).
SET search_path = public, ptm;
SELECT setval('ptm.lease_epoch_seq', 7000000);
SELECT result, lease_epoch FROM acquire_partition_lease('direct', 0, 'agent-d', '30 s');
SELECT result FROM acquire_partition_lease('direct', 1, 'agent-d', '30 s');

-- 300 renewals in one transaction: the old versions cannot be pruned, the page
-- fills up and later versions go to other pages (not HOT), so every index
-- needs new entries.  Each call also sees the previous call's version.
BEGIN;
SELECT count(*) FILTER (WHERE r.result = 'renewed') AS renewed, count(*) AS calls
  FROM generate_series(1, 300) g,
       LATERAL renew_lease('direct', 0, 'agent-d', 7000001, g * interval '1 s' + '50 min') r;
SELECT pg_stat_get_xact_tuples_updated('ptm.partition_leases'::regclass) AS updated,
       pg_stat_get_xact_tuples_hot_updated('ptm.partition_leases'::regclass) < 300 AS some_not_hot;
COMMIT;
-- every index finds the newest version, and only it
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT agent_id, lease_epoch FROM ptm.partition_leases WHERE topic = 'direct' AND partition_id = 0;
SELECT count(*) AS by_agent_index FROM ptm.partition_leases WHERE agent_id = 'agent-d';
SELECT count(*) AS by_sweep_index FROM ptm.partition_leases
 WHERE agent_id IS NOT NULL AND sweep_at > 0 AND topic = 'direct';
RESET enable_seqscan;
RESET enable_bitmapscan;
-- amcheck: every heap tuple has its index entries, in every index
CREATE EXTENSION amcheck;
SELECT c.relname AS index, public.bt_index_check(i.indexrelid, heapallindexed => true) IS NOT NULL AS checked
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'ptm.partition_leases'::regclass ORDER BY 1;
DROP EXTENSION amcheck;
-- the expiry is the last renewal's: 50 min 300 s from the call
SELECT lease_expires_at - (extract(epoch FROM clock_timestamp()) * 1000)::bigint
       BETWEEN 3290000 AND 3300000 AS expiry_of_last_call
  FROM ptm.partition_leases WHERE topic = 'direct' AND partition_id = 0;

-- a renewal rolled back leaves the lease as it was
SELECT lease_expires_at AS before_rollback FROM ptm.partition_leases
 WHERE topic = 'direct' AND partition_id = 1 \gset
BEGIN;
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000002, '55 min');
ROLLBACK;
SELECT lease_expires_at = :before_rollback AS unchanged FROM ptm.partition_leases
 WHERE topic = 'direct' AND partition_id = 1;
-- and so does one in a subtransaction rolled back
BEGIN;
SAVEPOINT s;
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000002, '55 min');
ROLLBACK TO SAVEPOINT s;
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000002, '10 min');
COMMIT;
SELECT lease_expires_at - (extract(epoch FROM clock_timestamp()) * 1000)::bigint
       BETWEEN 590000 AND 600000 AS ten_minutes
  FROM ptm.partition_leases WHERE topic = 'direct' AND partition_id = 1;

-- a read-only transaction is refused as an UPDATE is (SQLSTATE 25006)
\set VERBOSITY verbose
BEGIN READ ONLY;
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000002, '10 min');
ROLLBACK;
\set VERBOSITY default

-- a row trigger on the table (a DBA's own audit): the call runs its SQL
-- statement, so the trigger sees the renewal
CREATE TABLE public.lease_renewals_seen (topic text, partition_id integer, expires_at bigint);
CREATE FUNCTION public.see_renewal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.lease_renewals_seen VALUES (NEW.topic, NEW.partition_id, NEW.lease_expires_at);
  RETURN NEW;
END $$;
CREATE TRIGGER see_renewal AFTER UPDATE ON ptm.partition_leases
  FOR EACH ROW EXECUTE FUNCTION public.see_renewal();
-- the SQL statement runs with search_path pinned (the function has no SET
-- clause): an operator planted ahead of pg_catalog is never called
CREATE FUNCTION public.trap_texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted text = text was called';
END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trap_texteq);
SET search_path = public, pg_catalog, ptm;
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000002, '20 min');
SET search_path = public, ptm;
DROP OPERATOR public.= (text, text);
DROP FUNCTION public.trap_texteq(text, text);
SELECT result FROM renew_lease('direct', 1, 'agent-x', 7000002, '20 min');
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000001, '20 min');
SELECT topic, partition_id, expires_at - (extract(epoch FROM clock_timestamp()) * 1000)::bigint
       BETWEEN 1190000 AND 1200000 AS twenty_minutes
  FROM public.lease_renewals_seen;
DROP TRIGGER see_renewal ON ptm.partition_leases;
DROP FUNCTION public.see_renewal();
DROP TABLE public.lease_renewals_seen;

-- a contended acquire answered from its first read names the owner
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('direct', 1, 'agent-other', '30 s');

-- check_fence locks the lease row FOR SHARE without SQL: the lock is there
-- until the transaction ends, and a read-only transaction is refused as
-- SELECT ... FOR SHARE is
CREATE EXTENSION pgrowlocks;
BEGIN;
SELECT check_fence('direct', 1, 7000002);
SELECT r.modes, pg_backend_pid() = ANY (r.pids) AS mine
  FROM public.pgrowlocks('ptm.partition_leases') r
  JOIN ptm.partition_leases p ON p.ctid = r.locked_row
 WHERE p.topic = 'direct' AND p.partition_id = 1;
COMMIT;
DROP EXTENSION pgrowlocks;
BEGIN READ ONLY;
SELECT check_fence('direct', 1, 7000002);
ROLLBACK;
-- with row security on the table, the fence runs its SQL statement (the owner
-- bypasses the policies): the same answers
ALTER TABLE ptm.partition_leases ENABLE ROW LEVEL SECURITY;
SELECT check_fence('direct', 1, 7000002);
SELECT check_fence('direct', 1, 7000001);
ALTER TABLE ptm.partition_leases DISABLE ROW LEVEL SECURITY;

-- a table changed by hand so that the direct path cannot find what it needs:
-- a clear error naming it, and nothing changed (each in a rolled-back transaction)
BEGIN;
ALTER INDEX ptm.partition_leases_pkey RENAME TO partition_leases_pkey_moved;
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000002, '20 min');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
ALTER TABLE ptm.partition_leases RENAME COLUMN renewed_at TO renewed_at_moved;
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000002, '20 min');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- after the rollbacks the cached names are looked up again and work
SELECT result FROM renew_lease('direct', 1, 'agent-d', 7000002, '20 min');

SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'direct';
RESET session_replication_role;

-- ---------------------------------------------------------------------
-- try_commit without fence or action id
-- ---------------------------------------------------------------------
SELECT result, version FROM try_commit('direct-wf', 0, '{"n": 0}');
-- 200 commits in one statement: each sees the one before
BEGIN;
SELECT count(*) FILTER (WHERE c.result = 'ok') AS ok, max(c.version) AS last_version
  FROM generate_series(1, 200) g,
       LATERAL try_commit('direct-wf', g, jsonb_build_object('n', g)) c;
SELECT pg_stat_get_xact_tuples_hot_updated('ptm.workflow_state'::regclass) < 200 AS some_not_hot;
COMMIT;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT version, state FROM ptm.workflow_state WHERE workflow_key = 'direct-wf';
RESET enable_seqscan;
RESET enable_bitmapscan;
CREATE EXTENSION amcheck;
SELECT public.bt_index_check('ptm.idx_workflow_state_workflow_key'::regclass, heapallindexed => true)
       IS NOT NULL AS checked;
DROP EXTENSION amcheck;

-- a stale version gets cas_conflict with the current version and state,
-- also when the state is large enough to be stored out of line (TOAST)
SELECT result, version, state FROM try_commit('direct-wf', 5, '{"stale": true}');
SELECT result, version FROM try_commit('direct-wf', 201,
       jsonb_build_object('big', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g)));
SELECT reltoastrelid::regclass AS toast FROM pg_class WHERE oid = 'ptm.workflow_state'::regclass \gset
SELECT count(*) > 0 AS stored_out_of_line FROM :toast;
SELECT result, version, length(state ->> 'big') AS big_length FROM try_commit('direct-wf', 5, '{"stale": true}');
-- a missing workflow is at version 0
SELECT result, version, state FROM try_commit('direct-missing', 3, '{}');
-- rollback undoes a commit
BEGIN;
SELECT result, version FROM try_commit('direct-wf', 202, '{"rolled": "back"}');
ROLLBACK;
SELECT version FROM ptm.workflow_state WHERE workflow_key = 'direct-wf';
-- read-only transactions are refused as an UPDATE is
BEGIN READ ONLY;
SELECT result FROM try_commit('direct-wf', 202, '{}');
ROLLBACK;
-- a DBA's row trigger sees the commit (the SQL statement runs instead)
CREATE TABLE public.commits_seen (workflow_key text, version bigint);
CREATE FUNCTION public.see_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.commits_seen VALUES (NEW.workflow_key, NEW.version);
  RETURN NEW;
END $$;
CREATE TRIGGER see_commit AFTER UPDATE ON ptm.workflow_state
  FOR EACH ROW EXECUTE FUNCTION public.see_commit();
SELECT result, version FROM try_commit('direct-wf', 202, '{"seen": true}');
SELECT result, version, state FROM try_commit('direct-wf', 202, '{"seen": false}');
SELECT * FROM public.commits_seen;
DROP TRIGGER see_commit ON ptm.workflow_state;
DROP FUNCTION public.see_commit();
DROP TABLE public.commits_seen;
-- without the trigger, the direct path again
SELECT result, version FROM try_commit('direct-wf', 203, '{"n": 203}');
DELETE FROM ptm.workflow_state WHERE workflow_key LIKE 'direct-%';

-- claim_step has no SET clause either: its claim runs no SQL, and its SQL
-- path (here with direct row access off) pins search_path first, so a
-- planted text = text is never called
SELECT result FROM try_commit('direct-claim', 0, '{"n": 0}');
CREATE FUNCTION public.trap_texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted text = text was called';
END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trap_texteq);
SET search_path = public, pg_catalog, ptm;
SELECT result, step, worker_id, claim_epoch FROM claim_step('direct-claim', 1, 'worker-d');
SET ptm_lease.direct_row_access = off;
SELECT result, step, worker_id, claim_epoch FROM claim_step('direct-claim', 1, 'worker-e');
SELECT result, step, worker_id, claim_epoch FROM claim_step('direct-claim', 1, 'worker-d');
RESET ptm_lease.direct_row_access;
SET search_path = public, ptm;
DROP OPERATOR public.= (text, text);
DROP FUNCTION public.trap_texteq(text, text);
DELETE FROM ptm.workflow_state WHERE workflow_key = 'direct-claim';
