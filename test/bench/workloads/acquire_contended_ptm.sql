\set p random(0, 1)
\set a random(1, 64)
SELECT result FROM ptm.acquire_partition_lease('hot', :p, 'agent-' || :a, '50 ms');
