\set c :client_id
UPDATE bench_leases l SET lease_expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 3600000
  FROM unnest(array_fill('bulk'::text, ARRAY[500]),
              ARRAY(SELECT g FROM generate_series(:c * 500, :c * 500 + 499) g),
              ARRAY(SELECT g + 1::bigint FROM generate_series(:c * 500, :c * 500 + 499) g))
       AS r(topic, partition_id, lease_epoch)
 WHERE l.topic = r.topic AND l.partition_id = r.partition_id
   AND l.agent_id = 'bulk-' || :c AND l.lease_epoch = r.lease_epoch
   AND l.lease_expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
