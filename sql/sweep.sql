-- ptm.sweep_expired_leases(): one batch of the worker's expiry sweep, run by
-- an operator in its own transaction.  No worker serves this database, so
-- every sweep here is the function's.  The leases are inserted with sweep_at
-- at the start of 1970 (INSERT is allowed, as for a restore): they are the
-- oldest due rows whatever earlier tests left behind, so a batch of their
-- number takes them and nothing else.
SET search_path = public, ptm;
SELECT setval('ptm.lease_epoch_seq', 6000000) AS epoch_base;

-- bad input: 22023 with the range, the value and a hint; nothing is swept
SELECT * FROM sweep_expired_leases(0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM sweep_expired_leases(-1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM sweep_expired_leases(1000001);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- 0 and 3 expired long ago; 1 was renewed since it was scheduled and is live
-- for an hour; 2 is free
INSERT INTO ptm.partition_leases
       (topic, partition_id, agent_id, lease_epoch, lease_expires_at, state, sweep_at)
VALUES ('sweep', 0, 'agent-0', nextval('ptm.lease_epoch_seq'), 1000, 'active', 1),
       ('sweep', 1, 'agent-1', nextval('ptm.lease_epoch_seq'),
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 3600000, 'active', 2),
       ('sweep', 2, NULL, nextval('ptm.lease_epoch_seq'), 0, 'free', NULL),
       ('sweep', 3, 'agent-3', nextval('ptm.lease_epoch_seq'), 3000, 'active', 3);

-- the sweep is part of the caller's transaction: rolled back, nothing changed
BEGIN;
SELECT * FROM sweep_expired_leases(1);
ROLLBACK;
SELECT partition_id, agent_id, state FROM ptm.partition_leases
 WHERE topic = 'sweep' AND partition_id = 0;

-- a batch of one takes the oldest due lease, with the worker's log line
SET client_min_messages = log;
SELECT * FROM sweep_expired_leases(1);
RESET client_min_messages;

-- the next two: one renewed lease rescheduled (sweep_at = its expiry), one expired
SELECT * FROM sweep_expired_leases(2);
SELECT partition_id, agent_id, state, previous_agent_id, previous_epoch, lease_epoch,
       ended_at IS NOT NULL AS ended, sweep_at = lease_expires_at AS sweep_at_is_expiry
  FROM ptm.partition_leases WHERE topic = 'sweep' ORDER BY partition_id;

-- NULL is ptm_lease.sweep_batch_size; nothing of this topic is due any more
SELECT expired >= 0 AND rescheduled >= 0 AS swept FROM sweep_expired_leases();
SELECT count(*) AS due FROM ptm.partition_leases
 WHERE topic = 'sweep' AND agent_id IS NOT NULL
   AND sweep_at <= (extract(epoch FROM clock_timestamp()) * 1000)::bigint;

-- the epoch was kept: the old owner hears 'expired', the next owner gets a new epoch
SELECT result, lease_epoch FROM renew_lease('sweep', 0, 'agent-0', 6000001);
SELECT result, agent_id, lease_epoch FROM acquire_partition_lease('sweep', 0, 'agent-new');

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'sweep';
RESET session_replication_role;
