/*-------------------------------------------------------------------------
 *
 * worker_passes.c
 *	  What a database's worker does in each pass, step by step.
 *
 * worker.c runs the passes in this order, every ptm_lease.sweep_interval:
 *	  - the expiry sweep (sweep.c), a batch of ptm_lease.sweep_batch_size
 *		due leases per transaction while batches come back full: leases
 *		past their expiry are marked 'expired' (epoch kept), logged,
 *		counted in lease_expirations_total and announced on
 *		ptm_lease_events; a sweep that ends on a full batch is behind, and
 *		the next pass starts at once;
 *	  - frozen holders: the transactions still holding the row of a lease
 *		that expired more than ptm_lease.holder_grace ago are ended, so that
 *		the sweep can expire it (holders.c); the same step lifts the epoch
 *		sequence to this timeline's era;
 *	  - every ptm_lease.cleanup_interval, the cleanup: expired rows of
 *		ptm.action_dedup_log, rows of ptm.lease_audit older than
 *		ptm_lease.audit_retention and of ptm.metric_history older than
 *		ptm_lease.history_retention, in batches; and step claims expired
 *		for longer than ptm_lease.claim_retention (walking workflow_state
 *		by its key, a bounded slice per pass, so that claims need no index
 *		of their own);
 *	  - every ptm_lease.history_interval, a snapshot of the counters into
 *		ptm.metric_history (ptm.snapshot_metrics()).
 *
 * Each step is one short transaction, connected to SPI, that reports itself
 * in pg_stat_activity; before each, the worker leaves if its entry asks it
 * to, so that a DDL command waiting for the database is not kept waiting
 * by a long pass.  At most PTM_MAX_BATCHES_PER_PASS batches of each kind
 * per pass; what is left waits for the next pass.
 *
 * Locking: the worker's entry (workers.h) is read and written under
 * ptm_workers->mutex, held only to copy a few fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "epochs.h"
#include "holders.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "sweep.h"
#include "validate.h"
#include "worker_passes.h"
#include "workers.h"

#define PTM_MAX_BATCHES_PER_PASS	10

/* Settings; see docs/workers.md. */
static int	ptm_holder_grace_ms = 1000;
static int	ptm_audit_retention_s = 30 * 86400;
static int	ptm_history_retention_s = 86400;
static int	ptm_claim_retention_s = 3600;

static char *claim_scan_key = NULL; /* last workflow_key the claim cleanup visited */

void
ptm_worker_passes_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.audit_retention",
							gettext_noop("Age after which rows of ptm.lease_audit are deleted; 0 keeps them forever."),
							NULL,
							&ptm_audit_retention_s,
							30 * 86400, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ptm_lease.holder_grace",
							gettext_noop("How long after a lease expired the worker ends a transaction that still holds its row."),
							gettext_noop("A client frozen inside a fenced transaction blocks every takeover of its "
										 "partition; its backend is terminated once its lease expired this long ago, "
										 "and its fenced writes roll back.  -1 never ends one."),
							&ptm_holder_grace_ms,
							1000,
							-1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ptm_lease.history_retention",
							gettext_noop("Age after which rows of ptm.metric_history are deleted; 0 keeps them forever."),
							NULL,
							&ptm_history_retention_s,
							86400, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ptm_lease.claim_retention",
							gettext_noop("Time after its expiry after which a step claim is cleared; 0 never clears them."),
							gettext_noop("Until then the expired claim's worker and step stay visible in ptm.workflow_state."),
							&ptm_claim_retention_s,
							3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * The statements
 * ---------------------------------------------------------------------
 */

/*
 * Leases past their expiry by more than $1 (Unix ms) that the sweep left
 * owned: it skips rows another transaction holds.  Through the sweep index.
 */
static PtmPlan plan_held_past_expiry = {
	.sql = "SELECT topic, partition_id, agent_id, lease_epoch, lease_expires_at"
	"  FROM ptm.partition_leases"
	" WHERE agent_id IS NOT NULL AND sweep_at <= $1 AND lease_expires_at <= $1"
	" ORDER BY sweep_at LIMIT 100",
	.nargs = 1, .argtypes = (const Oid[]) {INT8OID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_CALLER
};

static PtmPlan plan_dedup_cleanup = {
	.sql = "DELETE FROM ptm.action_dedup_log WHERE ctid = ANY (ARRAY("
	"  SELECT ctid FROM ptm.action_dedup_log WHERE expires_at <= $1"
	"   LIMIT $2 FOR UPDATE SKIP LOCKED))",
	.nargs = 2, .argtypes = (const Oid[]) {TIMESTAMPTZOID, INT8OID},
	.expect = SPI_OK_DELETE
};

static PtmPlan plan_audit_cleanup = {
	.sql = "DELETE FROM ptm.lease_audit WHERE audit_id = ANY (ARRAY("
	"  SELECT audit_id FROM ptm.lease_audit WHERE at < $1"
	"   ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED))",
	.nargs = 2, .argtypes = (const Oid[]) {TIMESTAMPTZOID, INT8OID},
	.expect = SPI_OK_DELETE
};

static PtmPlan plan_history_cleanup = {
	.sql = "DELETE FROM ptm.metric_history WHERE ctid = ANY (ARRAY("
	"  SELECT ctid FROM ptm.metric_history WHERE sampled_at < $1"
	"   ORDER BY sampled_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
	.nargs = 2, .argtypes = (const Oid[]) {TIMESTAMPTZOID, INT8OID},
	.expect = SPI_OK_DELETE
};

/*
 * Clear the step claims expired before $3 among the next $2 workflows after
 * key $1, in key order (through the primary key).  A claim that expired can
 * no longer matter: claim_step and try_commit treat an expired claim and no
 * claim alike, and stale / out_of_order come from the version alone.  The
 * epoch is kept, so that claim epochs still only increase.  Rows locked by a
 * commit or a claim in progress are skipped, and the expiry is checked again
 * on the row the UPDATE locks.  Returns the workflows visited, the last key
 * and the claims cleared.
 */
static PtmPlan plan_claim_cleanup = {
	.sql = "WITH slice AS MATERIALIZED ("
	"  SELECT workflow_key, claim_expires_at FROM ptm.workflow_state"
	"   WHERE workflow_key > $1 ORDER BY workflow_key LIMIT $2),"
	" cleared AS ("
	"  UPDATE ptm.workflow_state w"
	"     SET claim_worker = NULL, claim_step = NULL, claim_expires_at = NULL"
	"    FROM (SELECT s.workflow_key FROM ptm.workflow_state s"
	"           WHERE s.workflow_key IN (SELECT workflow_key FROM slice WHERE claim_expires_at <= $3)"
	"             AND s.claim_expires_at <= $3"
	"           FOR UPDATE SKIP LOCKED) d"
	"   WHERE w.workflow_key = d.workflow_key"
	"  RETURNING 1)"
	" SELECT (SELECT count(*) FROM slice), (SELECT max(workflow_key) FROM slice),"
	"        (SELECT count(*) FROM cleared)",
	.nargs = 3, .argtypes = (const Oid[]) {TEXTOID, INT8OID, INT8OID},
	.expect = SPI_OK_SELECT
};

static PtmPlan plan_snapshot = {
	.sql = "SELECT ptm.snapshot_metrics()",
	.expect = SPI_OK_SELECT
};

/* ---------------------------------------------------------------------
 * Steps: one short transaction each
 * ---------------------------------------------------------------------
 */

void
ptm_worker_leave_if_asked(PtmDbEntry *entry)
{
	bool		asked;

	SpinLockAcquire(&ptm_workers->mutex);
	asked = entry->stop_requested;
	SpinLockRelease(&ptm_workers->mutex);
	if (asked)
	{
		ereport(DEBUG1,
				(errmsg("ptm_lease worker for database \"%s\" leaves as asked", entry->dbname)));
		proc_exit(0);
	}
}

/* The SPI connection of the step in progress (begin_step to end_step). */
static int	step_connection;

/* One step of a pass: its own transaction, connected to SPI without a pin. */
static void
begin_step(PtmDbEntry *entry, const char *what)
{
	ptm_worker_leave_if_asked(entry);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	step_connection = ptm_spi_connect(false);
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
end_step(void)
{
	ptm_spi_finish(step_connection);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* ---------------------------------------------------------------------
 * Expiry sweep
 * ---------------------------------------------------------------------
 */

/*
 * One batch of the expiry sweep in its own transaction: the due rows it
 * looked at (expired or rescheduled), so that the pass goes on while batches
 * are full; -1 when the extension was dropped since the pass began.
 */
static int64
sweep_batch(PtmDbEntry *entry)
{
	PtmSweepCounts counts;

	begin_step(entry, "ptm_lease: sweep expired leases");
	if (!OidIsValid(get_extension_oid("ptm_lease", true)))
	{
		end_step();
		return -1;
	}
	counts = ptm_sweep_due_leases(ptm_sweep_batch_size());
	end_step();

	/* counted once committed */
	if (counts.expired > 0)
	{
		ptm_count_n(PTM_LEASE_EXPIRATIONS, counts.expired);
		SpinLockAcquire(&ptm_workers->mutex);
		entry->expired_total += counts.expired;
		SpinLockRelease(&ptm_workers->mutex);
	}
	return (int64) (counts.expired + counts.rescheduled);
}

/*
 * Batches of the sweep while they come back full, at most
 * PTM_MAX_BATCHES_PER_PASS.  *behind when the last one was still full: due
 * leases are left, and the worker runs its next pass at once rather than
 * after sweep_interval, so a sweeper that fell behind (a million leases, all
 * renewed, each looked at about once a TTL) catches up as fast as the
 * machine allows, and one that keeps up sleeps.  False when the extension
 * was dropped meanwhile: the worker looks again, and leaves.
 */
bool
ptm_worker_sweep_pass(PtmDbEntry *entry, bool *behind)
{
	int			b;

	*behind = true;
	for (b = 0; b < PTM_MAX_BATCHES_PER_PASS; b++)
	{
		int64		looked_at;

		CHECK_FOR_INTERRUPTS();
		looked_at = sweep_batch(entry);
		if (looked_at < 0)
			return false;
		if (looked_at < ptm_sweep_batch_size())
		{
			*behind = false;
			break;
		}
	}
	return true;
}

/* ---------------------------------------------------------------------
 * Frozen holders
 * ---------------------------------------------------------------------
 */

/*
 * End the transactions that still hold the row of a lease that expired more
 * than ptm_lease.holder_grace ago and began before it expired (a client
 * frozen inside a fenced transaction): after that the sweep can expire it and
 * another agent take it.  Also lifts the epoch sequence to this timeline's
 * era, so that it shows the era even before the first acquisition.
 */
void
ptm_worker_holders_pass(PtmDbEntry *entry)
{
	Datum		cutoff;
	SPITupleTable *held;
	uint64		n;
	uint64		i;

	begin_step(entry, "ptm_lease: end holders of expired leases");
	if (!OidIsValid(get_extension_oid("ptm_lease", true)))
	{
		end_step();
		return;
	}
	ptm_epochs_lift_to_era();
	if (ptm_holder_grace_ms < 0)
	{
		end_step();
		return;
	}

	cutoff = Int64GetDatum(ptm_now_ms() - ptm_holder_grace_ms);
	n = ptm_plan_run(&plan_held_past_expiry, &cutoff, NULL);
	/* the calls below run statements of their own: keep the table */
	held = SPI_tuptable;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		HeapTuple	tup = held->vals[i];
		TupleDesc	desc = held->tupdesc;
		text	   *topic = DatumGetTextPCopy(SPI_getbinval(tup, desc, 1, &isnull));
		int32		part = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		char	   *agent = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		int64		epoch = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		int64		expires_ms = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		char	   *why;

		why = psprintf("its lease expired at %s, more than ptm_lease.holder_grace (%d ms) ago",
					   timestamptz_to_str(ptm_ms_to_timestamptz(expires_ms)),
					   ptm_holder_grace_ms);
		ptm_end_lease_holders(topic, part, agent, epoch, ptm_ms_to_timestamptz(expires_ms),
							  0, "worker", why);
	}
	end_step();
}

/* ---------------------------------------------------------------------
 * Cleanup
 * ---------------------------------------------------------------------
 */

/* Batches of one cleanup DELETE until a short batch; rows deleted. */
static uint64
cleanup_batches(PtmDbEntry *entry, PtmPlan *plan, Datum cutoff, const char *what)
{
	uint64		total = 0;
	int			b;

	for (b = 0; b < PTM_MAX_BATCHES_PER_PASS; b++)
	{
		Datum		args[2] = {cutoff, Int64GetDatum(ptm_sweep_batch_size())};
		uint64		n;

		CHECK_FOR_INTERRUPTS();
		begin_step(entry, what);
		n = ptm_plan_run(plan, args, NULL);
		end_step();
		total += n;
		if (n < (uint64) ptm_sweep_batch_size())
			break;
	}
	return total;
}

/* Now minus a retention in seconds, as a timestamptz Datum. */
static Datum
retention_cutoff(int retention_s)
{
	return TimestampTzGetDatum(GetCurrentTimestamp() - (TimestampTz) retention_s * USECS_PER_SEC);
}

/*
 * Clear expired step claims in the next slices of workflow_state, at most
 * PTM_MAX_BATCHES_PER_PASS slices of ptm_sweep_batch_size() workflows; the walk
 * resumes where it stopped and starts over after the last key.  Returns the
 * claims cleared.
 */
static uint64
claim_cleanup(PtmDbEntry *entry)
{
	int64		cutoff_ms = ptm_now_ms() - (int64) ptm_claim_retention_s * 1000;
	uint64		total = 0;
	int			b;

	if (claim_scan_key == NULL)
		claim_scan_key = MemoryContextStrdup(TopMemoryContext, "");

	for (b = 0; b < PTM_MAX_BATCHES_PER_PASS; b++)
	{
		Datum		args[3] = {CStringGetTextDatum(claim_scan_key),
		Int64GetDatum(ptm_sweep_batch_size()), Int64GetDatum(cutoff_ms)};
		bool		isnull;
		int64		visited;
		char	   *next;

		CHECK_FOR_INTERRUPTS();
		begin_step(entry, "ptm_lease: clear expired step claims");
		ptm_plan_run(&plan_claim_cleanup, args, NULL);
		visited = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
		total += DatumGetInt64(ptm_spi_value(0, 3, &isnull));
		/* at the end of the table start over next time; copied before SPI_finish */
		next = visited < ptm_sweep_batch_size() ? "" :
			TextDatumGetCString(ptm_spi_value(0, 2, &isnull));
		pfree(claim_scan_key);
		claim_scan_key = MemoryContextStrdup(TopMemoryContext, next);
		end_step();

		if (visited < ptm_sweep_batch_size())
			break;
	}
	return total;
}

void
ptm_worker_cleanup_pass(PtmDbEntry *entry)
{
	uint64		n;

	n = cleanup_batches(entry, &plan_dedup_cleanup, TimestampTzGetDatum(GetCurrentTimestamp()),
						"ptm_lease: delete expired dedup records");
	if (n > 0)
	{
		ptm_count_n(PTM_DEDUP_CLEANUP_DELETED, n);
		ereport(DEBUG1, (errmsg("ptm_lease: deleted " UINT64_FORMAT " expired dedup records", n)));
	}

	if (ptm_audit_retention_s > 0)
	{
		n = cleanup_batches(entry, &plan_audit_cleanup, retention_cutoff(ptm_audit_retention_s),
							"ptm_lease: delete old audit rows");
		if (n > 0)
			ereport(LOG, (errmsg("ptm_lease: deleted " UINT64_FORMAT " audit rows older than ptm_lease.audit_retention", n)));
	}

	if (ptm_history_retention_s > 0)
	{
		n = cleanup_batches(entry, &plan_history_cleanup, retention_cutoff(ptm_history_retention_s),
							"ptm_lease: delete old metric history");
		if (n > 0)
			ereport(DEBUG1, (errmsg("ptm_lease: deleted " UINT64_FORMAT " metric history rows older than ptm_lease.history_retention", n)));
	}

	if (ptm_claim_retention_s > 0)
	{
		n = claim_cleanup(entry);
		if (n > 0)
		{
			ptm_count_n(PTM_CLAIM_CLEANUP_DELETED, n);
			ereport(DEBUG1, (errmsg("ptm_lease: cleared " UINT64_FORMAT " expired step claims", n)));
		}
	}
}

/* ---------------------------------------------------------------------
 * Metric history
 * ---------------------------------------------------------------------
 */

/* One snapshot of the counters into ptm.metric_history. */
void
ptm_worker_history_pass(PtmDbEntry *entry)
{
	begin_step(entry, "ptm_lease: snapshot metrics");
	ptm_plan_run(&plan_snapshot, NULL, NULL);
	end_step();

	SpinLockAcquire(&ptm_workers->mutex);
	entry->last_history_at = GetCurrentTimestamp();
	entry->snapshots++;
	SpinLockRelease(&ptm_workers->mutex);
}
