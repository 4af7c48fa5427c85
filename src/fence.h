/*-------------------------------------------------------------------------
 *
 * fence.h
 *	  The lease fence, for every write that must be fenced (try_commit,
 *	  apply_projection, check_fence itself).  See fence.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_FENCE_H
#define PTM_FENCE_H

#include "fmgr.h"

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

#endif							/* PTM_FENCE_H */
