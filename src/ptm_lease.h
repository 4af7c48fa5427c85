/*-------------------------------------------------------------------------
 *
 * ptm_lease.h
 *	  Declarations shared by the files of the ptm_lease extension.
 *
 * One role per file, grouped by role from the top down (docs/architecture.md's
 * source map); no two files depend on each other in a circle:
 *	  module load: ptm_lease.c, shmem.c (the shared-memory hooks);
 *	  SQL functions: leases.c, lease_bulk.c, lease_operator.c, fence.c,
 *		balance.c, commits.c, projection_apply.c, projection_batch.c,
 *		projection_reset.c, sweep.c, health.c, metrics.c, history.c,
 *		old_versions.c (0.1.0's entry points, which refuse);
 *	  background workers: launcher.c, ddl_hooks.c, worker.c, worker_passes.c;
 *	  services: lease_limits.c, lease_events.c, lease_rows.c, holders.c,
 *		epochs.c, identity.c, announce.c, projection_watermarks.c,
 *		projection_events.c, replays.c;
 *	  foundation: row_access.c, keyed_tables.c, lock_wait.c, spi_util.c,
 *		dml_guard.c, validate.c, srf.c, metrics_file.c, metrics_keys.c,
 *		metrics_count.c, metrics_catalog.c.
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
