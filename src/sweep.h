/*-------------------------------------------------------------------------
 *
 * sweep.h
 *	  The expiry sweep: one batch of due leases, for the database's worker
 *	  (worker_passes.c) and for ptm.sweep_expired_leases(); and the count of
 *	  leases past expiry that ptm.health() reports.  See sweep.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_SWEEP_H
#define PTM_SWEEP_H

#include "postgres.h"

/* ptm_lease.sweep_batch_size: most rows a worker changes in one transaction */
extern int	ptm_sweep_batch_size(void);
extern void ptm_sweep_define_gucs(void);

/* What one batch of the expiry sweep did to the due leases it looked at. */
typedef struct PtmSweepCounts
{
	uint64		expired;		/* past their expiry: marked 'expired' */
	uint64		rescheduled;	/* renewed since: sweep_at moved to the expiry */
} PtmSweepCounts;

/*
 * One batch of at most limit due leases in the current transaction; needs
 * an SPI connection.  Counting lease_expirations_total is the caller's.
 */
extern PtmSweepCounts ptm_sweep_due_leases(int64 limit);

/* What the sweep has left, for ptm.health(). */
typedef struct PtmSweepBacklog
{
	int64		expired;		/* owned leases past expiry, not yet marked */
	int64		overdue;		/* of them, past expiry for over stale_after_ms */
	int64		look_lag_ms;	/* how late the sweeper's oldest due look is */
} PtmSweepBacklog;

/*
 * The sweep's backlog, in the caller's snapshot: leases past their expiry
 * still naming their owner, those of them expired more than stale_after_ms
 * ago, and how late the sweeper's oldest due look is.
 */
extern void ptm_sweep_backlog(long stale_after_ms, PtmSweepBacklog *backlog);

#endif							/* PTM_SWEEP_H */
