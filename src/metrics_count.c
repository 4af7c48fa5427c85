/*-------------------------------------------------------------------------
 *
 * metrics_count.c
 *	  Counting outcomes and observing latencies (the hot path), the shared
 *	  state they add to, and ptm_lease.enable_counters.
 *
 * Every series is a fixed slot that exists, at 0, from server start.
 * Without shared_preload_libraries there are no slots and counting is
 * silently skipped: the SQL functions still do their work.  The other
 * metrics files reach this state through metrics_int.h: metrics.c reads and
 * resets it, metrics_file.c saves and restores it, metrics_keys.c uses the
 * key hash's fields.
 *
 * Locking: counting takes none, it is one atomic add (two for a histogram:
 * its bucket and the sum).  The whole protocol, readers and reset included,
 * is at the top of metrics.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "metrics_int.h"

PtmSharedState *ptm_shared = NULL;
PtmMetricsShared *ptm_metrics = NULL;

/* Setting; see docs/reference.md. */
static bool enable_counters = true;

/* Observations above this (about 30 years) are clamped, so sums cannot wrap. */
#define PTM_HIST_MAX_VALUE_MS 1e12

void
ptm_count_define_gucs(void)
{
	DefineCustomBoolVariable("ptm_lease.enable_counters",
							 gettext_noop("Counts every call's outcome in shared memory."),
							 gettext_noop("Turning it off only serves to measure what counting costs."),
							 &enable_counters,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

/* For the per-key counts (metrics_keys.c), which obey the same setting. */
bool
ptm_counting_enabled(void)
{
	return enable_counters;
}

void
ptm_count(PtmCounter counter)
{
	if (ptm_shared != NULL && enable_counters)
		pg_atomic_fetch_add_u64(&ptm_shared->counters[counter], 1);
}

void
ptm_count_n(PtmCounter counter, uint64 n)
{
	if (ptm_shared != NULL && enable_counters && n > 0)
		pg_atomic_fetch_add_u64(&ptm_shared->counters[counter], n);
}

void
ptm_observe(PtmHistogram histogram, double value_ms)
{
	const PtmHistogramInfo *info;
	PtmHistogramState *state;
	int			b;

	if (ptm_metrics == NULL || !enable_counters || isnan(value_ms))
		return;
	if (value_ms < 0)
		value_ms = 0;				/* a clock step backwards */
	if (value_ms > PTM_HIST_MAX_VALUE_MS)
		value_ms = PTM_HIST_MAX_VALUE_MS;

	/* Prometheus buckets are "less than or equal to le". */
	info = &ptm_histogram_info[histogram];
	for (b = 0; b < info->nbounds && value_ms > info->bounds[b]; b++)
		;
	state = &ptm_metrics->hist[histogram];
	pg_atomic_fetch_add_u64(&state->buckets[b], 1);
	pg_atomic_fetch_add_u64(&state->sum_us, (uint64) (value_ms * 1000.0 + 0.5));
}

/*
 * The two segments of counters and histograms, and their LWLocks: the
 * counters' lock (stats_reset, reset) and the key hash's.
 */
void
ptm_count_shmem_request(void)
{
	RequestAddinShmemSpace(add_size(MAXALIGN(sizeof(PtmSharedState)),
									MAXALIGN(sizeof(PtmMetricsShared))));
	RequestNamedLWLockTranche("ptm_lease", 1);
	RequestNamedLWLockTranche("ptm_lease_metrics", 1);
}

/*
 * Create or attach both segments; the first process to find them
 * uninitialised zeroes them.  Caller holds AddinShmemInitLock.  Returns
 * whether this call created them (then nothing has been counted yet).
 */
bool
ptm_count_shmem_startup(void)
{
	bool		found;
	int			i,
				b;

	ptm_shared = ShmemInitStruct("ptm_lease", MAXALIGN(sizeof(PtmSharedState)), &found);
	if (!found)
	{
		ptm_shared->lock = &(GetNamedLWLockTranche("ptm_lease"))->lock;
		ptm_shared->stats_reset = GetCurrentTimestamp();
		for (i = 0; i < PTM_NUM_COUNTERS; i++)
			pg_atomic_init_u64(&ptm_shared->counters[i], 0);
	}

	ptm_metrics = ShmemInitStruct("ptm_lease metrics", sizeof(PtmMetricsShared), &found);
	if (!found)
	{
		ptm_metrics->keys_lock = &(GetNamedLWLockTranche("ptm_lease_metrics"))->lock;
		ptm_metrics->median_usage = 1.0;
		pg_atomic_init_u64(&ptm_metrics->evictions, 0);
		for (i = 0; i < PTM_NUM_HISTOGRAMS; i++)
		{
			for (b = 0; b <= PTM_HIST_MAX_BOUNDS; b++)
				pg_atomic_init_u64(&ptm_metrics->hist[i].buckets[b], 0);
			pg_atomic_init_u64(&ptm_metrics->hist[i].sum_us, 0);
		}
	}
	return !found;
}

/*
 * Raise the error every metrics view gives when the library was not
 * preloaded, naming the feature and the setting that enables it.
 */
void
ptm_require_shmem(const char *what)
{
	if (ptm_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires ptm_lease to be loaded via shared_preload_libraries", what),
				 errdetail("The ptm_lease library was loaded on demand, so its shared memory does not exist."),
				 errhint("Add ptm_lease to shared_preload_libraries in postgresql.conf and restart the server.")));
}
