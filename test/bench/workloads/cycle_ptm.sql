\set p :client_id
SELECT lease_epoch AS e FROM ptm.acquire_partition_lease('cycle', :p, 'agent-' || :p, '30 s') \gset
SELECT result FROM ptm.release_lease('cycle', :p, 'agent-' || :p, :e);
