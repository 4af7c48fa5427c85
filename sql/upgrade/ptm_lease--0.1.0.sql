-- ptm_lease 0.1.0, kept whole: CREATE EXTENSION ptm_lease VERSION '0.1.0' installs it and
-- ALTER EXTENSION ptm_lease UPDATE brings it to the current version.  Never edit.
-- Objects are created in schema ptm (control file).  Every function pins its
-- search_path and qualifies pg_catalog, so objects in public cannot hijack it.

\echo Use "CREATE EXTENSION ptm_lease" to load this file. \quit

-- Anyone may look up names in ptm; what each role may execute is granted per
-- function (operator functions are revoked from PUBLIC where they are created).
GRANT USAGE ON SCHEMA ptm TO PUBLIC;
-- ptm.health(): one row per check, for monitoring.
CREATE FUNCTION ptm.health(
    OUT "check" text, OUT status text, OUT value text, OUT detail text)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_health';

COMMENT ON FUNCTION ptm.health() IS
  'One row per check (preload, library and extension versions, workers): alert on status <> ''ok''';
-- Epoch-fenced partition leases (docs/leases.md).

-- Epochs come from one sequence: strictly increasing for every lease, across
-- release, expiry, force_expire, crash, restart, promotion and even a lease
-- row deleted and created again.  They are not consecutive per lease.
CREATE SEQUENCE ptm.lease_epoch_seq AS bigint MINVALUE 1 NO CYCLE;
COMMENT ON SEQUENCE ptm.lease_epoch_seq IS
  'Source of lease epochs (fencing tokens): every change of owner takes the next value';

CREATE TABLE ptm.partition_leases (
    topic             text        NOT NULL,
    partition_id      integer     NOT NULL,
    agent_id          text,                         -- NULL when free
    lease_epoch       bigint      NOT NULL DEFAULT 0,
    lease_expires_at  bigint      NOT NULL DEFAULT 0,  -- Unix epoch ms, database clock
    state             text        NOT NULL DEFAULT 'free',
    acquired_at       timestamptz,
    renewed_at        timestamptz,
    ended_at          timestamptz,                  -- released, forced or found expired
    previous_agent_id text,
    previous_epoch    bigint,
    PRIMARY KEY (topic, partition_id),
    CONSTRAINT partition_leases_state_check
      CHECK (state IN ('free', 'active', 'released', 'expired', 'forced')),
    CONSTRAINT partition_leases_owner_check
      CHECK ((agent_id IS NOT NULL) = (state = 'active')),
    CONSTRAINT partition_leases_partition_check CHECK (partition_id >= 0)
);

-- The sweeper finds expired leases through this index: cost follows what
-- expired, not the size of the table.
CREATE INDEX partition_leases_expiry_idx
    ON ptm.partition_leases (lease_expires_at) WHERE agent_id IS NOT NULL;

COMMENT ON TABLE ptm.partition_leases IS
  'One row per (topic, partition): owner, epoch (fencing token) and expiry in Unix ms; change it only through the ptm lease functions';
COMMENT ON COLUMN ptm.partition_leases.agent_id IS 'Owner; NULL when free, released, expired or forced';
COMMENT ON COLUMN ptm.partition_leases.lease_epoch IS 'Fencing token: raised on every change of owner and by force_expire';
COMMENT ON COLUMN ptm.partition_leases.lease_expires_at IS 'Expiry, Unix epoch milliseconds on the database clock';
COMMENT ON COLUMN ptm.partition_leases.state IS 'free, active, released, expired (found by the sweeper) or forced';

-- Operator actions, for the audit trail the runbooks ask for.
CREATE TABLE ptm.lease_audit (
    audit_id          bigserial   PRIMARY KEY,
    at                timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    action            text        NOT NULL,
    topic             text,
    partition_id      integer,
    previous_agent_id text,
    previous_epoch    bigint,
    new_epoch         bigint,
    reason            text,
    session_user_name text        NOT NULL DEFAULT pg_catalog."session_user"(),
    current_user_name text        NOT NULL DEFAULT pg_catalog."current_user"(),
    application_name  text        DEFAULT pg_catalog.current_setting('application_name'),
    client_addr       inet        DEFAULT pg_catalog.inet_client_addr(),
    details           jsonb
);
CREATE INDEX lease_audit_at_idx ON ptm.lease_audit (at);
CREATE INDEX lease_audit_lease_idx ON ptm.lease_audit (topic, partition_id, at);
COMMENT ON TABLE ptm.lease_audit IS
  'Who did what to which lease (force_expire, refused direct DML, resets): append-only';

SELECT pg_catalog.pg_extension_config_dump('ptm.partition_leases', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.lease_audit', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.lease_audit_audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.lease_epoch_seq', '');

-- Direct UPDATE, DELETE or TRUNCATE would bypass fencing and the audit trail
-- (the old runbook's "UPDATE partition_leases SET lease_expires_at = 0"), so
-- only the extension's own functions may change these tables.
CREATE FUNCTION ptm._refuse_direct_dml()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'ptm_refuse_direct_dml';
COMMENT ON FUNCTION ptm._refuse_direct_dml() IS
  'Trigger: refuses UPDATE, DELETE and TRUNCATE on ptm tables outside ptm functions';

CREATE TRIGGER partition_leases_guard
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ptm.partition_leases
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._refuse_direct_dml();
CREATE TRIGGER lease_audit_guard
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ptm.lease_audit
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._refuse_direct_dml();

-- What every lease function returns: the outcome and the lease as it stands.
CREATE TYPE ptm.lease_result AS (
    result        text,
    topic         text,
    partition_id  integer,
    agent_id      text,
    lease_epoch   bigint,
    expires_at    timestamptz
);
COMMENT ON TYPE ptm.lease_result IS
  'Outcome of a lease call and the lease after it (agent_id, lease_epoch, expires_at)';

CREATE FUNCTION ptm.acquire_partition_lease(
    topic text, partition_id integer, agent_id text,
    ttl interval DEFAULT '30 s')
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_acquire_partition_lease';
COMMENT ON FUNCTION ptm.acquire_partition_lease(text, integer, text, interval) IS
  'Take a free, released or expired lease (acquired, epoch raised), extend your own (held), or learn its owner (conflict)';

CREATE FUNCTION ptm.renew_lease(
    topic text, partition_id integer, agent_id text, lease_epoch bigint,
    ttl interval DEFAULT '30 s')
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_renew_lease';
COMMENT ON FUNCTION ptm.renew_lease(text, integer, text, bigint, interval) IS
  'Extend a live lease you hold at this epoch: renewed, stale_epoch, not_owner or expired; never changes the epoch';

CREATE FUNCTION ptm.release_lease(
    topic text, partition_id integer, agent_id text, lease_epoch bigint)
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_release_lease';
COMMENT ON FUNCTION ptm.release_lease(text, integer, text, bigint) IS
  'Free a lease you hold at this epoch at once: released, stale_epoch, not_owner or expired';

CREATE FUNCTION ptm.force_expire(
    topic text, partition_id integer, reason text DEFAULT NULL)
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_force_expire';
COMMENT ON FUNCTION ptm.force_expire(text, integer, text) IS
  'Operator: end a lease now, raise its epoch so the old owner is fenced, and audit it: forced or no_lease';

CREATE FUNCTION ptm.check_fence(
    topic text, partition_id integer, lease_epoch bigint)
RETURNS void
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_check_fence';
COMMENT ON FUNCTION ptm.check_fence(text, integer, bigint) IS
  'Inside a write''s transaction: ERROR PTM01 unless the epoch is current and live; on success a takeover waits for this transaction';

CREATE FUNCTION ptm.acquire_partition_leases(
    topic text, agent_id text, max_leases integer,
    ttl interval DEFAULT '30 s')
RETURNS SETOF ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_acquire_partition_leases';
COMMENT ON FUNCTION ptm.acquire_partition_leases(text, text, integer, interval) IS
  'Bulk: acquire up to max_leases free or expired partitions of a topic, skipping rows locked by others';

CREATE FUNCTION ptm.renew_leases(
    agent_id text, topics text[], partition_ids integer[], lease_epochs bigint[],
    ttl interval DEFAULT '30 s')
RETURNS SETOF ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_renew_leases';
COMMENT ON FUNCTION ptm.renew_leases(text, text[], integer[], bigint[], interval) IS
  'Bulk: renew many leases of one agent in one call, one result row per lease in input order';

CREATE FUNCTION ptm.ensure_partitions(topic text, partitions integer)
RETURNS integer
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_ensure_partitions';
COMMENT ON FUNCTION ptm.ensure_partitions(text, integer) IS
  'Create free lease rows for partitions 0 .. partitions-1 of a topic (for bulk acquire); returns how many were new';

-- What a DBA reads at 3 a.m.: every lease with its status on the database clock.
CREATE VIEW ptm.lease_status AS
SELECT l.topic, l.partition_id, l.agent_id, l.lease_epoch,
       pg_catalog.to_timestamp(l.lease_expires_at / 1000.0) AS expires_at,
       CASE
         WHEN l.agent_id IS NULL THEN pg_catalog.upper(l.state)
         WHEN l.lease_expires_at > (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint
           THEN 'ACTIVE'
         ELSE 'EXPIRED'
       END AS status,
       CASE WHEN l.agent_id IS NOT NULL
            THEN pg_catalog.to_timestamp(l.lease_expires_at / 1000.0) - pg_catalog.clock_timestamp()
       END AS remaining,
       l.acquired_at, l.renewed_at, l.ended_at, l.previous_agent_id, l.previous_epoch
  FROM ptm.partition_leases l;
COMMENT ON VIEW ptm.lease_status IS
  'Every lease with status ACTIVE, EXPIRED, FREE, RELEASED or FORCED on the database clock';
GRANT SELECT ON ptm.partition_leases, ptm.lease_status, ptm.lease_audit TO pg_monitor;

-- The functions run as the extension's owner (SECURITY DEFINER, search_path
-- pinned, every name qualified), so callers need no privilege on the tables;
-- who may call them is granted per role: see ptm.grant_agent() and
-- ptm.grant_operator() in 95_roles.sql.
REVOKE ALL ON FUNCTION
  ptm.acquire_partition_lease(text, integer, text, interval),
  ptm.renew_lease(text, integer, text, bigint, interval),
  ptm.release_lease(text, integer, text, bigint),
  ptm.force_expire(text, integer, text),
  ptm.check_fence(text, integer, bigint),
  ptm.acquire_partition_leases(text, text, integer, interval),
  ptm.renew_leases(text, text[], integer[], bigint[], interval),
  ptm.ensure_partitions(text, integer)
FROM PUBLIC;
REVOKE ALL ON ptm.partition_leases, ptm.lease_audit FROM PUBLIC;
-- Workflow state with optimistic commits, action dedup and ordered step claims
-- (issue 4; seeds 000 "CAS and Fencing" and 003 "Pure Reducer").  The
-- functions are in src/commits.c; see docs/commits.md.

-- One row per workflow.  The primary key's index is named the way seed 003
-- spells it, so the runbook's "CREATE INDEX IF NOT EXISTS
-- idx_workflow_state_workflow_key ON workflow_state(workflow_key)" finds it and
-- skips instead of adding a second index every commit would have to maintain.
-- The claim columns live in the same row so that a claim, a fenced commit and
-- a plain commit all serialise on one row lock (see src/commits.c).
CREATE TABLE ptm.workflow_state (
    workflow_key     text        NOT NULL,
    version          bigint      NOT NULL,
    state            jsonb       NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    claim_worker     text,
    claim_step       bigint,
    claim_epoch      bigint      NOT NULL DEFAULT 0,
    claim_expires_at bigint,
    CONSTRAINT idx_workflow_state_workflow_key PRIMARY KEY (workflow_key),
    CONSTRAINT workflow_state_version_check CHECK (version OPERATOR(pg_catalog.>=) 1),
    CONSTRAINT workflow_state_claim_epoch_check CHECK (claim_epoch OPERATOR(pg_catalog.>=) 0)
);

COMMENT ON TABLE ptm.workflow_state IS
  'Versioned workflow state: written by ptm.try_commit() and ptm.claim_step(), read by ptm.get_state()';
COMMENT ON COLUMN ptm.workflow_state.version IS
  'Committed version: 1 after creation, raised by one per ok commit, never lowered';
COMMENT ON COLUMN ptm.workflow_state.updated_at IS
  'Time of the transaction that committed this version';
COMMENT ON COLUMN ptm.workflow_state.claim_worker IS
  'Worker of the last step claim (ptm.claim_step)';
COMMENT ON COLUMN ptm.workflow_state.claim_step IS
  'Step of the last claim; the claim is void once version has moved past it';
COMMENT ON COLUMN ptm.workflow_state.claim_epoch IS
  'Epoch of the last claim; strictly increases with every new claim (0: never claimed)';
COMMENT ON COLUMN ptm.workflow_state.claim_expires_at IS
  'Expiry of the last claim in Unix epoch milliseconds (database clock); NULL once a fenced commit ended it';

-- Action ids already applied, per workflow: the primary key is what makes two
-- concurrent commits of one action apply once (the second waits for the first).
CREATE TABLE ptm.action_dedup_log (
    workflow_key   text        NOT NULL,
    action_id      text        NOT NULL,
    result_version bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at     timestamptz NOT NULL,
    CONSTRAINT action_dedup_log_pkey PRIMARY KEY (workflow_key, action_id)
);

CREATE INDEX action_dedup_log_expires_at_idx ON ptm.action_dedup_log (expires_at);

COMMENT ON TABLE ptm.action_dedup_log IS
  'Actions committed by ptm.try_commit(action_id => ...), kept for ptm_lease.dedup_ttl';
COMMENT ON COLUMN ptm.action_dedup_log.result_version IS
  'Workflow version the action produced; a repeat of the action returns it as duplicate';
COMMENT ON COLUMN ptm.action_dedup_log.expires_at IS
  'After this time the action id is forgotten and a repeat applies again';
COMMENT ON INDEX ptm.action_dedup_log_expires_at_idx IS
  'For the cleanup of expired action ids';

-- pg_dump keeps the rows of extension tables only when told to.
SELECT pg_catalog.pg_extension_config_dump('ptm.workflow_state', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.action_dedup_log', '');

CREATE FUNCTION ptm.try_commit(
    workflow_key text,
    expected_version bigint,
    new_state jsonb,
    action_id text DEFAULT NULL,
    fence_topic text DEFAULT NULL,
    fence_partition integer DEFAULT NULL,
    fence_epoch bigint DEFAULT NULL,
    OUT result text, OUT version bigint, OUT state jsonb)
RETURNS record
LANGUAGE c VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_try_commit';

COMMENT ON FUNCTION ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint) IS
  'Commit new_state if the workflow is at expected_version (0: create); result ok, cas_conflict, fencing_reject or duplicate';

CREATE FUNCTION ptm.get_state(
    workflow_key text,
    OUT version bigint, OUT state jsonb, OUT updated_at timestamptz)
RETURNS record
LANGUAGE c STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_get_state';

COMMENT ON FUNCTION ptm.get_state(text) IS
  'Current version, state and updated_at of a workflow; version 0 and NULLs when it does not exist';

CREATE FUNCTION ptm.claim_step(
    workflow_key text,
    step bigint,
    worker_id text,
    ttl interval DEFAULT '30 s',
    OUT result text, OUT workflow_key text, OUT step bigint, OUT worker_id text,
    OUT claim_epoch bigint, OUT expires_at timestamptz)
RETURNS record
LANGUAGE c VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_claim_step';

COMMENT ON FUNCTION ptm.claim_step(text, bigint, text, interval) IS
  'Claim the next step of a workflow for worker_id; result claimed, stale, out_of_order or busy';

-- The functions run as the extension owner, so that a service role needs only
-- EXECUTE and can never write the tables past the version check.  Who may
-- commit is the DBA's grant, not PUBLIC's default.
REVOKE ALL ON FUNCTION ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION ptm.get_state(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION ptm.claim_step(text, bigint, text, interval) FROM PUBLIC;
REVOKE ALL ON ptm.workflow_state, ptm.action_dedup_log FROM PUBLIC;
GRANT SELECT ON ptm.workflow_state, ptm.action_dedup_log TO pg_monitor;
-- Projections (issue 5): a read model per projection, and one watermark per
-- (projection, source partition) that only rises.  Writes go through
-- ptm.apply_projection() / ptm.apply_projection_batch(), which lock the
-- watermark row first and then touch the projection rows; see
-- docs/projections.md.

CREATE TABLE ptm.workflow_projection (
    projection       text        NOT NULL,
    key              text        NOT NULL,
    data             jsonb       NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (projection, key)
);

COMMENT ON TABLE ptm.workflow_projection IS
  'Materialized projection rows, one per (projection, key); written by ptm.apply_projection()';
COMMENT ON COLUMN ptm.workflow_projection.source_partition IS
  'Partition of the event that last wrote this row';
COMMENT ON COLUMN ptm.workflow_projection.source_offset IS
  'Offset of the event that last wrote this row';

-- The watermark row is updated by every apply: no index beyond the primary
-- key (so updates stay HOT), room on the page for the new versions, and no
-- CHECK constraints (the functions validate their arguments; a CHECK costs
-- a parse of its expression in every statement).
CREATE TABLE ptm.projection_watermarks (
    projection         text        NOT NULL,
    partition_id       integer     NOT NULL,
    "offset"           bigint      NOT NULL,
    previous_offset    bigint,
    updated_at         timestamptz NOT NULL,
    last_event_time    timestamptz,
    apply_lag_ms       bigint,
    max_lag_ms         bigint,
    applied_count      bigint      NOT NULL DEFAULT 0,
    duplicate_count    bigint      NOT NULL DEFAULT 0,
    regression_count   bigint      NOT NULL DEFAULT 0,
    gap_count          bigint      NOT NULL DEFAULT 0,
    last_regression_at timestamptz,
    PRIMARY KEY (projection, partition_id)
) WITH (fillfactor = 50);

COMMENT ON TABLE ptm.projection_watermarks IS
  'Last applied offset per (projection, partition); only rises until ptm.reset_projection()';
COMMENT ON COLUMN ptm.projection_watermarks."offset" IS
  'The watermark: offset of the last applied event';
COMMENT ON COLUMN ptm.projection_watermarks.previous_offset IS
  'The watermark before the last call that advanced it (NULL after the first)';
COMMENT ON COLUMN ptm.projection_watermarks.updated_at IS
  'When the watermark last advanced (database clock)';
COMMENT ON COLUMN ptm.projection_watermarks.last_event_time IS
  'event_time of the last applied event that had one';
COMMENT ON COLUMN ptm.projection_watermarks.apply_lag_ms IS
  'Milliseconds from last_event_time to its apply';
COMMENT ON COLUMN ptm.projection_watermarks.max_lag_ms IS
  'Highest apply_lag_ms seen since the watermark was created or reset';
COMMENT ON COLUMN ptm.projection_watermarks.gap_count IS
  'Applied events that skipped offsets (offset > watermark + 1); allowed, as Kafka offsets are not dense';
COMMENT ON COLUMN ptm.projection_watermarks.last_regression_at IS
  'When an event below the watermark was last refused';

SELECT pg_catalog.pg_extension_config_dump('ptm.workflow_projection', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.projection_watermarks', '');

CREATE FUNCTION ptm.apply_projection(
    projection text, partition_id integer, "offset" bigint, key text, data jsonb,
    event_time timestamptz DEFAULT NULL,
    fence_topic text DEFAULT NULL, fence_partition integer DEFAULT NULL,
    fence_epoch bigint DEFAULT NULL,
    OUT result text, OUT watermark bigint, OUT previous_watermark bigint, OUT skipped bigint)
RETURNS record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_apply_projection';

COMMENT ON FUNCTION ptm.apply_projection(text, integer, bigint, text, jsonb, timestamptz, text, integer, bigint) IS
  'Apply one event: applied | duplicate | regression | fencing_reject, with the watermark after the call';

CREATE FUNCTION ptm.apply_projection_batch(
    projection text, partition_id integer, offsets bigint[], keys text[], datas jsonb[],
    event_times timestamptz[] DEFAULT NULL,
    fence_topic text DEFAULT NULL, fence_partition integer DEFAULT NULL,
    fence_epoch bigint DEFAULT NULL,
    OUT ordinality integer, OUT "offset" bigint, OUT key text, OUT result text,
    OUT watermark bigint, OUT final_watermark bigint)
RETURNS SETOF record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_apply_projection_batch';

COMMENT ON FUNCTION ptm.apply_projection_batch(text, integer, bigint[], text[], jsonb[], timestamptz[], text, integer, bigint) IS
  'Apply many events of one partition in offset order, one row per event';

CREATE FUNCTION ptm.reset_projection(
    projection text, partition_id integer DEFAULT NULL,
    delete_rows boolean DEFAULT false, reason text DEFAULT NULL,
    OUT result text, OUT partitions_reset integer, OUT rows_deleted bigint)
RETURNS record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_reset_projection';

COMMENT ON FUNCTION ptm.reset_projection(text, integer, boolean, text) IS
  'Operator only: remove a projection''s watermarks (and optionally its rows) for a replay; audited in ptm.lease_audit';

-- Run as the owner (callers need no table privileges); granted per role by
-- ptm.grant_agent() / ptm.grant_operator().
REVOKE ALL ON FUNCTION
  ptm.apply_projection(text, integer, bigint, text, jsonb, timestamptz, text, integer, bigint),
  ptm.apply_projection_batch(text, integer, bigint[], text[], jsonb[], timestamptz[], text, integer, bigint),
  ptm.reset_projection(text, integer, boolean, text)
FROM PUBLIC;
REVOKE ALL ON ptm.workflow_projection, ptm.projection_watermarks FROM PUBLIC;

-- Lag per partition.  lag_ms is measured to now and keeps growing while no
-- event arrives; apply_lag_ms is the lag the last event had when applied.
CREATE VIEW ptm.projection_lag AS
  SELECT w.projection,
         w.partition_id,
         w."offset" AS watermark,
         w.last_event_time,
         w.updated_at,
         pg_catalog.round(pg_catalog.date_part('epoch',
             pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) w.last_event_time)
             OPERATOR(pg_catalog.*) 1000)::bigint AS lag_ms,
         w.apply_lag_ms,
         w.max_lag_ms,
         pg_catalog.round(pg_catalog.date_part('epoch',
             pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) w.updated_at)
             OPERATOR(pg_catalog.*) 1000)::bigint AS idle_ms,
         w.applied_count,
         w.duplicate_count,
         w.regression_count,
         w.gap_count
    FROM ptm.projection_watermarks w;

COMMENT ON VIEW ptm.projection_lag IS
  'Watermarks with their lag: lag_ms (last applied event_time to now), apply_lag_ms, max_lag_ms, idle_ms';

-- The two lag gauges in the shape of ptm.metrics, labelled per projection
-- and partition.
CREATE VIEW ptm.projection_metrics AS
  SELECT 'projection_materializer_wm_lag_ms'::text AS metric,
         pg_catalog.jsonb_build_object('projection', l.projection,
                                       'partition', l.partition_id::text) AS labels,
         l.lag_ms::double precision AS value
    FROM ptm.projection_lag l
   WHERE l.lag_ms IS NOT NULL
  UNION ALL
  SELECT 'projection_materializer_max_lag_ms'::text,
         pg_catalog.jsonb_build_object('projection', l.projection,
                                       'partition', l.partition_id::text),
         l.max_lag_ms::double precision
    FROM ptm.projection_lag l
   WHERE l.max_lag_ms IS NOT NULL;

COMMENT ON VIEW ptm.projection_metrics IS
  'Lag gauges per projection and partition, as (metric, labels, value) like ptm.metrics';

GRANT SELECT ON ptm.projection_watermarks, ptm.projection_lag, ptm.projection_metrics TO pg_monitor;
-- Counters, histograms and per-key statistics in shared memory (they need
-- shared_preload_libraries), the runbooks' views over them, and the Prometheus
-- text exposition.  See docs/metrics.md.  Everything here is readable by
-- pg_monitor; the functions behind the views are not for PUBLIC.

CREATE FUNCTION ptm._metric_series(
    OUT family text, OUT type text, OUT help text,
    OUT metric text, OUT labels jsonb, OUT value double precision)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_metric_series';

COMMENT ON FUNCTION ptm._metric_series() IS
  'Every series kept in shared memory, with its family, type and help; use ptm.metric_series';

-- The one list of series: ptm.metrics and ptm.metrics_text() read it, so a
-- series added here (e.g. a gauge computed from a table, UNION ALL) appears in
-- both.  Histogram series are one row per _bucket (label le), _sum and _count.
CREATE VIEW ptm.metric_series AS
  SELECT family, type, help, metric, labels, value FROM ptm._metric_series();

COMMENT ON VIEW ptm.metric_series IS
  'Every metric series with its Prometheus family, TYPE and HELP: what ptm.metrics and ptm.metrics_text() show';

CREATE VIEW ptm.metrics AS
  SELECT metric, labels, value FROM ptm.metric_series;

COMMENT ON VIEW ptm.metrics IS
  'One row per metric series (metric, labels, value), names as the runbooks spell them';

-- Histograms in the shape postgres_exporter's HISTOGRAM columns want: upper
-- bounds without +Inf, cumulative counts for those bounds, sum and count.
CREATE VIEW ptm.histograms AS
  SELECT family AS metric,
         pg_catalog.array_agg((labels->>'le')::double precision
                              ORDER BY (labels->>'le')::double precision)
           FILTER (WHERE metric = family || '_bucket' AND labels->>'le' <> '+Inf') AS bounds,
         pg_catalog.array_agg(value::bigint ORDER BY (labels->>'le')::double precision)
           FILTER (WHERE metric = family || '_bucket' AND labels->>'le' <> '+Inf') AS bucket_counts,
         pg_catalog.max(value) FILTER (WHERE metric = family || '_sum') AS sum,
         (pg_catalog.max(value) FILTER (WHERE metric = family || '_count'))::bigint AS count
    FROM ptm.metric_series
   WHERE type = 'histogram'
   GROUP BY family;

COMMENT ON VIEW ptm.histograms IS
  'One row per histogram: bucket upper bounds (ms, without +Inf), cumulative counts per bound, sum and count';

-- The runbooks' families, one view each.
CREATE VIEW ptm.commit_results AS
  SELECT labels->>'result' AS result, value::bigint AS total
    FROM ptm.metrics WHERE metric = 'ptm_commit_total';

COMMENT ON VIEW ptm.commit_results IS
  'try_commit() calls by result (ptm_commit_total): ok, cas_conflict, fencing_reject, duplicate';

CREATE VIEW ptm.claim_results AS
  SELECT labels->>'result' AS result, value::bigint AS total
    FROM ptm.metrics WHERE metric = 'ptm_claim_total';

COMMENT ON VIEW ptm.claim_results IS
  'claim_step() calls by result (ptm_claim_total): claimed, stale, out_of_order, busy';

CREATE VIEW ptm.lease_outcomes AS
  SELECT metric, labels->>'result' AS result, value::bigint AS total
    FROM ptm.metrics WHERE metric LIKE 'lease\_%';

COMMENT ON VIEW ptm.lease_outcomes IS
  'Every lease counter (acquisitions, renewals, conflicts, releases, forced expirations, expirations, fence checks) by result';

-- Per-key statistics of the current database.
CREATE FUNCTION ptm._key_counters(
    OUT family text, OUT key text, OUT metric text, OUT labels jsonb,
    OUT value double precision)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_key_counters';

COMMENT ON FUNCTION ptm._key_counters() IS
  'Non-zero counts per tracked topic and workflow key of this database; use ptm.key_counters';

CREATE VIEW ptm.key_counters AS
  SELECT family, key, metric, labels, value FROM ptm._key_counters();

COMMENT ON VIEW ptm.key_counters IS
  'Counts per topic (family topic) and per workflow key (family workflow), for the keys still tracked (ptm_lease.max_tracked_keys)';

-- "Identify top workflows by conflict count" (seed 003), and split-brain
-- suspects by topic (seed 002).  Rows are pivoted from ptm.key_counters, so a
-- key appears once it has counted anything.
CREATE VIEW ptm.top_workflow_conflicts AS
  SELECT workflow_key, cas_conflicts, fencing_rejects, commits, duplicates,
         stale_claims, out_of_order_claims,
         CASE WHEN commits + cas_conflicts > 0
              THEN cas_conflicts::double precision / (commits + cas_conflicts) END AS conflict_ratio
    FROM (SELECT key AS workflow_key,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_commit_total' AND labels->>'result' = 'cas_conflict'), 0)::bigint AS cas_conflicts,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_commit_total' AND labels->>'result' = 'fencing_reject'), 0)::bigint AS fencing_rejects,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_commit_total' AND labels->>'result' = 'ok'), 0)::bigint AS commits,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_commit_total' AND labels->>'result' = 'duplicate'), 0)::bigint AS duplicates,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_claim_total' AND labels->>'result' = 'stale'), 0)::bigint AS stale_claims,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'ptm_claim_total' AND labels->>'result' = 'out_of_order'), 0)::bigint AS out_of_order_claims
            FROM ptm.key_counters
           WHERE family = 'workflow'
           GROUP BY key) AS per_key
   ORDER BY cas_conflicts DESC, fencing_rejects DESC, workflow_key;

COMMENT ON VIEW ptm.top_workflow_conflicts IS
  'Tracked workflow keys, most cas_conflicts first, with their other commit and claim outcomes and conflict_ratio = cas_conflicts / (commits + cas_conflicts)';

CREATE VIEW ptm.top_topic_conflicts AS
  SELECT topic, lease_conflicts, acquire_conflicts, acquisitions, renewals, renew_failures,
         fence_rejects, forced_expirations,
         CASE WHEN acquisitions + acquire_conflicts > 0
              THEN acquire_conflicts::double precision / (acquisitions + acquire_conflicts) END AS conflict_ratio
    FROM (SELECT key AS topic,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_conflicts_total'), 0)::bigint AS lease_conflicts,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_acquisitions_total' AND labels->>'result' = 'conflict'), 0)::bigint AS acquire_conflicts,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_acquisitions_total' AND labels->>'result' = 'success'), 0)::bigint AS acquisitions,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_renewals_total' AND labels->>'result' = 'success'), 0)::bigint AS renewals,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_renewals_total' AND labels->>'result' = 'failure'), 0)::bigint AS renew_failures,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_fence_checks_total' AND labels->>'result' = 'reject'), 0)::bigint AS fence_rejects,
                 COALESCE(pg_catalog.sum(value) FILTER (WHERE metric = 'lease_forced_expirations_total'), 0)::bigint AS forced_expirations
            FROM ptm.key_counters
           WHERE family = 'topic'
           GROUP BY key) AS per_key
   ORDER BY lease_conflicts + acquire_conflicts DESC, renew_failures DESC, topic;

COMMENT ON VIEW ptm.top_topic_conflicts IS
  'Tracked topics, most lease conflicts (stale epochs plus refused acquisitions) first, with renewals and conflict_ratio = acquire_conflicts / (acquisitions + acquire_conflicts)';

-- State of the counters themselves.
CREATE FUNCTION ptm._stat_info(
    OUT stats_reset timestamptz, OUT evictions bigint,
    OUT tracked_keys bigint, OUT max_tracked_keys integer)
RETURNS record
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_stat_info';

COMMENT ON FUNCTION ptm._stat_info() IS
  'Backs ptm.stat_info; use the view';

CREATE VIEW ptm.stat_info AS
  SELECT stats_reset, evictions, tracked_keys, max_tracked_keys FROM ptm._stat_info();

COMMENT ON VIEW ptm.stat_info IS
  'When the counters last started from zero (reset, crash, first start), and per-key entries evicted, tracked and allowed';

CREATE FUNCTION ptm.reset_counters()
RETURNS timestamptz
LANGUAGE c VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_reset_counters';

COMMENT ON FUNCTION ptm.reset_counters() IS
  'Set every counter and histogram to zero and forget tracked keys; returns the new stats_reset time';

-- Prometheus text exposition format 0.0.4.  Families are grouped (one HELP and
-- TYPE each), histogram buckets in ascending le, label values and HELP text
-- escaped as the format requires, values as Prometheus spells them (+Inf, NaN).
CREATE FUNCTION ptm.metrics_text()
RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  WITH series AS (
    SELECT s.family, s.type, s.help, s.metric, s.value,
           (SELECT COALESCE('{' || string_agg(
                      l.key || '="' ||
                      replace(replace(replace(l.value, '\', '\\'), '"', '\"'), E'\n', '\n') || '"',
                      ',' ORDER BY l.key = 'le', l.key) || '}', '')
              FROM jsonb_each_text(s.labels) AS l) AS label_text,
           CASE WHEN s.labels ? 'le' THEN (s.labels->>'le')::double precision END AS le
      FROM ptm.metric_series AS s
  ), families AS (
    SELECT family, min(type) AS type, min(help) AS help,
           string_agg(metric || label_text || ' ' ||
                        CASE WHEN value = 'Infinity' THEN '+Inf'
                             WHEN value = '-Infinity' THEN '-Inf'
                             ELSE value::text END,
                      E'\n' ORDER BY metric, le, label_text) AS lines
      FROM series
     GROUP BY family
  )
  SELECT COALESCE(string_agg(
           '# HELP ' || family || ' ' ||
             replace(replace(help, '\', '\\'), E'\n', '\n') || E'\n' ||
           '# TYPE ' || family || ' ' || type || E'\n' || lines || E'\n',
           '' ORDER BY family), '')
    FROM families;
END;

COMMENT ON FUNCTION ptm.metrics_text() IS
  'Every series of ptm.metric_series in Prometheus text format 0.0.4, with HELP and TYPE lines';

-- Readable by pg_monitor, not by PUBLIC; reset only by the owner and whom it grants.
REVOKE ALL ON FUNCTION ptm._metric_series(), ptm._key_counters(), ptm._stat_info(),
                       ptm.metrics_text(), ptm.reset_counters() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ptm._metric_series(), ptm._key_counters(), ptm._stat_info(),
                          ptm.metrics_text() TO pg_monitor;
GRANT SELECT ON ptm.metric_series, ptm.metrics, ptm.histograms, ptm.commit_results,
                ptm.claim_results, ptm.lease_outcomes, ptm.key_counters,
                ptm.top_workflow_conflicts, ptm.top_topic_conflicts, ptm.stat_info
   TO pg_monitor;
-- Who may call what.  Every ptm function is revoked from PUBLIC where it is
-- created; a DBA grants a service role the agent functions, and an on-call
-- role the operator functions, with one call each (docs/security.md).

-- Which role needs which function: one list.  An entry whose function does
-- not exist (yet) is skipped.
CREATE FUNCTION ptm.role_functions(OUT function regprocedure, OUT needed_by text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p, f.needed_by FROM (VALUES
    ('ptm.acquire_partition_lease(text, integer, text, interval)', 'agent'),
    ('ptm.renew_lease(text, integer, text, bigint, interval)', 'agent'),
    ('ptm.release_lease(text, integer, text, bigint)', 'agent'),
    ('ptm.check_fence(text, integer, bigint)', 'agent'),
    ('ptm.acquire_partition_leases(text, text, integer, interval)', 'agent'),
    ('ptm.renew_leases(text, text[], integer[], bigint[], interval)', 'agent'),
    ('ptm.ensure_partitions(text, integer)', 'agent'),
    ('ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)', 'agent'),
    ('ptm.get_state(text)', 'agent'),
    ('ptm.claim_step(text, bigint, text, interval)', 'agent'),
    ('ptm.apply_projection(text, integer, bigint, text, jsonb, timestamptz, text, integer, bigint)', 'agent'),
    ('ptm.apply_projection_batch(text, integer, bigint[], text[], jsonb[], timestamptz[], text, integer, bigint)', 'agent'),
    ('ptm.force_expire(text, integer, text)', 'operator'),
    ('ptm.reset_counters()', 'operator'),
    ('ptm.reset_projection(text, integer, boolean, text)', 'operator')
  ) AS f(name, needed_by), pg_catalog.to_regprocedure(f.name) AS p
  WHERE p IS NOT NULL
$$;
COMMENT ON FUNCTION ptm.role_functions() IS
  'The functions an agent role needs, and those only an operator may call (needed_by = agent | operator)';

-- Grant EXECUTE on the agent functions, and the operator functions too when
-- asked; one body for both grant functions.
CREATE FUNCTION ptm._grant_execute(role regrole, operator boolean)
RETURNS SETOF regprocedure
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f regprocedure;
BEGIN
  IF role IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed', MESSAGE = 'role must not be null';
  END IF;
  FOR f IN SELECT rf.function FROM ptm.role_functions() rf
            WHERE rf.needed_by = 'agent' OR operator LOOP
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
    RETURN NEXT f;
  END LOOP;
  IF operator THEN
    EXECUTE pg_catalog.format('GRANT pg_monitor TO %s', role);
  END IF;
END $$;

CREATE FUNCTION ptm.grant_agent(role regrole)
RETURNS SETOF regprocedure
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ptm._grant_execute(role, false) $$;
COMMENT ON FUNCTION ptm.grant_agent(regrole) IS
  'Grant a role EXECUTE on the agent functions; returns what was granted';

CREATE FUNCTION ptm.grant_operator(role regrole)
RETURNS SETOF regprocedure
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ptm._grant_execute(role, true) $$;
COMMENT ON FUNCTION ptm.grant_operator(regrole) IS
  'Grant a role EXECUTE on the agent and operator functions and membership in pg_monitor';

REVOKE ALL ON FUNCTION ptm._grant_execute(regrole, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION ptm.grant_agent(regrole), ptm.grant_operator(regrole) FROM PUBLIC;
