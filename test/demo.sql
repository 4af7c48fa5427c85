-- The demo scenario, run by test/demo against database ptm_demo.
\pset footer off
\echo
\echo '== Is the extension healthy? (ptm.health)'
SELECT "check", status, value FROM ptm.health();

\echo '== Counters the runbooks read (ptm.metrics), first rows'
SELECT metric, labels, value FROM ptm.metrics ORDER BY metric, labels::text LIMIT 8;
