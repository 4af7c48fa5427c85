/*-------------------------------------------------------------------------
 *
 * metrics.h
 *	  The counters ptm_lease keeps in shared memory, one per metric and label.
 *
 * Every series the runbooks read is a fixed slot, so it exists (at 0) from
 * server start: a series that first appears at 1 hides its first increase
 * from Prometheus' increase().  Names and labels live in metrics_catalog.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_METRICS_H
#define PTM_METRICS_H

typedef enum PtmCounter
{
	/* leases (seed 002) */
	PTM_LEASE_ACQUIRE_SUCCESS,	/* lease_acquisitions_total{result="success"} */
	PTM_LEASE_ACQUIRE_CONFLICT, /* lease_acquisitions_total{result="conflict"} */
	PTM_LEASE_ACQUIRE_HELD,		/* lease_acquisitions_total{result="held"} */
	PTM_LEASE_RENEW_SUCCESS,	/* lease_renewals_total{result="success"} */
	PTM_LEASE_RENEW_FAILURE,	/* lease_renewals_total{result="failure"} */
	PTM_LEASE_CONFLICTS,		/* lease_conflicts_total: stale epochs seen */
	PTM_LEASE_RELEASES,			/* lease_releases_total */
	PTM_LEASE_FORCED,			/* lease_forced_expirations_total */
	PTM_LEASE_EXPIRATIONS,		/* lease_expirations_total (sweeper) */
	PTM_FENCE_CHECK_PASS,		/* lease_fence_checks_total{result="pass"} */
	PTM_FENCE_CHECK_REJECT,		/* lease_fence_checks_total{result="reject"} */

	/* commits and claims (seeds 000 and 003) */
	PTM_COMMIT_OK,				/* ptm_commit_total{result="ok"} */
	PTM_COMMIT_CAS_CONFLICT,	/* ptm_commit_total{result="cas_conflict"} */
	PTM_COMMIT_FENCING_REJECT,	/* ptm_commit_total{result="fencing_reject"} */
	PTM_COMMIT_DUPLICATE,		/* ptm_commit_total{result="duplicate"} */
	PTM_CLAIM_CLAIMED,			/* ptm_claim_total{result="claimed"} */
	PTM_CLAIM_STALE,			/* ptm_claim_total{result="stale"} */
	PTM_CLAIM_OUT_OF_ORDER,		/* ptm_claim_total{result="out_of_order"} */
	PTM_CLAIM_BUSY,				/* ptm_claim_total{result="busy"} */
	PTM_STORE_COMMITS,			/* canonical_store_state_commits_total */
	PTM_STORE_CONFLICTS,		/* canonical_store_state_conflicts_total */
	PTM_DEDUP_CHECKS,			/* action_dedup_checks_total */
	PTM_DEDUP_HITS,				/* action_dedup_hits_total */
	PTM_DEDUP_RECORDS,			/* action_dedup_records_total */
	PTM_DEDUP_CLEANUP_DELETED,	/* action_dedup_cleanup_deleted_total */

	/* projections (seed 003) */
	PTM_PROJ_MATERIALIZED,		/* projection_materializer_projections_materialized_total */
	PTM_PROJ_FAILED,			/* projection_materializer_projections_failed_total */
	PTM_PROJ_WM_REGRESSIONS,	/* projection_materializer_wm_regressions_total */
	PTM_PROJ_DUPLICATES,		/* projection_materializer_duplicate_events_skipped */
	PTM_PROJ_GAPS,				/* projection_materializer_offset_gaps_total */
	PTM_PROJ_REPLAYS,			/* projection_materializer_replays_total */
	PTM_PROJ_WM_RACES,			/* projection_materializer_wm_races_total */

	/* backpressure (seed 004) */
	PTM_BACKPRESSURE_WORKER,	/* ptm_backpressure_total{reason="worker_limit"} */
	PTM_BACKPRESSURE_TENANT,	/* ptm_backpressure_total{reason="tenant_limit"} */

	/* fair share and drain (docs/balancing.md) */
	PTM_BACKPRESSURE_FAIR_SHARE,	/* ptm_backpressure_total{reason="fair_share"} */
	PTM_BACKPRESSURE_DRAINING,	/* ptm_backpressure_total{reason="draining"} */

	/* background worker (issue 7) */
	PTM_CLAIM_CLEANUP_DELETED,	/* ptm_claim_cleanup_deleted_total */

	/* frozen holders (issue 16) */
	PTM_LEASE_BUSY,				/* lease_busy_total */
	PTM_LEASE_HOLDERS_ENDED,	/* lease_holders_ended_total */

	PTM_NUM_COUNTERS
} PtmCounter;

/* Histograms (milliseconds), with fixed buckets defined in metrics_catalog.c. */
typedef enum PtmHistogram
{
	PTM_HIST_COMMIT_LATENCY,	/* canonical_store_commit_latency_ms */
	PTM_HIST_RECOVERY_LATENCY,	/* recovery_latency_ms: lease end to next acquisition */
	PTM_NUM_HISTOGRAMS
} PtmHistogram;

/* Per-key statistics, kept in a bounded hash (ptm_lease.max_tracked_keys). */
typedef enum PtmKeyFamily
{
	PTM_KEY_TOPIC,				/* per topic: lease outcomes */
	PTM_KEY_WORKFLOW,			/* per workflow key: commit outcomes */
	PTM_NUM_KEY_FAMILIES
} PtmKeyFamily;

/* Hot path: one atomic add, no lock; a no-op when not preloaded. */
extern void ptm_count(PtmCounter counter);
extern void ptm_count_n(PtmCounter counter, uint64 n);
extern void ptm_observe(PtmHistogram histogram, double value_ms);

/*
 * Count an outcome for one key of a family as well (e.g. a cas_conflict for
 * workflow "wf-42"); the family-wide counter is counted separately.
 */
extern void ptm_count_key(PtmKeyFamily family, const char *key, int keylen,
						  PtmCounter counter);

/*
 * What the library knows a series name as, from its static tables (no shared
 * memory needed): a counter, one series of a histogram (_bucket, _sum,
 * _count), the bare name of a histogram family, or nothing.
 */
typedef enum PtmSeriesKind
{
	PTM_SERIES_UNKNOWN,
	PTM_SERIES_COUNTER,
	PTM_SERIES_HISTOGRAM,
	PTM_SERIES_HISTOGRAM_FAMILY
} PtmSeriesKind;

extern PtmSeriesKind ptm_series_kind(const char *metric);

/*
 * Module load: the metrics' settings (ptm_lease.enable_counters,
 * ptm_lease.max_tracked_keys), and their shared memory, asked for and set up
 * from shmem.c's hooks.
 */
extern void ptm_metrics_define_gucs(void);
extern void ptm_metrics_shmem_request(void);
extern void ptm_metrics_shmem_startup(void);

#endif							/* PTM_METRICS_H */
