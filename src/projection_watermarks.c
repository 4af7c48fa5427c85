/*-------------------------------------------------------------------------
 *
 * projection_watermarks.c
 *	  The watermark row of a (projection, partition), which makes every offset
 *	  apply once and only rise: the statements the single apply
 *	  (projection_apply.c) and the batch apply (projection_batch.c) share to
 *	  read, lock and write it, and the fence they pass before they touch it.
 *
 * Locking protocol (apply_projection, apply_projection_batch,
 * reset_projection)
 *	  - Every write to a projection first locks the watermark row of its
 *		(projection, partition) and only then touches projection rows.  Two
 *		materializers replaying one partition are thereby serialized: the
 *		second waits for the first to commit, then (READ COMMITTED re-reads
 *		the newest row version) sees the advanced watermark and reports
 *		duplicate or regression instead of applying again.
 *	  - How each function takes that lock is written at the top of its file.
 *		What a skipped event means (a replay or a race, replays.c) is judged
 *		from the row so locked: nobody else can move it.
 *	  - reset_projection() deletes watermark rows first (waiting for applies
 *		in progress), then projection rows: the same order, so no deadlock.
 *		An apply waiting on a deleted watermark starts the partition afresh.
 *	  - With fence arguments, the lease row is locked FOR SHARE (ptm_fence)
 *		before the watermark row, so a takeover waits for the fenced apply.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "fence.h"
#include "projections.h"
#include "spi_util.h"

/* The watermark as it stands, without a lock (fencing_reject). */
static PtmPlan plan_read_wm = {
	.sql = "SELECT \"offset\" FROM ptm.projection_watermarks"
	" WHERE projection = $1 AND partition_id = $2",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
	.expect = SPI_OK_SELECT
};

/*
 * Batch, step 1, and a single apply that did not advance: lock the watermark
 * row and read what it remembers of skipped events (replays.c).
 */
static PtmPlan plan_lock_wm = {
	.sql = "SELECT \"offset\", previous_offset,"
	"       last_skipped_offset, last_skip_watermark, last_replay_at, last_race_at"
	"  FROM ptm.projection_watermarks"
	" WHERE projection = $1 AND partition_id = $2 FOR UPDATE",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
	.expect = SPI_OK_SELECT
};

/*
 * Batch, last step, and a skipped single event: write the outcome.  Both
 * statements take the same parameters: $3 new offset, $4 previous offset,
 * $5 applied, $6 now, $7 last event time, $8 its apply lag, $9 max lag of
 * the batch, $10 duplicates, $11 regressions, $12 gaps; the update also
 * $13 last skipped offset (NULL: none judged), $14 the watermark it was
 * skipped at, $15 replays begun, $16 races.
 */
#define WM_NARGS 16
static PtmPlan plan_insert_wm = {
	.sql = "INSERT INTO ptm.projection_watermarks"
	"  (projection, partition_id, \"offset\", previous_offset, updated_at, last_event_time,"
	"   apply_lag_ms, max_lag_ms, applied_count, duplicate_count, regression_count, gap_count)"
	" VALUES ($1, $2, $3, $4, $6, $7, $8, $9, $5, $10, $11, $12)"
	" ON CONFLICT (projection, partition_id) DO NOTHING"
	" RETURNING 1",
	.nargs = 12, .argtypes = (const Oid[]) {TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID},
	.expect = SPI_OK_INSERT_RETURNING
};

static PtmPlan plan_update_wm = {
	.sql = "UPDATE ptm.projection_watermarks"
	"   SET \"offset\" = $3,"
	"       previous_offset = $4,"
	"       updated_at = CASE WHEN $5 > 0 THEN $6 ELSE updated_at END,"
	"       last_event_time = COALESCE($7, last_event_time),"
	"       apply_lag_ms = COALESCE($8, apply_lag_ms),"
	"       max_lag_ms = GREATEST(max_lag_ms, $9),"
	"       applied_count = applied_count + $5,"
	"       duplicate_count = duplicate_count + $10,"
	"       regression_count = regression_count + $11,"
	"       gap_count = gap_count + $12,"
	"       last_skipped_offset = COALESCE($13, last_skipped_offset),"
	"       last_skip_watermark = CASE WHEN $13 IS NULL THEN last_skip_watermark ELSE $14 END,"
	"       replay_count = replay_count + $15,"
	"       last_replay_at = CASE WHEN $15 > 0 THEN $6 ELSE last_replay_at END,"
	"       race_count = race_count + $16,"
	"       last_race_at = CASE WHEN $16 > 0 THEN $6 ELSE last_race_at END,"
	"       last_regression_at = CASE WHEN $11 > 0 THEN $6 ELSE last_regression_at END"
	" WHERE projection = $1 AND partition_id = $2",
	.nargs = WM_NARGS, .argtypes = (const Oid[]) {TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID},
	.expect = SPI_OK_UPDATE
};

/*
 * The fence, when one was given: true when the write may go ahead (the lease
 * row is then locked FOR SHARE until the transaction ends).
 */
bool
ptm_projection_fence_passes(const PtmFenceArgs *fence)
{
	if (fence->kind == PTM_FENCE_ARGS_NONE)
		return true;
	return ptm_fence(fence->topic, fence->partition_id, fence->epoch, false) == PTM_FENCE_OK;
}

/*
 * The watermark of (projection, partition) as it stands, unlocked; *found is
 * false when there is none.
 */
int64
ptm_read_watermark(text *projection, int32 partition_id, bool *found)
{
	Datum		values[2];
	bool		isnull;

	values[0] = PointerGetDatum(projection);
	values[1] = Int32GetDatum(partition_id);
	ptm_plan_run(&plan_read_wm, values, NULL);
	*found = (SPI_processed > 0);
	if (!*found)
		return 0;
	return ptm_first_int8(1, &isnull);
}

/*
 * Lock the watermark row of (projection, partition) and read it.  Returns
 * false when there is none (yet, or any more).
 */
bool
ptm_lock_watermark(text *projection, int32 partition_id, PtmLockedWatermark *lw)
{
	Datum		values[2];
	bool		isnull;

	values[0] = PointerGetDatum(projection);
	values[1] = Int32GetDatum(partition_id);
	ptm_plan_run(&plan_lock_wm, values, NULL);
	if (SPI_processed == 0)
		return false;
	lw->wm = ptm_first_int8(1, &isnull);
	lw->prev = ptm_first_int8(2, &lw->prev_null);
	lw->mem.last_skipped = ptm_first_int8(3, &isnull);
	lw->mem.any = !isnull;
	lw->mem.last_skip_wm = ptm_first_int8(4, &isnull);
	lw->mem.last_replay_at = DatumGetTimestampTz(ptm_spi_value(0, 5, &isnull));
	lw->mem.replay_seen = !isnull;
	lw->mem.last_race_at = DatumGetTimestampTz(ptm_spi_value(0, 6, &isnull));
	lw->mem.race_seen = !isnull;
	return true;
}

/* The parameters of plan_insert_wm and plan_update_wm for a call's outcome. */
static void
watermark_values(text *projection, int32 partition_id, int64 prev, bool prev_null,
				 TimestampTz now, const PtmApplyTotals *t, Datum *values, char *nulls)
{
	memset(nulls, ' ', WM_NARGS);
	values[0] = PointerGetDatum(projection);
	values[1] = Int32GetDatum(partition_id);
	values[2] = Int64GetDatum(t->final_wm);
	values[3] = Int64GetDatum(prev);
	if (prev_null)
		nulls[3] = 'n';
	values[4] = Int64GetDatum(t->applied);
	values[5] = TimestampTzGetDatum(now);
	if (t->last_time_null)
		nulls[6] = nulls[7] = 'n';
	else
	{
		values[6] = TimestampTzGetDatum(t->last_time);
		values[7] = Int64GetDatum(ptm_lag_ms(now, t->last_time));
	}
	values[8] = Int64GetDatum(t->max_lag);
	if (t->max_lag_null)
		nulls[8] = 'n';
	values[9] = Int64GetDatum(t->skips.duplicates);
	values[10] = Int64GetDatum(t->skips.regressions);
	values[11] = Int64GetDatum(t->gaps);
	/* what the partition remembers of the last judged event (replays.c) */
	values[12] = Int64GetDatum(t->skips.last);
	values[13] = Int64GetDatum(t->skips.watermark);
	if (t->skips.judged == 0)
		nulls[12] = nulls[13] = 'n';
	values[14] = Int64GetDatum(t->skips.replays);
	values[15] = Int64GetDatum(t->skips.races);
}

/*
 * Create the watermark row with a call's outcome (a batch on a new
 * partition).  Returns false when another session created it meanwhile.
 */
bool
ptm_insert_watermark(text *projection, int32 partition_id, TimestampTz now,
					 const PtmApplyTotals *t)
{
	Datum		values[WM_NARGS];
	char		nulls[WM_NARGS];

	watermark_values(projection, partition_id, 0, true, now, t, values, nulls);
	return ptm_plan_run(&plan_insert_wm, values, nulls) == 1;
}

/*
 * Write a call's outcome to its watermark row, which the caller locked
 * (ptm_lock_watermark); prev is what previous_offset becomes.
 */
void
ptm_update_watermark(text *projection, int32 partition_id, int64 prev, bool prev_null,
					 TimestampTz now, const PtmApplyTotals *t)
{
	Datum		values[WM_NARGS];
	char		nulls[WM_NARGS];

	watermark_values(projection, partition_id, prev, prev_null, now, t, values, nulls);
	if (ptm_plan_run(&plan_update_wm, values, nulls) != 1)
		ptm_watermark_vanished(projection, partition_id);
}

/* A watermark row this transaction locked is gone: a bug, not a race. */
void
ptm_watermark_vanished(text *projection, int32 partition_id)
{
	elog(ERROR, "watermark row of projection \"%s\" partition %d vanished while locked",
		 text_to_cstring(projection), partition_id);
}
