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
    last_skipped_offset bigint,
    last_skip_watermark bigint,
    replay_count       bigint      NOT NULL DEFAULT 0,
    last_replay_at     timestamptz,
    race_count         bigint      NOT NULL DEFAULT 0,
    last_race_at       timestamptz,
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
COMMENT ON COLUMN ptm.projection_watermarks.last_skipped_offset IS
  'Offset of the last event skipped at or below the watermark (a replay or a race tells itself by the next one)';
COMMENT ON COLUMN ptm.projection_watermarks.last_skip_watermark IS
  'The watermark when last_skipped_offset was skipped';
COMMENT ON COLUMN ptm.projection_watermarks.replay_count IS
  'Replays begun: a materializer went back below the watermark (routine: the events are skipped)';
COMMENT ON COLUMN ptm.projection_watermarks.last_replay_at IS
  'When the last replay began';
COMMENT ON COLUMN ptm.projection_watermarks.race_count IS
  'Events below the watermark after another writer moved it since the stream''s previous one: two materializers on this partition';
COMMENT ON COLUMN ptm.projection_watermarks.last_race_at IS
  'When the last such event came';

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
AS 'MODULE_PATHNAME', 'ptm_apply_projection_0_2';

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
AS 'MODULE_PATHNAME', 'ptm_apply_projection_batch_0_2';

COMMENT ON FUNCTION ptm.apply_projection_batch(text, integer, bigint[], text[], jsonb[], timestamptz[], text, integer, bigint) IS
  'Apply many events of one partition in offset order, one row per event';

CREATE FUNCTION ptm.reset_projection(
    projection text, partition_id integer DEFAULT NULL,
    delete_rows boolean DEFAULT false, reason text DEFAULT NULL,
    OUT result text, OUT partitions_reset integer, OUT rows_deleted bigint)
RETURNS record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_reset_projection_0_2';

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

-- Lag per partition, under names that say which lag (issue 18).  Two
-- different things are called lag:
--   wm_lag_ms          how old the last applied event was when it was applied
--                      (apply_lag_ms): the gauge projection_materializer_wm_lag_ms
--                      and seed 003's 500 ms threshold.  It stays put while a
--                      partition is idle.
--   last_event_age_ms  how old the last applied event is now: grows while no
--                      event arrives, idle or stuck alike.  lag_ms is the same
--                      value under its 0.1.0 name, kept for old queries.
-- idle_ms is the time since the watermark last moved.
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
         w.gap_count,
         w.apply_lag_ms AS wm_lag_ms,
         pg_catalog.round(pg_catalog.date_part('epoch',
             pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) w.last_event_time)
             OPERATOR(pg_catalog.*) 1000)::bigint AS last_event_age_ms,
         w.replay_count,
         w.race_count
    FROM ptm.projection_watermarks w;

COMMENT ON VIEW ptm.projection_lag IS
  'Watermarks with their lag: wm_lag_ms (= apply_lag_ms, the gauge projection_materializer_wm_lag_ms: how old the last applied event was when applied), max_lag_ms (projection_materializer_max_lag_ms), last_event_age_ms (how old that event is now, growing while idle; lag_ms is its 0.1.0 name), idle_ms (since the watermark moved); the counts, replays and races among them';

-- The two lag gauges in the shape of ptm.metrics, labelled per projection
-- and partition.  wm_lag_ms is the lag of the last applied event when it was
-- applied (apply_lag_ms), the materializer's own lag that seed 003 wants under
-- 100 ms; it does not grow while a projection is idle, so a quiet stream does
-- not page.  A stalled materializer shows in ptm.projection_lag.idle_ms.
CREATE VIEW ptm.projection_metrics AS
  SELECT 'projection_materializer_wm_lag_ms'::text AS metric,
         pg_catalog.jsonb_build_object('projection', w.projection,
                                       'partition', w.partition_id::text) AS labels,
         w.apply_lag_ms::double precision AS value
    FROM ptm.projection_watermarks w
   WHERE w.apply_lag_ms IS NOT NULL
  UNION ALL
  SELECT 'projection_materializer_max_lag_ms'::text,
         pg_catalog.jsonb_build_object('projection', w.projection,
                                       'partition', w.partition_id::text),
         w.max_lag_ms::double precision
    FROM ptm.projection_watermarks w
   WHERE w.max_lag_ms IS NOT NULL;

COMMENT ON VIEW ptm.projection_metrics IS
  'Lag gauges per projection and partition, as (metric, labels, value) like ptm.metrics';

GRANT SELECT ON ptm.projection_watermarks, ptm.projection_lag, ptm.projection_metrics TO pg_monitor;
