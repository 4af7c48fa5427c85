/*-------------------------------------------------------------------------
 *
 * lock_wait.c
 *	  Lock waits that end after a bound, with a result instead of an
 *	  error.
 *
 * PostgreSQL's only way to give up a lock wait is lock_timeout, which raises
 * an ERROR (55P03).  The lease functions must answer "busy" instead, so the
 * wait runs in a subtransaction with lock_timeout lowered to the bound: a
 * timeout rolls the subtransaction back and becomes "false", any other error
 * goes on.  The wait itself stays an ordinary lock wait, which pg_locks,
 * pg_blocking_pids() and the deadlock detector see.  Used for the tuple lock
 * of row_access.c and for the lease statements that still run as SQL
 * (lease_rows.c, leases.c, lease_bulk.c); docs/leases.md, "Frozen holders".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "storage/proc.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "lock_wait.h"

int
ptm_bounded_lock_timeout(int wait_ms)
{
	/* the session's own lock_timeout still applies when it is shorter */
	if (LockTimeout > 0 && LockTimeout <= wait_ms)
		return LockTimeout;
	return Max(wait_ms, 1);		/* 0 would mean no limit at all */
}

bool
ptm_with_lock_timeout(int wait_ms, void (*fn) (void *arg), void *arg)
{
	MemoryContext ctx = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	int			saved_lock_timeout = LockTimeout;
	volatile bool within = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(ctx);
	LockTimeout = ptm_bounded_lock_timeout(wait_ms);
	PG_TRY();
	{
		fn(arg);
		LockTimeout = saved_lock_timeout;
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		LockTimeout = saved_lock_timeout;
		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ctx);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			ReThrowError(edata);
		FreeErrorData(edata);
		within = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(ctx);
	CurrentResourceOwner = owner;
	return within;
}
