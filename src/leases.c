/*-------------------------------------------------------------------------
 *
 * leases.c
 *	  Epoch-fenced partition leases, one at a time: acquire_partition_lease,
 *	  renew_lease and release_lease.
 *
 * State lives in ptm.partition_leases, one row per (topic, partition_id),
 * reached through lease_rows.c.  Expiry is always judged against the
 * database clock at the moment of the call (clock_timestamp(), not the
 * transaction start), so neither agents' clocks nor long transactions matter.
 * The bulk forms are in lease_bulk.c, force_expire in lease_operator.c, the
 * fence in fence.c.
 *
 * Locking
 *	  - A contended acquire first reads the row without a lock: when another
 *		agent holds it live, the answer is "conflict" without writing anything.
 *		Otherwise acquire locks the row FOR NO KEY UPDATE, reads the clock
 *		after the lock, decides in C (take with a new epoch, or hold) and
 *		updates it: a wait never lets a stale clock decide.  A take writes
 *		the row it holds locked without SQL (row_access.c), with an epoch
 *		taken from the sequence once before.
 *	  - renew and release change the row as an UPDATE whose WHERE clause
 *		states the precondition would, without SQL (row_access.c): the row
 *		is locked by the update itself; after a wait for another holder the
 *		clause is judged again on the newest row version, on a clock read
 *		after the wait.  So two callers never both win, and a call refused
 *		without a wait leaves no lock behind, as its UPDATE would not.  A
 *		table that needs SQL gets the same steps through SPI: read, lock
 *		within the bound, clock, UPDATE.
 *	  - Every change of owner takes the row's FOR NO KEY UPDATE lock, which
 *		conflicts with the FOR SHARE of a fence (fence.c): a takeover waits
 *		for every fenced transaction that passed before it.
 *	  - No session-level locks (the limits' advisory locks are
 *		transaction-level, lease_limits.c): every function works through a
 *		transaction-mode pooler.
 *	  - No lease function waits for a lease row longer than
 *		ptm_lease.lock_wait_timeout (lease_rows.c): past it the answer is
 *		"busy", not a wait.  The clock that judges expiry is read after the
 *		row lock is granted.
 *
 * Epochs come from ptm.lease_epoch_seq, so they rise strictly for every
 * lease, even across a deleted and re-created row or a crash; epochs.c keeps
 * them rising across a failover that lost WAL (eras by timeline).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "epochs.h"
#include "identity.h"
#include "lease_events.h"
#include "lease_limits.h"
#include "lease_rows.h"
#include "leases.h"
#include "lock_wait.h"
#include "ptm_lease.h"
#include "row_access.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/*
 * Every statement that sets a new expiry from scratch also sets sweep_at, the
 * sweeper's lower bound of it (docs/workers.md).
 *
 * $1 topic, $2 partition, $3 agent, $4 expires_ms, $5 now
 */
static PtmPlan plan_insert = {
	.sql = "INSERT INTO ptm.partition_leases AS l"
	" (topic, partition_id, agent_id, lease_epoch, lease_expires_at, sweep_at, state,"
	" acquired_at, renewed_at)"
	" VALUES ($1, $2, $3, pg_catalog.nextval('ptm.lease_epoch_seq'), $4, $4, 'active', $5, $5)"
	" ON CONFLICT (topic, partition_id) DO NOTHING"
	" RETURNING l.lease_epoch::pg_catalog.int8",
	.nargs = 5, .argtypes = (const Oid[]) {TEXTOID, INT4OID, TEXTOID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_INSERT_RETURNING
};

/*
 * Take the locked lease (free, released, forced or expired) with the new
 * epoch, for a table that needs SQL; judge_take writes the same SET.
 * $1 topic, $2 partition, $3 agent, $4 expires_ms, $5 now, $6 epoch
 */
static PtmPlan plan_take = {
	.sql = "UPDATE ptm.partition_leases SET"
	" lease_epoch = $6,"
	" previous_agent_id = coalesce(agent_id, previous_agent_id),"
	" previous_epoch = CASE WHEN agent_id IS NOT NULL THEN lease_epoch ELSE previous_epoch END,"
	" agent_id = $3, state = 'active', lease_expires_at = $4, sweep_at = $4,"
	" acquired_at = $5, renewed_at = $5, ended_at = NULL"
	" WHERE topic = $1 AND partition_id = $2",
	.nargs = 6, .argtypes = (const Oid[]) {TEXTOID, INT4OID, TEXTOID, INT8OID, TIMESTAMPTZOID, INT8OID},
	.expect = SPI_OK_UPDATE
};

/*
 * Extend the locked lease its owner asks for again ("held"): same epoch, and
 * an expiry never moved earlier (two calls of one agent may cross, and the
 * expiry the first one reported must still hold).
 * $1 topic, $2 partition, $3 expires_ms, $4 now
 */
static PtmPlan plan_hold = {
	.sql = "UPDATE ptm.partition_leases"
	" SET lease_expires_at = greatest(lease_expires_at, $3), renewed_at = $4"
	" WHERE topic = $1 AND partition_id = $2"
	" RETURNING lease_expires_at::pg_catalog.int8",
	.nargs = 4, .argtypes = (const Oid[]) {TEXTOID, INT4OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/*
 * $1 topic, $2 partition, $3 agent, $4 epoch, $5 now_ms, $6 expires_ms, $7 now.
 * Like a held acquire, a renew never moves the expiry earlier.  Neither
 * touches an indexed column (sweep_at stays behind, a lower bound of the
 * expiry), so both are HOT updates.
 */
static PtmPlan plan_renew = {
	.sql = "UPDATE ptm.partition_leases"
	" SET lease_expires_at = greatest(lease_expires_at, $6), renewed_at = $7"
	" WHERE topic = $1 AND partition_id = $2 AND agent_id = $3"
	"   AND lease_epoch = $4 AND lease_expires_at > $5"
	" RETURNING lease_expires_at::pg_catalog.int8",
	.nargs = 7, .argtypes = (const Oid[]) {TEXTOID, INT4OID, TEXTOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/* $1 topic, $2 partition, $3 agent, $4 epoch, $5 now_ms, $6 now */
static PtmPlan plan_release = {
	.sql = "UPDATE ptm.partition_leases SET agent_id = NULL, state = 'released',"
	" previous_agent_id = agent_id, previous_epoch = lease_epoch,"
	" lease_expires_at = $5, sweep_at = $5, ended_at = $6"
	" WHERE topic = $1 AND partition_id = $2 AND agent_id = $3"
	"   AND lease_epoch = $4 AND lease_expires_at > $5",
	.nargs = 6, .argtypes = (const Oid[]) {TEXTOID, INT4OID, TEXTOID, INT8OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE
};

/*
 * Why a renew or release at (agent, epoch) did not apply, from the row as it
 * is now.  Only the failure path reads the row again.
 */
const char *
ptm_lease_failure(const PtmLeaseRow *row, text *agent, int64 epoch, int64 now_ms)
{
	if (!row->found)
		return "not_owner";
	if (epoch < row->epoch)
		return "stale_epoch";
	if (epoch > row->epoch)
		return "not_owner";
	if (row->agent_id != NULL)
		return ptm_same_agent(row->agent_id, agent) && row->expires_ms <= now_ms ?
			"expired" : "not_owner";
	/* freed at this epoch: by the sweeper (expired) or by a release */
	if (strcmp(row->state, "expired") == 0 && ptm_same_agent(row->previous_agent_id, agent))
		return "expired";
	return "not_owner";
}

/* plan_renew's WHERE clause, on a row read into a PtmLeaseRow. */
static bool
lease_renewable(const PtmLeaseRow *row, text *agent, int64 epoch, int64 now_ms)
{
	return row->found && row->epoch == epoch && ptm_same_agent(row->agent_id, agent) &&
		row->expires_ms > now_ms;
}

/*
 * Why a renew or release that found the row held past the bound did not
 * apply: the row as last committed may already say (stale_epoch, not_owner,
 * expired); if it shows the caller's live lease, "busy".
 */
static const char *
busy_or_failure(const PtmLeaseRow *row, text *agent, int64 epoch, int64 now_ms)
{
	if (lease_renewable(row, agent, epoch, now_ms))
		return "busy";
	return ptm_lease_failure(row, agent, epoch, now_ms);
}

/* ---------------------------------------------------------------------
 * acquire_partition_lease(topic, partition_id, agent_id, ttl)
 * ---------------------------------------------------------------------
 */

/* One acquire_partition_lease call. */
typedef struct AcquireCall
{
	PtmLeaseResult *out;
	text	   *topic;
	int32		partition_id;
	text	   *agent;
	int64		ttl_ms;
	bool		limits_locked;	/* the limits were asked whether they are on */
	bool		limits;			/* ... and they are: their locks are held */
} AcquireCall;

/* Another agent holds the lease, and it is live. */
static bool
held_by_other(const PtmLeaseRow *row, text *agent, int64 now_ms)
{
	return row->agent_id != NULL && !ptm_same_agent(row->agent_id, agent) &&
		row->expires_ms > now_ms;
}

/* Someone (after held_by_other(): the caller) holds the lease, and it is live. */
static bool
held_live(const PtmLeaseRow *row, int64 now_ms)
{
	return row->found && row->agent_id != NULL && row->expires_ms > now_ms;
}

static void
acquire_conflict(PtmLeaseResult *out, const PtmLeaseRow *row, text *topic)
{
	out->result = "conflict";
	ptm_lease_result_from_row(out, row);
	ptm_count_topic(PTM_LEASE_ACQUIRE_CONFLICT, topic);
}

/*
 * The lease is past its expiry but its row is still held (the old owner's
 * fenced transaction, say) after ptm_lease.lock_wait_timeout: nothing taken.
 */
static void
acquire_busy(PtmLeaseResult *out, const PtmLeaseRow *row, text *topic)
{
	out->result = "busy";
	ptm_lease_result_from_row(out, row);
	ptm_count_busy(topic);
}

/* The limits' advisory locks, taken once per call when a limit is on. */
static void
lock_limits(AcquireCall *call)
{
	if (call->limits_locked)
		return;
	call->limits = ptm_limits_active();
	if (call->limits)
		ptm_limits_lock(call->topic, call->agent);
	call->limits_locked = true;
}

/*
 * Whether a limit refuses the agent one more lease of the topic; if so the
 * answer is "limited", the lease stays as it is, and the refusal is counted.
 */
static bool
limits_refuse(AcquireCall *call, const PtmLeaseRow *row)
{
	PtmLimitReason why;

	if (!call->limits || ptm_limits_allowance(call->topic, call->agent, 1, &why) > 0)
		return false;
	call->out->result = "limited";
	ptm_lease_result_from_row(call->out, row);
	ptm_limits_count_refusal(why, call->topic);
	return true;
}

/* plan_insert with the arguments in arg, for ptm_with_lock_timeout(). */
static void
insert_lease(void *arg)
{
	ptm_plan_run(&plan_insert, (Datum *) arg, NULL);
}

/*
 * No row yet: insert it, taken.  False when another transaction inserted it
 * first (read it again).
 */
static bool
acquire_new(AcquireCall *call, const PtmLeaseRow *row)
{
	PtmLeaseResult *out = call->out;
	Datum		args[5];
	Oid			seq;
	int64		now_ms;
	bool		isnull;

	if (limits_refuse(call, row))
		return true;
	seq = ptm_epochs_lift_to_era();
	now_ms = ptm_now_ms();
	args[0] = PointerGetDatum(call->topic);
	args[1] = Int32GetDatum(call->partition_id);
	args[2] = PointerGetDatum(call->agent);
	args[3] = Int64GetDatum(now_ms + call->ttl_ms);
	args[4] = TimestampTzGetDatum(GetCurrentTimestamp());

	/*
	 * ON CONFLICT waits for another transaction inserting the same lease,
	 * which may be a frozen one the worker cannot see: bounded like every
	 * other wait for a lease row.
	 */
	if (!ptm_with_lock_timeout(ptm_lease_lock_wait_ms(), insert_lease, args))
	{
		acquire_busy(out, row, call->topic);
		return true;
	}
	ptm_epochs_after_raise(seq);	/* durable before the caller sees it */
	if (SPI_processed == 0)
		return false;			/* someone inserted it first: read again */
	out->result = "acquired";
	out->epoch = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
	out->expires_ms = now_ms + call->ttl_ms;
	ptm_count(PTM_LEASE_ACQUIRE_SUCCESS);
	ptm_lease_taken(call->topic, call->partition_id, out->agent_id, NULL, out->epoch,
					out->expires_ms, -1, now_ms);
	return true;
}

/* The caller holds the locked lease live: extend it ("held"), same epoch. */
static void
hold_locked(AcquireCall *call, int64 epoch, int64 now_ms, TimestampTz now)
{
	PtmLeaseResult *out = call->out;
	Datum		args[4] = {PointerGetDatum(call->topic), Int32GetDatum(call->partition_id),
		Int64GetDatum(now_ms + call->ttl_ms), TimestampTzGetDatum(now)};
	bool		isnull;

	ptm_plan_run(&plan_hold, args, NULL);
	out->result = "held";
	out->epoch = epoch;
	out->expires_ms = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
	ptm_count(PTM_LEASE_ACQUIRE_HELD);
}

/* A take of the locked lease, as judge_take sees it. */
typedef struct TakeCall
{
	text	   *agent;
	int64		epoch;			/* taken from ptm.lease_epoch_seq once, before */
	int64		expires_ms;
	TimestampTz now;
} TakeCall;

/*
 * plan_take's SET on the row this transaction holds locked: the new owner
 * and epoch, the owner it had (if any) kept as the previous one.  Nothing
 * to judge, and nothing computed here: it may be called again.
 */
static bool
judge_take(PtmKeyedTable *t, TupleTableSlot *slot, Datum *values, bool *isnull, void *arg)
{
	TakeCall   *call = (TakeCall *) arg;
	bool		free;
	bool		null;
	Datum		agent = ptm_row_column(t, slot, LEASE_COL_AGENT, &free);

	if (!free)
	{
		ptm_row_set(t, values, isnull, LEASE_COL_PREVIOUS_AGENT, agent, false);
		ptm_row_set(t, values, isnull, LEASE_COL_PREVIOUS_EPOCH,
					ptm_row_column(t, slot, LEASE_COL_EPOCH, &null), false);
	}
	ptm_row_set(t, values, isnull, LEASE_COL_EPOCH, Int64GetDatum(call->epoch), false);
	ptm_row_set(t, values, isnull, LEASE_COL_AGENT, PointerGetDatum(call->agent), false);
	ptm_row_set(t, values, isnull, LEASE_COL_STATE, CStringGetTextDatum("active"), false);
	ptm_row_set(t, values, isnull, LEASE_COL_EXPIRES, Int64GetDatum(call->expires_ms), false);
	ptm_row_set(t, values, isnull, LEASE_COL_SWEEP_AT, Int64GetDatum(call->expires_ms), false);
	ptm_row_set(t, values, isnull, LEASE_COL_ACQUIRED_AT, TimestampTzGetDatum(call->now), false);
	ptm_row_set(t, values, isnull, LEASE_COL_RENEWED_AT, TimestampTzGetDatum(call->now), false);
	ptm_row_set(t, values, isnull, LEASE_COL_ENDED_AT, (Datum) 0, true);
	return true;
}

/*
 * Write the take to the locked row: without SQL unless the table needs it.
 * The row is ours, so nothing can make the update wait or find it gone.
 */
static void
write_take(AcquireCall *call, TakeCall *take)
{
	Datum		keys[2] = {PointerGetDatum(call->topic), Int32GetDatum(call->partition_id)};
	Datum		args[6];

	switch (ptm_row_update(&ptm_lease_table, keys, PTM_ROW_WAIT_FOREVER, judge_take, take))
	{
		case PTM_ROW_UPDATED:
			return;
		case PTM_ROW_USE_SQL:
			break;
		default:
			elog(ERROR, "locked lease row of ptm.partition_leases not updated");
	}
	args[0] = PointerGetDatum(call->topic);
	args[1] = Int32GetDatum(call->partition_id);
	args[2] = PointerGetDatum(take->agent);
	args[3] = Int64GetDatum(take->expires_ms);
	args[4] = TimestampTzGetDatum(take->now);
	args[5] = Int64GetDatum(take->epoch);
	ptm_plan_run(&plan_take, args, NULL);
	if (SPI_processed != 1)
		elog(ERROR, "locked lease row of ptm.partition_leases not updated");
}

/* Take the locked lease (free, released, forced or expired) with a new epoch. */
static void
take_locked(AcquireCall *call, const PtmLeaseRow *row, int64 now_ms, TimestampTz now)
{
	PtmLeaseResult *out = call->out;
	TakeCall	take;
	Oid			seq;
	const char *previous;

	lock_limits(call);
	if (call->limits)
	{
		if (limits_refuse(call, row))
			return;
		/* the limits' reads took time: read the clock again */
		now_ms = ptm_now_ms();
		now = GetCurrentTimestamp();
	}

	/* one epoch per take, as nextval() in the UPDATE took it */
	seq = ptm_epochs_lift_to_era();
	take.agent = call->agent;
	take.epoch = nextval_internal(seq, true);
	take.expires_ms = now_ms + call->ttl_ms;
	take.now = now;
	write_take(call, &take);
	ptm_epochs_after_raise(seq);	/* durable before the caller sees it */
	out->result = "acquired";
	out->epoch = take.epoch;
	out->expires_ms = take.expires_ms;
	ptm_count(PTM_LEASE_ACQUIRE_SUCCESS);

	/*
	 * The lease ended at lease_expires_at: its expiry (swept or not), or the
	 * moment it was released or forced.  A lease that never had an owner has
	 * no recovery to measure.
	 */
	previous = row->agent_id ? row->agent_id : row->previous_agent_id;
	ptm_lease_taken(call->topic, call->partition_id, out->agent_id, previous, out->epoch,
					out->expires_ms, strcmp(row->state, "free") == 0 ? -1 : row->expires_ms,
					now_ms);
}

/*
 * The row exists: lock it, read the clock after the lock, then hold or take.
 * False when the row was deleted meanwhile (read it again).
 */
static bool
acquire_existing(AcquireCall *call, PtmLeaseRow *row)
{
	int64		now_ms;
	TimestampTz now;

	switch (ptm_lease_lock(call->topic, call->partition_id, ptm_lease_lock_wait_ms(), row))
	{
		case PTM_ROW_MISSING:
			return false;
		case PTM_ROW_BUSY:
			/* a live owner is a conflict; an expired one still in its transaction, busy */
			if (held_by_other(row, call->agent, ptm_now_ms()))
				acquire_conflict(call->out, row, call->topic);
			else
				acquire_busy(call->out, row, call->topic);
			return true;
		default:
			break;
	}
	now_ms = ptm_now_ms();
	now = GetCurrentTimestamp();
	if (held_by_other(row, call->agent, now_ms))
		acquire_conflict(call->out, row, call->topic);
	else if (held_live(row, now_ms))
		hold_locked(call, row->epoch, now_ms, now);
	else
		take_locked(call, row, now_ms, now);
	return true;
}

/*
 * A contended acquire is answered by one unlocked read.  Otherwise the row is
 * locked, the clock read after the lock, and the decision (take or hold)
 * taken in C: a wait behind another transaction can never let a stale clock
 * decide, and "acquired" is reported exactly once per epoch.
 *
 * Only a take asks the limits (lease_limits.c), and only when some limit is
 * on.  Their advisory locks come before the row lock (see lease_limits.c),
 * so they are taken when the unlocked read foresees a take; in the rare case
 * where the lease expires between the two reads they come after it, which
 * can only deadlock (and be resolved by the deadlock detector) against
 * another call of the same agent on the same lease.
 */
static void
acquire_one(AcquireCall *call, const PtmLeaseRow *first_read)
{
	int			attempt;

	call->out->topic = call->topic;
	call->out->partition_id = call->partition_id;
	call->out->agent_id = text_to_cstring(call->agent);
	call->out->has_lease = true;

	/* More than one round only when the row is inserted or deleted meanwhile. */
	for (attempt = 0; attempt < 5; attempt++)
	{
		PtmLeaseRow row = attempt == 0 ? *first_read :
			ptm_lease_read(call->topic, call->partition_id, PTM_LEASE_READ);
		int64		now_ms = ptm_now_ms();

		if (held_by_other(&row, call->agent, now_ms))
		{
			acquire_conflict(call->out, &row, call->topic);
			return;
		}

		/* a take is coming unless we hold it live: limits first */
		if (!held_live(&row, now_ms))
			lock_limits(call);

		if (!row.found ? acquire_new(call, &row) : acquire_existing(call, &row))
			return;
	}

	/* The row keeps appearing and disappearing: report whoever holds it now. */
	{
		PtmLeaseRow row = ptm_lease_read(call->topic, call->partition_id, PTM_LEASE_READ);

		acquire_conflict(call->out, &row, call->topic);
	}
}

PG_FUNCTION_INFO_V1(ptm_acquire_partition_lease_0_2);
Datum
ptm_acquire_partition_lease_0_2(PG_FUNCTION_ARGS)
{
	AcquireCall call = {0};
	MemoryContext callerctx = CurrentMemoryContext;
	PtmLeaseResult out = {0};
	PtmLeaseRow first_read;
	int			pinned;
	Datum		result;

	call.out = &out;
	call.topic = ptm_get_name(fcinfo, 0, "topic");
	call.partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	call.agent = ptm_get_name(fcinfo, 2, "agent_id");
	call.ttl_ms = ptm_get_ttl_ms(fcinfo, 3, "ttl");
	ptm_check_agent(call.agent, "agent_id");

	/*
	 * Most contended acquires end here: the row, read without SQL, shows
	 * another agent's live lease.
	 */
	first_read = ptm_lease_read_direct(call.topic, call.partition_id);
	if (held_by_other(&first_read, call.agent, ptm_now_ms()))
	{
		out.topic = call.topic;
		out.partition_id = call.partition_id;
		acquire_conflict(&out, &first_read, call.topic);
		PG_RETURN_DATUM(ptm_lease_result_datum(fcinfo, callerctx, &out));
	}

	pinned = ptm_spi_connect(true);
	acquire_one(&call, &first_read);
	result = ptm_lease_result_datum(fcinfo, callerctx, &out);
	ptm_spi_finish(pinned);

	PG_RETURN_DATUM(result);
}

/* ---------------------------------------------------------------------
 * renew_lease and release_lease: an UPDATE of the caller's own live lease
 * ---------------------------------------------------------------------
 */
/* One renew_lease or release_lease call, as its judge sees it. */
typedef struct OwnCall
{
	text	   *agent;
	int64		epoch;
	int64		ttl_ms;			/* renew; a release ends the lease now (0) */
	int64		now_ms;			/* the clock when the row was judged */
	int64		expires_ms;		/* on success, the expiry written */
	TimestampTz now;
	PtmLeaseRow seen;			/* the row that refused, for the reason */
} OwnCall;

/* The statement of a call, through SPI on the locked row: whether it applied. */
typedef bool (*OwnCallPlan) (text *topic, int32 partition_id, OwnCall *call);

/* Read the clock for a judgement of the row: after any wait for its lock. */
static void
own_call_clock(OwnCall *call)
{
	call->now = GetCurrentTimestamp();
	call->now_ms = ptm_now_ms();
	call->expires_ms = call->now_ms + call->ttl_ms;
}

/*
 * The WHERE clause of plan_renew and plan_release, on the row handed to a
 * judge, with the clock read now: a live lease the agent holds at this
 * epoch.  A refusal keeps the row in call->seen, for the reason.
 */
static bool
judge_own_lease(PtmKeyedTable *t, TupleTableSlot *slot, OwnCall *call, int64 *expires)
{
	bool		free;
	bool		null;
	Datum		agent = ptm_row_column(t, slot, LEASE_COL_AGENT, &free);
	int64		epoch = DatumGetInt64(ptm_row_column(t, slot, LEASE_COL_EPOCH, &null));

	*expires = DatumGetInt64(ptm_row_column(t, slot, LEASE_COL_EXPIRES, &null));
	own_call_clock(call);
	if (free || epoch != call->epoch || *expires <= call->now_ms ||
		!ptm_row_text_eq(DatumGetTextPP(agent), call->agent))
	{
		ptm_lease_row_from_slot(t, slot, NULL, NULL, &call->seen);
		return false;
	}
	return true;
}

/* plan_renew's SET: extend the lease, never moving the expiry earlier. */
static bool
judge_renew(PtmKeyedTable *t, TupleTableSlot *slot, Datum *values, bool *isnull, void *arg)
{
	OwnCall    *call = (OwnCall *) arg;
	int64		expires;

	if (!judge_own_lease(t, slot, call, &expires))
		return false;
	call->expires_ms = Max(expires, call->expires_ms);
	ptm_row_set(t, values, isnull, LEASE_COL_EXPIRES, Int64GetDatum(call->expires_ms), false);
	ptm_row_set(t, values, isnull, LEASE_COL_RENEWED_AT, TimestampTzGetDatum(call->now), false);
	return true;
}

/*
 * plan_release's SET: the lease ends now, free, with the owner and epoch it
 * had kept as the previous ones (agent_id leaves the index predicates, so
 * this is not a HOT update).
 */
static bool
judge_release(PtmKeyedTable *t, TupleTableSlot *slot, Datum *values, bool *isnull, void *arg)
{
	OwnCall    *call = (OwnCall *) arg;
	int64		expires;
	bool		null;

	if (!judge_own_lease(t, slot, call, &expires))
		return false;
	ptm_row_set(t, values, isnull, LEASE_COL_PREVIOUS_AGENT,
				ptm_row_column(t, slot, LEASE_COL_AGENT, &null), false);
	ptm_row_set(t, values, isnull, LEASE_COL_PREVIOUS_EPOCH,
				ptm_row_column(t, slot, LEASE_COL_EPOCH, &null), false);
	ptm_row_set(t, values, isnull, LEASE_COL_AGENT, (Datum) 0, true);
	ptm_row_set(t, values, isnull, LEASE_COL_STATE, CStringGetTextDatum("released"), false);
	ptm_row_set(t, values, isnull, LEASE_COL_EXPIRES, Int64GetDatum(call->now_ms), false);
	ptm_row_set(t, values, isnull, LEASE_COL_SWEEP_AT, Int64GetDatum(call->now_ms), false);
	ptm_row_set(t, values, isnull, LEASE_COL_ENDED_AT, TimestampTzGetDatum(call->now), false);
	return true;
}

/* plan_renew on the locked row; the expiry it kept into call->expires_ms. */
static bool
renew_plan(text *topic, int32 partition_id, OwnCall *call)
{
	Datum		args[7] = {PointerGetDatum(topic), Int32GetDatum(partition_id),
		PointerGetDatum(call->agent), Int64GetDatum(call->epoch),
		Int64GetDatum(call->now_ms), Int64GetDatum(call->expires_ms),
	TimestampTzGetDatum(call->now)};
	bool		isnull;

	ptm_plan_run(&plan_renew, args, NULL);
	if (SPI_processed == 0)
		return false;
	call->expires_ms = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
	return true;
}

/* plan_release on the locked row. */
static bool
release_plan(text *topic, int32 partition_id, OwnCall *call)
{
	Datum		args[6] = {PointerGetDatum(topic), Int32GetDatum(partition_id),
		PointerGetDatum(call->agent), Int64GetDatum(call->epoch),
	Int64GetDatum(call->now_ms), TimestampTzGetDatum(call->now)};

	ptm_plan_run(&plan_release, args, NULL);
	return SPI_processed > 0;
}

/* A row read in SPI's memory, copied into the current context. */
static PtmLeaseRow
lease_row_copy(const PtmLeaseRow *row)
{
	PtmLeaseRow copy = *row;

	copy.agent_id = row->agent_id ? pstrdup(row->agent_id) : NULL;
	copy.state = row->state ? pstrdup(row->state) : NULL;
	copy.previous_agent_id = row->previous_agent_id ? pstrdup(row->previous_agent_id) : NULL;
	return copy;
}

/*
 * A renew or release through SQL, for a lease table that needs it (see
 * row_access.c), taking the steps ptm_row_update() takes: what an UPDATE
 * refuses before reading a row is refused first; then the row as a fresh
 * snapshot sees it is judged, and only a row the call may change is locked
 * (within the bound) and changed by its plan, after the clock is read again.
 * A refused call leaves no lock behind, as its UPDATE would not.  The row
 * seen outlives the SPI connection.
 */
static PtmRowOutcome
own_lease_by_sql(text *topic, int32 partition_id, int wait_ms, OwnCall *call, OwnCallPlan plan)
{
	MemoryContext callerctx = CurrentMemoryContext;
	PtmRowOutcome outcome = PTM_ROW_KEPT;
	int			pinned;

	ptm_row_check_update(&ptm_lease_table);
	pinned = ptm_spi_connect(true);
	call->seen = ptm_lease_read(topic, partition_id, PTM_LEASE_READ);
	if (!call->seen.found)
		outcome = PTM_ROW_MISSING;
	else if (lease_renewable(&call->seen, call->agent, call->epoch, call->now_ms))
	{
		outcome = ptm_lease_lock(topic, partition_id, wait_ms, &call->seen);
		own_call_clock(call);
	}
	if (outcome == PTM_ROW_KEPT &&
		lease_renewable(&call->seen, call->agent, call->epoch, call->now_ms) &&
		plan(topic, partition_id, call))
		outcome = PTM_ROW_UPDATED;
	MemoryContextSwitchTo(callerctx);
	call->seen = lease_row_copy(&call->seen);
	ptm_spi_finish(pinned);
	return outcome;
}

/*
 * Update the caller's own live lease as "UPDATE ... WHERE agent_id = $ AND
 * lease_epoch = $ AND lease_expires_at > now_ms" would: without SQL unless
 * the table needs it, waiting at most wait_ms for another holder of the row.
 * PTM_ROW_UPDATED, or why not (call->seen: the row that refused).
 */
static PtmRowOutcome
update_own_lease(text *topic, int32 partition_id, int wait_ms, PtmRowJudge judge,
				 OwnCallPlan plan, OwnCall *call)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	PtmRowOutcome outcome;

	own_call_clock(call);
	/* RETRY: the row was held, and is now locked for us: judge it again */
	do
		outcome = ptm_row_update(&ptm_lease_table, keys, wait_ms, judge, call);
	while (outcome == PTM_ROW_RETRY);
	if (outcome == PTM_ROW_USE_SQL)
		outcome = own_lease_by_sql(topic, partition_id, wait_ms, call, plan);
	return outcome;
}

/*
 * Why a renew or release did not apply, into *out: from the row its judge
 * refused, or when the row was held past the bound, from the row as last
 * committed ("busy" if that shows the caller's live lease).
 */
static void
own_lease_refused(PtmLeaseResult *out, PtmRowOutcome outcome, OwnCall *call, text *topic,
				  int32 partition_id)
{
	if (outcome == PTM_ROW_BUSY)
	{
		if (!call->seen.found)
			call->seen = ptm_lease_read_direct(topic, partition_id);
		own_call_clock(call);
		out->result = busy_or_failure(&call->seen, call->agent, call->epoch, call->now_ms);
		if (strcmp(out->result, "busy") == 0)
			ptm_count_busy(topic);
	}
	else
		out->result = ptm_lease_failure(&call->seen, call->agent, call->epoch, call->now_ms);
	ptm_lease_result_from_row(out, &call->seen);
	ptm_count_if_stale(out->result, topic);
}

/* ---------------------------------------------------------------------
 * renew_lease(topic, partition_id, agent_id, lease_epoch, ttl)
 * ---------------------------------------------------------------------
 */
void
ptm_renew_one(PtmLeaseResult *out, text *topic, int32 partition_id, text *agent, int64 epoch,
			  int64 ttl_ms, int wait_ms)
{
	OwnCall		call = {0};
	PtmRowOutcome outcome;

	out->topic = topic;
	out->partition_id = partition_id;
	call.agent = agent;
	call.epoch = epoch;
	call.ttl_ms = ttl_ms;

	outcome = update_own_lease(topic, partition_id, wait_ms, judge_renew, renew_plan, &call);
	if (outcome == PTM_ROW_UPDATED)
	{
		out->result = "renewed";
		out->has_lease = true;
		out->agent_id = text_to_cstring(agent);
		out->epoch = epoch;
		out->expires_ms = call.expires_ms;
		ptm_count(PTM_LEASE_RENEW_SUCCESS);
		return;
	}
	own_lease_refused(out, outcome, &call, topic, partition_id);
	ptm_count_topic(PTM_LEASE_RENEW_FAILURE, topic);
}

/*
 * The hot path of every agent: one row found by its key and changed in
 * place (a HOT update), without SQL; see row_access.c.
 */
PG_FUNCTION_INFO_V1(ptm_renew_lease_0_2);
Datum
ptm_renew_lease_0_2(PG_FUNCTION_ARGS)
{
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	text	   *agent = ptm_get_name(fcinfo, 2, "agent_id");
	int64		epoch = ptm_get_epoch(fcinfo, 3, "lease_epoch");
	int64		ttl_ms = ptm_get_ttl_ms(fcinfo, 4, "ttl");
	PtmLeaseResult out = {0};

	ptm_check_agent(agent, "agent_id");
	ptm_renew_one(&out, topic, partition_id, agent, epoch, ttl_ms, ptm_lease_lock_wait_ms());
	PG_RETURN_DATUM(HeapTupleGetDatum(ptm_lease_result_tuple(ptm_result_tupdesc(fcinfo), &out)));
}

/* ---------------------------------------------------------------------
 * release_lease(topic, partition_id, agent_id, lease_epoch)
 * ---------------------------------------------------------------------
 */

/*
 * The other half of an agent's cycle, done as renew_lease is: one row found
 * by its key and changed without SQL (row_access.c), its WHERE clause judged
 * on the row the update locks, on a clock read after any wait for it.
 */
PG_FUNCTION_INFO_V1(ptm_release_lease_0_2);
Datum
ptm_release_lease_0_2(PG_FUNCTION_ARGS)
{
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	text	   *agent = ptm_get_name(fcinfo, 2, "agent_id");
	int64		epoch = ptm_get_epoch(fcinfo, 3, "lease_epoch");
	PtmLeaseResult out = {0};
	OwnCall		call = {0};
	PtmRowOutcome outcome;

	out.topic = topic;
	out.partition_id = partition_id;
	call.agent = agent;
	call.epoch = epoch;
	call.ttl_ms = 0;			/* the lease ends now */

	ptm_check_agent(agent, "agent_id");
	outcome = update_own_lease(topic, partition_id, ptm_lease_lock_wait_ms(), judge_release,
							   release_plan, &call);
	if (outcome == PTM_ROW_UPDATED)
	{
		out.result = "released";
		out.has_lease = true;
		out.agent_id = NULL;
		out.epoch = epoch;
		out.expires_ms = call.now_ms;
		ptm_count(PTM_LEASE_RELEASES);
		ptm_lease_released(topic, partition_id, agent, epoch, call.now_ms);
	}
	else
		own_lease_refused(&out, outcome, &call, topic, partition_id);

	PG_RETURN_DATUM(HeapTupleGetDatum(ptm_lease_result_tuple(ptm_result_tupdesc(fcinfo), &out)));
}
