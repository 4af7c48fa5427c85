-- Benchmark data for the main database: the extension's tables (A) and the
-- plain-SQL tables a user would write without ptm_lease (B).  The B tables
-- have the same columns and primary keys; bench_leases is seed 002's table
-- (primary key only: no expiry index, no audit columns).
--
-- Every preloaded lease has epoch partition_id + 1, so that workloads can
-- name the epoch the way an agent that holds it would (no extra read).
--
--   psql -v rows=N -v maxc=C -f setup.sql
--     rows: partitions of topic 'bench', workflows 'wf-*' and 'cf-*', keys
--     maxc: most clients of a run (bulk renew and projections use one
--           partition per client)
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS ptm_lease;

CREATE TABLE bench_leases (
    topic text NOT NULL, partition_id int NOT NULL, agent_id text,
    lease_epoch bigint NOT NULL DEFAULT 0, lease_expires_at bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition_id));
-- The same with the partial expiry index of ptm.partition_leases, to tell
-- what the index costs a renew from what the function call costs.
CREATE TABLE bench_leases_indexed (LIKE bench_leases INCLUDING ALL);
CREATE INDEX ON bench_leases_indexed (lease_expires_at) WHERE agent_id IS NOT NULL;
CREATE TABLE bench_state (LIKE ptm.workflow_state INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_dedup (
    workflow_key text NOT NULL, action_id text NOT NULL, result_version bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (workflow_key, action_id));
CREATE TABLE bench_watermarks (
    projection text NOT NULL, partition_id int NOT NULL, "offset" bigint NOT NULL,
    updated_at timestamptz NOT NULL, PRIMARY KEY (projection, partition_id));
CREATE TABLE bench_projection (LIKE ptm.workflow_projection INCLUDING DEFAULTS INCLUDING INDEXES);
-- The row a fenced write changes, the same in A and B.
CREATE TABLE bench_writes (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);

-- Seed 002's section 5 recipe ("Use Database-Level Locks for Lease
-- Acquisition"): advisory xact lock + SELECT ... FOR UPDATE + UPDATE.
CREATE FUNCTION bench_acquire_recipe(p_topic text, p_partition int, p_agent text, p_ttl_ms bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  r record;
BEGIN
  PERFORM pg_try_advisory_xact_lock(hashtext(concat(p_topic, '-', p_partition::text)));
  SELECT * INTO r FROM bench_leases WHERE topic = p_topic AND partition_id = p_partition FOR UPDATE;
  UPDATE bench_leases
     SET agent_id = p_agent, lease_epoch = lease_epoch + 1, lease_expires_at = now_ms + p_ttl_ms
   WHERE topic = p_topic AND partition_id = p_partition
     AND (lease_expires_at < now_ms OR agent_id = p_agent);
  RETURN FOUND;
END $$;

SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms \gset

-- Owned leases: 'bench' 0..rows-1 (agent-P), 'bulk' maxc * 500 (bulk-C owns
-- partitions C*500 .. C*500+499), live for 55 minutes, so that a renew for
-- an hour moves the expiry (as it does in service) and fences stay valid.  Free: 'hot' 0..1
-- (contended acquire), 'cycle' 0..maxc-1 (acquire/release).  INSERT is what
-- pg_restore does; the DML guard allows it.
INSERT INTO ptm.partition_leases (topic, partition_id, agent_id, lease_epoch, lease_expires_at, sweep_at, state, acquired_at)
SELECT 'bench', g, 'agent-' || g, g + 1, :now_ms + 3300000, :now_ms + 3300000, 'active', now()
  FROM generate_series(0, :rows - 1) g
UNION ALL
SELECT 'bulk', g, 'bulk-' || (g / 500), g + 1, :now_ms + 3300000, :now_ms + 3300000, 'active', now()
  FROM generate_series(0, :maxc * 500 - 1) g;
INSERT INTO ptm.partition_leases (topic, partition_id)
SELECT 'hot', g FROM generate_series(0, 1) g
UNION ALL
SELECT 'cycle', g FROM generate_series(0, :maxc - 1) g;
INSERT INTO bench_leases SELECT topic, partition_id, agent_id, lease_epoch, lease_expires_at
  FROM ptm.partition_leases;
INSERT INTO bench_leases_indexed SELECT * FROM bench_leases WHERE topic = 'bench';
-- Epochs handed out from now on are above the preloaded ones.
SELECT setval('ptm.lease_epoch_seq', :rows + :maxc * 500 + 1) \gset

-- Workflows: 'wf-K' at version 1 (commits, claims), 'cf-K' at version 1000
-- (every commit at version 1 is a conflict).
INSERT INTO ptm.workflow_state (workflow_key, version, state)
SELECT 'wf-' || g, 1, '{"a": 0}'::jsonb FROM generate_series(0, :rows - 1) g
UNION ALL
SELECT 'cf-' || g, 1000, '{"a": 0}'::jsonb FROM generate_series(0, :rows - 1) g;
INSERT INTO bench_state SELECT * FROM ptm.workflow_state;
INSERT INTO bench_writes SELECT g FROM generate_series(0, :rows - 1) g;

-- The hand-written projections start with a watermark row per partition
-- (the extension creates its own on the first event).
INSERT INTO bench_watermarks
SELECT p, g, -1, now() FROM generate_series(0, :maxc - 1) g, unnest(ARRAY['bench', 'batch']) p;

VACUUM ANALYZE;
