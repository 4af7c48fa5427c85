/*-------------------------------------------------------------------------
 *
 * leases.h
 *	  The single-lease calls' steps that the bulk calls use too (leases.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_LEASES_H
#define PTM_LEASES_H

#include "fmgr.h"

#include "lease_events.h"
#include "lease_rows.h"

/*
 * Renew one lease, waiting at most wait_ms for its row: renewed,
 * stale_epoch, not_owner, expired or busy into *out, counted.
 */
extern void ptm_renew_one(PtmLeaseResult *out, text *topic, int32 partition_id, text *agent,
						  int64 epoch, int64 ttl_ms, int wait_ms);

/*
 * Why a renew or release at (agent, epoch) did not apply, from the row as it
 * is now: stale_epoch, not_owner or expired.
 */
extern const char *ptm_lease_failure(const PtmLeaseRow *row, text *agent, int64 epoch,
									 int64 now_ms);

#endif							/* PTM_LEASES_H */
