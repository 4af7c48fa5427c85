/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The extension's shared memory: one PtmSharedState per cluster.
 *
 * Locking protocol
 *	  - Creation: the postmaster (or each backend under EXEC_BACKEND) attaches
 *		in shmem_startup_hook while holding AddinShmemInitLock; the first one
 *		to find the struct uninitialised zeroes it.
 *	  - Counters: pg_atomic_fetch_add_u64, no lock.  A reader may see one
 *		counter a call ahead of another; every counter is monotonic between
 *		resets, which is all Prometheus needs.
 *	  - stats_reset: written under ptm_shared->lock in exclusive mode (reset),
 *		read under it in shared mode.
 *	  - Histograms and per-key statistics live in their own segment, set up
 *		by metrics.c from these hooks; their locking is described there and
 *		in metrics_keys.c.  The workers' table is set up by launcher.c from
 *		them too, and its locking is described there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "announce.h"
#include "metrics_int.h"
#include "ptm_lease.h"
#include "workers.h"

PtmSharedState *ptm_shared = NULL;

#ifdef PTM_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
ptm_shmem_size(void)
{
	return MAXALIGN(sizeof(PtmSharedState));
}

static void
ptm_shmem_request(void)
{
#ifdef PTM_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(ptm_shmem_size());
	RequestNamedLWLockTranche("ptm_lease", 1);
	ptm_metrics_shmem_request();
	ptm_workers_shmem_request();
	ptm_announce_shmem_request();
}

static void
ptm_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ptm_shared = ShmemInitStruct("ptm_lease", ptm_shmem_size(), &found);
	if (!found)
	{
		int			i;

		ptm_shared->lock = &(GetNamedLWLockTranche("ptm_lease"))->lock;
		ptm_shared->stats_reset = GetCurrentTimestamp();
		for (i = 0; i < PTM_NUM_COUNTERS; i++)
			pg_atomic_init_u64(&ptm_shared->counters[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);

	/* Histograms, per-key statistics, and the counters saved at shutdown. */
	ptm_metrics_shmem_startup();
	/* The launcher's table of databases and workers (launcher.c). */
	ptm_workers_shmem_startup();
	/* The ring of lease events the workers announce (announce.c). */
	ptm_announce_shmem_startup();
}

/*
 * Called from _PG_init when preloaded: install the hooks.
 */
void
ptm_shmem_init(void)
{
#ifdef PTM_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ptm_shmem_request;
#else
	ptm_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ptm_shmem_startup;
}

bool
ptm_shmem_available(void)
{
	return ptm_shared != NULL;
}

/*
 * Raise the error every shared-memory feature gives when the library was not
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
