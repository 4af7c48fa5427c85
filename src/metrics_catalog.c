/*-------------------------------------------------------------------------
 *
 * metrics_catalog.c
 *	  The catalogue of series: each counter's metric name, labels and help,
 *	  each histogram's buckets, and the names of the key families.
 *
 * Static tables and no state, so that every other metrics file (and
 * history.c's argument checks) can read them, with or without shared
 * memory.  A new counter is a PtmCounter in metrics.h and a line here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "metrics_int.h"

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

const char *const ptm_key_family_names[PTM_NUM_KEY_FAMILIES] = {
	[PTM_KEY_TOPIC] = "topic",
	[PTM_KEY_WORKFLOW] = "workflow",
};

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
