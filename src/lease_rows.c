/*-------------------------------------------------------------------------
 *
 * lease_rows.c
 *	  One row of ptm.partition_leases, as the lease functions read and lock
 *	  it, and ptm_lease.lock_wait_timeout, the bound of every such wait.
 *
 * The hot paths reach the row without SQL (row_access.c): found through the
 * primary key, read with a snapshot of its own, locked as SELECT ... FOR
 * SHARE or FOR NO KEY UPDATE would lock it.  A table whose statements would
 * do more (a DBA's trigger, row security, ...) is read and locked by the
 * same statements in SQL instead, with the same results.
 *
 * Locking
 *	  - No lease function waits for a lease row longer than
 *		ptm_lease.lock_wait_timeout: row_access.c bounds its tuple lock, and
 *		the SQL way runs under lock_wait.c's bounded lock_timeout.  A client
 *		frozen inside a fenced transaction holds the row until the worker ends
 *		it (ptm_end_lease_holders, ptm_lease.holder_grace), and until then
 *		callers get "busy" (check_fence: SQLSTATE 55P03), not a wait.
 *	  - A row read after a wait is the row as it is now: without SQL the
 *		newest version is locked, and the SQL reads take a fresh snapshot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"

#include "lease_rows.h"
#include "lock_wait.h"
#include "ptm_lease.h"
#include "spi_util.h"

/* Settings; see docs/leases.md. */
static int	ptm_lock_wait_timeout_ms = 500;

void
ptm_lease_rows_define_gucs(void)
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

int
ptm_lease_lock_wait_ms(void)
{
	return ptm_lock_wait_timeout_ms;
}

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

/* the row locked for a change (a table with row security: see ptm_lease_lock) */
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
 * The columns the hot paths read or change (LEASE_COL_* in lease_rows.h):
 * renew's, and every column a release or a take writes (renew leaves
 * sweep_at behind, a lower bound of the expiry).
 */
PtmKeyedTable ptm_lease_table = {
	.relname = "partition_leases",
	.pkey_name = "partition_leases_pkey",
	.nkeys = 2,
	.key_types = {TEXTOID, INT4OID},
	.key_eqfuncs = {F_TEXTEQ, F_INT4EQ},
	.ncolumns = 10,
	.columns = {"agent_id", "lease_epoch", "lease_expires_at", "state", "previous_agent_id",
	"renewed_at", "previous_epoch", "sweep_at", "acquired_at", "ended_at"},
	.column_types = {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
	INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID}
};

/* ---------------------------------------------------------------------
 * By SQL
 * ---------------------------------------------------------------------
 */
static char *
text_or_null(int col, bool *isnull)
{
	Datum		d = ptm_spi_value(0, col, isnull);

	return *isnull ? NULL : TextDatumGetCString(d);
}

PtmLeaseRow
ptm_lease_read(text *topic, int32 partition_id, PtmLeaseRead mode)
{
	Datum		args[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	PtmLeaseRow row = {0};
	bool		isnull;

	/*
	 * Not read-only: SPI then takes a fresh snapshot, so a row changed by a
	 * transaction we just waited for is seen as it is now.
	 */
	ptm_plan_run(mode == PTM_LEASE_READ_SHARE ? &plan_select_share :
				 mode == PTM_LEASE_READ_LOCK ? &plan_select_lock : &plan_select,
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

/* ptm_lease_read() with a lock mode, for ptm_with_lock_timeout() */
typedef struct LeaseLockCall
{
	text	   *topic;
	int32		partition_id;
	PtmLeaseRead mode;
	PtmLeaseRow *row;
} LeaseLockCall;

static void
read_lease_locked(void *arg)
{
	LeaseLockCall *call = (LeaseLockCall *) arg;

	*call->row = ptm_lease_read(call->topic, call->partition_id, call->mode);
}

/*
 * A lease row lock through SQL (SELECT ... FOR NO KEY UPDATE or FOR SHARE,
 * by mode), for a table that needs it, with the same bound on the wait.
 * Needs an SPI connection.
 */
static PtmRowOutcome
lease_lock_by_sql(text *topic, int32 partition_id, int wait_ms, PtmLeaseRead mode,
				  PtmLeaseRow *row)
{
	LeaseLockCall call = {topic, partition_id, mode, row};

	if (!ptm_with_lock_timeout(wait_ms, read_lease_locked, &call))
	{
		*row = ptm_lease_read(topic, partition_id, PTM_LEASE_READ);
		return row->found ? PTM_ROW_BUSY : PTM_ROW_MISSING;
	}
	return row->found ? PTM_ROW_KEPT : PTM_ROW_MISSING;
}

/* ---------------------------------------------------------------------
 * Without SQL (row_access.c), unless the table needs it
 * ---------------------------------------------------------------------
 */
static char *
row_text_or_null(PtmKeyedTable *t, TupleTableSlot *slot, int col)
{
	bool		isnull;
	Datum		d = ptm_row_column(t, slot, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

bool
ptm_lease_row_from_slot(PtmKeyedTable *t, TupleTableSlot *slot, Datum *values, bool *isnull,
						void *arg)
{
	PtmLeaseRow *row = (PtmLeaseRow *) arg;
	bool		null;

	row->found = true;
	row->agent_id = row_text_or_null(t, slot, LEASE_COL_AGENT);
	row->epoch = DatumGetInt64(ptm_row_column(t, slot, LEASE_COL_EPOCH, &null));
	row->expires_ms = DatumGetInt64(ptm_row_column(t, slot, LEASE_COL_EXPIRES, &null));
	row->state = row_text_or_null(t, slot, LEASE_COL_STATE);
	row->previous_agent_id = row_text_or_null(t, slot, LEASE_COL_PREVIOUS_AGENT);
	return false;
}

PtmLeaseRow
ptm_lease_read_direct(text *topic, int32 partition_id)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	PtmLeaseRow row = {0};

	if (ptm_row_read(&ptm_lease_table, keys, ptm_lease_row_from_slot, &row) == PTM_ROW_USE_SQL)
	{
		int			pinned = ptm_spi_connect(true);

		row = ptm_lease_read(topic, partition_id, PTM_LEASE_READ);
		ptm_spi_finish(pinned);
	}
	return row;
}

PtmRowOutcome
ptm_lease_lock(text *topic, int32 partition_id, int wait_ms, PtmLeaseRow *row)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	PtmRowOutcome outcome;

	memset(row, 0, sizeof(PtmLeaseRow));
	outcome = ptm_row_lock(&ptm_lease_table, keys, LockTupleNoKeyExclusive, wait_ms,
						   ptm_lease_row_from_slot, row);
	if (outcome != PTM_ROW_USE_SQL)
		return outcome;
	return lease_lock_by_sql(topic, partition_id, wait_ms, PTM_LEASE_READ_LOCK, row);
}

PtmRowOutcome
ptm_lease_lock_share(text *topic, int32 partition_id, PtmLeaseRow *row)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	PtmRowOutcome outcome;

	outcome = ptm_row_lock(&ptm_lease_table, keys, LockTupleShare, ptm_lock_wait_timeout_ms,
						   ptm_lease_row_from_slot, row);
	if (outcome == PTM_ROW_USE_SQL)
	{
		int			pinned = ptm_spi_connect(true);

		outcome = lease_lock_by_sql(topic, partition_id, ptm_lock_wait_timeout_ms,
									PTM_LEASE_READ_SHARE, row);
		ptm_spi_finish(pinned);
	}
	return outcome;
}
