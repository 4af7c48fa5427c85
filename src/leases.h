/*-------------------------------------------------------------------------
 *
 * leases.h
 *	  The lease fence, for every write that must be fenced (try_commit,
 *	  apply_projection, check_fence itself), and ending the holders of a
 *	  lease row (worker.c).  Also lease_events.h, for the files that include
 *	  this header for the lease events (worker.c, announce.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_LEASES_H
#define PTM_LEASES_H

#include "fmgr.h"
#include "utils/timestamp.h"

#include "lease_events.h"

typedef enum PtmFenceStatus
{
	PTM_FENCE_OK,				/* epoch current, lease held and live */
	PTM_FENCE_NO_LEASE,			/* no lease row for the partition */
	PTM_FENCE_STALE,			/* epoch below the current epoch */
	PTM_FENCE_FUTURE,			/* epoch above the current epoch */
	PTM_FENCE_NOT_HELD,			/* epoch current but released or forced */
	PTM_FENCE_EXPIRED			/* epoch current but past its expiry */
} PtmFenceStatus;

/*
 * Check that lease_epoch is the live epoch of (topic, partition_id).  When it
 * is, the lease row stays locked FOR SHARE until the calling transaction ends,
 * so a takeover (acquire, force_expire) waits for the fenced write to commit
 * or abort.  With raise_error, anything but PTM_FENCE_OK raises SQLSTATE
 * PTM01 (ERRCODE_PTM_FENCING_REJECT) with the details; without it the status
 * is returned and counted.  Callable with or without an SPI connection.
 */
extern PtmFenceStatus ptm_fence(text *topic, int32 partition_id, int64 lease_epoch,
								bool raise_error);

/*
 * End (pg_terminate_backend) the backends whose transactions hold the row
 * of lease (topic, partition_id) and began before began_before (DT_NOBEGIN:
 * whenever), waiting up to wait_ms for each to exit; each is audited
 * ("end_holder", with by and reason), counted and logged.  agent_id and
 * epoch name the lease for the audit.  Returns how many.  Needs SPI.
 */
extern int	ptm_end_lease_holders(text *topic, int32 partition_id, const char *agent_id,
								  int64 epoch, TimestampTz began_before, int wait_ms,
								  const char *by, const char *reason);

#endif							/* PTM_LEASES_H */
