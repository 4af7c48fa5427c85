-- The expiry sweep's cost: in a database set up by setup_scale.sql, 1 % of
-- the leases (partition_id % 100 = 0) are made expired, then one pass of the
-- worker's sweep runs (ptm.sweep_expired_leases(), batches of
-- ptm_lease.sweep_batch_size = 1000, at most 10 per pass, as the worker
-- does) and, for comparison, the hand-written sweep a user of seed 002's
-- table runs (one UPDATE, no expiry index).  Three repetitions
-- (sweep_round.sql); prints
-- "sweep <leases> <expired> <ext ms> <sql ms> <marked expired>" for each,
-- then "idle ..." for a pass that finds nothing.
--
--   psql -v rows=N -f sweep.sql
\set ON_ERROR_STOP 1
\pset tuples_only on
\pset format unaligned
\pset fieldsep ' '
SET client_min_messages = warning;

CREATE OR REPLACE FUNCTION bench_expire_one_percent() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  past bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1000;
  n bigint;
BEGIN
  -- by hand, past the DML guard (a statement trigger, off in replica mode)
  SET LOCAL session_replication_role = replica;
  UPDATE ptm.partition_leases SET agent_id = 'agent-' || partition_id, state = 'active',
         lease_expires_at = past - partition_id, sweep_at = past - partition_id, ended_at = NULL
   WHERE topic = 'bench' AND partition_id % 100 = 0;
  GET DIAGNOSTICS n = ROW_COUNT;
  UPDATE bench_leases SET agent_id = 'agent-' || partition_id, lease_expires_at = past - partition_id
   WHERE topic = 'bench' AND partition_id % 100 = 0;
  RETURN n;
END $$;

-- One pass of the worker: batches while full, at most 10, each through
-- ptm.sweep_expired_leases(), the worker's own sweep (with its LOG line and
-- NOTIFY per expired lease).
CREATE OR REPLACE FUNCTION bench_sweep_pass(batch int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  r record;
  i int;
BEGIN
  FOR i IN 1 .. 10 LOOP
    SELECT * INTO r FROM ptm.sweep_expired_leases(batch);
    EXIT WHEN r.expired + r.rescheduled < batch;
  END LOOP;
  RETURN round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 2);
END $$;

-- What a user of seed 002's table writes: one UPDATE over the table.
CREATE OR REPLACE FUNCTION bench_sweep_sql() RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  n bigint;
BEGIN
  WITH swept AS (
    UPDATE bench_leases SET agent_id = NULL
     WHERE agent_id IS NOT NULL AND lease_expires_at <= now_ms
    RETURNING topic, partition_id, lease_epoch)
  SELECT count(*) INTO n FROM swept;
  RETURN round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 2);
END $$;

\ir sweep_round.sql
\ir sweep_round.sql
\ir sweep_round.sql

-- Nothing expired: what every sweep_interval costs in the steady state.
SELECT bench_sweep_pass(1000) AS ext_ms \gset
SELECT bench_sweep_sql() AS sql_ms \gset
SELECT 'idle', :rows, 0, :ext_ms, :sql_ms, 0;
