/*-------------------------------------------------------------------------
 *
 * leases.c
 *	  Epoch-fenced partition leases: acquire, renew, release, force_expire,
 *	  check_fence, and their bulk forms.
 *
 * State lives in ptm.partition_leases, one row per (topic, partition_id);
 * every statement is a saved SPI plan.  Expiry is always judged against the
 * database clock at the moment of the call (clock_timestamp(), not the
 * transaction start), so neither agents' clocks nor long transactions matter.
 *
 * Locking
 *	  - A contended acquire first reads the row without a lock: when another
 *		agent holds it live, the answer is "conflict" without writing anything.
 *		Otherwise acquire locks the row FOR NO KEY UPDATE, reads the clock
 *		after the lock, decides in C (take with a new epoch, or hold) and
 *		updates it: a wait never lets a stale clock decide.
 *	  - renew, release and force_expire change the row with an UPDATE whose
 *		WHERE clause states the precondition; PostgreSQL takes the row lock
 *		and, after a concurrent change, re-checks the clause on the newest row
 *		version.  So two callers never both win.
 *	  - check_fence (and fenced writes) take FOR SHARE on the lease row and
 *		keep it until their transaction ends.  Every ownership change needs the
 *		row's FOR NO KEY UPDATE lock, which conflicts with FOR SHARE, so a
 *		takeover waits for every fenced transaction that passed before it: a
 *		fenced write can never commit after the epoch that fences it.
 *	  - No advisory or session-level locks: every function works through a
 *		transaction-mode pooler.
 *	  - No lease function waits for a lease row longer than
 *		ptm_lease.lock_wait_timeout (row_access.c's bounded waits): a client
 *		frozen inside a fenced transaction holds the row until the worker
 *		ends it (ptm_end_lease_holders, ptm_lease.holder_grace), and until
 *		then callers get "busy" (check_fence: SQLSTATE 55P03), not a wait.
 *		The clock that judges expiry is read after the row lock is granted.
 *
 * Epochs come from ptm.lease_epoch_seq, so they rise strictly for every
 * lease, even across a deleted and re-created row or a crash; epochs.c keeps
 * them rising across a failover that lost WAL (eras by timeline).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "epochs.h"
#include "holders.h"
#include "identity.h"
#include "lease_events.h"
#include "lease_limits.h"
#include "leases.h"
#include "lock_wait.h"
#include "ptm_lease.h"
#include "row_access.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/* Settings; see docs/leases.md. */
int			ptm_lock_wait_timeout_ms = 500;

void
ptm_leases_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.lock_wait_timeout",
							gettext_noop("Longest wait of a lease function for a lease row that another transaction holds."),
							gettext_noop("Past it the call returns \"busy\" (check_fence: SQLSTATE 55P03) "
										 "instead of waiting for the holder, so an agent's renewals never "
										 "starve behind a frozen client.  0 means never wait."),
							&ptm_lock_wait_timeout_ms,
							500,
							0, 3600 * 1000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* A lease row as read from ptm.partition_leases. */
typedef struct LeaseRow
{
	bool		found;
	char	   *agent_id;		/* NULL when free */
	int64		epoch;
	int64		expires_ms;
	char	   *state;
	char	   *previous_agent_id;
} LeaseRow;

/* cast, so that a column a DBA gave another type is read right */
#define LEASE_COLUMNS "agent_id::pg_catalog.text, lease_epoch::pg_catalog.int8," \
	" lease_expires_at::pg_catalog.int8, state::pg_catalog.text, previous_agent_id::pg_catalog.text"

static PtmPlan plan_select = {
	.sql = "SELECT " LEASE_COLUMNS " FROM ptm.partition_leases"
	" WHERE topic = $1 AND partition_id = $2",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
	.expect = SPI_OK_SELECT,
	.max_rows = 1
};

/* the row locked for a change (a table with row security: see lock_lease) */
static PtmPlan plan_select_lock = {
	.sql = "SELECT " LEASE_COLUMNS " FROM ptm.partition_leases"
	" WHERE topic = $1 AND partition_id = $2 FOR NO KEY UPDATE",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
	.expect = SPI_OK_SELECT,
	.max_rows = 1
};

static PtmPlan plan_select_share = {
	.sql = "SELECT " LEASE_COLUMNS " FROM ptm.partition_leases"
	" WHERE topic = $1 AND partition_id = $2 FOR SHARE",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
	.expect = SPI_OK_SELECT,
	.max_rows = 1
};

/*
 * Every statement that sets a new expiry from scratch also sets sweep_at, the
 * sweeper's lower bound of it (docs/workers.md).
 */

/* $1 topic, $2 partition, $3 agent, $4 expires_ms, $5 now */
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
 * Take the locked lease (free, released, forced or expired): new epoch.
 * $1 topic, $2 partition, $3 agent, $4 expires_ms, $5 now
 */
static PtmPlan plan_take = {
	.sql = "UPDATE ptm.partition_leases SET"
	" lease_epoch = pg_catalog.nextval('ptm.lease_epoch_seq'),"
	" previous_agent_id = coalesce(agent_id, previous_agent_id),"
	" previous_epoch = CASE WHEN agent_id IS NOT NULL THEN lease_epoch ELSE previous_epoch END,"
	" agent_id = $3, state = 'active', lease_expires_at = $4, sweep_at = $4,"
	" acquired_at = $5, renewed_at = $5, ended_at = NULL"
	" WHERE topic = $1 AND partition_id = $2"
	" RETURNING lease_epoch::pg_catalog.int8",
	.nargs = 5, .argtypes = (const Oid[]) {TEXTOID, INT4OID, TEXTOID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
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

/* $1 topic, $2 partition, $3 now_ms, $4 now */
static PtmPlan plan_force = {
	.sql = "UPDATE ptm.partition_leases SET agent_id = NULL, state = 'forced',"
	" previous_agent_id = agent_id, previous_epoch = lease_epoch,"
	" lease_epoch = pg_catalog.nextval('ptm.lease_epoch_seq'),"
	" lease_expires_at = $3, sweep_at = $3, ended_at = $4"
	" WHERE topic = $1 AND partition_id = $2 AND agent_id IS NOT NULL"
	" RETURNING previous_agent_id, previous_epoch, lease_epoch",
	.nargs = 4, .argtypes = (const Oid[]) {TEXTOID, INT4OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/*
 * $1 topic, $2 agent, $3 now_ms, $4 max, $5 expires_ms, $6 now.  Returns the
 * lease's end before the take (its expiry, release or force; NULL when it
 * never had an owner) for recovery_latency_ms, and its last owner.
 */
static PtmPlan plan_bulk_acquire = {
	.sql = "WITH candidates AS ("
	"  SELECT topic, partition_id, state, lease_expires_at FROM ptm.partition_leases"
	"   WHERE topic = $1 AND (agent_id IS NULL OR lease_expires_at <= $3)"
	"   ORDER BY partition_id LIMIT $4 FOR UPDATE SKIP LOCKED)"
	" UPDATE ptm.partition_leases l SET"
	" previous_agent_id = coalesce(l.agent_id, l.previous_agent_id),"
	" previous_epoch = CASE WHEN l.agent_id IS NOT NULL THEN l.lease_epoch ELSE l.previous_epoch END,"
	" agent_id = $2, state = 'active',"
	" lease_epoch = pg_catalog.nextval('ptm.lease_epoch_seq'),"
	" lease_expires_at = $5, sweep_at = $5, acquired_at = $6, renewed_at = $6, ended_at = NULL"
	" FROM candidates c WHERE l.topic = c.topic AND l.partition_id = c.partition_id"
	" RETURNING l.partition_id, l.lease_epoch,"
	"  CASE WHEN c.state <> 'free' THEN c.lease_expires_at END, l.previous_agent_id",
	.nargs = 6, .argtypes = (const Oid[]) {TEXTOID, TEXTOID, INT8OID, INT4OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/* $1 topic, $2 now_ms: is a lease still free or expired (bulk acquire cut by a limit)? */
static PtmPlan plan_any_free = {
	.sql = "SELECT 1 FROM ptm.partition_leases"
	" WHERE topic = $1 AND (agent_id IS NULL OR lease_expires_at <= $2) LIMIT 1",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT8OID},
	.expect = SPI_OK_SELECT
};

/* $1 agent, $2 topics, $3 partitions, $4 epochs, $5 now_ms, $6 expires_ms, $7 now */
static PtmPlan plan_bulk_renew = {
	.sql = "UPDATE ptm.partition_leases l"
	" SET lease_expires_at = greatest(l.lease_expires_at, $6), renewed_at = $7"
	/* multi-argument unnest() exists only unqualified: spell out ROWS FROM */
	" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
	"   WITH ORDINALITY AS r(topic, partition_id, lease_epoch, ord)"
	" WHERE l.topic = r.topic AND l.partition_id = r.partition_id"
	"   AND l.agent_id = $1 AND l.lease_epoch = r.lease_epoch AND l.lease_expires_at > $5"
	" RETURNING r.ord, l.lease_expires_at",
	.nargs = 7, .argtypes = (const Oid[]) {TEXTOID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/* $1 topic, $2 partitions */
static PtmPlan plan_ensure = {
	.sql = "INSERT INTO ptm.partition_leases (topic, partition_id)"
	" SELECT $1, p FROM pg_catalog.generate_series(0, $2 - 1) AS p"
	" ON CONFLICT (topic, partition_id) DO NOTHING",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
	.expect = SPI_OK_INSERT
};

static char *
text_or_null(int col, bool *isnull)
{
	Datum		d = ptm_spi_value(0, col, isnull);

	return *isnull ? NULL : TextDatumGetCString(d);
}

typedef enum LeaseRead
{
	LEASE_READ,					/* no lock */
	LEASE_READ_SHARE,			/* FOR SHARE: a fence */
	LEASE_READ_LOCK				/* FOR NO KEY UPDATE: about to change it */
} LeaseRead;

static LeaseRow
read_lease(text *topic, int32 partition_id, LeaseRead mode)
{
	Datum		args[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	LeaseRow	row = {0};
	bool		isnull;

	/*
	 * Not read-only: SPI then takes a fresh snapshot, so a row changed by a
	 * transaction we just waited for is seen as it is now.
	 */
	ptm_plan_run(mode == LEASE_READ_SHARE ? &plan_select_share :
					mode == LEASE_READ_LOCK ? &plan_select_lock : &plan_select,
					args, NULL);
	if (SPI_processed == 0)
		return row;

	row.found = true;
	row.agent_id = text_or_null(1, &isnull);
	row.epoch = DatumGetInt64(ptm_spi_value(0, 2, &isnull));
	row.expires_ms = DatumGetInt64(ptm_spi_value(0, 3, &isnull));
	row.state = text_or_null(4, &isnull);
	row.previous_agent_id = text_or_null(5, &isnull);
	return row;
}

/*
 * The lease table as the hot paths reach it without SQL (row_access.c):
 * renew_lease's update and the unlocked read that answers a contended
 * acquire.  renew leaves sweep_at behind (a lower bound of the expiry), so
 * it is not among the columns.
 */
enum
{
	LEASE_COL_AGENT,
	LEASE_COL_EPOCH,
	LEASE_COL_EXPIRES,
	LEASE_COL_STATE,
	LEASE_COL_PREVIOUS_AGENT,
	LEASE_COL_RENEWED_AT
};
static PtmKeyedTable lease_table = {
	.relname = "partition_leases",
	.pkey_name = "partition_leases_pkey",
	.nkeys = 2,
	.key_types = {TEXTOID, INT4OID},
	.key_eqfuncs = {F_TEXTEQ, F_INT4EQ},
	.ncolumns = 6,
	.columns = {"agent_id", "lease_epoch", "lease_expires_at", "state", "previous_agent_id",
	"renewed_at"},
	.column_types = {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID}
};

static char *
row_text_or_null(PtmKeyedTable *t, TupleTableSlot *slot, int col)
{
	bool		isnull;
	Datum		d = ptm_row_column(t, slot, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Fill a LeaseRow from a row of the lease table (a judge's view of it). */
static bool
lease_row_from_slot(PtmKeyedTable *t, TupleTableSlot *slot, Datum *values, bool *isnull,
					void *arg)
{
	LeaseRow   *row = (LeaseRow *) arg;
	bool		null;

	row->found = true;
	row->agent_id = row_text_or_null(t, slot, LEASE_COL_AGENT);
	row->epoch = DatumGetInt64(ptm_row_column(t, slot, LEASE_COL_EPOCH, &null));
	row->expires_ms = DatumGetInt64(ptm_row_column(t, slot, LEASE_COL_EXPIRES, &null));
	row->state = row_text_or_null(t, slot, LEASE_COL_STATE);
	row->previous_agent_id = row_text_or_null(t, slot, LEASE_COL_PREVIOUS_AGENT);
	return false;
}

/*
 * read_lease(LEASE_READ) without SQL and without an SPI connection unless the
 * table needs SQL (row_access.c), with a snapshot of its own, as SPI takes.
 */
static LeaseRow
read_lease_direct(text *topic, int32 partition_id)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	LeaseRow	row = {0};

	if (ptm_row_read(&lease_table, keys, lease_row_from_slot, &row) == PTM_ROW_USE_SQL)
	{
		int			pinned = ptm_spi_connect(true);

		row = read_lease(topic, partition_id, LEASE_READ);
		ptm_spi_finish(pinned);
	}
	return row;
}

/* read_lease() with a lock mode, for ptm_with_lock_timeout() */
typedef struct LeaseLockCall
{
	text	   *topic;
	int32		partition_id;
	LeaseRead	mode;
	LeaseRow   *row;
} LeaseLockCall;

static void
read_lease_locked(void *arg)
{
	LeaseLockCall *call = (LeaseLockCall *) arg;

	*call->row = read_lease(call->topic, call->partition_id, call->mode);
}

/*
 * lock_lease() through SQL (SELECT ... FOR NO KEY UPDATE or FOR SHARE, by
 * mode), for a table that needs it (row_access.c), with the same bound on
 * the wait.  Needs an SPI connection.
 */
static PtmRowOutcome
lock_lease_by_sql(text *topic, int32 partition_id, int wait_ms, LeaseRead mode, LeaseRow *row)
{
	LeaseLockCall call = {topic, partition_id, mode, row};

	if (!ptm_with_lock_timeout(wait_ms, read_lease_locked, &call))
	{
		*row = read_lease(topic, partition_id, LEASE_READ);
		return row->found ? PTM_ROW_BUSY : PTM_ROW_MISSING;
	}
	return row->found ? PTM_ROW_KEPT : PTM_ROW_MISSING;
}

/*
 * Lock the lease row FOR NO KEY UPDATE for a change, waiting at most wait_ms
 * (ptm_lease.lock_wait_timeout) for another transaction that holds it.
 * PTM_ROW_KEPT: locked, *row is the newest version; PTM_ROW_BUSY: still held,
 * *row is the lease as last committed; PTM_ROW_MISSING.  A table that needs
 * SQL takes the SQL way, which needs an SPI connection.
 */
static PtmRowOutcome
lock_lease(text *topic, int32 partition_id, int wait_ms, LeaseRow *row)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	PtmRowOutcome outcome;

	memset(row, 0, sizeof(LeaseRow));
	outcome = ptm_row_lock(&lease_table, keys, LockTupleNoKeyExclusive, wait_ms,
						   lease_row_from_slot, row);
	if (outcome != PTM_ROW_USE_SQL)
		return outcome;
	return lock_lease_by_sql(topic, partition_id, wait_ms, LEASE_READ_LOCK, row);
}

/* Byte equality, which is text equality under the table's deterministic collation. */
static bool
same_text(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/* Whether the agent read from a row (a C string, NULL when free) is b. */
static bool
same_agent(const char *a, text *b)
{
	return a != NULL && strlen(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(a, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)) == 0;
}

/*
 * Why a renew or release at (agent, epoch) did not apply, from the row as it
 * is now.  Only the failure path reads the row again.
 */
static const char *
classify_failure(const LeaseRow *row, text *agent, int64 epoch, int64 now_ms)
{
	if (!row->found)
		return "not_owner";
	if (epoch < row->epoch)
		return "stale_epoch";
	if (epoch > row->epoch)
		return "not_owner";
	if (row->agent_id != NULL)
		return same_agent(row->agent_id, agent) && row->expires_ms <= now_ms ?
			"expired" : "not_owner";
	/* freed at this epoch: by the sweeper (expired) or by a release */
	if (strcmp(row->state, "expired") == 0 && same_agent(row->previous_agent_id, agent))
		return "expired";
	return "not_owner";
}

static void
outcome_from_row(PtmLeaseResult *out, const LeaseRow *row)
{
	out->has_lease = row->found;
	out->agent_id = row->agent_id;
	out->epoch = row->epoch;
	out->expires_ms = row->expires_ms;
}

/* ---------------------------------------------------------------------
 * acquire_partition_lease(topic, partition_id, agent_id, ttl)
 * ---------------------------------------------------------------------
 */
/* Another agent holds the lease, and it is live. */
static bool
held_by_other(const LeaseRow *row, text *agent, int64 now_ms)
{
	return row->agent_id != NULL && !same_agent(row->agent_id, agent) &&
		row->expires_ms > now_ms;
}

static void
acquire_conflict(PtmLeaseResult *out, const LeaseRow *row, text *topic)
{
	out->result = "conflict";
	outcome_from_row(out, row);
	ptm_count_topic(PTM_LEASE_ACQUIRE_CONFLICT, topic);
}

/*
 * The lease is past its expiry but its row is still held (the old owner's
 * fenced transaction, say) after ptm_lease.lock_wait_timeout: nothing taken.
 */
static void
acquire_busy(PtmLeaseResult *out, const LeaseRow *row, text *topic)
{
	out->result = "busy";
	outcome_from_row(out, row);
	ptm_count_busy(topic);
}

/* A limit refused the take: the lease stays as it is. */
static void
acquire_limited(PtmLeaseResult *out, const LeaseRow *row, text *topic, PtmLimitReason why)
{
	out->result = "limited";
	outcome_from_row(out, row);
	ptm_limits_count_refusal(why, topic);
}

/* plan_insert with the arguments in arg, for ptm_with_lock_timeout(). */
static void
insert_lease(void *arg)
{
	ptm_plan_run(&plan_insert, (Datum *) arg, NULL);
}

/* Whether the limits let the agent take one more lease of the topic. */
static bool
limits_allow(text *topic, text *agent, PtmLimitReason *why)
{
	return ptm_limits_allowance(topic, agent, 1, why) > 0;
}

/*
 * A contended acquire is answered by one unlocked read.  Otherwise the row is
 * locked, the clock read after the lock, and the decision (take or hold)
 * taken in C: a wait behind another transaction can never let a stale clock
 * decide, and "acquired" is reported exactly once per epoch.
 *
 * Only a take asks the limits (lease_limits.c), and only when some limit is on.
 * Their advisory locks come before the row lock (see lease_limits.c), so they are
 * taken when the unlocked read foresees a take; in the rare case where the
 * lease expires between the two reads they come after it, which can only
 * deadlock (and be resolved by the deadlock detector) against another call of
 * the same agent on the same lease.
 */
static void
acquire_one(PtmLeaseResult *out, text *topic, int32 partition_id, text *agent, int64 ttl_ms,
			const LeaseRow *first_read)
{
	int			attempt;
	bool		limits = false;
	bool		locked = false;
	PtmLimitReason why;

	out->topic = topic;
	out->partition_id = partition_id;
	out->agent_id = text_to_cstring(agent);
	out->has_lease = true;

	/* More than one round only when the row is inserted or deleted meanwhile. */
	for (attempt = 0; attempt < 5; attempt++)
	{
		LeaseRow	row = attempt == 0 ? *first_read : read_lease(topic, partition_id, LEASE_READ);
		int64		now_ms = ptm_now_ms();
		TimestampTz now;
		bool		isnull;

		if (held_by_other(&row, agent, now_ms))
		{
			acquire_conflict(out, &row, topic);
			return;
		}

		/* a take is coming unless we hold it live: limits first */
		if (!locked && !(row.found && row.agent_id != NULL && row.expires_ms > now_ms))
		{
			limits = ptm_limits_active();
			if (limits)
				ptm_limits_lock(topic, agent);
			locked = true;
		}

		if (!row.found)
		{
			Datum		args[5];
			Oid			seq;

			if (limits && !limits_allow(topic, agent, &why))
			{
				acquire_limited(out, &row, topic, why);
				return;
			}
			seq = ptm_epochs_lift_to_era();
			now_ms = ptm_now_ms();
			args[0] = PointerGetDatum(topic);
			args[1] = Int32GetDatum(partition_id);
			args[2] = PointerGetDatum(agent);
			args[3] = Int64GetDatum(now_ms + ttl_ms);
			args[4] = TimestampTzGetDatum(GetCurrentTimestamp());

			/*
			 * ON CONFLICT waits for another transaction inserting the same
			 * lease, which may be a frozen one the worker cannot see: bounded
			 * like every other wait for a lease row.
			 */
			if (!ptm_with_lock_timeout(ptm_lock_wait_timeout_ms, insert_lease, args))
			{
				acquire_busy(out, &row, topic);
				return;
			}
			ptm_epochs_after_raise(seq);	/* durable before the caller sees it */
			if (SPI_processed == 0)
				continue;		/* someone inserted it first: read again */
			out->result = "acquired";
			out->epoch = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
			out->expires_ms = now_ms + ttl_ms;
			ptm_count(PTM_LEASE_ACQUIRE_SUCCESS);
			ptm_lease_taken(topic, partition_id, out->agent_id, NULL, out->epoch, out->expires_ms, -1, now_ms);
			return;
		}

		switch (lock_lease(topic, partition_id, ptm_lock_wait_timeout_ms, &row))
		{
			case PTM_ROW_MISSING:
				continue;
			case PTM_ROW_BUSY:
				/* a live owner is a conflict; an expired one still in its transaction, busy */
				if (held_by_other(&row, agent, ptm_now_ms()))
					acquire_conflict(out, &row, topic);
				else
					acquire_busy(out, &row, topic);
				return;
			default:
				break;
		}
		now_ms = ptm_now_ms();
		now = GetCurrentTimestamp();
		if (held_by_other(&row, agent, now_ms))
		{
			acquire_conflict(out, &row, topic);
			return;
		}

		if (row.agent_id != NULL && row.expires_ms > now_ms)
		{
			Datum		args[4] = {PointerGetDatum(topic), Int32GetDatum(partition_id),
			Int64GetDatum(now_ms + ttl_ms), TimestampTzGetDatum(now)};

			ptm_plan_run(&plan_hold, args, NULL);
			out->result = "held";
			out->epoch = row.epoch;
			out->expires_ms = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
			ptm_count(PTM_LEASE_ACQUIRE_HELD);
		}
		else
		{
			Datum		args[5];
			Oid			seq;
			const char *previous;

			if (!locked)
			{
				limits = ptm_limits_active();
				if (limits)
					ptm_limits_lock(topic, agent);
				locked = true;
			}
			if (limits)
			{
				if (!limits_allow(topic, agent, &why))
				{
					acquire_limited(out, &row, topic, why);
					return;
				}
				/* the limits' reads took time: read the clock again */
				now_ms = ptm_now_ms();
				now = GetCurrentTimestamp();
			}

			seq = ptm_epochs_lift_to_era();
			args[0] = PointerGetDatum(topic);
			args[1] = Int32GetDatum(partition_id);
			args[2] = PointerGetDatum(agent);
			args[3] = Int64GetDatum(now_ms + ttl_ms);
			args[4] = TimestampTzGetDatum(now);
			ptm_plan_run(&plan_take, args, NULL);
			ptm_epochs_after_raise(seq);	/* durable before the caller sees it */
			out->result = "acquired";
			out->epoch = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
			out->expires_ms = now_ms + ttl_ms;
			ptm_count(PTM_LEASE_ACQUIRE_SUCCESS);

			/*
			 * The lease ended at lease_expires_at: its expiry (swept or not),
			 * or the moment it was released or forced.  A lease that never
			 * had an owner has no recovery to measure.
			 */
			previous = row.agent_id ? row.agent_id : row.previous_agent_id;
			ptm_lease_taken(topic, partition_id, out->agent_id, previous, out->epoch, out->expires_ms,
				  strcmp(row.state, "free") == 0 ? -1 : row.expires_ms, now_ms);
		}
		return;
	}

	/* The row keeps appearing and disappearing: report whoever holds it now. */
	{
		LeaseRow	row = read_lease(topic, partition_id, LEASE_READ);

		acquire_conflict(out, &row, topic);
	}
}

PG_FUNCTION_INFO_V1(ptm_acquire_partition_lease_0_2);
Datum
ptm_acquire_partition_lease_0_2(PG_FUNCTION_ARGS)
{
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	text	   *agent = ptm_get_name(fcinfo, 2, "agent_id");
	int64		ttl_ms = ptm_get_ttl_ms(fcinfo, 3, "ttl");
	MemoryContext callerctx = CurrentMemoryContext;
	PtmLeaseResult out = {0};
	LeaseRow	first_read;
	int			pinned;
	Datum		result;

	ptm_check_agent(agent, "agent_id");

	/*
	 * Most contended acquires end here: the row, read without SQL, shows
	 * another agent's live lease.
	 */
	first_read = read_lease_direct(topic, partition_id);
	if (held_by_other(&first_read, agent, ptm_now_ms()))
	{
		out.topic = topic;
		out.partition_id = partition_id;
		acquire_conflict(&out, &first_read, topic);
		PG_RETURN_DATUM(ptm_lease_result_datum(fcinfo, callerctx, &out));
	}

	pinned = ptm_spi_connect(true);
	acquire_one(&out, topic, partition_id, agent, ttl_ms, &first_read);
	result = ptm_lease_result_datum(fcinfo, callerctx, &out);
	ptm_spi_finish(pinned);

	PG_RETURN_DATUM(result);
}

/* ---------------------------------------------------------------------
 * renew_lease(topic, partition_id, agent_id, lease_epoch, ttl)
 * ---------------------------------------------------------------------
 */
/* One renew_lease call, as its judge sees it. */
typedef struct RenewCall
{
	text	   *agent;
	int64		epoch;
	int64		ttl_ms;
	int64		now_ms;			/* the clock when the row was judged */
	int64		expires_ms;		/* on success, the expiry granted */
	TimestampTz now;
	LeaseRow	seen;			/* the row that refused, for the reason */
} RenewCall;

/* plan_renew's WHERE clause, on a row read into a LeaseRow. */
static bool
lease_renewable(const LeaseRow *row, text *agent, int64 epoch, int64 now_ms)
{
	return row->found && row->epoch == epoch && same_agent(row->agent_id, agent) &&
		row->expires_ms > now_ms;
}

/* Read the clock for a judgement of the row: after any wait for its lock. */
static void
renew_clock(RenewCall *call)
{
	call->now = GetCurrentTimestamp();
	call->now_ms = ptm_now_ms();
	call->expires_ms = call->now_ms + call->ttl_ms;
}

/*
 * The WHERE clause of plan_renew, and its SET: extend a live lease the agent
 * holds at this epoch, never moving the expiry earlier.
 */
static bool
judge_renew(PtmKeyedTable *t, TupleTableSlot *slot, Datum *values, bool *isnull, void *arg)
{
	RenewCall  *call = (RenewCall *) arg;
	bool		free;
	bool		null;
	Datum		agent = ptm_row_column(t, slot, LEASE_COL_AGENT, &free);
	int64		epoch = DatumGetInt64(ptm_row_column(t, slot, LEASE_COL_EPOCH, &null));
	int64		expires = DatumGetInt64(ptm_row_column(t, slot, LEASE_COL_EXPIRES, &null));

	renew_clock(call);
	if (free || epoch != call->epoch || expires <= call->now_ms ||
		!same_text(DatumGetTextPP(agent), call->agent))
	{
		lease_row_from_slot(t, slot, NULL, NULL, &call->seen);
		return false;
	}
	call->expires_ms = Max(expires, call->expires_ms);
	ptm_row_set(t, values, isnull, LEASE_COL_EXPIRES, Int64GetDatum(call->expires_ms), false);
	ptm_row_set(t, values, isnull, LEASE_COL_RENEWED_AT, TimestampTzGetDatum(call->now), false);
	return true;
}

/*
 * plan_renew, for a lease table that needs SQL (see row_access.c), taking
 * the steps ptm_row_update() takes: the row as a fresh snapshot sees it is
 * judged first, and only a row the call may renew is locked (within the
 * bound) and updated, after the clock is read again.  A refused renewal
 * leaves no lock behind, as its UPDATE would not.
 */
static PtmRowOutcome
renew_by_sql(text *topic, int32 partition_id, int wait_ms, RenewCall *call)
{
	PtmRowOutcome outcome = PTM_ROW_KEPT;
	int			pinned = ptm_spi_connect(true);

	call->seen = read_lease(topic, partition_id, LEASE_READ);
	if (!call->seen.found)
		outcome = PTM_ROW_MISSING;
	else if (lease_renewable(&call->seen, call->agent, call->epoch, call->now_ms))
	{
		outcome = lock_lease(topic, partition_id, wait_ms, &call->seen);
		renew_clock(call);
	}
	if (outcome == PTM_ROW_KEPT && lease_renewable(&call->seen, call->agent, call->epoch,
												   call->now_ms))
	{
		Datum		args[7] = {PointerGetDatum(topic), Int32GetDatum(partition_id),
			PointerGetDatum(call->agent), Int64GetDatum(call->epoch),
			Int64GetDatum(call->now_ms), Int64GetDatum(call->expires_ms),
		TimestampTzGetDatum(call->now)};

		ptm_plan_run(&plan_renew, args, NULL);
		if (SPI_processed > 0)
		{
			bool		isnull;

			call->expires_ms = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
			outcome = PTM_ROW_UPDATED;
		}
	}
	ptm_spi_finish(pinned);
	return outcome;
}

/*
 * Why a renew or release that found the row held past the bound did not
 * apply: the row as last committed may already say (stale_epoch, not_owner,
 * expired); if it shows the caller's live lease, "busy".
 */
static const char *
busy_or_failure(const LeaseRow *row, text *agent, int64 epoch, int64 now_ms)
{
	if (lease_renewable(row, agent, epoch, now_ms))
		return "busy";
	return classify_failure(row, agent, epoch, now_ms);
}

/*
 * Renew one lease, waiting at most wait_ms for its row: renewed,
 * stale_epoch, not_owner, expired or busy into *out, counted.
 */
static void
renew_one(PtmLeaseResult *out, text *topic, int32 partition_id, text *agent, int64 epoch,
		  int64 ttl_ms, int wait_ms)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	RenewCall	call = {0};
	PtmRowOutcome outcome;

	out->topic = topic;
	out->partition_id = partition_id;
	call.agent = agent;
	call.epoch = epoch;
	call.ttl_ms = ttl_ms;
	renew_clock(&call);

	/* RETRY: the row was held, and is now locked for us: judge it again */
	do
		outcome = ptm_row_update(&lease_table, keys, wait_ms, judge_renew, &call);
	while (outcome == PTM_ROW_RETRY);
	if (outcome == PTM_ROW_USE_SQL)
		outcome = renew_by_sql(topic, partition_id, wait_ms, &call);

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
	if (outcome == PTM_ROW_BUSY)
	{
		if (!call.seen.found)
			call.seen = read_lease_direct(topic, partition_id);
		renew_clock(&call);
		out->result = busy_or_failure(&call.seen, agent, epoch, call.now_ms);
		if (strcmp(out->result, "busy") == 0)
			ptm_count_busy(topic);
	}
	else
		out->result = classify_failure(&call.seen, agent, epoch, call.now_ms);
	outcome_from_row(out, &call.seen);
	ptm_count_topic(PTM_LEASE_RENEW_FAILURE, topic);
	ptm_count_if_stale(out->result, topic);
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
	renew_one(&out, topic, partition_id, agent, epoch, ttl_ms, ptm_lock_wait_timeout_ms);
	PG_RETURN_DATUM(HeapTupleGetDatum(ptm_lease_result_tuple(ptm_result_tupdesc(fcinfo), &out)));
}

/* ---------------------------------------------------------------------
 * release_lease(topic, partition_id, agent_id, lease_epoch)
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(ptm_release_lease_0_2);
Datum
ptm_release_lease_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	text	   *agent = ptm_get_name(fcinfo, 2, "agent_id");
	int64		epoch = ptm_get_epoch(fcinfo, 3, "lease_epoch");
	MemoryContext callerctx = CurrentMemoryContext;
	PtmLeaseResult out = {0};
	PtmRowOutcome outcome;
	LeaseRow	row;
	int64		now_ms;
	Datum		result;

	out.topic = topic;
	out.partition_id = partition_id;

	ptm_check_agent(agent, "agent_id");
	spi = ptm_spi_connect(false);
	outcome = lock_lease(topic, partition_id, ptm_lock_wait_timeout_ms, &row);
	now_ms = ptm_now_ms();		/* after the lock: a wait cannot hide an expiry */
	if (outcome == PTM_ROW_KEPT && row.epoch == epoch && same_agent(row.agent_id, agent) &&
		row.expires_ms > now_ms)
	{
		Datum		args[6] = {PointerGetDatum(topic), Int32GetDatum(partition_id),
			PointerGetDatum(agent), Int64GetDatum(epoch), Int64GetDatum(now_ms),
		TimestampTzGetDatum(GetCurrentTimestamp())};

		ptm_plan_run(&plan_release, args, NULL);
		out.result = "released";
		out.has_lease = true;
		out.agent_id = NULL;
		out.epoch = epoch;
		out.expires_ms = now_ms;
		ptm_count(PTM_LEASE_RELEASES);
		ptm_lease_released(topic, partition_id, agent, epoch, now_ms);
	}
	else
	{
		out.result = outcome == PTM_ROW_BUSY ? busy_or_failure(&row, agent, epoch, now_ms) :
			classify_failure(&row, agent, epoch, now_ms);
		if (strcmp(out.result, "busy") == 0)
			ptm_count_busy(topic);
		outcome_from_row(&out, &row);
		ptm_count_if_stale(out.result, topic);
	}
	result = ptm_lease_result_datum(fcinfo, callerctx, &out);
	ptm_spi_finish(spi);

	PG_RETURN_DATUM(result);
}

/* ---------------------------------------------------------------------
 * Ending the holders of an expired lease's row (worker, force_expire)
 * ---------------------------------------------------------------------
 */
int
ptm_end_lease_holders(text *topic, int32 partition_id, const char *agent_id, int64 epoch,
					  TimestampTz began_before, int wait_ms, const char *by,
					  const char *reason)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	int			pids[PTM_ROW_MAX_HOLDERS];
	PtmEndedHolder ended[PTM_ROW_MAX_HOLDERS];
	int			npids;
	int			n;
	int			i;

	npids = ptm_row_holders(&lease_table, keys, pids, PTM_ROW_MAX_HOLDERS);
	n = ptm_end_backends(pids, npids, began_before, wait_ms, by, ended);
	for (i = 0; i < n; i++)
	{
		PtmAudit	audit = {0};

		audit.action = "end_holder";
		audit.topic = topic;
		audit.partition_id = partition_id;
		audit.previous_agent_id = agent_id;
		audit.previous_epoch = epoch;
		audit.reason = reason ? CStringGetTextDatum(reason) : (Datum) 0;
		audit.reason_null = reason == NULL;
		audit.details = ended[i].details;
		ptm_write_audit(&audit);
		ptm_count_topic(PTM_LEASE_HOLDERS_ENDED, topic);
		ereport(LOG,
				(errmsg("ptm_lease: ended backend %d, which held the row of partition %s-%d (agent \"%s\", epoch " INT64_FORMAT ")",
						ended[i].pid, text_to_cstring(topic), partition_id,
						agent_id ? agent_id : "", epoch),
				 errdetail("%s: %s", by, reason ? reason : ""),
				 errhint("Its transaction rolled back, fenced writes included.")));
	}
	return n;
}

/* ---------------------------------------------------------------------
 * force_expire(topic, partition_id, reason, agent_id, lease_epoch, end_holder)
 * ---------------------------------------------------------------------
 */
/*
 * Whether the lease is still the one the operator means to force: held, by
 * agent (when given) at epoch (when given).  Otherwise the answer.
 */
static const char *
force_refusal(const LeaseRow *row, text *agent, bool agent_given, int64 epoch, bool epoch_given)
{
	if (!row->found || row->agent_id == NULL)
		return "no_lease";
	if (agent_given && !same_agent(row->agent_id, agent))
		return "not_owner";
	if (epoch_given && row->epoch != epoch)
		return "stale_epoch";
	return NULL;
}

/* Raise the locked lease's epoch and end it now: audited, announced, counted. */
static void
force_locked_lease(PtmLeaseResult *out, text *topic, int32 partition_id, Datum reason,
				   bool reason_null)
{
	int64		now_ms;
	Datum		args[4];
	bool		isnull;
	Oid			seq;
	char	   *prev_agent;
	int64		prev_epoch;
	PtmAudit	audit = {0};
	PtmLeaseEvent ev = {0};

	seq = ptm_epochs_lift_to_era();
	now_ms = ptm_now_ms();		/* after the lock: audit times are ordered */
	args[0] = PointerGetDatum(topic);
	args[1] = Int32GetDatum(partition_id);
	args[2] = Int64GetDatum(now_ms);
	args[3] = TimestampTzGetDatum(GetCurrentTimestamp());
	ptm_plan_run(&plan_force, args, NULL);
	ptm_epochs_after_raise(seq);	/* durable before the caller sees it */
	if (SPI_processed == 0)
		elog(ERROR, "locked lease of partition %s-%d changed under its lock",
			 text_to_cstring(topic), partition_id);

	prev_agent = TextDatumGetCString(ptm_spi_value(0, 1, &isnull));
	prev_epoch = DatumGetInt64(ptm_spi_value(0, 2, &isnull));
	out->result = "forced";
	out->has_lease = true;
	out->agent_id = NULL;
	out->epoch = DatumGetInt64(ptm_spi_value(0, 3, &isnull));
	out->expires_ms = now_ms;

	audit.action = "force_expire";
	audit.topic = topic;
	audit.partition_id = partition_id;
	audit.previous_agent_id = prev_agent;
	audit.previous_epoch = prev_epoch;
	audit.new_epoch = out->epoch;
	audit.reason = reason;
	audit.reason_null = reason_null;
	ptm_write_audit(&audit);

	ev.event = "forced";
	ev.topic = text_to_cstring(topic);
	ev.partition_id = partition_id;
	ev.previous_agent_id = prev_agent;
	ev.lease_epoch = out->epoch;
	ev.at_key = "forced_at_ms";
	ev.at_ms = now_ms;
	ptm_notify_lease_event(&ev);

	ptm_count_topic(PTM_LEASE_FORCED, topic);
	ereport(LOG,
			(errmsg("lease for partition %s-%d forced to expire: epoch " INT64_FORMAT " of agent \"%s\" fenced by epoch " INT64_FORMAT,
					ev.topic, partition_id, prev_epoch, prev_agent, out->epoch)));
}

PG_FUNCTION_INFO_V1(ptm_force_expire_0_2);
Datum
ptm_force_expire_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	bool		reason_null = PG_ARGISNULL(2);
	Datum		reason = reason_null ? (Datum) 0 : PG_GETARG_DATUM(2);
	bool		agent_given = PG_NARGS() > 3 && !PG_ARGISNULL(3);
	text	   *agent = agent_given ? ptm_get_name(fcinfo, 3, "agent_id") : NULL;
	bool		epoch_given = PG_NARGS() > 4 && !PG_ARGISNULL(4);
	int64		epoch = epoch_given ? ptm_get_epoch(fcinfo, 4, "lease_epoch") : 0;
	bool		end_holder = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
	MemoryContext callerctx = CurrentMemoryContext;
	PtmLeaseResult out = {0};
	PtmRowOutcome outcome;
	LeaseRow	row;
	const char *refusal;
	Datum		result;

	out.topic = topic;
	out.partition_id = partition_id;
	if (agent_given)
		ptm_check_agent(agent, "agent_id");

	spi = ptm_spi_connect(false);
	outcome = lock_lease(topic, partition_id, ptm_lock_wait_timeout_ms, &row);
	refusal = force_refusal(&row, agent, agent_given, epoch, epoch_given);

	/* asked to: end the transactions that hold the row, then lock it again */
	if (outcome == PTM_ROW_BUSY && refusal == NULL && end_holder)
	{
		char	   *why = reason_null ? NULL : TextDatumGetCString(reason);

		ptm_end_lease_holders(topic, partition_id, row.agent_id, row.epoch, DT_NOBEGIN,
							  ptm_lock_wait_timeout_ms, "force_expire", why);
		outcome = lock_lease(topic, partition_id, ptm_lock_wait_timeout_ms, &row);
		refusal = force_refusal(&row, agent, agent_given, epoch, epoch_given);
	}

	if (refusal != NULL)
	{
		out.result = refusal;
		outcome_from_row(&out, &row);
	}
	else if (outcome == PTM_ROW_BUSY)
	{
		out.result = "busy";
		outcome_from_row(&out, &row);
		ptm_count_busy(topic);
	}
	else
		force_locked_lease(&out, topic, partition_id, reason, reason_null);

	result = ptm_lease_result_datum(fcinfo, callerctx, &out);
	ptm_spi_finish(spi);

	PG_RETURN_DATUM(result);
}

/*
 * ptm.advance_epoch_era(reason text DEFAULT NULL) RETURNS bigint: after a
 * restore from a logical dump, the next era (epochs.c), audited.
 */
PG_FUNCTION_INFO_V1(ptm_advance_epoch_era);
Datum
ptm_advance_epoch_era(PG_FUNCTION_ARGS)
{
	int			spi;
	bool		reason_null = PG_ARGISNULL(0);
	Datum		reason = reason_null ? (Datum) 0 : PG_GETARG_DATUM(0);
	PtmEraChange change;
	PtmAudit	audit = {0};
	int64		floor;

	PreventCommandIfReadOnly("ptm.advance_epoch_era()");
	spi = ptm_spi_connect(false);
	floor = ptm_epochs_advance_era(reason, reason_null, &change);

	audit.action = "advance_epoch_era";
	audit.partition_id = -1;
	audit.new_epoch = floor;
	audit.reason = reason;
	audit.reason_null = reason_null;
	audit.details = psprintf("{\"timeline\": %u, \"era\": " INT64_FORMAT ", \"previous_era\": " INT64_FORMAT ", \"sequence_was\": " INT64_FORMAT "}",
							 change.timeline, change.era, change.previous_era, change.sequence_was);
	ptm_write_audit(&audit);
	ptm_spi_finish(spi);

	PG_RETURN_INT64(floor);
}

/* ---------------------------------------------------------------------
 * The fence: check_fence(topic, partition_id, lease_epoch) and ptm_fence()
 * ---------------------------------------------------------------------
 */
static void
fence_error(PtmFenceStatus status, text *topic, int32 partition_id, int64 epoch,
			const LeaseRow *row)
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
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	LeaseRow	row = {0};
	PtmFenceStatus status;
	PtmRowOutcome outcome;

	/* FOR SHARE on the lease row, without SQL unless the table needs it */
	outcome = ptm_row_lock(&lease_table, keys, LockTupleShare, ptm_lock_wait_timeout_ms,
						   lease_row_from_slot, &row);
	if (outcome == PTM_ROW_USE_SQL)
	{
		int			pinned = ptm_spi_connect(true);

		outcome = lock_lease_by_sql(topic, partition_id, ptm_lock_wait_timeout_ms,
									LEASE_READ_SHARE, &row);
		ptm_spi_finish(pinned);
	}
	switch (outcome)
	{
		case PTM_ROW_BUSY:
			ptm_count_busy(topic);
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("lease row of partition %s-%d is locked by another transaction",
							text_to_cstring(topic), partition_id),
					 errdetail("The fence waited ptm_lease.lock_wait_timeout (%d ms) for it; the lease is held by %s at epoch " INT64_FORMAT ".",
							   ptm_lock_wait_timeout_ms,
							   row.agent_id ? psprintf("agent \"%s\"", row.agent_id) : "no agent",
							   row.epoch),
					 errhint("Nothing was written.  Retry the transaction; a takeover or a renewal of this lease is in progress.")));
			break;
		default:
			break;
	}

	/* The clock is read after the lock is granted: a wait cannot hide an expiry. */
	if (!row.found)
		status = PTM_FENCE_NO_LEASE;
	else if (lease_epoch < row.epoch)
		status = PTM_FENCE_STALE;
	else if (lease_epoch > row.epoch)
		status = PTM_FENCE_FUTURE;
	else if (row.agent_id == NULL)
		status = PTM_FENCE_NOT_HELD;
	else if (row.expires_ms <= ptm_now_ms())
		status = PTM_FENCE_EXPIRED;
	else
		status = PTM_FENCE_OK;

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

/* ---------------------------------------------------------------------
 * Bulk calls
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(ptm_acquire_partition_leases_0_2);
Datum
ptm_acquire_partition_leases_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	text	   *agent = ptm_get_name(fcinfo, 1, "agent_id");
	int32		max_leases;
	int64		ttl_ms = ptm_get_ttl_ms(fcinfo, 3, "ttl");
	ReturnSetInfo *rsinfo;
	int64		now_ms = ptm_now_ms();
	int			allowance;
	PtmLimitReason why = PTM_LIMIT_NONE;
	char	   *agent_str;
	uint64		n;
	uint64		i;

	ptm_check_not_null(fcinfo, 2, "max_leases");
	max_leases = PG_GETARG_INT32(2);
	if (max_leases <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_leases must be positive"),
				 errdetail("The value given was %d.", max_leases)));
	allowance = max_leases;

	ptm_check_agent(agent, "agent_id");
	rsinfo = ptm_init_srf(fcinfo);
	agent_str = text_to_cstring(agent);

	spi = ptm_spi_connect(false);

	/* The limits cut the request to what the agent may take (lease_limits.c). */
	if (ptm_limits_active())
	{
		ptm_limits_lock(topic, agent);
		allowance = ptm_limits_allowance(topic, agent, max_leases, &why);
		now_ms = ptm_now_ms();
	}
	if (allowance > 0)
	{
		Datum		args[6] = {PointerGetDatum(topic), PointerGetDatum(agent),
			Int64GetDatum(now_ms), Int32GetDatum(allowance),
		Int64GetDatum(now_ms + ttl_ms), TimestampTzGetDatum(GetCurrentTimestamp())};

		Oid			seq = ptm_epochs_lift_to_era();

		ptm_plan_run(&plan_bulk_acquire, args, NULL);
		ptm_epochs_after_raise(seq);	/* durable before the caller sees it */
		n = SPI_processed;
	}
	else
		n = 0;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		bool		never_owned;
		bool		no_previous;
		Datum		ended = ptm_spi_value(i, 3, &never_owned);
		Datum		previous = ptm_spi_value(i, 4, &no_previous);
		PtmLeaseResult out = {0};

		out.result = "acquired";
		out.topic = topic;
		out.partition_id = DatumGetInt32(ptm_spi_value(i, 1, &isnull));
		out.agent_id = agent_str;
		out.epoch = DatumGetInt64(ptm_spi_value(i, 2, &isnull));
		out.expires_ms = now_ms + ttl_ms;
		out.has_lease = true;
		tuplestore_puttuple(rsinfo->setResult, ptm_lease_result_tuple(rsinfo->setDesc, &out));
		ptm_lease_taken(topic, out.partition_id, agent_str, no_previous ? NULL : TextDatumGetCString(previous),
			  out.epoch, out.expires_ms, never_owned ? -1 : DatumGetInt64(ended), now_ms);
	}
	ptm_count_n(PTM_LEASE_ACQUIRE_SUCCESS, n);

	/* a limit kept the agent from a lease that was there to take: backpressure */
	if (allowance < max_leases && n == (uint64) allowance)
	{
		Datum		args[2] = {PointerGetDatum(topic), Int64GetDatum(ptm_now_ms())};

		ptm_plan_run(&plan_any_free, args, NULL);
		if (SPI_processed > 0)
			ptm_limits_count_refusal(why, topic);
	}
	ptm_spi_finish(spi);

	return (Datum) 0;
}

/* One plan_bulk_renew, for ptm_with_lock_timeout(). */
typedef struct BulkRenew
{
	Datum	   *args;
	bool	   *renewed;
	int64	   *renewed_until;
} BulkRenew;

/* Each updated row names the input it came from (1-based). */
static void
bulk_renew(void *arg)
{
	BulkRenew  *b = (BulkRenew *) arg;
	uint64		r;

	ptm_plan_run(&plan_bulk_renew, b->args, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		ord = DatumGetInt64(ptm_spi_value(r, 1, &isnull));

		b->renewed[ord - 1] = true;
		b->renewed_until[ord - 1] = DatumGetInt64(ptm_spi_value(r, 2, &isnull));
	}
}

PG_FUNCTION_INFO_V1(ptm_renew_leases_0_2);
Datum
ptm_renew_leases_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *agent = ptm_get_name(fcinfo, 0, "agent_id");
	Datum	   *topics,
			   *partitions,
			   *epochs;
	int			n,
				np,
				ne;
	int64		ttl_ms;
	int64		now_ms = ptm_now_ms();
	ReturnSetInfo *rsinfo;
	bool	   *renewed;
	int64	   *renewed_until;
	char	   *agent_str;
	uint64		nrenewed = 0;
	int			i;

	ptm_get_array(fcinfo, 1, "topics", TEXTOID, &topics, NULL, &n);
	ptm_get_array(fcinfo, 2, "partition_ids", INT4OID, &partitions, NULL, &np);
	ptm_get_array(fcinfo, 3, "lease_epochs", INT8OID, &epochs, NULL, &ne);
	ttl_ms = ptm_get_ttl_ms(fcinfo, 4, "ttl");
	if (np != n || ne != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("topics, partition_ids and lease_epochs must have the same length"),
				 errdetail("They have %d, %d and %d elements.", n, np, ne)));
	for (i = 0; i < n; i++)
	{
		ptm_check_name(DatumGetTextPP(topics[i]), "topics", i + 1);
		if (DatumGetInt32(partitions[i]) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("partition_ids[%d] must not be negative", i + 1)));
		if (DatumGetInt64(epochs[i]) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lease_epochs[%d] must be positive", i + 1)));
	}

	ptm_check_agent(agent, "agent_id");
	rsinfo = ptm_init_srf(fcinfo);
	renewed = palloc0(sizeof(bool) * (n + 1));
	renewed_until = palloc0(sizeof(int64) * (n + 1));

	spi = ptm_spi_connect(false);
	{
		Datum		args[7] = {PointerGetDatum(agent), PG_GETARG_DATUM(1),
			PG_GETARG_DATUM(2), PG_GETARG_DATUM(3), Int64GetDatum(now_ms),
		Int64GetDatum(now_ms + ttl_ms), TimestampTzGetDatum(GetCurrentTimestamp())};

		BulkRenew	b = {args, renewed, renewed_until};

		if (!ptm_with_lock_timeout(ptm_lock_wait_timeout_ms, bulk_renew, &b))
		{
			/*
			 * A row was held past the bound: renew each lease alone, without
			 * waiting again, so the held ones come back "busy".
			 */
			for (i = 0; i < n; i++)
			{
				PtmLeaseResult out = {0};

				renew_one(&out, DatumGetTextPP(topics[i]), DatumGetInt32(partitions[i]), agent,
						  DatumGetInt64(epochs[i]), ttl_ms, 0);
				tuplestore_puttuple(rsinfo->setResult, ptm_lease_result_tuple(rsinfo->setDesc, &out));
			}
			ptm_spi_finish(spi);
			return (Datum) 0;
		}
	}

	/*
	 * A lease named twice is updated once, for one of its inputs: the others
	 * renewed it too.  Only inputs left unmarked are compared, so the common
	 * case stays linear.
	 */
	for (i = 0; i < n; i++)
	{
		int			j;

		if (renewed[i])
			continue;
		for (j = 0; j < n; j++)
			if (renewed[j] && j != i &&
				DatumGetInt32(partitions[j]) == DatumGetInt32(partitions[i]) &&
				DatumGetInt64(epochs[j]) == DatumGetInt64(epochs[i]) &&
				same_text(DatumGetTextPP(topics[j]), DatumGetTextPP(topics[i])))
			{
				renewed[i] = true;
				renewed_until[i] = renewed_until[j];
				break;
			}
	}

	agent_str = text_to_cstring(agent);
	for (i = 0; i < n; i++)
	{
		PtmLeaseResult out = {0};
		text	   *t = DatumGetTextPP(topics[i]);

		out.topic = t;
		out.partition_id = DatumGetInt32(partitions[i]);
		if (renewed[i])
		{
			out.result = "renewed";
			out.has_lease = true;
			out.agent_id = agent_str;
			out.epoch = DatumGetInt64(epochs[i]);
			out.expires_ms = renewed_until[i];
			nrenewed++;
		}
		else
		{
			LeaseRow	row = read_lease(t, out.partition_id, LEASE_READ);

			out.result = classify_failure(&row, agent, DatumGetInt64(epochs[i]), now_ms);
			outcome_from_row(&out, &row);
			ptm_count_topic(PTM_LEASE_RENEW_FAILURE, t);
			ptm_count_if_stale(out.result, t);
		}
		tuplestore_puttuple(rsinfo->setResult, ptm_lease_result_tuple(rsinfo->setDesc, &out));
	}
	ptm_count_n(PTM_LEASE_RENEW_SUCCESS, nrenewed);
	ptm_spi_finish(spi);

	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(ptm_ensure_partitions_0_2);
Datum
ptm_ensure_partitions_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partitions;
	Datum		args[2];
	uint64		created;

	ptm_check_not_null(fcinfo, 1, "partitions");
	partitions = PG_GETARG_INT32(1);
	if (partitions <= 0 || partitions > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partitions must be between 1 and 1000000"),
				 errdetail("The value given was %d.", partitions)));

	args[0] = PointerGetDatum(topic);
	args[1] = Int32GetDatum(partitions);
	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_ensure, args, NULL);
	created = SPI_processed;
	ptm_spi_finish(spi);

	PG_RETURN_INT32((int32) created);
}
