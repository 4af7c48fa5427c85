-- One repetition of sweep.sql: expire 1 %, then the worker's pass and the
-- hand-written sweep, timed.
SELECT bench_expire_one_percent() AS expired \gset
VACUUM ANALYZE ptm.partition_leases, bench_leases;
SELECT bench_sweep_pass(1000) AS ext_ms \gset
SELECT bench_sweep_sql() AS sql_ms \gset
SELECT 'sweep', :rows, :expired, :ext_ms, :sql_ms,
       (SELECT count(*) FROM ptm.partition_leases WHERE state = 'expired');
