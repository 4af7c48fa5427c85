\set p random(0, :rows - 1)
BEGIN;
SELECT ptm.check_fence('bench', :p, :p + 1);
UPDATE bench_writes SET n = n + 1 WHERE id = :p;
COMMIT;
