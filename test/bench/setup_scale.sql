-- A database for the scale runs and the expiry sweep: exactly :rows leases
-- (topic 'bench', agent-P, epoch P + 1, live for 55 minutes: a renew for an
-- hour moves the expiry) and :rows workflows
-- 'wf-K', in the extension's tables, and the same in the plain tables
-- bench_leases (seed 002's) and bench_state, for the hand-written statements.
--
--   psql -v rows=N -f setup_scale.sql
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS ptm_lease;
CREATE TABLE bench_leases (
    topic text NOT NULL, partition_id int NOT NULL, agent_id text,
    lease_epoch bigint NOT NULL DEFAULT 0, lease_expires_at bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition_id));
SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms \gset
INSERT INTO ptm.partition_leases (topic, partition_id, agent_id, lease_epoch, lease_expires_at, sweep_at, state, acquired_at)
SELECT 'bench', g, 'agent-' || g, g + 1, :now_ms + 3300000, :now_ms + 3300000, 'active', now()
  FROM generate_series(0, :rows - 1) g;
INSERT INTO bench_leases SELECT topic, partition_id, agent_id, lease_epoch, lease_expires_at
  FROM ptm.partition_leases;
SELECT setval('ptm.lease_epoch_seq', :rows + 1) \gset
INSERT INTO ptm.workflow_state (workflow_key, version, state)
SELECT 'wf-' || g, 1, '{"a": 0}'::jsonb FROM generate_series(0, :rows - 1) g;
CREATE TABLE bench_state (LIKE ptm.workflow_state INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
INSERT INTO bench_state SELECT * FROM ptm.workflow_state;
VACUUM ANALYZE;
