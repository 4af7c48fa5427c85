/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  Counting outcomes and observing latencies in shared memory, and reading
 *	  them back as SQL rows (ptm.metric_series, ptm.metrics, ptm.stat_info).
 *
 * Every series is a fixed slot that exists, at 0, from server start.  The
 * per-key statistics live in metrics_keys.c; saving and loading across a
 * clean restart in metrics_file.c.  Without shared_preload_libraries there
 * are no slots and counting is silently skipped: the SQL functions still do
 * their work.
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

#include <math.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "metrics_int.h"
#include "ptm_lease.h"
#include "srf.h"

PtmMetricsShared *ptm_metrics = NULL;

const PtmCounterInfo ptm_counter_info[PTM_NUM_COUNTERS] = {
	[PTM_LEASE_ACQUIRE_SUCCESS] = {"lease_acquisitions_total", "{\"result\": \"success\"}", "Lease acquisitions by result."},
	[PTM_LEASE_ACQUIRE_CONFLICT] = {"lease_acquisitions_total", "{\"result\": \"conflict\"}", "Lease acquisitions by result."},
	[PTM_LEASE_ACQUIRE_HELD] = {"lease_acquisitions_total", "{\"result\": \"held\"}", "Lease acquisitions by result."},
	[PTM_LEASE_RENEW_SUCCESS] = {"lease_renewals_total", "{\"result\": \"success\"}", "Lease renewals by result."},
	[PTM_LEASE_RENEW_FAILURE] = {"lease_renewals_total", "{\"result\": \"failure\"}", "Lease renewals by result."},
	[PTM_LEASE_CONFLICTS] = {"lease_conflicts_total", "{}", "Stale lease epochs rejected (renew, release, fence checks)."},
	[PTM_LEASE_RELEASES] = {"lease_releases_total", "{}", "Leases released by their owner."},
	[PTM_LEASE_FORCED] = {"lease_forced_expirations_total", "{}", "Leases ended by force_expire()."},
	[PTM_LEASE_EXPIRATIONS] = {"lease_expirations_total", "{}", "Leases found expired by the sweeper."},
	[PTM_FENCE_CHECK_PASS] = {"lease_fence_checks_total", "{\"result\": \"pass\"}", "Fence checks by result."},
	[PTM_FENCE_CHECK_REJECT] = {"lease_fence_checks_total", "{\"result\": \"reject\"}", "Fence checks by result."},
	[PTM_COMMIT_OK] = {"ptm_commit_total", "{\"result\": \"ok\"}", "try_commit() calls by result."},
	[PTM_COMMIT_CAS_CONFLICT] = {"ptm_commit_total", "{\"result\": \"cas_conflict\"}", "try_commit() calls by result."},
	[PTM_COMMIT_FENCING_REJECT] = {"ptm_commit_total", "{\"result\": \"fencing_reject\"}", "try_commit() calls by result."},
	[PTM_COMMIT_DUPLICATE] = {"ptm_commit_total", "{\"result\": \"duplicate\"}", "try_commit() calls by result."},
	[PTM_CLAIM_CLAIMED] = {"ptm_claim_total", "{\"result\": \"claimed\"}", "claim_step() calls by result."},
	[PTM_CLAIM_STALE] = {"ptm_claim_total", "{\"result\": \"stale\"}", "claim_step() calls by result."},
	[PTM_CLAIM_OUT_OF_ORDER] = {"ptm_claim_total", "{\"result\": \"out_of_order\"}", "claim_step() calls by result."},
	[PTM_CLAIM_BUSY] = {"ptm_claim_total", "{\"result\": \"busy\"}", "claim_step() calls by result."},
	[PTM_STORE_COMMITS] = {"canonical_store_state_commits_total", "{}", "Workflow state versions committed."},
	[PTM_STORE_CONFLICTS] = {"canonical_store_state_conflicts_total", "{}", "Workflow commits refused by a version conflict."},
	[PTM_DEDUP_CHECKS] = {"action_dedup_checks_total", "{}", "Action ids checked for a previous commit."},
	[PTM_DEDUP_HITS] = {"action_dedup_hits_total", "{}", "Action ids found already committed."},
	[PTM_DEDUP_RECORDS] = {"action_dedup_records_total", "{}", "Action ids recorded."},
	[PTM_DEDUP_CLEANUP_DELETED] = {"action_dedup_cleanup_deleted_total", "{}", "Expired action ids deleted."},
	[PTM_PROJ_MATERIALIZED] = {"projection_materializer_projections_materialized_total", "{}", "Projection events applied."},
	[PTM_PROJ_FAILED] = {"projection_materializer_projections_failed_total", "{}", "Projection events refused: fencing rejects, and regressions that raced another materializer."},
	[PTM_PROJ_WM_REGRESSIONS] = {"projection_materializer_wm_regressions_total", "{}", "Projection events below their watermark."},
	[PTM_PROJ_DUPLICATES] = {"projection_materializer_duplicate_events_skipped", "{}", "Projection events at their watermark, skipped."},
	[PTM_PROJ_GAPS] = {"projection_materializer_offset_gaps_total", "{}", "Projection events that skipped offsets."},
	[PTM_PROJ_REPLAYS] = {"projection_materializer_replays_total", "{}", "Replays begun: a materializer went back below its partition's watermark (routine)."},
	[PTM_PROJ_WM_RACES] = {"projection_materializer_wm_races_total", "{}", "Projection events below their watermark after another writer moved it: two materializers on one partition."},
	[PTM_BACKPRESSURE_WORKER] = {"ptm_backpressure_total", "{\"reason\": \"worker_limit\"}", "Acquisitions refused by a limit."},
	[PTM_BACKPRESSURE_TENANT] = {"ptm_backpressure_total", "{\"reason\": \"tenant_limit\"}", "Acquisitions refused by a limit."},
	[PTM_BACKPRESSURE_FAIR_SHARE] = {"ptm_backpressure_total", "{\"reason\": \"fair_share\"}", "Acquisitions refused by a limit."},
	[PTM_BACKPRESSURE_DRAINING] = {"ptm_backpressure_total", "{\"reason\": \"draining\"}", "Acquisitions refused by a limit."},
	[PTM_CLAIM_CLEANUP_DELETED] = {"ptm_claim_cleanup_deleted_total", "{}", "Expired step claims cleared by the worker."},
	[PTM_LEASE_BUSY] = {"lease_busy_total", "{}", "Lease calls that found the lease row held by another transaction past ptm_lease.lock_wait_timeout (busy, or SQLSTATE 55P03 from a fence)."},
	[PTM_LEASE_HOLDERS_ENDED] = {"lease_holders_ended_total", "{}", "Backends ended because their transaction held the row of an expired lease (worker) or of a forced one (force_expire end_holder)."},
};

/*
 * Histogram buckets, in milliseconds.  Commit latency: seed 003's targets are
 * p95 < 10 ms and critical above 50 ms, so the buckets are dense there.
 * Recovery latency (lease expiry to the next acquisition): leases live 30 s by
 * default, so the buckets reach into minutes.
 */
const PtmHistogramInfo ptm_histogram_info[PTM_NUM_HISTOGRAMS] = {
	[PTM_HIST_COMMIT_LATENCY] = {"canonical_store_commit_latency_ms",
		"Time spent in try_commit(), in milliseconds.",
		14, {0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}},
	[PTM_HIST_RECOVERY_LATENCY] = {"recovery_latency_ms",
		"Time from a lease's expiry, forced expiry or release to its next acquisition, in milliseconds.",
		13, {10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000}},
};

/* Observations above this (about 30 years) are clamped, so sums cannot wrap. */
#define PTM_HIST_MAX_VALUE_MS 1e12

void
ptm_count(PtmCounter counter)
{
	if (ptm_shared != NULL && ptm_enable_counters)
		pg_atomic_fetch_add_u64(&ptm_shared->counters[counter], 1);
}

void
ptm_count_n(PtmCounter counter, uint64 n)
{
	if (ptm_shared != NULL && ptm_enable_counters && n > 0)
		pg_atomic_fetch_add_u64(&ptm_shared->counters[counter], n);
}

void
ptm_observe(PtmHistogram histogram, double value_ms)
{
	const PtmHistogramInfo *info;
	PtmHistogramState *state;
	int			b;

	if (ptm_metrics == NULL || !ptm_enable_counters || isnan(value_ms))
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

PtmSeriesKind
ptm_series_kind(const char *metric)
{
	size_t		len = strlen(metric);
	int			i;

	for (i = 0; i < PTM_NUM_COUNTERS; i++)
		if (strcmp(metric, ptm_counter_info[i].metric) == 0)
			return PTM_SERIES_COUNTER;
	for (i = 0; i < PTM_NUM_HISTOGRAMS; i++)
	{
		const char *family = ptm_histogram_info[i].metric;
		size_t		flen = strlen(family);

		if (strncmp(metric, family, flen) != 0)
			continue;
		if (len == flen)
			return PTM_SERIES_HISTOGRAM_FAMILY;
		if (strcmp(metric + flen, "_bucket") == 0 || strcmp(metric + flen, "_sum") == 0 ||
			strcmp(metric + flen, "_count") == 0)
			return PTM_SERIES_HISTOGRAM;
	}
	return PTM_SERIES_UNKNOWN;
}

/*
 * A counter's stable name, metric plus labels, as the saved file records it:
 * slot numbers move when counters are added, names do not.
 */
char *
ptm_counter_name(int counter)
{
	return psprintf("%s%s", ptm_counter_info[counter].metric,
					ptm_counter_info[counter].labels);
}

/*
 * Shared memory for histograms and per-key statistics, asked for and set up
 * from shmem.c's hooks, after the plain counters.
 */
void
ptm_metrics_shmem_request(void)
{
	RequestAddinShmemSpace(add_size(MAXALIGN(sizeof(PtmMetricsShared)),
									ptm_keys_shmem_size()));
	RequestNamedLWLockTranche("ptm_lease_metrics", 1);
}

void
ptm_metrics_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ptm_metrics = ShmemInitStruct("ptm_lease metrics", sizeof(PtmMetricsShared), &found);
	if (!found)
	{
		int			h,
					b;

		ptm_metrics->keys_lock = &(GetNamedLWLockTranche("ptm_lease_metrics"))->lock;
		ptm_metrics->median_usage = 1.0;
		pg_atomic_init_u64(&ptm_metrics->evictions, 0);
		for (h = 0; h < PTM_NUM_HISTOGRAMS; h++)
		{
			for (b = 0; b <= PTM_HIST_MAX_BOUNDS; b++)
				pg_atomic_init_u64(&ptm_metrics->hist[h].buckets[b], 0);
			pg_atomic_init_u64(&ptm_metrics->hist[h].sum_us, 0);
		}
	}
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
	if (!found)
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
	values[3] = Int32GetDatum(ptm_max_tracked_keys);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
