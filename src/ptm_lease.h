/*-------------------------------------------------------------------------
 *
 * ptm_lease.h
 *	  Declarations shared by the files of the ptm_lease extension.
 *
 * Each concern has its own file: ptm_lease.c (module load, GUCs), shmem.c
 * (shared state), metrics.c (counters, histograms and their views),
 * metrics_keys.c (per-key statistics), metrics_file.c (saving the counters
 * across restarts), health.c (health()), leases.c, commits.c,
 * projections.c, launcher.c and worker.c (background workers); below them
 * row_access.c (one row without SQL), lock_wait.c (bounded lock waits),
 * epochs.c (epoch eras) and holders.c (ending the holders of an expired
 * lease's row).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_LEASE_H
#define PTM_LEASE_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "metrics.h"

#ifndef PTM_LEASE_VERSION
#error "PTM_LEASE_VERSION must be set by the Makefile"
#endif

/*
 * SQLSTATE of a fence failure (check_fence, fenced try_commit and projections).
 * Class PT is our own, so a client can match it exactly and stop writing.
 */
#define ERRCODE_PTM_FENCING_REJECT	MAKE_SQLSTATE('P', 'T', 'M', '0', '1')

/* shmem.c: the shared-memory hooks, installed when preloaded */
extern void ptm_shmem_init(void);
extern bool ptm_shmem_available(void);

/* lease_rows.c: ptm_lease.lock_wait_timeout */
extern void ptm_lease_rows_define_gucs(void);

/* commits.c: try_commit, get_state, claim_step and their settings */
extern int	ptm_dedup_ttl_s;
extern int	ptm_max_state_bytes;
extern void ptm_commits_define_gucs(void);

/* projection_events.c: the projection functions' setting */
extern void ptm_projections_define_gucs(void);

#endif							/* PTM_LEASE_H */
