/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  The metrics as a whole: their settings and shared memory, and the SQL
 *	  functions that read or reset them (ptm.metric_series, ptm.metrics,
 *	  ptm.stat_info, ptm.reset_counters()).
 *
 * The other metrics files lie below this one, each using only those after
 * it: metrics_file.c (saving and restoring across a clean restart),
 * metrics_keys.c (per-key statistics), metrics_count.c (counting, and the
 * shared state) and metrics_catalog.c (names, labels, help and buckets).
 * Without shared_preload_libraries there is no shared memory: counting is
 * silently skipped, and the functions here say what is missing.
 *
 * Locking protocol (the per-key hash has its own, in metrics_keys.c)
 *	  - Counters (ptm_shared->counters) and histograms (ptm_metrics->hist) are
 *		updated with pg_atomic_fetch_add_u64 and no lock: ptm_count() is one
 *		atomic add, ptm_observe() two (its bucket and the sum).
 *	  - Readers take no lock either.  A reader may see one series a call ahead
 *		of another, or a histogram's _sum an observation ahead of its buckets;
 *		every series is monotonic between resets, which is all rate() needs.
 *		_count is computed as the sum of the buckets, so it always equals the
 *		+Inf bucket.
 *	  - Reset (ptm.reset_counters()): ptm_shared->lock EXCLUSIVE, then
 *		keys_lock EXCLUSIVE (always in that order), zeros, then stats_reset.
 *		An add racing with the reset lands just before or just after the
 *		zeroing; either way the series restarts near zero.
 *	  - stats_reset: written under ptm_shared->lock EXCLUSIVE, read under it
 *		SHARED.
 *	  - Creation: in shmem_startup_hook under AddinShmemInitLock.  The saved
 *		file is loaded by the postmaster before any backend exists and saved
 *		by it at exit after every backend is gone, so neither takes a lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "metrics_int.h"
#include "srf.h"

/* Called from _PG_init: each setting is defined by the file that reads it. */
void
ptm_metrics_define_gucs(void)
{
	ptm_count_define_gucs();
	ptm_keys_define_gucs();
}

/* From shmem.c's request hook. */
void
ptm_metrics_shmem_request(void)
{
	ptm_count_shmem_request();
	ptm_keys_shmem_request();
}

/* From shmem.c's startup hook. */
void
ptm_metrics_shmem_startup(void)
{
	bool		created;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	created = ptm_count_shmem_startup();
	ptm_keys_shmem_startup();
	LWLockRelease(AddinShmemInitLock);

	/*
	 * The postmaster saves the counters when it exits (only a clean exit
	 * writes anything), and restores them once, when it first creates the
	 * shared memory.  Backends, and a postmaster reinitialising after a crash,
	 * find no file: it is removed when loaded.
	 */
	if (!IsUnderPostmaster)
		on_shmem_exit(ptm_metrics_save_at_exit, (Datum) 0);
	if (created)
		ptm_metrics_load();
}

static void
put_series(ReturnSetInfo *rsinfo, const char *family, const char *type,
		   const char *help, const char *metric, const char *labels, double value)
{
	Datum		values[6];
	bool		nulls[6] = {false};

	values[0] = CStringGetTextDatum(family);
	values[1] = CStringGetTextDatum(type);
	values[2] = CStringGetTextDatum(help);
	values[3] = CStringGetTextDatum(metric);
	values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(labels));
	values[5] = Float8GetDatum(value);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * ptm._metric_series() returns (family, type, help, metric, labels, value)
 * for every series: each counter slot, and for each histogram its cumulative
 * _bucket series (le as a label), _sum and _count.  The views ptm.metrics and
 * ptm.metric_series and ptm.metrics_text() are built on it.
 */
PG_FUNCTION_INFO_V1(ptm_metric_series);
Datum
ptm_metric_series(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	int			i;

	ptm_require_shmem("ptm.metrics");
	rsinfo = ptm_init_srf(fcinfo);

	for (i = 0; i < PTM_NUM_COUNTERS; i++)
		put_series(rsinfo, ptm_counter_info[i].metric, "counter",
				   ptm_counter_info[i].help, ptm_counter_info[i].metric,
				   ptm_counter_info[i].labels,
				   (double) pg_atomic_read_u64(&ptm_shared->counters[i]));

	for (i = 0; i < PTM_NUM_HISTOGRAMS; i++)
	{
		const PtmHistogramInfo *info = &ptm_histogram_info[i];
		PtmHistogramState *state = &ptm_metrics->hist[i];
		char	   *bucket = psprintf("%s_bucket", info->metric);
		uint64		cumulative = 0;
		int			b;

		for (b = 0; b <= info->nbounds; b++)
		{
			char	   *labels;

			cumulative += pg_atomic_read_u64(&state->buckets[b]);
			if (b < info->nbounds)
				labels = psprintf("{\"le\": \"%.15g\"}", info->bounds[b]);
			else
				labels = "{\"le\": \"+Inf\"}";
			put_series(rsinfo, info->metric, "histogram", info->help,
					   bucket, labels, (double) cumulative);
		}
		put_series(rsinfo, info->metric, "histogram", info->help,
				   psprintf("%s_sum", info->metric), "{}",
				   (double) pg_atomic_read_u64(&state->sum_us) / 1000.0);
		put_series(rsinfo, info->metric, "histogram", info->help,
				   psprintf("%s_count", info->metric), "{}", (double) cumulative);
	}
	return (Datum) 0;
}

/*
 * ptm.reset_counters() sets every counter and histogram to zero, forgets
 * every tracked key, and records when.
 */
PG_FUNCTION_INFO_V1(ptm_reset_counters);
Datum
ptm_reset_counters(PG_FUNCTION_ARGS)
{
	int			i,
				b;
	TimestampTz now = GetCurrentTimestamp();

	ptm_require_shmem("ptm.reset_counters()");

	LWLockAcquire(ptm_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < PTM_NUM_COUNTERS; i++)
		pg_atomic_write_u64(&ptm_shared->counters[i], 0);
	for (i = 0; i < PTM_NUM_HISTOGRAMS; i++)
	{
		for (b = 0; b <= PTM_HIST_MAX_BOUNDS; b++)
			pg_atomic_write_u64(&ptm_metrics->hist[i].buckets[b], 0);
		pg_atomic_write_u64(&ptm_metrics->hist[i].sum_us, 0);
	}
	ptm_keys_reset();
	ptm_shared->stats_reset = now;
	LWLockRelease(ptm_shared->lock);

	PG_RETURN_TIMESTAMPTZ(now);
}

/*
 * ptm._stat_info() returns (stats_reset, evictions, tracked_keys,
 * max_tracked_keys), for ptm.stat_info.
 */
PG_FUNCTION_INFO_V1(ptm_stat_info);
Datum
ptm_stat_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false};

	ptm_require_shmem("ptm.stat_info");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	LWLockAcquire(ptm_shared->lock, LW_SHARED);
	values[0] = TimestampTzGetDatum(ptm_shared->stats_reset);
	LWLockRelease(ptm_shared->lock);
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&ptm_metrics->evictions));
	values[2] = Int64GetDatum((int64) ptm_keys_count());
	values[3] = Int32GetDatum(ptm_keys_capacity());

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
