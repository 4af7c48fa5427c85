/*-------------------------------------------------------------------------
 *
 * projection_batch.c
 *	  apply_projection_batch(): apply a partition's events in offset order,
 *	  each decided against the watermark the ones before it left, with a
 *	  fixed number of statements whatever the batch's size: the watermark
 *	  row is locked once, the rows are written with one statement for the
 *	  upserts and one for the deletes, and the outcome is written once.
 *
 * Locking protocol (the whole of it: projection_watermarks.c)
 *	  - The watermark row is locked before the projection rows, with SELECT
 *		... FOR UPDATE, or, when the partition has no watermark yet, by
 *		inserting it (ON CONFLICT DO NOTHING; on a conflict it goes back to
 *		SELECT ... FOR UPDATE).  What the skipped events mean (a replay or a
 *		race, replays.c) is judged from the row so locked.
 *	  - With fence arguments, the lease row is locked FOR SHARE (ptm_fence)
 *		before the watermark row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "ptm_lease.h"
#include "projections.h"
#include "spi_util.h"
#include "srf.h"

/* Tries to lock or create a partition's watermark row that keeps being removed. */
#define WATERMARK_TRIES 11

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
	PtmProjResult result;
	int64		watermark;		/* after this event */
} BatchEvent;

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
			ptm_check_event_data(e->data, "datas", i + 1);
		e->event_time_null = (times == NULL || times_null[i]);
		if (!e->event_time_null)
		{
			e->event_time = DatumGetTimestampTz(times[i]);
			ptm_check_event_time(e->event_time, "event_times", i + 1);
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
			   PtmApplyTotals *t)
{
	bool		found = have_wm;
	int			i;

	memset(t, 0, sizeof(*t));
	t->last_time_null = true;
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
				int64		lag = ptm_lag_ms(now, e->event_time);

				t->last_time = e->event_time;
				t->last_time_null = false;
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


/* Fenced out: nothing is written; every event shows the watermark as it stands. */
static void
reject_batch(text *projection, int32 partition_id, BatchEvent *events, int n,
			 PtmApplyTotals *t)
{
	bool		found;
	int64		wm = ptm_read_watermark(projection, partition_id, &found);
	int			i;

	memset(t, 0, sizeof(*t));
	t->final_wm = wm;
	t->final_wm_null = !found;
	t->last_time_null = true;
	t->max_lag_null = true;
	for (i = 0; i < n; i++)
	{
		events[i].result = PROJ_FENCING_REJECT;
		events[i].watermark = wm;
	}
}

/*
 * Lock the partition's watermark row and decide the events against it.  A
 * partition's first batch decides them against none and creates the row
 * with the outcome; on a conflict (another session created it meanwhile) it
 * goes back to locking it.  Returns true when it locked an existing row
 * (*lw), false when it created one.
 */
static bool
lock_or_create_watermark(text *projection, int32 partition_id, BatchEvent *events, int n,
						 TimestampTz now, PtmLockedWatermark *lw, PtmApplyTotals *t)
{
	int			tries;

	for (tries = 0; tries < WATERMARK_TRIES; tries++)
	{
		if (ptm_lock_watermark(projection, partition_id, lw))
		{
			classify_batch(events, n, true, lw->wm, now, t);
			return true;
		}
		classify_batch(events, n, false, 0, now, t);
		if (ptm_insert_watermark(projection, partition_id, now, t))
			return false;
	}
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("could not lock the watermark of projection \"%s\" partition %d",
					text_to_cstring(projection), partition_id),
			 errdetail("The watermark row was created and removed again %d times meanwhile.",
					   WATERMARK_TRIES)));
	return false;				/* keep compiler quiet */
}

/*
 * The outcome of a batch decided against the locked watermark row lw: judge
 * its skipped events (replays.c), write the outcome and report them.
 */
static void
write_outcome(text *projection, int32 partition_id, const PtmLockedWatermark *lw, int n,
			  TimestampTz now, PtmApplyTotals *t)
{
	ptm_judge_skips(&lw->mem, &t->skips);
	ptm_update_watermark(projection, partition_id,
						 t->applied > 0 ? lw->wm : lw->prev,
						 t->applied > 0 ? false : lw->prev_null, now, t);
	ptm_report_skips(text_to_cstring(projection), partition_id, &lw->mem,
					 &t->skips, n, now);
}

/* Past the fence: lock (or create) the watermark row, then write the rows. */
static void
apply_batch(text *projection, int32 partition_id, BatchEvent *events, int n,
			TimestampTz now, PtmApplyTotals *t)
{
	PtmLockedWatermark lw;
	bool		locked;

	locked = lock_or_create_watermark(projection, partition_id, events, n, now, &lw, t);
	write_batch_rows(projection, partition_id, events, n, now);
	/* a row the batch created holds its outcome already */
	if (locked)
		write_outcome(projection, partition_id, &lw, n, now, t);
}

static void
count_batch(const BatchEvent *events, int n, const PtmApplyTotals *t)
{
	ptm_count_n(PTM_PROJ_MATERIALIZED, t->applied);
	ptm_count_n(PTM_PROJ_GAPS, t->gaps);
	ptm_count_skips(&t->skips);
	if (events[0].result == PROJ_FENCING_REJECT)
		ptm_count_n(PTM_PROJ_FAILED, n);
}

/* One row per event, in offset order. */
static void
put_result_rows(ReturnSetInfo *rsinfo, const BatchEvent *events, int n,
				const PtmApplyTotals *t)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		const BatchEvent *e = &events[i];
		Datum		values[6];
		bool		nulls[6] = {false};

		values[0] = Int32GetDatum(e->ordinality);
		values[1] = Int64GetDatum(e->offset);
		values[2] = PointerGetDatum(e->key);
		values[3] = CStringGetTextDatum(ptm_proj_result_names[e->result]);
		values[4] = Int64GetDatum(e->watermark);
		nulls[4] = (e->result == PROJ_FENCING_REJECT && t->final_wm_null);
		values[5] = Int64GetDatum(t->final_wm);
		nulls[5] = t->final_wm_null;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * ptm.apply_projection_batch(projection, partition_id, offsets, keys, datas,
 *		event_times, fence_topic, fence_partition, fence_epoch)
 *	→ SETOF (ordinality, offset, key, result, watermark, final_watermark)
 */
PG_FUNCTION_INFO_V1(ptm_apply_projection_batch_0_2);
Datum
ptm_apply_projection_batch_0_2(PG_FUNCTION_ARGS)
{
	text	   *projection;
	int32		partition_id;
	BatchEvent *events;
	int			n;
	PtmFenceArgs fence;
	TimestampTz now = GetCurrentTimestamp();
	ReturnSetInfo *rsinfo;
	PtmApplyTotals totals;
	int			spi;

	projection = ptm_get_name(fcinfo, 0, "projection");
	partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	events = get_batch_events(fcinfo, &n);
	ptm_get_fence_args(fcinfo, 6, false, &fence);
	rsinfo = ptm_init_srf(fcinfo);

	if (n == 0)
		return (Datum) 0;
	qsort(events, n, sizeof(BatchEvent), cmp_event_offset);

	spi = ptm_spi_connect(false);
	if (ptm_projection_fence_passes(&fence))
		apply_batch(projection, partition_id, events, n, now, &totals);
	else
		reject_batch(projection, partition_id, events, n, &totals);
	ptm_spi_finish(spi);

	count_batch(events, n, &totals);
	put_result_rows(rsinfo, events, n, &totals);
	return (Datum) 0;
}
