\set p random(0, 1)
\set a random(1, 64)
SELECT bench_acquire_recipe('hot', :p, 'agent-' || :a, 50);
