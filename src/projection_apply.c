/*-------------------------------------------------------------------------
 *
 * projection_apply.c
 *	  apply_projection(): write one projection row and advance its
 *	  partition's watermark in one step, so that every offset is applied once
 *	  and the watermark only rises.
 *
 * Locking protocol (the whole of it: projection_watermarks.c)
 *	  - The watermark row is locked before the projection row: by the UPDATE
 *		that advances the watermark, and otherwise by SELECT ... FOR UPDATE
 *		before the skipped event is counted, or by INSERT ... ON CONFLICT DO
 *		UPDATE ... WHERE w.offset < new offset, which locks the conflicting
 *		row even when its WHERE is false.  What a skipped event means (a
 *		replay or a race, replays.c) is judged from the row so locked.
 *	  - With fence arguments, the lease row is locked FOR SHARE (ptm_fence)
 *		before the watermark row.
 *
 * One statement applies an event to an existing watermark (watermark and
 * row together); a skipped event takes three (watermark, lock, counts), and
 * so does a partition's first event.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "ptm_lease.h"
#include "projections.h"
#include "spi_util.h"
#include "srf.h"

/*
 * Step 1 (the common case): advance an existing watermark that is below the
 * offset and, in the same statement, write the projection row ($7 key, $8
 * data): one executor run instead of two.  The row is written only when the
 * watermark advanced (it reads from wm), and after the watermark row is
 * locked, as the locking protocol asks.  Returns (previous_offset) when it
 * applied.  Under READ COMMITTED a concurrent advance makes the UPDATE wait
 * and re-check the newest row version, so it never moves the watermark down.
 */
#define SQL_ADVANCE \
"WITH wm AS (" \
" UPDATE ptm.projection_watermarks" \
"    SET \"offset\" = $3," \
"        previous_offset = \"offset\"," \
"        updated_at = $4," \
"        last_event_time = COALESCE($5, last_event_time)," \
"        apply_lag_ms = COALESCE($6, apply_lag_ms)," \
"        max_lag_ms = GREATEST(max_lag_ms, $6)," \
"        applied_count = applied_count + 1," \
"        gap_count = gap_count + CASE WHEN $3 - \"offset\" > 1 THEN 1 ELSE 0 END" \
"  WHERE projection = $1 AND partition_id = $2 AND \"offset\" < $3" \
" RETURNING previous_offset)"

static PtmPlan plan_advance_upsert = {
	.sql = SQL_ADVANCE
	", r AS ("
	" INSERT INTO ptm.workflow_projection AS p"
	"   (projection, key, data, source_partition, source_offset, updated_at)"
	" SELECT $1, $7, $8, $2, $3, $4 FROM wm"
	" ON CONFLICT (projection, key) DO UPDATE"
	"    SET data = EXCLUDED.data,"
	"        source_partition = EXCLUDED.source_partition,"
	"        source_offset = EXCLUDED.source_offset,"
	"        updated_at = EXCLUDED.updated_at)"
	" SELECT previous_offset FROM wm",
	.nargs = 8, .argtypes = (const Oid[]) {TEXTOID, INT4OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, TEXTOID, JSONBOID},
	.expect = SPI_OK_SELECT
};

/* The same for an event without data: the row is deleted. */
static PtmPlan plan_advance_delete = {
	.sql = SQL_ADVANCE
	", r AS ("
	" DELETE FROM ptm.workflow_projection"
	"  WHERE projection = $1 AND key = $7 AND EXISTS (SELECT FROM wm))"
	" SELECT previous_offset FROM wm",
	.nargs = 7, .argtypes = (const Oid[]) {TEXTOID, INT4OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, TEXTOID},
	.expect = SPI_OK_SELECT
};

/*
 * Step 3 (first event of a partition, or a watermark removed or created
 * meanwhile): create the watermark or advance it, locking the row either way
 * (ON CONFLICT DO UPDATE locks the conflicting row even when its WHERE is
 * false).  Returns (previous_offset) only when it applied.
 */
static PtmPlan plan_claim = {
	.sql = "INSERT INTO ptm.projection_watermarks AS w"
	"  (projection, partition_id, \"offset\", previous_offset, updated_at, last_event_time,"
	"   apply_lag_ms, max_lag_ms, applied_count)"
	" VALUES ($1, $2, $3, NULL, $4, $5, $6, $6, 1)"
	" ON CONFLICT (projection, partition_id) DO UPDATE"
	"   SET \"offset\" = EXCLUDED.\"offset\","
	"       previous_offset = w.\"offset\","
	"       updated_at = EXCLUDED.updated_at,"
	"       last_event_time = COALESCE(EXCLUDED.last_event_time, w.last_event_time),"
	"       apply_lag_ms = COALESCE(EXCLUDED.apply_lag_ms, w.apply_lag_ms),"
	"       max_lag_ms = GREATEST(w.max_lag_ms, EXCLUDED.max_lag_ms),"
	"       applied_count = w.applied_count + 1,"
	"       gap_count = w.gap_count"
	"                   + CASE WHEN EXCLUDED.\"offset\" - w.\"offset\" > 1 THEN 1 ELSE 0 END"
	"   WHERE w.\"offset\" < EXCLUDED.\"offset\""
	" RETURNING previous_offset",
	.nargs = 6, .argtypes = (const Oid[]) {TEXTOID, INT4OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID},
	.expect = SPI_OK_INSERT_RETURNING
};

/* Step 4, after step 3: the projection row. */
static PtmPlan plan_upsert_row = {
	.sql = "INSERT INTO ptm.workflow_projection AS p"
	"  (projection, key, data, source_partition, source_offset, updated_at)"
	" VALUES ($1, $2, $3, $4, $5, $6)"
	" ON CONFLICT (projection, key) DO UPDATE"
	"   SET data = EXCLUDED.data,"
	"       source_partition = EXCLUDED.source_partition,"
	"       source_offset = EXCLUDED.source_offset,"
	"       updated_at = EXCLUDED.updated_at",
	.nargs = 6, .argtypes = (const Oid[]) {TEXTOID, TEXTOID, JSONBOID, INT4OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_INSERT
};

static PtmPlan plan_delete_row = {
	.sql = "DELETE FROM ptm.workflow_projection WHERE projection = $1 AND key = $2",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, TEXTOID},
	.expect = SPI_OK_DELETE
};

/* The arguments of one call, checked. */
typedef struct ApplyArgs
{
	text	   *projection;
	int32		partition_id;
	int64		offset;
	text	   *key;
	Datum		data;			/* jsonb */
	bool		data_null;		/* no data: delete the row */
	TimestampTz event_time;
	bool		event_time_null;
	PtmFenceArgs fence;
} ApplyArgs;

/* What one call did, for its counters and its result row. */
typedef struct ApplyOutcome
{
	PtmProjResult result;
	int64		watermark;		/* after the call */
	bool		watermark_null; /* fenced out of a partition without one */
	int64		prev;			/* applied: the watermark before, */
	bool		prev_null;		/* unless there was none */
	PtmLockedWatermark lw;		/* skipped: the row that refused the event */
	PtmApplyTotals skipped;		/* skipped: what was counted */
} ApplyOutcome;

/* Validate everything before anything is read or written. */
static void
get_apply_args(FunctionCallInfo fcinfo, ApplyArgs *a)
{
	a->projection = ptm_get_name(fcinfo, 0, "projection");
	a->partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	a->offset = ptm_get_nonnegative_int64(fcinfo, 2, "offset", "offsets start at 0");
	a->key = ptm_get_name(fcinfo, 3, "key");
	a->data_null = PG_ARGISNULL(4);
	if (!a->data_null)
	{
		a->data = PG_GETARG_DATUM(4);
		ptm_check_event_data(a->data, "data", 0);
	}
	a->event_time_null = PG_ARGISNULL(5);
	if (!a->event_time_null)
	{
		a->event_time = PG_GETARG_TIMESTAMPTZ(5);
		ptm_check_event_time(a->event_time, "event_time", 0);
	}
	ptm_get_fence_args(fcinfo, 6, false, &a->fence);
}

/* Fenced out: nothing is written; the result shows the watermark as it stands. */
static void
reject_event(const ApplyArgs *a, ApplyOutcome *o)
{
	bool		found;

	o->result = PROJ_FENCING_REJECT;
	o->watermark = ptm_read_watermark(a->projection, a->partition_id, &found);
	o->watermark_null = !found;
}

/* The parameters of steps 1 ($1 to $8) and 3 ($1 to $6). */
static void
event_values(const ApplyArgs *a, TimestampTz now, Datum *values, char *nulls)
{
	memset(nulls, ' ', 8);
	values[0] = PointerGetDatum(a->projection);
	values[1] = Int32GetDatum(a->partition_id);
	values[2] = Int64GetDatum(a->offset);
	values[3] = TimestampTzGetDatum(now);
	if (a->event_time_null)
		nulls[4] = nulls[5] = 'n';
	else
	{
		values[4] = TimestampTzGetDatum(a->event_time);
		values[5] = Int64GetDatum(ptm_lag_ms(now, a->event_time));
	}
	values[6] = PointerGetDatum(a->key);
	if (a->data_null)
		nulls[7] = 'n';
	else
		values[7] = a->data;
}

/* Step 1: advance the watermark and write the row; true when it applied. */
static bool
advance_with_row(const ApplyArgs *a, Datum *values, const char *nulls)
{
	PtmPlan    *plan = a->data_null ? &plan_advance_delete : &plan_advance_upsert;

	return ptm_plan_run(plan, values, nulls) > 0;
}

/*
 * Step 2: lock the watermark row.  True when it is at or above the offset
 * (the event is skipped); false when there is none, or only one below the
 * offset that appeared after step 1 looked (a reset meanwhile).
 */
static bool
lock_at_or_above(const ApplyArgs *a, PtmLockedWatermark *lw)
{
	return ptm_lock_watermark(a->projection, a->partition_id, lw) && lw->wm >= a->offset;
}

/* Step 3: create or advance the watermark; true when it applied. */
static bool
create_or_advance(Datum *values, const char *nulls)
{
	return ptm_plan_run(&plan_claim, values, nulls) > 0;
}

/*
 * Step 4: a watermark created or advanced in step 3 is locked by us: now the
 * projection row (step 1 wrote it in the same statement).
 */
static void
write_row(const ApplyArgs *a, TimestampTz now)
{
	Datum		values[6];

	values[0] = PointerGetDatum(a->projection);
	values[1] = PointerGetDatum(a->key);
	if (a->data_null)
		ptm_plan_run(&plan_delete_row, values, NULL);
	else
	{
		values[2] = a->data;
		values[3] = Int32GetDatum(a->partition_id);
		values[4] = Int64GetDatum(a->offset);
		values[5] = TimestampTzGetDatum(now);
		ptm_plan_run(&plan_upsert_row, values, NULL);
	}
}

/* Step 1 or 3 advanced the watermark and returned (previous_offset). */
static void
applied(const ApplyArgs *a, ApplyOutcome *o)
{
	o->result = PROJ_APPLIED;
	o->watermark = a->offset;
	o->watermark_null = false;
	o->prev = ptm_first_int8(1, &o->prev_null);
}

/*
 * The event is at or below the watermark row o->lw, locked: judge it
 * (replays.c), count it in the watermark row and report it.
 */
static void
skip_event(const ApplyArgs *a, TimestampTz now, ApplyOutcome *o)
{
	const PtmLockedWatermark *lw = &o->lw;
	PtmApplyTotals *t = &o->skipped;

	memset(t, 0, sizeof(*t));
	t->final_wm = lw->wm;
	t->last_time_null = true;
	t->max_lag_null = true;
	t->skips.duplicates = (a->offset == lw->wm);
	t->skips.regressions = (a->offset < lw->wm);
	t->skips.judged = 1;
	t->skips.first = t->skips.last = a->offset;
	t->skips.watermark = lw->wm;
	ptm_judge_skips(&lw->mem, &t->skips);
	ptm_update_watermark(a->projection, a->partition_id, lw->prev, lw->prev_null, now, t);
	ptm_report_skips(text_to_cstring(a->projection), a->partition_id, &lw->mem,
					 &t->skips, 1, now);

	o->result = a->offset == lw->wm ? PROJ_DUPLICATE : PROJ_REGRESSION;
	o->watermark = lw->wm;
	o->watermark_null = false;
}

/*
 * Past the fence: advance and write the row (applied), else lock the
 * watermark row (skipped), else create or advance it, then decide again: see
 * SQL_ADVANCE.
 */
static void
apply_event(const ApplyArgs *a, TimestampTz now, ApplyOutcome *o)
{
	Datum		values[8];
	char		nulls[8];

	event_values(a, now, values, nulls);
	if (advance_with_row(a, values, nulls))
		applied(a, o);
	else if (lock_at_or_above(a, &o->lw))
		skip_event(a, now, o);
	else if (create_or_advance(values, nulls))
	{
		applied(a, o);
		write_row(a, now);
	}
	else
	{
		/* at or above the offset, and locked by the claim */
		if (!lock_at_or_above(a, &o->lw))
			ptm_watermark_vanished(a->projection, a->partition_id);
		skip_event(a, now, o);
	}
}

static void
count_outcome(const ApplyArgs *a, const ApplyOutcome *o)
{
	switch (o->result)
	{
		case PROJ_APPLIED:
			ptm_count(PTM_PROJ_MATERIALIZED);
			if (!o->prev_null && a->offset - o->prev > 1)
				ptm_count(PTM_PROJ_GAPS);
			break;
		case PROJ_DUPLICATE:
		case PROJ_REGRESSION:
			ptm_count_skips(&o->skipped.skips);
			break;
		case PROJ_FENCING_REJECT:
			ptm_count(PTM_PROJ_FAILED);
			break;
	}
}

/* (result, watermark, previous_watermark, skipped) */
static Datum
result_row(TupleDesc tupdesc, const ApplyArgs *a, const ApplyOutcome *o)
{
	Datum		out[4];
	bool		out_null[4] = {false, false, true, true};

	out[0] = CStringGetTextDatum(ptm_proj_result_names[o->result]);
	out[1] = Int64GetDatum(o->watermark);
	out_null[1] = o->watermark_null;
	if (o->result == PROJ_APPLIED && !o->prev_null)
	{
		out[2] = Int64GetDatum(o->prev);
		out[3] = Int64GetDatum(a->offset - o->prev - 1);
		out_null[2] = out_null[3] = false;
	}
	else if (o->result == PROJ_DUPLICATE || o->result == PROJ_REGRESSION)
	{
		out[2] = Int64GetDatum(o->watermark);
		out_null[2] = false;
	}
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, out, out_null));
}

/*
 * ptm.apply_projection(projection, partition_id, offset, key, data,
 *		event_time, fence_topic, fence_partition, fence_epoch)
 *	→ (result, watermark, previous_watermark, skipped)
 */
PG_FUNCTION_INFO_V1(ptm_apply_projection_0_2);
Datum
ptm_apply_projection_0_2(PG_FUNCTION_ARGS)
{
	ApplyArgs	a;
	ApplyOutcome o;
	TimestampTz now = GetCurrentTimestamp();
	TupleDesc	tupdesc;
	int			spi;

	get_apply_args(fcinfo, &a);
	tupdesc = ptm_result_tupdesc(fcinfo);

	spi = ptm_spi_connect(false);
	if (ptm_projection_fence_passes(&a.fence))
		apply_event(&a, now, &o);
	else
		reject_event(&a, &o);
	ptm_spi_finish(spi);

	count_outcome(&a, &o);
	PG_RETURN_DATUM(result_row(tupdesc, &a, &o));
}
