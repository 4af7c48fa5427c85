/*-------------------------------------------------------------------------
 *
 * projections.h
 *	  What the projection functions share: an event's checks and results
 *	  (projection_events.c) and the steps on a partition's watermark row
 *	  (projection_watermarks.c), below the single apply
 *	  (projection_apply.c) and the batch apply (projection_batch.c).
 *	  reset_projection() (projection_reset.c) shares only the locking
 *	  protocol, written at the top of projection_watermarks.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_PROJECTIONS_H
#define PTM_PROJECTIONS_H

#include "executor/spi.h"
#include "utils/timestamp.h"

#include "replays.h"
#include "validate.h"

/* Outcomes, as the SQL functions spell them (ptm_proj_result_names). */
typedef enum PtmProjResult
{
	PROJ_APPLIED,
	PROJ_DUPLICATE,
	PROJ_REGRESSION,
	PROJ_FENCING_REJECT
} PtmProjResult;

/*
 * Totals of one call (a batch, or one skipped event), for the watermark row
 * and the counters.
 */
typedef struct PtmApplyTotals
{
	int64		applied;
	int64		gaps;
	int64		final_wm;
	bool		final_wm_null;
	bool		last_time_null; /* no applied event had an event_time */
	TimestampTz last_time;		/* that of the last applied event with one */
	int64		max_lag;
	bool		max_lag_null;
	PtmSkips	skips;			/* duplicates and regressions, judged (replays.c) */
} PtmApplyTotals;

/* A partition's watermark row, locked, as ptm_lock_watermark() read it. */
typedef struct PtmLockedWatermark
{
	int64		wm;
	int64		prev;
	bool		prev_null;
	PtmSkipMemory mem;			/* what it remembers of skipped events */
} PtmLockedWatermark;

/* projection_events.c: an event's checks (ptm_lease.max_data_bytes) and results */
extern const char *const ptm_proj_result_names[];
extern void ptm_check_event_data(Datum data, const char *argname, int index);
extern void ptm_check_event_time(TimestampTz t, const char *argname, int index);

/*
 * projection_watermarks.c: the watermark row's statements.  All need an SPI
 * connection.
 */
extern bool ptm_projection_fence_passes(const PtmFenceArgs *fence);
extern int64 ptm_read_watermark(text *projection, int32 partition_id, bool *found);
extern bool ptm_lock_watermark(text *projection, int32 partition_id, PtmLockedWatermark *lw);
extern bool ptm_insert_watermark(text *projection, int32 partition_id, TimestampTz now,
								 const PtmApplyTotals *t);
extern void ptm_update_watermark(text *projection, int32 partition_id, int64 prev,
								 bool prev_null, TimestampTz now, const PtmApplyTotals *t);
extern void ptm_watermark_vanished(text *projection, int32 partition_id) pg_attribute_noreturn();

/* Milliseconds from event_time to now, never negative (clock skew). */
static inline int64
ptm_lag_ms(TimestampTz now, TimestampTz event_time)
{
	return now > event_time ? (now - event_time) / 1000 : 0;
}

/* int64 in column col of the first result row; 0 and *isnull when NULL. */
static inline int64
ptm_first_int8(int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

#endif							/* PTM_PROJECTIONS_H */
