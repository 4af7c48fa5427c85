\set p random(0, :rows - 1)
SELECT result FROM ptm.renew_lease('bench', :p, 'agent-' || :p,
  (SELECT lease_epoch FROM ptm.partition_leases WHERE topic = 'bench' AND partition_id = :p), '1 h');
