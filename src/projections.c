/*-------------------------------------------------------------------------
 *
 * projections.c
 *	  apply_projection(), apply_projection_batch() and reset_projection():
 *	  write a projection row and advance its partition's watermark in one
 *	  step, so that every offset is applied once and the watermark only rises.
 *
 * Locking protocol
 *	  - Every write to a projection first locks the watermark row of its
 *		(projection, partition) and only then touches projection rows.  Two
 *		materializers replaying one partition are thereby serialized: the
 *		second waits for the first to commit, then (READ COMMITTED re-reads
 *		the newest row version) sees the advanced watermark and reports
 *		duplicate or regression instead of applying again.
 *	  - The single apply takes the lock with its UPDATE when it advances the
 *		watermark, and otherwise with SELECT ... FOR UPDATE before it counts
 *		the skipped event, or with INSERT ... ON CONFLICT DO UPDATE ... WHERE
 *		w.offset < new offset, which locks the conflicting row even when its
 *		WHERE is false.  What a skipped event means (a replay or a race,
 *		replays.c) is judged from the row so locked: nobody else can move it.
 *	  - The batch takes it with SELECT ... FOR UPDATE, or, when the partition
 *		has no watermark yet, by inserting it (ON CONFLICT DO NOTHING; on a
 *		conflict it goes back to SELECT ... FOR UPDATE).
 *	  - reset_projection() deletes watermark rows first (waiting for applies
 *		in progress), then projection rows: the same order, so no deadlock.
 *		An apply waiting on a deleted watermark starts the partition afresh.
 *	  - With fence arguments, the lease row is locked FOR SHARE (ptm_fence)
 *		before the watermark row, so a takeover waits for the fenced apply.
 *
 * Statements are prepared once per backend (SPI_prepare + SPI_keepplan).
 * The single apply runs one of them when it applies to an existing watermark
 * (watermark and row in one statement), three when the event is skipped
 * (watermark, lock, counts) and three for a partition's first event; a batch
 * runs three or four in all, whatever its size.  A database still at 0.1.0
 * has no columns for replays and races: the lock and the update have a second
 * form without them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "leases.h"
#include "ptm_lease.h"
#include "replays.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/* Outcomes, as the SQL functions spell them. */
typedef enum ProjResult
{
	PROJ_APPLIED,
	PROJ_DUPLICATE,
	PROJ_REGRESSION,
	PROJ_FENCING_REJECT
} ProjResult;

static const char *const proj_result_names[] = {
	[PROJ_APPLIED] = "applied",
	[PROJ_DUPLICATE] = "duplicate",
	[PROJ_REGRESSION] = "regression",
	[PROJ_FENCING_REJECT] = "fencing_reject",
};

/* One event of a batch. */
typedef struct BatchEvent
{
	int			ordinality;		/* 1-based position in the input arrays */
	int64		offset;
	text	   *key;
	Datum		data;			/* jsonb */
	bool		data_null;		/* NULL data: delete the row */
	TimestampTz event_time;
	bool		event_time_null;
	ProjResult	result;
	int64		watermark;		/* after this event */
} BatchEvent;

/* Totals of one call (a batch, or one skipped event), for the watermark row and the counters. */
typedef struct CallTotals
{
	int64		applied;
	int64		gaps;
	int64		final_wm;
	bool		final_wm_null;
	BatchEvent *last_timed;		/* last applied event with an event_time */
	int64		max_lag;
	bool		max_lag_null;
	PtmSkips	skips;			/* duplicates and regressions, judged (replays.c) */
} CallTotals;

static bool write_watermark(text *projection, int32 partition_id, bool insert, int64 prev,
							bool prev_null, TimestampTz now, const CallTotals *t);


/*
 * Single apply, step 1 (the common case): advance an existing watermark that
 * is below the offset and, in the same statement, write the projection row
 * ($7 key, $8 data): one executor run instead of two.  The row is written
 * only when the watermark advanced (it reads from wm), and after the
 * watermark row is locked, as the locking protocol asks.  Returns
 * (previous_offset) when it applied.  Under READ COMMITTED a concurrent
 * advance makes the UPDATE wait and re-check the newest row version, so it
 * never moves the watermark down.
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
 * Single apply, step 3 (first event of a partition, or a watermark removed or
 * created meanwhile): create the watermark or advance it, locking the row
 * either way (ON CONFLICT DO UPDATE locks the conflicting row even when its
 * WHERE is false).  Returns (previous_offset) only when it applied.
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
#define SQL_LOCK_WM(SKIP_COLUMNS) \
"SELECT \"offset\", previous_offset" SKIP_COLUMNS \
"  FROM ptm.projection_watermarks" \
" WHERE projection = $1 AND partition_id = $2 FOR UPDATE"

static PtmPlan plan_lock_wm[2] = {
	{.sql = SQL_LOCK_WM(", last_skipped_offset, last_skip_watermark, last_replay_at, last_race_at"),
		.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
		.expect = SPI_OK_SELECT},
	{.sql = SQL_LOCK_WM(", NULL::pg_catalog.int8, NULL::pg_catalog.int8,"
						" NULL::pg_catalog.timestamptz, NULL::pg_catalog.timestamptz"),
		.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
		.expect = SPI_OK_SELECT}
};

/*
 * Batch, last step, and a skipped single event: write the outcome.  Both
 * statements take the same parameters: $3 new offset, $4 previous offset,
 * $5 applied, $6 now, $7 last event time, $8 its apply lag, $9 max lag of
 * the batch, $10 duplicates, $11 regressions, $12 gaps; the update also
 * $13 last skipped offset (NULL: none judged), $14 the watermark it was
 * skipped at, $15 replays begun, $16 races.
 */
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

#define SQL_UPDATE_WM(SKIP_SET) \
"UPDATE ptm.projection_watermarks" \
"   SET \"offset\" = $3," \
"       previous_offset = $4," \
"       updated_at = CASE WHEN $5 > 0 THEN $6 ELSE updated_at END," \
"       last_event_time = COALESCE($7, last_event_time)," \
"       apply_lag_ms = COALESCE($8, apply_lag_ms)," \
"       max_lag_ms = GREATEST(max_lag_ms, $9)," \
"       applied_count = applied_count + $5," \
"       duplicate_count = duplicate_count + $10," \
"       regression_count = regression_count + $11," \
"       gap_count = gap_count + $12," SKIP_SET \
"       last_regression_at = CASE WHEN $11 > 0 THEN $6 ELSE last_regression_at END" \
" WHERE projection = $1 AND partition_id = $2"

#define UPDATE_WM_TYPES (const Oid[]) {TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, \
	TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID}
static PtmPlan plan_update_wm[2] = {
	{.sql = SQL_UPDATE_WM(
				  "       last_skipped_offset = COALESCE($13, last_skipped_offset),"
				  "       last_skip_watermark = CASE WHEN $13 IS NULL THEN last_skip_watermark ELSE $14 END,"
				  "       replay_count = replay_count + $15,"
				  "       last_replay_at = CASE WHEN $15 > 0 THEN $6 ELSE last_replay_at END,"
				  "       race_count = race_count + $16,"
				  "       last_race_at = CASE WHEN $16 > 0 THEN $6 ELSE last_race_at END,"),
		.nargs = 16, .argtypes = UPDATE_WM_TYPES,
		.expect = SPI_OK_UPDATE},
	{.sql = SQL_UPDATE_WM(""),
		.nargs = 16, .argtypes = UPDATE_WM_TYPES,
		.expect = SPI_OK_UPDATE}
};

/* Which form of a statement this database takes: [0] 0.2.0, [1] 0.1.0. */
static int
schema_form(void)
{
	return ptm_schema_is_020() ? 0 : 1;
}

/* Batch rows: keys are distinct (last event per key), so no row is hit twice. */
static PtmPlan plan_upsert_rows = {
	.sql = "INSERT INTO ptm.workflow_projection AS p"
	"  (projection, key, data, source_partition, source_offset, updated_at)"
	" SELECT $1, u.key, u.data, $2, u.off, $6"
	"   FROM unnest($3::text[], $4::jsonb[], $5::bigint[]) AS u(key, data, off)"
	" ON CONFLICT (projection, key) DO UPDATE"
	"   SET data = EXCLUDED.data,"
	"       source_partition = EXCLUDED.source_partition,"
	"       source_offset = EXCLUDED.source_offset,"
	"       updated_at = EXCLUDED.updated_at",
	.nargs = 6, .argtypes = (const Oid[]) {TEXTOID, INT4OID, TEXTARRAYOID, JSONBARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID},
	.expect = SPI_OK_INSERT
};

static PtmPlan plan_delete_rows = {
	.sql = "DELETE FROM ptm.workflow_projection WHERE projection = $1 AND key = ANY ($2::text[])",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, TEXTARRAYOID},
	.expect = SPI_OK_DELETE
};

/* int64 of column 1 of the first result row; *isnull when NULL. */
static int64
first_int8(int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

int			ptm_max_data_bytes = 1024 * 1024;

void
ptm_projections_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.max_data_bytes",
							gettext_noop("Largest projection row data apply_projection accepts, in bytes."),
							gettext_noop("Measured as the uncompressed jsonb value; applies to each event of a batch."),
							&ptm_max_data_bytes,
							1024 * 1024, 1, MaxAllocSize,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

/* Row data within ptm_lease.max_data_bytes; index > 0 names an array element. */
static void
check_data_size(Datum data, const char *argname, int index)
{
	ptm_check_jsonb_size(data, argname, index, ptm_max_data_bytes,
						 "ptm_lease.max_data_bytes", "data", "projection row");
}

/* An event time must be finite; index > 0 names an array element. */
static void
check_event_time(TimestampTz t, const char *argname, int index)
{
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 index > 0 ? errmsg("%s[%d] must be finite", argname, index) :
				 errmsg("%s must be finite", argname),
				 errdetail("Lag is measured from the event time, so it cannot be infinity.")));
}

/* Milliseconds from event_time to now, never negative (clock skew). */
static int64
lag_ms(TimestampTz now, TimestampTz event_time)
{
	return now > event_time ? (now - event_time) / 1000 : 0;
}

/*
 * The watermark of (projection, partition) as it stands, unlocked; *found is
 * false when there is none.  Needs an SPI connection.
 */
static int64
read_watermark(text *projection, int32 partition_id, bool *found)
{
	Datum		values[2];
	bool		isnull;
	int64		wm;

	values[0] = PointerGetDatum(projection);
	values[1] = Int32GetDatum(partition_id);
	ptm_plan_run(&plan_read_wm, values, NULL);
	*found = (SPI_processed > 0);
	if (!*found)
		return 0;
	wm = first_int8(1, &isnull);
	return wm;
}

/*
 * The fence, when one was given: true when the write may go ahead (the lease
 * row is then locked FOR SHARE until the transaction ends).
 */
static bool
fence_passes(const PtmFenceArgs *fence)
{
	if (fence->kind == PTM_FENCE_ARGS_NONE)
		return true;
	return ptm_fence(fence->topic, fence->partition_id, fence->epoch, false) == PTM_FENCE_OK;
}

/* A partition's watermark row, locked, as lock_watermark() read it. */
typedef struct LockedWatermark
{
	int64		wm;
	int64		prev;
	bool		prev_null;
	PtmSkipMemory mem;			/* what it remembers of skipped events */
} LockedWatermark;

/*
 * Lock the watermark row of (projection, partition) and read it.  Returns
 * false when there is none (yet, or any more).  Needs an SPI connection.
 */
static bool
lock_watermark(text *projection, int32 partition_id, LockedWatermark *lw)
{
	int			form = schema_form();
	Datum		values[2];
	bool		isnull;

	values[0] = PointerGetDatum(projection);
	values[1] = Int32GetDatum(partition_id);
	ptm_plan_run(&plan_lock_wm[form], values, NULL);
	if (SPI_processed == 0)
		return false;
	lw->wm = first_int8(1, &isnull);
	lw->prev = first_int8(2, &lw->prev_null);
	lw->mem.known = (form == 0);
	lw->mem.last_skipped = first_int8(3, &isnull);
	lw->mem.any = !isnull;
	lw->mem.last_skip_wm = first_int8(4, &isnull);
	lw->mem.last_replay_at = DatumGetTimestampTz(ptm_spi_value(0, 5, &isnull));
	lw->mem.replay_seen = !isnull;
	lw->mem.last_race_at = DatumGetTimestampTz(ptm_spi_value(0, 6, &isnull));
	lw->mem.race_seen = !isnull;
	return true;
}

/*
 * Steps 1 and 2 of a single apply.  Returns 1 when it advanced the watermark
 * and wrote the row (*prev: the watermark before, *prev_null if none), 0 when
 * the watermark is at or above the offset (*lw: that row, now locked), -1
 * when there is no watermark row to decide on, or only one below the offset
 * that appeared after step 1 looked (a reset meanwhile): the caller then
 * creates or advances it.  values and nulls hold the eight parameters of
 * sql_advance_upsert; delete_row: the event has no data.
 */
static int
advance_or_lock(text *projection, int32 partition_id, int64 offset,
				Datum *values, const char *nulls, bool delete_row,
				int64 *prev, bool *prev_null, LockedWatermark *lw)
{

	if (delete_row)
		ptm_plan_run(&plan_advance_delete, values, nulls);
	else
		ptm_plan_run(&plan_advance_upsert, values, nulls);
	if (SPI_processed > 0)
	{
		*prev = first_int8(1, prev_null);
		return 1;
	}
	if (lock_watermark(projection, partition_id, lw) && lw->wm >= offset)
		return 0;
	return -1;
}

/*
 * A single event at or below the locked watermark: judge it (replays.c) and
 * count it in the watermark row.  Returns duplicate or regression, and in
 * *t what was counted.
 */
static ProjResult
skip_event(text *projection, int32 partition_id, int64 offset, const LockedWatermark *lw,
		   TimestampTz now, CallTotals *t)
{
	memset(t, 0, sizeof(*t));
	t->final_wm = lw->wm;
	t->max_lag_null = true;
	t->skips.duplicates = (offset == lw->wm);
	t->skips.regressions = (offset < lw->wm);
	t->skips.judged = 1;
	t->skips.first = t->skips.last = offset;
	t->skips.watermark = lw->wm;
	ptm_judge_skips(&lw->mem, &t->skips);
	write_watermark(projection, partition_id, false, lw->prev, lw->prev_null, now, t);
	return offset == lw->wm ? PROJ_DUPLICATE : PROJ_REGRESSION;
}

/*
 * ptm.apply_projection(projection, partition_id, offset, key, data,
 *		event_time, fence_topic, fence_partition, fence_epoch)
 *	→ (result, watermark, previous_watermark, skipped)
 */
PG_FUNCTION_INFO_V1(ptm_apply_projection);
Datum
ptm_apply_projection(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *projection;
	int32		partition_id;
	int64		offset;
	text	   *key;
	PtmFenceArgs fence;
	TimestampTz now = GetCurrentTimestamp();
	TupleDesc	tupdesc;
	Datum		out[4];
	bool		out_null[4] = {false, false, true, true};
	ProjResult	result;
	LockedWatermark lw;
	CallTotals	skipped;

	/* Validate everything before anything is read or written. */
	projection = ptm_get_name(fcinfo, 0, "projection");
	partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	offset = ptm_get_nonnegative_int64(fcinfo, 2, "offset", "offsets start at 0");
	key = ptm_get_name(fcinfo, 3, "key");
	if (!PG_ARGISNULL(4))
		check_data_size(PG_GETARG_DATUM(4), "data", 0);
	if (!PG_ARGISNULL(5))
		check_event_time(PG_GETARG_TIMESTAMPTZ(5), "event_time", 0);
	ptm_get_fence_args(fcinfo, 6, false, &fence);

	tupdesc = ptm_result_tupdesc(fcinfo);

	spi = ptm_spi_connect(false);

	if (!fence_passes(&fence))
	{
		bool		found;
		int64		wm = read_watermark(projection, partition_id, &found);

		result = PROJ_FENCING_REJECT;
		out[1] = Int64GetDatum(wm);
		out_null[1] = !found;
	}
	else
	{
		Datum		values[8];
		char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		int			have_prev;
		bool		row_written;
		int64		prev = 0;
		bool		prev_null = true;

		values[0] = PointerGetDatum(projection);
		values[1] = Int32GetDatum(partition_id);
		values[2] = Int64GetDatum(offset);
		values[3] = TimestampTzGetDatum(now);
		if (PG_ARGISNULL(5))
			nulls[4] = nulls[5] = 'n';
		else
		{
			TimestampTz event_time = PG_GETARG_TIMESTAMPTZ(5);

			values[4] = TimestampTzGetDatum(event_time);
			values[5] = Int64GetDatum(lag_ms(now, event_time));
		}
		values[6] = PointerGetDatum(key);
		if (PG_ARGISNULL(4))
			nulls[7] = 'n';
		else
			values[7] = PG_GETARG_DATUM(4);

		/*
		 * Advance and write the row (applied), else lock the watermark row
		 * (skipped), else create or advance it, then decide again: see
		 * SQL_ADVANCE.
		 */
		have_prev = advance_or_lock(projection, partition_id, offset, values, nulls,
									PG_ARGISNULL(4), &prev, &prev_null, &lw);
		row_written = (have_prev > 0);
		if (have_prev < 0)
		{
			ptm_plan_run(&plan_claim, values, nulls);
			if (SPI_processed > 0)
			{
				prev = first_int8(1, &prev_null);
				have_prev = 1;
			}
			else
			{
				/* at or above the offset, and locked by the claim */
				if (!lock_watermark(projection, partition_id, &lw) || lw.wm < offset)
					elog(ERROR, "watermark row of projection \"%s\" partition %d vanished while locked",
						 text_to_cstring(projection), partition_id);
				have_prev = 0;
			}
		}

		if (have_prev > 0)
		{
			result = PROJ_APPLIED;
			out[1] = Int64GetDatum(offset);
			if (!prev_null)
			{
				out[2] = Int64GetDatum(prev);
				out[3] = Int64GetDatum(offset - prev - 1);
				out_null[2] = out_null[3] = false;
				if (offset - prev > 1)
					ptm_count(PTM_PROJ_GAPS);
			}

			/*
			 * A watermark created or advanced in step 3 is locked by us: now
			 * the projection row (step 1 wrote it in the same statement).
			 */
			if (!row_written)
			{
				values[1] = PointerGetDatum(key);
				if (PG_ARGISNULL(4))
					ptm_plan_run(&plan_delete_row, values, NULL);
				else
				{
					char		row_nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

					values[2] = PG_GETARG_DATUM(4);
					values[3] = Int32GetDatum(partition_id);
					values[4] = Int64GetDatum(offset);
					values[5] = TimestampTzGetDatum(now);
					ptm_plan_run(&plan_upsert_row, values, row_nulls);
				}
			}
		}
		else
		{
			result = skip_event(projection, partition_id, offset, &lw, now, &skipped);
			out[1] = Int64GetDatum(lw.wm);
			out[2] = Int64GetDatum(lw.wm);
			out_null[2] = false;
			ptm_report_skips(text_to_cstring(projection), partition_id, &lw.mem,
							 &skipped.skips, 1, now);
		}
	}

	ptm_spi_finish(spi);

	switch (result)
	{
		case PROJ_APPLIED:
			ptm_count(PTM_PROJ_MATERIALIZED);
			break;
		case PROJ_DUPLICATE:
		case PROJ_REGRESSION:
			ptm_count_skips(&skipped.skips);
			break;
		case PROJ_FENCING_REJECT:
			ptm_count(PTM_PROJ_FAILED);
			break;
	}

	out[0] = CStringGetTextDatum(proj_result_names[result]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, out, out_null)));
}

/* Batch order: by offset, then by position (the first of equal offsets wins). */
static int
cmp_event_offset(const void *a, const void *b)
{
	const BatchEvent *ea = (const BatchEvent *) a;
	const BatchEvent *eb = (const BatchEvent *) b;

	if (ea->offset != eb->offset)
		return ea->offset < eb->offset ? -1 : 1;
	return ea->ordinality - eb->ordinality;
}

static bool
same_key(const text *a, const text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/* Grouping of applied events by key (bytes), highest offset last. */
static int
cmp_event_key(const void *a, const void *b)
{
	const BatchEvent *ea = *(BatchEvent *const *) a;
	const BatchEvent *eb = *(BatchEvent *const *) b;
	int			la = VARSIZE_ANY_EXHDR(ea->key);
	int			lb = VARSIZE_ANY_EXHDR(eb->key);
	int			c = memcmp(VARDATA_ANY(ea->key), VARDATA_ANY(eb->key), Min(la, lb));

	if (c != 0)
		return c;
	if (la != lb)
		return la < lb ? -1 : 1;
	if (ea->offset != eb->offset)
		return ea->offset < eb->offset ? -1 : 1;
	return 0;
}

static void
check_length(const char *argname, int n, int expected)
{
	if (n != expected)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must have as many elements as offsets", argname),
				 errdetail("offsets has %d elements and %s has %d.", expected, argname, n)));
}

/*
 * Read and check the batch arguments into events (in input order).
 */
static BatchEvent *
get_batch_events(FunctionCallInfo fcinfo, int *nevents)
{
	Datum	   *offsets,
			   *keys,
			   *datas,
			   *times = NULL;
	bool	   *offsets_null,
			   *keys_null,
			   *datas_null,
			   *times_null = NULL;
	int			n,
				nkeys,
				ndatas,
				ntimes,
				i;
	BatchEvent *events;

	ptm_get_array(fcinfo, 2, "offsets", INT8OID, &offsets, &offsets_null, &n);
	ptm_get_array(fcinfo, 3, "keys", TEXTOID, &keys, &keys_null, &nkeys);
	ptm_get_array(fcinfo, 4, "datas", JSONBOID, &datas, &datas_null, &ndatas);
	check_length("keys", nkeys, n);
	check_length("datas", ndatas, n);
	if (!PG_ARGISNULL(5))
	{
		ptm_get_array(fcinfo, 5, "event_times", TIMESTAMPTZOID, &times, &times_null, &ntimes);
		check_length("event_times", ntimes, n);
	}

	events = palloc0(sizeof(BatchEvent) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		BatchEvent *e = &events[i];

		e->ordinality = i + 1;
		if (offsets_null[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("offsets[%d] must not be null", i + 1)));
		e->offset = DatumGetInt64(offsets[i]);
		if (e->offset < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("offsets[%d] must not be negative", i + 1),
					 errdetail("The value given was " INT64_FORMAT "; offsets start at 0.", e->offset)));
		if (keys_null[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("keys[%d] must not be null", i + 1)));
		e->key = DatumGetTextPP(keys[i]);
		ptm_check_name(e->key, "keys", i + 1);
		e->data = datas[i];
		e->data_null = datas_null[i];
		if (!e->data_null)
			check_data_size(e->data, "datas", i + 1);
		e->event_time_null = (times == NULL || times_null[i]);
		if (!e->event_time_null)
		{
			e->event_time = DatumGetTimestampTz(times[i]);
			check_event_time(e->event_time, "event_times", i + 1);
		}
	}
	*nevents = n;
	return events;
}

/*
 * Decide each event (sorted by offset) against watermark wm (none when
 * !have_wm).
 */
static void
classify_batch(BatchEvent *events, int n, bool have_wm, int64 wm, TimestampTz now,
			   CallTotals *t)
{
	bool		found = have_wm;
	int			i;

	memset(t, 0, sizeof(*t));
	t->max_lag_null = true;
	t->skips.watermark = wm;
	for (i = 0; i < n; i++)
	{
		BatchEvent *e = &events[i];

		/*
		 * Events at or below the watermark the batch found come first (the
		 * batch is sorted): those are judged; a repeat of an offset the batch
		 * itself applied is only a duplicate.
		 */
		if (found && e->offset <= t->skips.watermark)
		{
			if (t->skips.judged++ == 0)
				t->skips.first = e->offset;
			t->skips.last = e->offset;
		}

		if (!have_wm || e->offset > wm)
		{
			if (have_wm && e->offset - wm > 1)
				t->gaps++;
			e->result = PROJ_APPLIED;
			wm = e->offset;
			have_wm = true;
			t->applied++;
			if (!e->event_time_null)
			{
				int64		lag = lag_ms(now, e->event_time);

				t->last_timed = e;
				if (t->max_lag_null || lag > t->max_lag)
					t->max_lag = lag;
				t->max_lag_null = false;
			}
		}
		else if (e->offset == wm)
		{
			e->result = PROJ_DUPLICATE;
			t->skips.duplicates++;
		}
		else
		{
			e->result = PROJ_REGRESSION;
			t->skips.regressions++;
		}
		e->watermark = wm;
	}
	t->final_wm = wm;
	t->final_wm_null = !have_wm;
}

/*
 * Write the projection rows of the applied events: per key only the last
 * event counts (it is the state after the batch), one statement for the
 * upserts and one for the deletes.
 */
static void
write_batch_rows(text *projection, int32 partition_id, BatchEvent *events, int n,
				 TimestampTz now)
{
	BatchEvent **applied = palloc(sizeof(BatchEvent *) * Max(n, 1));
	Datum	   *up_keys = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *up_datas = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *up_offsets = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *del_keys = palloc(sizeof(Datum) * Max(n, 1));
	int			napplied = 0,
				nup = 0,
				ndel = 0,
				i;

	for (i = 0; i < n; i++)
		if (events[i].result == PROJ_APPLIED)
			applied[napplied++] = &events[i];
	qsort(applied, napplied, sizeof(BatchEvent *), cmp_event_key);

	for (i = 0; i < napplied; i++)
	{
		BatchEvent *e = applied[i];

		/* Skip all but the last (highest offset) event of each key. */
		if (i + 1 < napplied && same_key(e->key, applied[i + 1]->key))
			continue;
		if (e->data_null)
			del_keys[ndel++] = PointerGetDatum(e->key);
		else
		{
			up_keys[nup] = PointerGetDatum(e->key);
			up_datas[nup] = e->data;
			up_offsets[nup] = Int64GetDatum(e->offset);
			nup++;
		}
	}

	if (ndel > 0)
	{
		Datum		values[2];

		values[0] = PointerGetDatum(projection);
		values[1] = PointerGetDatum(construct_array(del_keys, ndel, TEXTOID, -1, false, TYPALIGN_INT));
		ptm_plan_run(&plan_delete_rows, values, NULL);
	}
	if (nup > 0)
	{
		Datum		values[6];

		values[0] = PointerGetDatum(projection);
		values[1] = Int32GetDatum(partition_id);
		values[2] = PointerGetDatum(construct_array(up_keys, nup, TEXTOID, -1, false, TYPALIGN_INT));
		values[3] = PointerGetDatum(construct_array(up_datas, nup, JSONBOID, -1, false, TYPALIGN_INT));
		values[4] = PointerGetDatum(construct_array(up_offsets, nup, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[5] = TimestampTzGetDatum(now);
		ptm_plan_run(&plan_upsert_rows, values, NULL);
	}
}

/*
 * Write a call's outcome to its watermark row: insert it (a batch on a new
 * partition) or update it (locked).  Returns false when the insert found a
 * row another session created meanwhile.
 */
static bool
write_watermark(text *projection, int32 partition_id, bool insert, int64 prev,
				bool prev_null, TimestampTz now, const CallTotals *t)
{
	int			form = schema_form();
	Datum		values[16];
	char		nulls[16];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = PointerGetDatum(projection);
	values[1] = Int32GetDatum(partition_id);
	values[2] = Int64GetDatum(t->final_wm);
	values[3] = Int64GetDatum(prev);
	if (prev_null)
		nulls[3] = 'n';
	values[4] = Int64GetDatum(t->applied);
	values[5] = TimestampTzGetDatum(now);
	if (t->last_timed)
	{
		values[6] = TimestampTzGetDatum(t->last_timed->event_time);
		values[7] = Int64GetDatum(lag_ms(now, t->last_timed->event_time));
	}
	else
		nulls[6] = nulls[7] = 'n';
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

	if (insert)
	{
		ptm_plan_run(&plan_insert_wm, values, nulls);
		return SPI_processed == 1;
	}
	ptm_plan_run(&plan_update_wm[form], values, nulls);
	if (SPI_processed != 1)
		elog(ERROR, "watermark row of projection \"%s\" partition %d vanished while locked",
			 text_to_cstring(projection), partition_id);
	return true;
}

/*
 * ptm.apply_projection_batch(projection, partition_id, offsets, keys, datas,
 *		event_times, fence_topic, fence_partition, fence_epoch)
 *	→ SETOF (ordinality, offset, key, result, watermark, final_watermark)
 */
PG_FUNCTION_INFO_V1(ptm_apply_projection_batch);
Datum
ptm_apply_projection_batch(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *projection;
	int32		partition_id;
	BatchEvent *events;
	int			n,
				i;
	PtmFenceArgs fence;
	TimestampTz now = GetCurrentTimestamp();
	ReturnSetInfo *rsinfo;
	CallTotals totals;

	projection = ptm_get_name(fcinfo, 0, "projection");
	partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	events = get_batch_events(fcinfo, &n);
	ptm_get_fence_args(fcinfo, 6, false, &fence);
	rsinfo = ptm_init_srf(fcinfo);

	if (n == 0)
		return (Datum) 0;
	qsort(events, n, sizeof(BatchEvent), cmp_event_offset);

	spi = ptm_spi_connect(false);

	if (!fence_passes(&fence))
	{
		bool		found;
		int64		wm = read_watermark(projection, partition_id, &found);

		memset(&totals, 0, sizeof(totals));
		totals.final_wm = wm;
		totals.final_wm_null = !found;
		for (i = 0; i < n; i++)
		{
			events[i].result = PROJ_FENCING_REJECT;
			events[i].watermark = wm;
		}
	}
	else
	{
		LockedWatermark lw;
		bool		have_wm;
		int			attempt;

		for (attempt = 0;; attempt++)
		{
			have_wm = lock_watermark(projection, partition_id, &lw);
			classify_batch(events, n, have_wm, have_wm ? lw.wm : 0, now, &totals);

			/* A partition's first batch creates its watermark row at the end. */
			if (have_wm)
				break;
			if (write_watermark(projection, partition_id, true, 0, true, now, &totals))
				break;
			if (attempt >= 10)
				ereport(ERROR,
						(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
						 errmsg("could not lock the watermark of projection \"%s\" partition %d",
								text_to_cstring(projection), partition_id),
						 errdetail("The watermark row was created and removed again %d times meanwhile.",
								   attempt + 1)));
		}

		write_batch_rows(projection, partition_id, events, n, now);
		if (have_wm)
		{
			ptm_judge_skips(&lw.mem, &totals.skips);
			write_watermark(projection, partition_id, false,
							totals.applied > 0 ? lw.wm : lw.prev,
							totals.applied > 0 ? false : lw.prev_null, now, &totals);
			ptm_report_skips(text_to_cstring(projection), partition_id, &lw.mem,
							 &totals.skips, n, now);
		}
	}

	ptm_spi_finish(spi);

	ptm_count_n(PTM_PROJ_MATERIALIZED, totals.applied);
	ptm_count_n(PTM_PROJ_GAPS, totals.gaps);
	ptm_count_skips(&totals.skips);
	if (events[0].result == PROJ_FENCING_REJECT)
		ptm_count_n(PTM_PROJ_FAILED, n);

	for (i = 0; i < n; i++)
	{
		BatchEvent *e = &events[i];
		Datum		values[6];
		bool		nulls[6] = {false};

		values[0] = Int32GetDatum(e->ordinality);
		values[1] = Int64GetDatum(e->offset);
		values[2] = PointerGetDatum(e->key);
		values[3] = CStringGetTextDatum(proj_result_names[e->result]);
		values[4] = Int64GetDatum(e->watermark);
		nulls[4] = (e->result == PROJ_FENCING_REJECT && totals.final_wm_null);
		values[5] = Int64GetDatum(totals.final_wm);
		nulls[5] = totals.final_wm_null;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * reset_projection's statements, all with the same parameters: $1
 * projection, $2 partition (NULL: all), $3 reason, $4 delete_rows, $5 rows
 * deleted, $6 the watermarks removed, $7 the calling role.
 */
#define RESET_TYPES (const Oid[]) {TEXTOID, INT4OID, TEXTOID, BOOLOID, INT8OID, JSONBOID, TEXTOID}
static PtmPlan plan_reset_watermarks = {
	.sql = "WITH removed AS ("
	"  DELETE FROM ptm.projection_watermarks"
	"   WHERE projection = $1 AND ($2 IS NULL OR partition_id = $2)"
	"  RETURNING partition_id, \"offset\", applied_count)"
	" SELECT count(*),"
	"        jsonb_agg(jsonb_build_object('partition_id', partition_id,"
	"                                     'offset', \"offset\","
	"                                     'applied_count', applied_count)"
	"                  ORDER BY partition_id)"
	"   FROM removed",
	.nargs = 2, .argtypes = RESET_TYPES,
	.expect = SPI_OK_SELECT
};
static PtmPlan plan_reset_rows = {
	.sql = "DELETE FROM ptm.workflow_projection"
	" WHERE projection = $1 AND ($2 IS NULL OR source_partition = $2)",
	.nargs = 2, .argtypes = RESET_TYPES,
	.expect = SPI_OK_DELETE
};
static PtmPlan plan_reset_audit = {
	.sql = "INSERT INTO ptm.lease_audit"
	"  (action, topic, partition_id, reason, details, current_user_name)"
	" VALUES ('reset_projection', $1, $2, $3,"
	"         jsonb_build_object('projection', $1, 'delete_rows', $4,"
	"                            'rows_deleted', $5,"
	"                            'watermarks', COALESCE($6, '[]'::jsonb)), $7)",
	.nargs = 7, .argtypes = RESET_TYPES,
	.expect = SPI_OK_INSERT
};

/*
 * ptm.reset_projection(projection, partition_id, delete_rows, reason)
 *	→ (result, partitions_reset, rows_deleted)
 *
 * Removes the watermarks (all partitions, or one) so that a replay starts
 * afresh, optionally deletes the projection's rows, and writes an audit row
 * with the watermarks removed.  Revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(ptm_reset_projection);
Datum
ptm_reset_projection(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *projection;
	bool		delete_rows;
	TupleDesc	tupdesc;
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Datum		out[3];
	bool		out_null[3] = {false, false, false};
	int64		partitions_reset;
	uint64		rows_deleted = 0;
	bool		isnull;

	projection = ptm_get_name(fcinfo, 0, "projection");
	values[0] = PointerGetDatum(projection);
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';			/* every partition */
	else
		values[1] = Int32GetDatum(ptm_get_partition(fcinfo, 1, "partition_id"));
	ptm_check_not_null(fcinfo, 2, "delete_rows");
	delete_rows = PG_GETARG_BOOL(2);
	values[2] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	if (PG_ARGISNULL(3))
		nulls[2] = 'n';
	values[3] = BoolGetDatum(delete_rows);

	tupdesc = ptm_result_tupdesc(fcinfo);

	spi = ptm_spi_connect(false);

	/* Watermarks first: this waits for applies in progress, which lock them first. */
	ptm_plan_run(&plan_reset_watermarks, values, nulls);
	partitions_reset = first_int8(1, &isnull);
	values[5] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	nulls[5] = isnull ? 'n' : ' ';

	if (delete_rows)
		rows_deleted = ptm_plan_run(&plan_reset_rows, values, nulls);
	values[4] = Int64GetDatum((int64) rows_deleted);

	/*
	 * Audit every call, including one that found nothing to reset.  The
	 * function runs as its owner: name the role that called it.
	 */
	values[6] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	ptm_plan_run(&plan_reset_audit, values, nulls);

	ptm_spi_finish(spi);

	out[0] = CStringGetTextDatum(partitions_reset > 0 || rows_deleted > 0 ? "reset" : "nothing_to_reset");
	out[1] = Int32GetDatum((int32) partitions_reset);
	out[2] = Int64GetDatum((int64) rows_deleted);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, out, out_null)));
}
