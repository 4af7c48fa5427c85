/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  Counting outcomes, and reading the counters back as SQL rows.
 *
 * The hot path is ptm_count(): one atomic add on a fixed slot, no lock, no
 * allocation.  Without shared_preload_libraries there are no slots and
 * counting is silently skipped: the SQL functions still do their work.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "ptm_lease.h"
#include "srf.h"

typedef struct PtmCounterInfo
{
	const char *metric;			/* Prometheus name, as the runbooks spell it */
	const char *labels;			/* labels as a JSON object */
	const char *help;
} PtmCounterInfo;

static const PtmCounterInfo counter_info[PTM_NUM_COUNTERS] = {
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
	[PTM_PROJ_FAILED] = {"projection_materializer_projections_failed_total", "{}", "Projection events refused (regression or fence)."},
	[PTM_PROJ_WM_REGRESSIONS] = {"projection_materializer_wm_regressions_total", "{}", "Projection events below their watermark."},
	[PTM_PROJ_DUPLICATES] = {"projection_materializer_duplicate_events_skipped", "{}", "Projection events at their watermark, skipped."},
	[PTM_PROJ_GAPS] = {"projection_materializer_offset_gaps_total", "{}", "Projection events that skipped offsets."},
	[PTM_BACKPRESSURE_WORKER] = {"ptm_backpressure_total", "{\"reason\": \"worker_limit\"}", "Acquisitions refused by a limit."},
	[PTM_BACKPRESSURE_TENANT] = {"ptm_backpressure_total", "{\"reason\": \"tenant_limit\"}", "Acquisitions refused by a limit."},
};

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

/*
 * Histograms and per-key statistics: the interface is fixed here; the
 * storage lands with the metrics work (issue 6).  Until then they count
 * nothing.
 */
void
ptm_observe(PtmHistogram histogram, double value_ms)
{
}

void
ptm_count_key(PtmKeyFamily family, const char *key, int keylen, PtmCounter counter)
{
}

/*
 * ptm._counters() returns (metric, labels, help, value) for every counter
 * slot; the view ptm.metrics is built on it.
 */
PG_FUNCTION_INFO_V1(ptm_counters);
Datum
ptm_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	int			i;

	ptm_require_shmem("ptm.metrics");
	rsinfo = ptm_init_srf(fcinfo);

	for (i = 0; i < PTM_NUM_COUNTERS; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false};

		values[0] = CStringGetTextDatum(counter_info[i].metric);
		values[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(counter_info[i].labels));
		values[2] = CStringGetTextDatum(counter_info[i].help);
		values[3] = Float8GetDatum((double) pg_atomic_read_u64(&ptm_shared->counters[i]));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * ptm.reset_counters() sets every counter to zero and records when.
 */
PG_FUNCTION_INFO_V1(ptm_reset_counters);
Datum
ptm_reset_counters(PG_FUNCTION_ARGS)
{
	int			i;
	TimestampTz now = GetCurrentTimestamp();

	ptm_require_shmem("ptm.reset_counters()");

	LWLockAcquire(ptm_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < PTM_NUM_COUNTERS; i++)
		pg_atomic_write_u64(&ptm_shared->counters[i], 0);
	ptm_shared->stats_reset = now;
	LWLockRelease(ptm_shared->lock);

	PG_RETURN_TIMESTAMPTZ(now);
}

/*
 * ptm._stat_info() returns the time of the last reset, for ptm.stat_info.
 */
PG_FUNCTION_INFO_V1(ptm_stat_info);
Datum
ptm_stat_info(PG_FUNCTION_ARGS)
{
	TimestampTz stats_reset;

	ptm_require_shmem("ptm.stat_info");

	LWLockAcquire(ptm_shared->lock, LW_SHARED);
	stats_reset = ptm_shared->stats_reset;
	LWLockRelease(ptm_shared->lock);

	PG_RETURN_TIMESTAMPTZ(stats_reset);
}
