-- renew_leases: one row per input, in input order; a lease named twice with
-- its epoch is renewed for both inputs, with a wrong epoch it is not; a free
-- lease and an unknown one are not the agent's.
SET search_path = ptm, public;
SELECT setval('ptm.lease_epoch_seq', 9100000) AS epoch_base;
SELECT ensure_partitions('bulk', 3) AS created;
SELECT count(*) AS taken FROM acquire_partition_leases('bulk', 'bulk-a', 2, '1 min');
SELECT result, topic, partition_id, agent_id, lease_epoch, expires_at > now() + interval '50 min' AS extended
  FROM renew_leases('bulk-a',
       ARRAY['bulk', 'bulk', 'bulk', 'bulk', 'bulk', 'nowhere'],
       ARRAY[0, 1, 0, 0, 2, 0],
       ARRAY[9100001, 9100002, 9100001, 9100002, 9100003, 1]::bigint[],
       '1 h') WITH ORDINALITY
 ORDER BY ordinality;

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic = 'bulk';
RESET session_replication_role;
