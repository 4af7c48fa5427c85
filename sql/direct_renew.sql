-- renew_lease changes its row without SQL (src/row_access.c).  What an UPDATE
-- statement would have done for it must still hold: index entries when the
-- new version leaves the page, read-only transactions refused, each call
-- seeing the one before, rollback undoing it, and a DBA's row trigger firing
-- (the call then runs its SQL statement instead).
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

SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'direct';
RESET session_replication_role;
