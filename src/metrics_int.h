/*-------------------------------------------------------------------------
 *
 * metrics_int.h
 *	  Internals shared by the metrics files, each of which uses only those
 *	  listed after it:
 *
 *	  metrics.c          settings, shared memory, the SQL readers and reset
 *	  metrics_file.c     saving and restoring across a clean restart
 *	  metrics_keys.c     per-key statistics in a bounded hash
 *	  metrics_count.c    counting (the hot path) and the shared state it adds to
 *	  metrics_catalog.c  every series' name, labels, help and buckets
 *
 * Code outside the metrics files counts through metrics.h only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_METRICS_INT_H
#define PTM_METRICS_INT_H

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "metrics.h"

/* Finite bucket bounds per histogram at most; +Inf is always added. */
#define PTM_HIST_MAX_BOUNDS 16

/*
 * Longest key kept per entry, in bytes.  Longer keys are clipped at a
 * character boundary, so two keys that share their first PTM_KEY_MAXLEN bytes
 * share one entry.
 */
#define PTM_KEY_MAXLEN 256

typedef struct PtmCounterInfo
{
	const char *metric;			/* Prometheus name, as the runbooks spell it */
	const char *labels;			/* labels as a JSON object */
	const char *help;
} PtmCounterInfo;

typedef struct PtmHistogramInfo
{
	const char *metric;			/* family name; series add _bucket/_sum/_count */
	const char *help;
	int			nbounds;
	double		bounds[PTM_HIST_MAX_BOUNDS];	/* upper bounds, ascending, ms */
} PtmHistogramInfo;

/*
 * One histogram in shared memory.  Buckets are not cumulative (each
 * observation adds to exactly one), so an observation is two atomic adds and
 * _count is the sum of the buckets; readers make them cumulative.  The sum is
 * kept in microseconds so that it is an integer atomic too.
 */
typedef struct PtmHistogramState
{
	pg_atomic_uint64 buckets[PTM_HIST_MAX_BOUNDS + 1];	/* last one is +Inf */
	pg_atomic_uint64 sum_us;
} PtmHistogramState;

/* The hash key of a per-key entry; only the first len bytes of data count. */
typedef struct PtmKeyTag
{
	Oid			dbid;			/* database that counted it */
	int32		family;			/* PtmKeyFamily */
	int32		len;
	char		data[PTM_KEY_MAXLEN];
} PtmKeyTag;

typedef struct PtmKeyEntry
{
	PtmKeyTag	tag;			/* hash key: must be first */
	double		usage_adjust;	/* usage = sum(counts) + usage_adjust */
	pg_atomic_uint64 counts[PTM_NUM_COUNTERS];
} PtmKeyEntry;

/*
 * The counters' state, one per cluster (segment "ptm_lease").  Counters are
 * updated without any lock (pg_atomic_uint64); the lock protects only what
 * is not a single atomic value (stats_reset).
 */
typedef struct PtmSharedState
{
	LWLock	   *lock;
	TimestampTz stats_reset;
	pg_atomic_uint64 counters[PTM_NUM_COUNTERS];
} PtmSharedState;

/* Shared state of the metrics beyond the plain counters of PtmSharedState. */
typedef struct PtmMetricsShared
{
	LWLock	   *keys_lock;		/* protects the key hash; see metrics_keys.c */
	double		median_usage;	/* usage given to new entries (keys_lock) */
	pg_atomic_uint64 evictions; /* key entries evicted since the last reset */
	PtmHistogramState hist[PTM_NUM_HISTOGRAMS];
} PtmMetricsShared;

/* metrics_catalog.c */
extern const PtmCounterInfo ptm_counter_info[PTM_NUM_COUNTERS];
extern const PtmHistogramInfo ptm_histogram_info[PTM_NUM_HISTOGRAMS];
extern const char *const ptm_key_family_names[PTM_NUM_KEY_FAMILIES];
extern char *ptm_counter_name(int counter);

/* metrics_count.c; both pointers are NULL when not preloaded */
extern PtmSharedState *ptm_shared;
extern PtmMetricsShared *ptm_metrics;
extern void ptm_count_define_gucs(void);
extern bool ptm_counting_enabled(void);
extern void ptm_count_shmem_request(void);
extern bool ptm_count_shmem_startup(void);
extern void ptm_require_shmem(const char *what);

/* metrics_keys.c */
extern HTAB *ptm_keys;
extern void ptm_keys_define_gucs(void);
extern int	ptm_keys_capacity(void);
extern void ptm_keys_shmem_request(void);
extern void ptm_keys_shmem_startup(void);
extern PtmKeyEntry *ptm_key_enter(const PtmKeyTag *tag);
extern void ptm_keys_reset(void);
extern long ptm_keys_count(void);

/* metrics_file.c */
extern void ptm_metrics_load(void);
extern void ptm_metrics_save_at_exit(int code, Datum arg);

#endif							/* PTM_METRICS_INT_H */
