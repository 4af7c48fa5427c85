-- Renewals are HOT updates: no index covers lease_expires_at or renewed_at,
-- and sweep_at (the sweeper's lower bound of the expiry) is left behind.
SET search_path = public, ptm;

SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) AS definition
  FROM pg_index WHERE indrelid = 'ptm.partition_leases'::regclass ORDER BY indexrelid::regclass::text;
SELECT reloptions FROM pg_class WHERE oid = 'ptm.partition_leases'::regclass;

-- acquire sets sweep_at to the expiry
SELECT result FROM acquire_partition_lease('hot', 0, 'agent-hot', '30 s');
SELECT sweep_at = lease_expires_at AS sweep_at_is_expiry
  FROM ptm.partition_leases WHERE topic = 'hot' AND partition_id = 0;

-- four renewals and a held acquire, each its own statement, in one transaction so that the
-- backend's own counters for it are exact (nothing else is counted)
BEGIN;
SELECT pg_stat_get_xact_tuples_updated('ptm.partition_leases'::regclass) AS updated_before,
       pg_stat_get_xact_tuples_hot_updated('ptm.partition_leases'::regclass) AS hot_before;
SELECT r.result FROM ptm.partition_leases p, renew_lease('hot', 0, 'agent-hot', p.lease_epoch, '1 min') r
 WHERE p.topic = 'hot' AND p.partition_id = 0;
SELECT r.result FROM ptm.partition_leases p, renew_lease('hot', 0, 'agent-hot', p.lease_epoch, '2 min') r
 WHERE p.topic = 'hot' AND p.partition_id = 0;
SELECT r.result FROM ptm.partition_leases p, renew_lease('hot', 0, 'agent-hot', p.lease_epoch, '3 min') r
 WHERE p.topic = 'hot' AND p.partition_id = 0;
SELECT r.result FROM ptm.partition_leases p, renew_leases('agent-hot', ARRAY['hot'], ARRAY[0], ARRAY[p.lease_epoch], '4 min') r
 WHERE p.topic = 'hot' AND p.partition_id = 0;
-- a held acquire extends the lease the same way
SELECT result FROM acquire_partition_lease('hot', 0, 'agent-hot', '5 min');
SELECT pg_stat_get_xact_tuples_updated('ptm.partition_leases'::regclass) AS updated,
       pg_stat_get_xact_tuples_hot_updated('ptm.partition_leases'::regclass) AS hot_updated;
COMMIT;

-- sweep_at stayed at the first expiry, a lower bound of the new one
SELECT sweep_at < lease_expires_at AS sweep_at_behind,
       lease_expires_at - sweep_at > 4 * 60000 AS by_over_four_minutes
  FROM ptm.partition_leases WHERE topic = 'hot' AND partition_id = 0;

-- release and force keep sweep_at <= expiry; a new owner starts from its expiry
SELECT result FROM ptm.partition_leases p, release_lease('hot', 0, 'agent-hot', p.lease_epoch) r
 WHERE p.topic = 'hot' AND p.partition_id = 0;
SELECT state, sweep_at = lease_expires_at AS sweep_at_is_expiry
  FROM ptm.partition_leases WHERE topic = 'hot' AND partition_id = 0;
SELECT count(*) AS taken FROM acquire_partition_leases('hot', 'agent-two', 1, '30 s') WHERE result = 'acquired';
SELECT agent_id, sweep_at = lease_expires_at AS sweep_at_is_expiry
  FROM ptm.partition_leases WHERE topic = 'hot' AND partition_id = 0;

-- a row inserted with an owner but no sweep_at (a restore of a 0.1.0 dump)
-- gets one from its expiry, so the sweeper finds it
INSERT INTO ptm.partition_leases (topic, partition_id, agent_id, lease_epoch, lease_expires_at, state)
VALUES ('hot-restored', 0, 'agent-old', 1, 1000, 'active'),
       ('hot-restored', 1, NULL, 2, 2000, 'free');
SELECT partition_id, sweep_at FROM ptm.partition_leases WHERE topic = 'hot-restored' ORDER BY 1;
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'hot-restored';
RESET session_replication_role;
