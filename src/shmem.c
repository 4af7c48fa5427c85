/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The one place that installs the shared-memory hooks.
 *
 * Each module that keeps something in shared memory contributes a request
 * (its size and its LWLock tranches) and a startup function (create or
 * attach its segments under AddinShmemInitLock), as pg_stat_statements'
 * pgss_shmem_request and pgss_shmem_startup do: the metrics (metrics.c),
 * the launcher's table of databases and workers (workers.h) and the ring of
 * lease events (announce.c).  Each describes its own locking.  No module
 * calls back into this file; health.c asks whether the hooks ran.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"

#include "announce.h"
#include "metrics.h"
#include "ptm_lease.h"
#include "workers.h"

#ifdef PTM_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Whether this process has attached to the shared memory. */
static bool attached = false;

static void
ptm_shmem_request(void)
{
#ifdef PTM_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	ptm_metrics_shmem_request();
	ptm_workers_shmem_request();
	ptm_announce_shmem_request();
}

static void
ptm_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	/* Counters, histograms, per-key statistics, and those saved at shutdown. */
	ptm_metrics_shmem_startup();
	/* The launcher's table of databases and workers. */
	ptm_workers_shmem_startup();
	/* The ring of lease events the workers announce. */
	ptm_announce_shmem_startup();
	attached = true;
}

/*
 * Called from _PG_init when preloaded: install the hooks.  Before PG 15
 * there is no request hook, and _PG_init is where space is asked for.
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
	return attached;
}
