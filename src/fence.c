/*-------------------------------------------------------------------------
 *
 * fence.c
 *	  The lease fence: check_fence(topic, partition_id, lease_epoch), and
 *	  ptm_fence() for the fenced writes of try_commit and the projections.
 *
 * Locking
 *	  - The fence takes FOR SHARE on the lease row (without SQL, as SELECT
 *		... FOR SHARE would: ptm_row_lock) and keeps it until the fenced
 *		transaction ends.  Every ownership change needs the row's FOR NO KEY
 *		UPDATE lock, which conflicts with FOR SHARE, so a takeover waits for
 *		every fenced transaction that passed before it: a fenced write can
 *		never commit after the epoch that fences it.
 *	  - The wait for the row is bounded by ptm_lease.lock_wait_timeout
 *		(lease_rows.c): past it the fence raises SQLSTATE 55P03 and nothing
 *		is written.
 *	  - The clock that judges expiry is read after the lock is granted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "fence.h"
#include "identity.h"
#include "lease_events.h"
#include "lease_rows.h"
#include "ptm_lease.h"
#include "validate.h"

/* The row stayed locked past ptm_lease.lock_wait_timeout: counted, raised. */
static void
fence_busy(text *topic, int32 partition_id, const PtmLeaseRow *row)
{
	ptm_count_busy(topic);
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("lease row of partition %s-%d is locked by another transaction",
					text_to_cstring(topic), partition_id),
			 errdetail("The fence waited ptm_lease.lock_wait_timeout (%d ms) for it; the lease is held by %s at epoch " INT64_FORMAT ".",
					   ptm_lease_lock_wait_ms(),
					   row->agent_id ? psprintf("agent \"%s\"", row->agent_id) : "no agent",
					   row->epoch),
			 errhint("Nothing was written.  Retry the transaction; a takeover or a renewal of this lease is in progress.")));
}

/* Judge the locked row; the clock is read now, after the lock was granted. */
static PtmFenceStatus
fence_status(const PtmLeaseRow *row, int64 lease_epoch)
{
	if (!row->found)
		return PTM_FENCE_NO_LEASE;
	if (lease_epoch < row->epoch)
		return PTM_FENCE_STALE;
	if (lease_epoch > row->epoch)
		return PTM_FENCE_FUTURE;
	if (row->agent_id == NULL)
		return PTM_FENCE_NOT_HELD;
	if (row->expires_ms <= ptm_now_ms())
		return PTM_FENCE_EXPIRED;
	return PTM_FENCE_OK;
}

static void
fence_error(PtmFenceStatus status, text *topic, int32 partition_id, int64 epoch,
			const PtmLeaseRow *row)
{
	char	   *t = text_to_cstring(topic);
	char	   *owner = row->agent_id ? psprintf("agent \"%s\"", row->agent_id) :
		pstrdup("no agent");
	char	   *expiry = row->found ?
		pstrdup(timestamptz_to_str(ptm_ms_to_timestamptz(row->expires_ms))) : NULL;

	switch (status)
	{
		case PTM_FENCE_NO_LEASE:
			ereport(ERROR,
					(errcode(ERRCODE_PTM_FENCING_REJECT),
					 errmsg("fencing rejected: no lease exists for partition %s-%d", t, partition_id),
					 errdetail("A write fenced by epoch " INT64_FORMAT " needs a live lease at that epoch.", epoch),
					 errhint("Acquire the lease with ptm.acquire_partition_lease() first.")));
			break;
		case PTM_FENCE_STALE:
			ereport(ERROR,
					(errcode(ERRCODE_PTM_FENCING_REJECT),
					 errmsg("stale epoch rejected: epoch " INT64_FORMAT " < current epoch " INT64_FORMAT,
							epoch, row->epoch),
					 errdetail("Partition %s-%d is now held by %s at epoch " INT64_FORMAT ".",
							   t, partition_id, owner, row->epoch),
					 errhint("This writer lost the partition: stop writing and re-acquire the lease.")));
			break;
		case PTM_FENCE_FUTURE:
			ereport(ERROR,
					(errcode(ERRCODE_PTM_FENCING_REJECT),
					 errmsg("fencing rejected: epoch " INT64_FORMAT " > current epoch " INT64_FORMAT,
							epoch, row->epoch),
					 errdetail("Partition %s-%d was never leased at epoch " INT64_FORMAT "; it is held by %s.",
							   t, partition_id, epoch, owner)));
			break;
		case PTM_FENCE_NOT_HELD:
			ereport(ERROR,
					(errcode(ERRCODE_PTM_FENCING_REJECT),
					 errmsg("fencing rejected: lease on partition %s-%d at epoch " INT64_FORMAT " is %s",
							t, partition_id, epoch, row->state),
					 errdetail("Partition %s-%d has had no owner since its lease was %s at %s.",
							   t, partition_id, row->state, expiry),
					 errhint("Re-acquire the lease with ptm.acquire_partition_lease().")));
			break;
		case PTM_FENCE_EXPIRED:
			ereport(ERROR,
					(errcode(ERRCODE_PTM_FENCING_REJECT),
					 errmsg("fencing rejected: lease on partition %s-%d at epoch " INT64_FORMAT " has expired",
							t, partition_id, epoch),
					 errdetail("The lease of %s expired at %s without being renewed.", owner, expiry),
					 errhint("Renew every TTL/3; once expired, re-acquire the lease.")));
			break;
		case PTM_FENCE_OK:
			break;
	}
}

PtmFenceStatus
ptm_fence(text *topic, int32 partition_id, int64 lease_epoch, bool raise_error)
{
	PtmLeaseRow row = {0};
	PtmFenceStatus status;

	/* FOR SHARE on the lease row, without SQL unless the table needs it */
	if (ptm_lease_lock_share(topic, partition_id, &row) == PTM_ROW_BUSY)
		fence_busy(topic, partition_id, &row);
	status = fence_status(&row, lease_epoch);

	ptm_check_fence_owner(status == PTM_FENCE_OK ? row.agent_id : NULL);
	if (status == PTM_FENCE_OK)
		ptm_count(PTM_FENCE_CHECK_PASS);
	else
	{
		ptm_count_topic(PTM_FENCE_CHECK_REJECT, topic);
		if (status == PTM_FENCE_STALE)
			ptm_count_if_stale("stale_epoch", topic);
		if (raise_error)
			fence_error(status, topic, partition_id, lease_epoch, &row);
	}
	return status;
}

PG_FUNCTION_INFO_V1(ptm_check_fence_0_2);
Datum
ptm_check_fence_0_2(PG_FUNCTION_ARGS)
{
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	int64		epoch = ptm_get_epoch(fcinfo, 2, "lease_epoch");

	ptm_fence(topic, partition_id, epoch, true);
	PG_RETURN_VOID();
}
