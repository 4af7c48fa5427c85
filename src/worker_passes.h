/*-------------------------------------------------------------------------
 *
 * worker_passes.h
 *	  The passes of a database's worker (worker.c calls them, in order):
 *	  expiry sweep, frozen holders, cleanup and metric history.  See
 *	  worker_passes.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_WORKER_PASSES_H
#define PTM_WORKER_PASSES_H

#include "workers.h"

/* ptm_lease.holder_grace, audit_retention, history_retention, claim_retention */
extern void ptm_worker_passes_define_gucs(void);

/*
 * Leave, quietly, when the entry asks it (the launcher, or a DDL command
 * that needs the database alone): before every step and in the loop.
 */
extern void ptm_worker_leave_if_asked(PtmDbEntry *entry);

/* The passes; each runs its own short transactions (call outside one). */
extern bool ptm_worker_sweep_pass(PtmDbEntry *entry, bool *behind);
extern void ptm_worker_holders_pass(PtmDbEntry *entry);
extern void ptm_worker_cleanup_pass(PtmDbEntry *entry);
extern void ptm_worker_history_pass(PtmDbEntry *entry);

#endif							/* PTM_WORKER_PASSES_H */
