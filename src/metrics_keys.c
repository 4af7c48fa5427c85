/*-------------------------------------------------------------------------
 *
 * metrics_keys.c
 *	  Per-key statistics: outcome counts per topic and per workflow key, in a
 *	  bounded shared hash.
 *
 * "Which workflows conflict most?" needs counts per key, and keys are
 * unbounded, so the hash holds at most ptm_lease.max_tracked_keys entries.
 * When it is full the least used 5 % (at least 10) are evicted, as
 * pg_stat_statements does, and ptm.stat_info.evictions says how many went.
 * An entry's usage is its total count, decayed at each eviction so that an
 * old burst does not pin an entry forever; a new entry starts at the median
 * usage, so it is not the first to go before it had a chance to count.
 * Entries belong to the database that counted them (topic "orders" in two
 * databases is two entries); the views show the current database's.
 *
 * Locking protocol
 *	  - keys_lock (ptm_metrics->keys_lock) protects the hash's structure and
 *		every entry's usage_adjust, and median_usage.
 *	  - Counting for a key that has an entry: keys_lock SHARED, look up, one
 *		atomic add on the entry's counter, release.  Backends count
 *		concurrently.
 *	  - A new key: keys_lock EXCLUSIVE, look up again (another backend may
 *		have entered it in between), evict if full, enter it with zero counts,
 *		count, release.
 *	  - Eviction and usage decay happen only under keys_lock EXCLUSIVE, so no
 *		backend is adding to an entry while it is removed.
 *	  - Reading (views, the save at exit): keys_lock SHARED; the counts are
 *		atomics, read without more locking.
 *	  - Reset: ptm_shared->lock EXCLUSIVE first, then keys_lock EXCLUSIVE
 *		(metrics.c).
 *	  - Creation: in shmem_startup_hook under AddinShmemInitLock (metrics.c);
 *		keys_lock is created with the histograms (metrics_count.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "metrics_int.h"
#include "srf.h"

/* Eviction: the share evicted at once, its minimum, and the usage decay. */
#define PTM_EVICT_PERCENT	5
#define PTM_EVICT_MIN		10
#define PTM_USAGE_DECAY		0.99

/* Setting; see docs/reference.md. */
static int	max_tracked_keys = 1000;

HTAB	   *ptm_keys = NULL;

typedef struct PtmKeyUsage
{
	PtmKeyEntry *entry;
	double		usage;
} PtmKeyUsage;

/*
 * ptm_lease.max_tracked_keys sizes shared memory, and a PGC_POSTMASTER
 * setting can only be defined while preloading; loaded on demand there is no
 * hash to size.
 */
void
ptm_keys_define_gucs(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("ptm_lease.max_tracked_keys",
							gettext_noop("Most topics and workflow keys whose outcomes are counted one by one."),
							gettext_noop("When more are seen, the least used are evicted; "
										 "ptm.stat_info counts evictions."),
							&max_tracked_keys,
							1000, 100, 1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
}

/* Hash and compare only the bytes of the key that are in use. */
static uint32
key_hash(const void *key, Size keysize)
{
	const PtmKeyTag *tag = (const PtmKeyTag *) key;

	return hash_combine(hash_uint32((uint32) tag->family ^ (uint32) tag->dbid),
						hash_bytes((const unsigned char *) tag->data, tag->len));
}

static int
key_match(const void *key1, const void *key2, Size keysize)
{
	const PtmKeyTag *a = (const PtmKeyTag *) key1;
	const PtmKeyTag *b = (const PtmKeyTag *) key2;

	if (a->family != b->family || a->dbid != b->dbid || a->len != b->len)
		return 1;
	return memcmp(a->data, b->data, a->len);
}

/* The setting, for ptm.stat_info. */
int
ptm_keys_capacity(void)
{
	return max_tracked_keys;
}

void
ptm_keys_shmem_request(void)
{
	RequestAddinShmemSpace(hash_estimate_size(max_tracked_keys, sizeof(PtmKeyEntry)));
}

/* Called under AddinShmemInitLock. */
void
ptm_keys_shmem_startup(void)
{
	HASHCTL		info;

	info.keysize = sizeof(PtmKeyTag);
	info.entrysize = sizeof(PtmKeyEntry);
	info.hash = key_hash;
	info.match = key_match;
	ptm_keys = ShmemInitHash("ptm_lease keys", max_tracked_keys,
							 max_tracked_keys, &info,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE);
}

static double
entry_total(PtmKeyEntry *entry)
{
	double		total = 0;
	int			i;

	for (i = 0; i < PTM_NUM_COUNTERS; i++)
		total += (double) pg_atomic_read_u64(&entry->counts[i]);
	return total;
}

static int
usage_cmp(const void *a, const void *b)
{
	double		ua = ((const PtmKeyUsage *) a)->usage;
	double		ub = ((const PtmKeyUsage *) b)->usage;

	return (ua > ub) - (ua < ub);
}

/*
 * Evict the least used entries.  Caller holds keys_lock EXCLUSIVE.
 */
static void
evict_least_used(void)
{
	HASH_SEQ_STATUS seq;
	PtmKeyEntry *entry;
	PtmKeyUsage *usages;
	long		n = 0;
	long		nvictims;
	long		i;

	usages = palloc(hash_get_num_entries(ptm_keys) * sizeof(PtmKeyUsage));
	hash_seq_init(&seq, ptm_keys);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		usages[n].entry = entry;
		usages[n].usage = (entry_total(entry) + entry->usage_adjust) * PTM_USAGE_DECAY;
		n++;
	}
	if (n == 0)
	{
		pfree(usages);
		return;
	}
	qsort(usages, n, sizeof(PtmKeyUsage), usage_cmp);
	ptm_metrics->median_usage = usages[n / 2].usage;

	nvictims = Min(n, Max(PTM_EVICT_MIN, n * PTM_EVICT_PERCENT / 100));
	for (i = 0; i < nvictims; i++)
		hash_search(ptm_keys, &usages[i].entry->tag, HASH_REMOVE, NULL);
	for (i = nvictims; i < n; i++)
		usages[i].entry->usage_adjust = usages[i].usage - entry_total(usages[i].entry);
	pg_atomic_fetch_add_u64(&ptm_metrics->evictions, (uint64) nvictims);
	pfree(usages);
}

/*
 * Find or create the entry for a key, evicting if the hash is full.  Caller
 * holds keys_lock EXCLUSIVE (or is the postmaster loading the saved file).
 * Returns NULL only if shared memory ran out anyway.
 */
PtmKeyEntry *
ptm_key_enter(const PtmKeyTag *tag)
{
	PtmKeyEntry *entry;
	bool		found;
	int			i;

	entry = hash_search(ptm_keys, tag, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;
	if (hash_get_num_entries(ptm_keys) >= max_tracked_keys)
		evict_least_used();
	entry = hash_search(ptm_keys, tag, HASH_ENTER_NULL, &found);
	if (entry != NULL && !found)
	{
		entry->usage_adjust = ptm_metrics->median_usage;
		for (i = 0; i < PTM_NUM_COUNTERS; i++)
			pg_atomic_init_u64(&entry->counts[i], 0);
	}
	return entry;
}

void
ptm_count_key(PtmKeyFamily family, const char *key, int keylen, PtmCounter counter)
{
	PtmKeyTag	tag;
	PtmKeyEntry *entry;

	if (ptm_keys == NULL || !ptm_counting_enabled() || key == NULL || keylen <= 0)
		return;
	Assert(family >= 0 && family < PTM_NUM_KEY_FAMILIES);
	Assert(counter >= 0 && counter < PTM_NUM_COUNTERS);

	if (keylen > PTM_KEY_MAXLEN)
		keylen = pg_mbcliplen(key, keylen, PTM_KEY_MAXLEN);
	/* Zeroed so that the bytes dynahash copies into a new entry are defined. */
	memset(&tag, 0, offsetof(PtmKeyTag, data));
	tag.family = family;
	tag.dbid = MyDatabaseId;
	tag.len = keylen;
	memcpy(tag.data, key, keylen);

	LWLockAcquire(ptm_metrics->keys_lock, LW_SHARED);
	entry = hash_search(ptm_keys, &tag, HASH_FIND, NULL);
	if (entry == NULL)
	{
		LWLockRelease(ptm_metrics->keys_lock);
		LWLockAcquire(ptm_metrics->keys_lock, LW_EXCLUSIVE);
		entry = ptm_key_enter(&tag);
	}
	if (entry != NULL)
		pg_atomic_fetch_add_u64(&entry->counts[counter], 1);
	LWLockRelease(ptm_metrics->keys_lock);
}

/* Forget every key.  Caller holds ptm_shared->lock EXCLUSIVE. */
void
ptm_keys_reset(void)
{
	HASH_SEQ_STATUS seq;
	PtmKeyEntry *entry;

	LWLockAcquire(ptm_metrics->keys_lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, ptm_keys);
	while ((entry = hash_seq_search(&seq)) != NULL)
		hash_search(ptm_keys, &entry->tag, HASH_REMOVE, NULL);
	ptm_metrics->median_usage = 1.0;
	pg_atomic_write_u64(&ptm_metrics->evictions, 0);
	LWLockRelease(ptm_metrics->keys_lock);
}

long
ptm_keys_count(void)
{
	long		n;

	LWLockAcquire(ptm_metrics->keys_lock, LW_SHARED);
	n = hash_get_num_entries(ptm_keys);
	LWLockRelease(ptm_metrics->keys_lock);
	return n;
}

/*
 * ptm._key_counters() returns (family, key, metric, labels, value) for every
 * non-zero count of every key of the current database; the view
 * ptm.key_counters and the "top" views are built on it.
 */
PG_FUNCTION_INFO_V1(ptm_key_counters);
Datum
ptm_key_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	HASH_SEQ_STATUS seq;
	PtmKeyEntry *entry;

	ptm_require_shmem("ptm.key_counters");
	rsinfo = ptm_init_srf(fcinfo);

	LWLockAcquire(ptm_metrics->keys_lock, LW_SHARED);
	hash_seq_init(&seq, ptm_keys);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		int			i;

		if (entry->tag.dbid != MyDatabaseId)
			continue;
		for (i = 0; i < PTM_NUM_COUNTERS; i++)
		{
			uint64		count = pg_atomic_read_u64(&entry->counts[i]);
			Datum		values[5];
			bool		nulls[5] = {false};

			if (count == 0)
				continue;
			values[0] = CStringGetTextDatum(ptm_key_family_names[entry->tag.family]);
			values[1] = PointerGetDatum(cstring_to_text_with_len(entry->tag.data,
																 entry->tag.len));
			values[2] = CStringGetTextDatum(ptm_counter_info[i].metric);
			values[3] = DirectFunctionCall1(jsonb_in,
											CStringGetDatum(ptm_counter_info[i].labels));
			values[4] = Float8GetDatum((double) count);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	LWLockRelease(ptm_metrics->keys_lock);

	return (Datum) 0;
}
