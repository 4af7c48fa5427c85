-- Events at or below the watermark (issue 18): a replay (a materializer went
-- back to an older offset: routine, one LOG line) and a race (another writer
-- moved the watermark between two events of a stale stream: a WARNING) are
-- told apart, counted apart, and neither floods the log.  One session plays
-- both materializers: the server cannot tell sessions apart anyway, it judges
-- the offsets (src/replays.c).  LOG lines are shown to the client here.
SET search_path = public, ptm;
SET client_min_messages = log;
SELECT ptm.reset_counters() IS NOT NULL AS counters_reset;

-- Offsets 1..10 applied.
SELECT count(*) AS applied
  FROM apply_projection_batch('rp', 0, ARRAY(SELECT generate_series(1, 10)::bigint),
                              ARRAY(SELECT 'k' || g FROM generate_series(1, 10) g),
                              ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 10)))
 WHERE result = 'applied';

-- The materializer restarts from offset 4, one call per event: 4..9 are
-- regressions, 10 a duplicate, 11 and 12 apply.  One LOG line, no WARNING.
SELECT o, (apply_projection('rp', 0, o, 'k' || o, '{}')).result
  FROM generate_series(4, 12) AS o;
SELECT "offset", duplicate_count, regression_count, replay_count, race_count,
       last_skipped_offset, last_skip_watermark,
       last_replay_at IS NOT NULL AS replayed, last_race_at IS NOT NULL AS raced
  FROM projection_watermarks WHERE projection = 'rp';

-- It restarts again at once, from 11: a second replay, counted, not logged
-- (the partition had one in the last minute).
SELECT o, (apply_projection('rp', 0, o, 'k' || o, '{}')).result
  FROM generate_series(11, 13) AS o;
SELECT replay_count, race_count FROM projection_watermarks WHERE projection = 'rp';

-- A second materializer, behind, interleaves with the first: its first event
-- looks like any replay; once the watermark moved between two of its events,
-- each one is a race.  One WARNING, then counted only.
SELECT result FROM apply_projection('rp', 0, 8, 'k8', '{"by": "zombie"}');
SELECT result FROM apply_projection('rp', 0, 14, 'k14', '{}');
SELECT result FROM apply_projection('rp', 0, 9, 'k9', '{"by": "zombie"}');
SELECT result FROM apply_projection('rp', 0, 15, 'k15', '{}');
SELECT result FROM apply_projection('rp', 0, 10, 'k10', '{"by": "zombie"}');
SELECT result FROM apply_projection('rp', 0, 16, 'k16', '{}');
SELECT result FROM apply_projection('rp', 0, 11, 'k11', '{"by": "zombie"}');
SELECT "offset", duplicate_count, regression_count, replay_count, race_count,
       last_skipped_offset, last_skip_watermark, last_race_at IS NOT NULL AS raced
  FROM projection_watermarks WHERE projection = 'rp';
SELECT count(*) AS zombie_rows FROM workflow_projection WHERE projection = 'rp' AND data ? 'by';

-- Batches: the same, one judgement per call.  A first batch creates the
-- watermark (its own repeat of 3 is a duplicate, not a replay)...
SELECT count(*) FILTER (WHERE result = 'applied') AS applied,
       count(*) FILTER (WHERE result = 'duplicate') AS duplicates
  FROM apply_projection_batch('rp', 1, ARRAY(SELECT generate_series(1, 100)::bigint) || 3::bigint,
                              ARRAY(SELECT 'b' || g FROM generate_series(1, 101) g),
                              ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 101)));
SELECT replay_count, race_count, last_skipped_offset FROM projection_watermarks
 WHERE projection = 'rp' AND partition_id = 1;
-- ...a restarted materializer re-sends 50..120 in one batch: a replay, one
-- LOG line...
SELECT result, count(*), min("offset"), max("offset")
  FROM apply_projection_batch('rp', 1, ARRAY(SELECT generate_series(50, 120)::bigint),
                              ARRAY(SELECT 'b' || g FROM generate_series(50, 120) g),
                              ARRAY(SELECT '{}'::jsonb FROM generate_series(50, 120)))
 GROUP BY result ORDER BY min("offset");
-- ...a stale one sends 60..70 (a replay as far as anyone can tell), the
-- first applies 121..130, the stale one goes on with 71..80: a race, one
-- WARNING for the batch.
SELECT result, count(*) FROM apply_projection_batch('rp', 1, ARRAY(SELECT generate_series(60, 70)::bigint),
         ARRAY(SELECT 'b' || g FROM generate_series(60, 70) g), ARRAY(SELECT '{}'::jsonb FROM generate_series(60, 70)))
 GROUP BY result;
SELECT result, count(*) FROM apply_projection_batch('rp', 1, ARRAY(SELECT generate_series(121, 130)::bigint),
         ARRAY(SELECT 'b' || g FROM generate_series(121, 130) g), ARRAY(SELECT '{}'::jsonb FROM generate_series(121, 130)))
 GROUP BY result;
SELECT result, count(*) FROM apply_projection_batch('rp', 1, ARRAY(SELECT generate_series(71, 80)::bigint),
         ARRAY(SELECT 'b' || g FROM generate_series(71, 80) g), ARRAY(SELECT '{}'::jsonb FROM generate_series(71, 80)))
 GROUP BY result;
SELECT "offset", duplicate_count, regression_count, replay_count, race_count,
       last_skipped_offset, last_skip_watermark
  FROM projection_watermarks WHERE projection = 'rp' AND partition_id = 1;

-- How an operator tells them apart (docs/projections.md, "Replays and races").
SELECT projection, partition_id, replay_count, race_count
  FROM projection_lag WHERE projection = 'rp' ORDER BY race_count DESC, partition_id;
SELECT projection, partition_id, replay_count, last_replay_at IS NOT NULL AS replayed,
       race_count, last_race_at IS NOT NULL AS raced
  FROM projection_watermarks
 WHERE projection = 'rp' AND replay_count + race_count > 0
 ORDER BY race_count DESC, last_race_at DESC;

-- The counters since the reset: replays and races apart; only the races (and
-- fencing rejects) are failures.
SELECT metric, value FROM metrics
 WHERE metric IN ('projection_materializer_projections_materialized_total',
                  'projection_materializer_duplicate_events_skipped',
                  'projection_materializer_wm_regressions_total',
                  'projection_materializer_replays_total',
                  'projection_materializer_wm_races_total',
                  'projection_materializer_projections_failed_total')
 ORDER BY metric;

-- A reset forgets what the partition remembered: the replay after it is new.
SELECT result FROM reset_projection('rp', 0, reason => 'projection_replays test');
SELECT result FROM apply_projection('rp', 0, 5, 'k5', '{}');
SELECT result FROM apply_projection('rp', 0, 4, 'k4', '{}');
SELECT replay_count, race_count, last_skipped_offset, last_skip_watermark
  FROM projection_watermarks WHERE projection = 'rp' AND partition_id = 0;

RESET client_min_messages;
SELECT result FROM reset_projection('rp', delete_rows => true, reason => 'projection_replays test');
