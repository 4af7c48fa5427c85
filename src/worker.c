/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The per-database background worker: it sweeps expired leases, deletes
 *	  expired dedup records and old audit rows, clears old step claims and
 *	  keeps the metric history; and the health rows of the workers.
 *
 * The launcher (launcher.c) starts one in every database that may have the
 * extension.  The worker first looks for ptm_lease there: where it is not
 * installed it leaves at once, quietly, and says so in its entry, so that
 * the launcher starts none there again until CREATE EXTENSION.
 *
 * Each worker, every ptm_lease.sweep_interval, in short transactions:
 *	  - marks leases past their expiry as 'expired' (epoch kept: the old owner
 *		learns 'expired' from renew, and the next acquire raises the epoch),
 *		logs each one, counts lease_expirations_total and sends a NOTIFY on
 *		channel ptm_lease_events;
 *	  - every ptm_lease.cleanup_interval, deletes expired rows of
 *		ptm.action_dedup_log (when that table exists), rows of
 *		ptm.lease_audit older than ptm_lease.audit_retention and rows of
 *		ptm.metric_history older than ptm_lease.history_retention, in
 *		batches, and clears step claims expired for longer than
 *		ptm_lease.claim_retention (walking workflow_state by its key, a
 *		bounded slice per pass, so that claims need no index of their own);
 *	  - every ptm_lease.history_interval, writes a snapshot of the counters
 *		into ptm.metric_history (ptm.snapshot_metrics()).
 *
 * And, woken by the latch a committing transaction sets, between passes:
 * sends the lease events that transactions of its database queued in
 * announce.c's ring, with NOTIFY in its own transaction (a batch per
 * commit), so that theirs need not NOTIFY; see announce.c.
 *
 * ptm.sweep_expired_leases() runs one batch of the same expiry sweep in the
 * caller's transaction (sweep_due_leases() serves both), for a database
 * without a worker or with a backlog.
 *
 * An error inside a pass is logged, the transaction rolled back, and the pass
 * retried after a backoff that doubles up to a minute; the worker lives on.
 * It leaves, quietly, when the extension is dropped (a DROP EXTENSION wakes
 * it) and when its entry asks it to (the launcher, for a database no longer
 * selected; a DDL command that needs the database alone).  One that exits
 * otherwise (pg_terminate_backend, an error at start) is started again by
 * the launcher after PTM_WORKER_RESTART_SECS.  Nothing runs on a hot
 * standby: the launcher starts once recovery has finished.
 *
 * Locking: the worker's entry (workers.h) is read and written under
 * ptm_workers->mutex, held only to copy a few fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "epochs.h"
#include "announce.h"
#include "leases.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"
#include "workers.h"

#define PTM_MAX_BACKOFF_MS			60000
#define PTM_MAX_BATCHES_PER_PASS	10
#define PTM_MAX_SWEEP_BATCH			1000000 /* ptm_lease.sweep_batch_size and max_leases */


/* Settings; see docs/workers.md. */
int			ptm_sweep_interval_ms = 1000;
int			ptm_sweep_batch_size = 1000;
int			ptm_cleanup_interval_ms = 60000;
int			ptm_audit_retention_s = 30 * 86400;
int			ptm_history_interval_ms = 30000;
int			ptm_holder_grace_ms = 1000;
int			ptm_history_retention_s = 86400;
int			ptm_claim_retention_s = 3600;

static PtmDbEntry *my_entry = NULL; /* worker: its entry in ptm_workers */
static bool extension_gone = false; /* worker: a pass found no extension */
static TimestampTz last_cleanup = 0;	/* worker: end of the last cleanup */
static TimestampTz last_history = 0;	/* worker: start of the last snapshot */
static char *claim_scan_key = NULL; /* worker: last workflow_key visited */

PGDLLEXPORT void ptm_worker_main(Datum arg);

static void leave_if_asked(void);

/* ---------------------------------------------------------------------
 * Settings
 * ---------------------------------------------------------------------
 */
void
ptm_worker_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.sweep_interval",
							gettext_noop("Time between two sweeps of expired leases."),
							NULL,
							&ptm_sweep_interval_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ptm_lease.sweep_batch_size",
							gettext_noop("Most rows a worker changes or deletes in one transaction."),
							gettext_noop("Keeps each transaction, and the locks it holds, short."),
							&ptm_sweep_batch_size,
							1000, 1, PTM_MAX_SWEEP_BATCH,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ptm_lease.cleanup_interval",
							gettext_noop("Time between two deletions of expired dedup records and old audit rows."),
							NULL,
							&ptm_cleanup_interval_ms,
							60000, 10, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

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
	DefineCustomIntVariable("ptm_lease.history_interval",
							gettext_noop("Time between two snapshots of the counters into ptm.metric_history; 0 takes none."),
							NULL,
							&ptm_history_interval_ms,
							30000, 0, INT_MAX,
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
 * Worker: the passes
 * ---------------------------------------------------------------------
 */

/*
 * Leases due for a look (sweep_at <= now), oldest first, through
 * partition_leases_sweep_idx.  sweep_at is a lower bound of the expiry that
 * renewals leave behind (they stay HOT updates): a due lease that expired is
 * expired here, one renewed since gets sweep_at = its expiry, so the worker
 * writes the index once per lease per TTL.  Column 6 says which.  Rows
 * another transaction holds (an acquire taking over, a fenced write, a
 * renewal) are skipped and found again next pass.  The epoch is left alone:
 * renew by the old owner then says 'expired', and the next acquire raises it.
 * A database still at 0.1.0 has no sweep_at: there the due leases are the
 * expired ones, found by lease_expires_at (plan_sweep_010).
 */
#define SQL_SWEEP(DUE, RESCHEDULE) \
	"WITH due AS (" \
	"  SELECT topic, partition_id FROM ptm.partition_leases" \
	"   WHERE agent_id IS NOT NULL AND " DUE " <= $1" \
	"   ORDER BY " DUE " LIMIT $2 FOR UPDATE SKIP LOCKED)" \
	" UPDATE ptm.partition_leases l SET" \
	"        agent_id = CASE WHEN l.lease_expires_at <= $1 THEN NULL ELSE l.agent_id END," \
	"        state = CASE WHEN l.lease_expires_at <= $1 THEN 'expired' ELSE l.state END," \
	"        previous_agent_id = CASE WHEN l.lease_expires_at <= $1" \
	"                                 THEN l.agent_id ELSE l.previous_agent_id END," \
	"        previous_epoch = CASE WHEN l.lease_expires_at <= $1" \
	"                              THEN l.lease_epoch ELSE l.previous_epoch END," \
	"        ended_at = CASE WHEN l.lease_expires_at <= $1 THEN $3 ELSE l.ended_at END" \
	RESCHEDULE \
	"   FROM due" \
	"  WHERE l.topic = due.topic AND l.partition_id = due.partition_id" \
	"    AND l.agent_id IS NOT NULL AND l." DUE " <= $1" \
	" RETURNING l.topic, l.partition_id, l.previous_agent_id, l.lease_epoch, l.lease_expires_at," \
	"           l.agent_id IS NULL"
static PtmPlan plan_sweep = {
	.sql = SQL_SWEEP("sweep_at", ", sweep_at = l.lease_expires_at"),
	.nargs = 3, .argtypes = (const Oid[]) {INT8OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};
static PtmPlan plan_sweep_010 = {
	.sql = SQL_SWEEP("lease_expires_at", ""),
	.nargs = 3, .argtypes = (const Oid[]) {INT8OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
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

/* Which of the optional objects exist (an extension not yet updated). */
static PtmPlan plan_schema = {
	.sql = "SELECT pg_catalog.to_regclass('ptm.action_dedup_log') IS NOT NULL,"
	"       pg_catalog.to_regclass('ptm.metric_history') IS NOT NULL,"
	"       pg_catalog.to_regprocedure('ptm.snapshot_metrics()') IS NOT NULL",
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_CALLER
};

static PtmPlan plan_snapshot = {
	.sql = "SELECT ptm.snapshot_metrics()",
	.expect = SPI_OK_SELECT
};

/* One step of a pass: its own transaction, connected to SPI without a pin. */
static void
begin_step(const char *what)
{
	leave_if_asked();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) ptm_spi_connect(false);
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
end_step(void)
{
	ptm_spi_finish(0);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Send one lease event on PTM_NOTIFY_CHANNEL; see docs/workers.md. */
static void
notify_expired(const char *topic, int32 partition_id, const char *agent,
			   int64 epoch, int64 expires_ms)
{
	PtmLeaseEvent ev = {0};

	ev.event = "expired";
	ev.topic = topic;
	ev.partition_id = partition_id;
	ev.previous_agent_id = agent;
	ev.lease_epoch = epoch;
	ev.at_key = "expired_at_ms";
	ev.at_ms = expires_ms;
	ptm_notify_lease_event(&ev);
}

/* What one batch of the expiry sweep did to the due leases it looked at. */
typedef struct SweepCounts
{
	uint64		expired;		/* past their expiry: marked 'expired' */
	uint64		rescheduled;	/* renewed since: sweep_at moved to the expiry */
} SweepCounts;

/*
 * One batch of the expiry sweep, at most limit due leases, in the current
 * transaction (the caller has connected to SPI).  The one implementation
 * behind the worker's pass and ptm.sweep_expired_leases(): each lease it
 * expires is logged and announced (the NOTIFY goes out at commit).  Counting
 * is left to the caller, which knows when the batch stands.
 */
static SweepCounts
sweep_due_leases(int64 limit)
{
	int64		now_ms = ptm_now_ms();
	Datum		args[3] = {Int64GetDatum(now_ms), Int64GetDatum(limit),
	TimestampTzGetDatum(GetCurrentTimestamp())};
	SweepCounts counts = {0, 0};
	uint64		n;
	uint64		i;

	ptm_plan_run(ptm_schema_is_020() ? &plan_sweep : &plan_sweep_010,
					args, NULL);
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *topic;
		int32		part;
		char	   *agent;
		int64		epoch;
		int64		exp_ms;

		/* renewed since it was scheduled: only rescheduled */
		if (!DatumGetBool(ptm_spi_value(i, 6, &isnull)))
		{
			counts.rescheduled++;
			continue;
		}
		counts.expired++;
		topic = TextDatumGetCString(ptm_spi_value(i, 1, &isnull));
		part = DatumGetInt32(ptm_spi_value(i, 2, &isnull));
		agent = TextDatumGetCString(ptm_spi_value(i, 3, &isnull));
		epoch = DatumGetInt64(ptm_spi_value(i, 4, &isnull));
		exp_ms = DatumGetInt64(ptm_spi_value(i, 5, &isnull));

		ereport(LOG,
				(errmsg("lost lease for partition %s-%d (expired at %s)",
						topic, part, timestamptz_to_str(ptm_ms_to_timestamptz(exp_ms))),
				 errdetail("Agent \"%s\" held it at epoch " INT64_FORMAT "; the next acquisition raises the epoch.",
						   agent, epoch)));
		notify_expired(topic, part, agent, epoch, exp_ms);
	}
	return counts;
}

/*
 * The worker's batch of the expiry sweep, in its own transaction: the due
 * rows it looked at (expired or rescheduled), so that the pass goes on while
 * batches are full.
 */
static uint64
sweep_batch(void)
{
	SweepCounts counts;

	begin_step("ptm_lease: sweep expired leases");
	if (!OidIsValid(get_extension_oid("ptm_lease", true)))
	{
		/* dropped since the pass began: the loop looks again and leaves */
		end_step();
		extension_gone = true;
		return 0;
	}
	counts = sweep_due_leases(ptm_sweep_batch_size);
	end_step();

	/* counted once committed */
	if (counts.expired > 0)
	{
		ptm_count_n(PTM_LEASE_EXPIRATIONS, counts.expired);
		SpinLockAcquire(&ptm_workers->mutex);
		my_entry->expired_total += counts.expired;
		SpinLockRelease(&ptm_workers->mutex);
	}
	return counts.expired + counts.rescheduled;
}

/*
 * ptm.sweep_expired_leases(max_leases DEFAULT NULL): one batch of the
 * worker's expiry sweep in the caller's transaction, for a database that no
 * worker serves or whose backlog an operator wants gone now.  The same
 * statement and the same log lines and NOTIFYs as the worker; rows another
 * transaction holds are skipped, as the worker skips them.
 */
PG_FUNCTION_INFO_V1(ptm_sweep_expired_leases);
Datum
ptm_sweep_expired_leases(PG_FUNCTION_ARGS)
{
	int			spi;
	int32		max_leases = PG_ARGISNULL(0) ? ptm_sweep_batch_size : PG_GETARG_INT32(0);
	SweepCounts counts;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (max_leases < 1 || max_leases > PTM_MAX_SWEEP_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_leases must be between 1 and %d", PTM_MAX_SWEEP_BATCH),
				 errdetail("The value given was %d.", max_leases),
				 errhint("Pass NULL for ptm_lease.sweep_batch_size (%d), and call again while a batch comes back full.",
						 ptm_sweep_batch_size)));

	spi = ptm_spi_connect(false);
	counts = sweep_due_leases(max_leases);
	ptm_spi_finish(spi);

	/*
	 * Counted at the call, as every function counts its outcomes; only the
	 * worker, which commits its own batch, waits for the commit.
	 */
	ptm_count_n(PTM_LEASE_EXPIRATIONS, counts.expired);

	values[0] = Int64GetDatum((int64) counts.expired);
	values[1] = Int64GetDatum((int64) counts.rescheduled);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(ptm_result_tupdesc(fcinfo), values, nulls)));
}

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

/*
 * End the transactions that still hold the row of a lease that expired more
 * than ptm_lease.holder_grace ago and began before it expired (a client
 * frozen inside a fenced transaction): after that the sweep can expire it and
 * another agent take it.  Also lifts the epoch sequence to this timeline's
 * era, so that it shows the era even before the first acquisition.
 */
static void
holders_pass(void)
{
	int64		cutoff_ms;
	int			n;
	int			i;

	begin_step("ptm_lease: end holders of expired leases");
	if (!OidIsValid(get_extension_oid("ptm_lease", true)) || !ptm_schema_is_020())
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

	cutoff_ms = ptm_now_ms() - ptm_holder_grace_ms;
	{
		Datum		arg = Int64GetDatum(cutoff_ms);

		ptm_plan_run(&plan_held_past_expiry, &arg, NULL);
	}
	n = (int) SPI_processed;
	if (n > 0)
	{
		SPITupleTable *held = SPI_tuptable;

		/* the calls below run statements of their own: keep the table */
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
	}
	end_step();
}

/* Batches of one cleanup DELETE until a short batch; rows deleted. */
static uint64
cleanup_batches(PtmPlan *plan, Datum cutoff, const char *what)
{
	uint64		total = 0;
	int			b;

	for (b = 0; b < PTM_MAX_BATCHES_PER_PASS; b++)
	{
		Datum		args[2] = {cutoff, Int64GetDatum(ptm_sweep_batch_size)};
		uint64		n;

		CHECK_FOR_INTERRUPTS();
		begin_step(what);
		ptm_plan_run(plan, args, NULL);
		n = SPI_processed;
		end_step();
		total += n;
		if (n < (uint64) ptm_sweep_batch_size)
			break;
	}
	return total;
}

/* Which optional objects this database's extension has. */
typedef struct SchemaObjects
{
	bool		dedup_log;
	bool		metric_history;
	bool		snapshot_metrics;
} SchemaObjects;

static SchemaObjects
schema_objects(void)
{
	SchemaObjects o;
	bool		isnull;

	begin_step("ptm_lease: look up tables");
	ptm_plan_run(&plan_schema, NULL, NULL);
	o.dedup_log = DatumGetBool(ptm_spi_value(0, 1, &isnull));
	o.metric_history = DatumGetBool(ptm_spi_value(0, 2, &isnull));
	o.snapshot_metrics = DatumGetBool(ptm_spi_value(0, 3, &isnull));
	end_step();
	return o;
}

/*
 * Clear expired step claims in the next slices of workflow_state, at most
 * PTM_MAX_BATCHES_PER_PASS slices of ptm_sweep_batch_size workflows; the walk
 * resumes where it stopped and starts over after the last key.  Returns the
 * claims cleared.
 */
static uint64
claim_cleanup(void)
{
	int64		cutoff_ms = ptm_now_ms() - (int64) ptm_claim_retention_s * 1000;
	uint64		total = 0;
	int			b;

	if (claim_scan_key == NULL)
		claim_scan_key = MemoryContextStrdup(TopMemoryContext, "");

	for (b = 0; b < PTM_MAX_BATCHES_PER_PASS; b++)
	{
		Datum		args[3] = {CStringGetTextDatum(claim_scan_key),
		Int64GetDatum(ptm_sweep_batch_size), Int64GetDatum(cutoff_ms)};
		bool		isnull;
		int64		visited;
		char	   *next;

		CHECK_FOR_INTERRUPTS();
		begin_step("ptm_lease: clear expired step claims");
		ptm_plan_run(&plan_claim_cleanup, args, NULL);
		visited = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
		total += DatumGetInt64(ptm_spi_value(0, 3, &isnull));
		/* at the end of the table start over next time; copied before SPI_finish */
		next = visited < ptm_sweep_batch_size ? "" :
			TextDatumGetCString(ptm_spi_value(0, 2, &isnull));
		pfree(claim_scan_key);
		claim_scan_key = MemoryContextStrdup(TopMemoryContext, next);
		end_step();

		if (visited < ptm_sweep_batch_size)
			break;
	}
	return total;
}

static void
cleanup_pass(void)
{
	SchemaObjects schema;
	uint64		n;

	if (extension_gone)
		return;

	schema = schema_objects();

	if (schema.dedup_log)
	{
		n = cleanup_batches(&plan_dedup_cleanup, TimestampTzGetDatum(GetCurrentTimestamp()),
							"ptm_lease: delete expired dedup records");
		if (n > 0)
		{
			ptm_count_n(PTM_DEDUP_CLEANUP_DELETED, n);
			ereport(DEBUG1, (errmsg("ptm_lease: deleted " UINT64_FORMAT " expired dedup records", n)));
		}
	}

	if (ptm_audit_retention_s > 0)
	{
		TimestampTz cutoff = GetCurrentTimestamp() - (TimestampTz) ptm_audit_retention_s * USECS_PER_SEC;

		n = cleanup_batches(&plan_audit_cleanup, TimestampTzGetDatum(cutoff),
							"ptm_lease: delete old audit rows");
		if (n > 0)
			ereport(LOG, (errmsg("ptm_lease: deleted " UINT64_FORMAT " audit rows older than ptm_lease.audit_retention", n)));
	}

	if (schema.metric_history && ptm_history_retention_s > 0)
	{
		TimestampTz cutoff = GetCurrentTimestamp() - (TimestampTz) ptm_history_retention_s * USECS_PER_SEC;

		n = cleanup_batches(&plan_history_cleanup, TimestampTzGetDatum(cutoff),
							"ptm_lease: delete old metric history");
		if (n > 0)
			ereport(DEBUG1, (errmsg("ptm_lease: deleted " UINT64_FORMAT " metric history rows older than ptm_lease.history_retention", n)));
	}

	if (ptm_claim_retention_s > 0)
	{
		n = claim_cleanup();
		if (n > 0)
		{
			ptm_count_n(PTM_CLAIM_CLEANUP_DELETED, n);
			ereport(DEBUG1, (errmsg("ptm_lease: cleared " UINT64_FORMAT " expired step claims", n)));
		}
	}
}

/* One snapshot of the counters into ptm.metric_history, when it exists. */
static void
history_pass(void)
{
	if (extension_gone || !schema_objects().snapshot_metrics)
		return;

	begin_step("ptm_lease: snapshot metrics");
	ptm_plan_run(&plan_snapshot, NULL, NULL);
	end_step();

	SpinLockAcquire(&ptm_workers->mutex);
	my_entry->last_history_at = GetCurrentTimestamp();
	my_entry->snapshots++;
	SpinLockRelease(&ptm_workers->mutex);
}

/* Milliseconds until the next snapshot is due (history on), else -1. */
static long
history_due_in_ms(void)
{
	long		secs;
	int			usecs;

	if (ptm_history_interval_ms <= 0)
		return -1;
	TimestampDifference(GetCurrentTimestamp(),
						TimestampTzPlusMilliseconds(last_history, ptm_history_interval_ms),
						&secs, &usecs);
	return secs * 1000 + usecs / 1000;
}

/* Milliseconds from now until t, 0 when it has passed. */
static long
ms_until(TimestampTz t)
{
	long		secs;
	int			usecs;

	TimestampDifference(GetCurrentTimestamp(), t, &secs, &usecs);
	return secs * 1000 + usecs / 1000;
}

/* One pass: sweep (batches while full), then cleanup when due. */
static void
run_pass(void)
{
	int			b;

	for (b = 0; b < PTM_MAX_BATCHES_PER_PASS; b++)
	{
		CHECK_FOR_INTERRUPTS();
		if (sweep_batch() < (uint64) ptm_sweep_batch_size)
			break;
	}
	if (extension_gone)
		return;
	holders_pass();

	if (TimestampDifferenceExceeds(last_cleanup, GetCurrentTimestamp(), ptm_cleanup_interval_ms))
	{
		cleanup_pass();
		last_cleanup = GetCurrentTimestamp();
	}

	if (history_due_in_ms() == 0)
	{
		last_history = GetCurrentTimestamp();
		history_pass();
	}
}
/* ---------------------------------------------------------------------
 * Worker: its entry, starting and leaving
 * ---------------------------------------------------------------------
 */

/* Give the entry back; a worker that was not asked to leave is restarted. */
static void
worker_exit(int code, Datum arg)
{
	SpinLockAcquire(&ptm_workers->mutex);
	if (my_entry->pid == MyProcPid)
	{
		my_entry->pid = 0;
		my_entry->latch = NULL;
		if (my_entry->state == PTM_DB_RUNNING)
		{
			my_entry->state = my_entry->stop_requested ? PTM_DB_STOPPED : PTM_DB_EXITED;
			my_entry->changed_at = GetCurrentTimestamp();
		}
	}
	SpinLockRelease(&ptm_workers->mutex);
}

/*
 * Take the entry the launcher prepared for dboid.  False when there is none
 * to take: the database is no longer wanted, a DDL command holds it, or
 * another worker already serves it.
 */
static bool
attach_entry(Oid dboid)
{
	PtmDbEntry *e;
	bool		ok = false;

	SpinLockAcquire(&ptm_workers->mutex);
	e = ptm_db_entry(dboid);
	if (e != NULL && e->state == PTM_DB_LAUNCHED && e->pid == 0)
	{
		if (e->stop_requested)
		{
			e->state = PTM_DB_STOPPED;
			e->changed_at = GetCurrentTimestamp();
		}
		else
		{
			e->pid = MyProcPid;
			e->latch = MyLatch;
			e->state = PTM_DB_RUNNING;
			e->started_at = e->changed_at = GetCurrentTimestamp();
			e->last_pass_at = 0;
			my_entry = e;
			ok = true;
		}
	}
	SpinLockRelease(&ptm_workers->mutex);
	return ok;
}

/* Leave, quietly, when the launcher or a DDL command asked (entry: STOPPED). */
static void
leave_if_asked(void)
{
	bool		asked;

	SpinLockAcquire(&ptm_workers->mutex);
	asked = my_entry->stop_requested;
	SpinLockRelease(&ptm_workers->mutex);
	if (asked)
	{
		ereport(DEBUG1,
				(errmsg("ptm_lease worker for database \"%s\" leaves as asked", my_entry->dbname)));
		proc_exit(0);
	}
}

/*
 * Whether ptm_lease is installed in this database; if not, leave quietly
 * with the entry saying so, and the launcher starts no worker here until a
 * CREATE EXTENSION pokes it.  A poke that came while we looked (a CREATE
 * EXTENSION that committed meanwhile) makes us look again instead: the
 * check and the state change are one step under the spinlock, so that no
 * poke is lost between them.
 */
static void
look_for_extension(void)
{
	for (;;)
	{
		bool		present;
		bool		had;

		SpinLockAcquire(&ptm_workers->mutex);
		my_entry->poked = false;
		SpinLockRelease(&ptm_workers->mutex);

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		present = OidIsValid(get_extension_oid("ptm_lease", true));
		CommitTransactionCommand();

		SpinLockAcquire(&ptm_workers->mutex);
		had = my_entry->has_extension;
		if (present)
		{
			my_entry->has_extension = true;
			SpinLockRelease(&ptm_workers->mutex);
			extension_gone = false;
			if (!had)
			{
				/* no longer a look: the launcher may start the next one */
				ptm_wake_launcher();
				ereport(LOG,
						(errmsg("ptm_lease worker for database \"%s\" started", my_entry->dbname)));
			}
			return;
		}
		if (!my_entry->poked)
		{
			my_entry->state = PTM_DB_NO_EXTENSION;
			my_entry->has_extension = false;
			my_entry->changed_at = GetCurrentTimestamp();
			SpinLockRelease(&ptm_workers->mutex);
			ereport(had ? LOG : DEBUG1,
					(errmsg("ptm_lease worker for database \"%s\" stops: the extension is not installed there",
							my_entry->dbname)));
			proc_exit(0);
		}
		SpinLockRelease(&ptm_workers->mutex);
	}
}

/* Whether CREATE or DROP EXTENSION committed here since the last look. */
static bool
poked(void)
{
	bool		p;

	SpinLockAcquire(&ptm_workers->mutex);
	p = my_entry->poked;
	SpinLockRelease(&ptm_workers->mutex);
	return p;
}

/* Entry point of the worker; bgw_main_arg is the database's OID. */
void
ptm_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	MemoryContext loopcxt;
	volatile int backoff_ms = 0;
	volatile TimestampTz next_pass_at = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!attach_entry(dboid))
		proc_exit(0);			/* not wanted any more, or a duplicate */
	before_shmem_exit(worker_exit, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	/*
	 * The worker runs as the bootstrap superuser: pin its search_path as the
	 * SQL functions do, so that nothing a database or role setting puts first
	 * can stand in for pg_catalog's operators and functions.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	look_for_extension();		/* leaves if ptm_lease is not installed here */
	pgstat_report_appname("ptm_lease worker");
	ptm_announce_worker_start();

	loopcxt = AllocSetContextCreate(TopMemoryContext, "ptm_lease worker loop",
									ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		timeout;
		long		due_ms;

		CHECK_FOR_INTERRUPTS();
		leave_if_asked();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (extension_gone || poked())
			look_for_extension();

		MemoryContextSwitchTo(loopcxt);
		MemoryContextReset(loopcxt);

		if (RecoveryInProgress())
		{
			/* cannot happen with BgWorkerStart_RecoveryFinished; be safe */
			timeout = ptm_sweep_interval_ms;
		}
		else
		{
			PG_TRY();
			{
				/* a latch set by a commit: announce now; sweep when due */
				ptm_announce_pass();
				if (GetCurrentTimestamp() >= next_pass_at || history_due_in_ms() == 0)
				{
					run_pass();
					SpinLockAcquire(&ptm_workers->mutex);
					my_entry->last_pass_at = GetCurrentTimestamp();
					my_entry->passes++;
					SpinLockRelease(&ptm_workers->mutex);
					backoff_ms = 0;
					next_pass_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															   ptm_sweep_interval_ms);
				}
			}
			PG_CATCH();
			{
				/* log, roll back, and try again later: the worker lives on */
				HOLD_INTERRUPTS();
				MemoryContextSwitchTo(loopcxt);
				EmitErrorReport();
				AbortCurrentTransaction();
				FlushErrorState();
				pgstat_report_activity(STATE_IDLE, NULL);
				ptm_announce_pass_failed();
				RESUME_INTERRUPTS();

				SpinLockAcquire(&ptm_workers->mutex);
				my_entry->last_error_at = GetCurrentTimestamp();
				my_entry->failures++;
				SpinLockRelease(&ptm_workers->mutex);
				backoff_ms = Min(Max(backoff_ms * 2, ptm_sweep_interval_ms), PTM_MAX_BACKOFF_MS);
				next_pass_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff_ms);
			}
			PG_END_TRY();
			due_ms = ms_until(next_pass_at);
			timeout = Max(due_ms, 1);
			/* wake for the next snapshot even when sweeps are rare */
			if (backoff_ms == 0 && history_due_in_ms() >= 0)
				timeout = Min(timeout, Max(history_due_in_ms(), 10));
		}
		if (extension_gone)
			timeout = 0;		/* look again now, and leave */

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * Health rows (called by ptm.health())
 * ---------------------------------------------------------------------
 */

/* $1 now_ms, $2 the stale bound: sweep_at <= expiry, through partition_leases_sweep_idx (0.2.0) */
#define SQL_BACKLOG(DUE) \
	"SELECT count(*), count(*) FILTER (WHERE lease_expires_at <= $2)" \
	"  FROM ptm.partition_leases" \
	" WHERE agent_id IS NOT NULL" DUE " AND lease_expires_at <= $1"
static PtmPlan plan_backlog = {
	.sql = SQL_BACKLOG(" AND sweep_at <= $1"),
	.nargs = 2, .argtypes = (const Oid[]) {INT8OID, INT8OID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_CALLER
};
static PtmPlan plan_backlog_010 = {
	.sql = SQL_BACKLOG(""),
	.nargs = 2, .argtypes = (const Oid[]) {INT8OID, INT8OID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_CALLER
};

/* How long a worker may go without a successful pass before a warning. */
static long
stale_after_ms(void)
{
	return Max(60000L, 10L * ptm_sweep_interval_ms);
}

/* How long the worker may go without a snapshot before a warning. */
static long
history_stale_after_ms(void)
{
	return Min((long) INT_MAX, Max(60000L, 3L * ptm_history_interval_ms + ptm_sweep_interval_ms));
}

/* What a database without a worker misses, said in each warning. */
#define PTM_WITHOUT_WORKER \
	"Without a worker, expired leases are taken over by the next acquire but not swept or notified, " \
	"and there is no metric history for ptm.rate()."

/*
 * Why no worker serves this database although the setting selects it, for
 * the "not running" row.
 */
static char *
not_running_detail(const char *dbname, const PtmDbEntry *e, bool have_entry, pid_t launcher_pid)
{
	if (launcher_pid == 0)
		return psprintf("The launcher is not running (see the launcher row), so no worker serves database \"%s\". " PTM_WITHOUT_WORKER,
						dbname);
	if (!have_entry)
		return psprintf("No worker serves database \"%s\". The launcher starts one as soon as CREATE EXTENSION commits "
						"and at server start: see the server log (out of background worker slots, or more than %d "
						"databases with ptm_lease?). " PTM_WITHOUT_WORKER,
						dbname, PTM_MAX_DATABASES);
	switch (e->state)
	{
		case PTM_DB_NO_SLOT:
			return psprintf("No background worker slot was free for the worker of database \"%s\" "
							"(max_worker_processes = %d, shared with parallel queries and other extensions): "
							"raise max_worker_processes and restart the server; the launcher keeps trying every 5 s. "
							PTM_WITHOUT_WORKER,
							dbname, max_worker_processes);
		case PTM_DB_EXITED:
			return psprintf("The worker ended at %s without being asked (see the server log); the launcher "
							"starts it again %d s after. " PTM_WITHOUT_WORKER,
							timestamptz_to_str(e->changed_at), PTM_WORKER_RESTART_SECS);
		case PTM_DB_STOPPED:
			return psprintf("The worker left at %s for a command that needs the database alone (DROP DATABASE, "
							"ALTER DATABASE RENAME or SET TABLESPACE, CREATE DATABASE ... TEMPLATE); the launcher "
							"starts it again when that command ends. " PTM_WITHOUT_WORKER,
							timestamptz_to_str(e->changed_at));
		default:
			return psprintf("The launcher was asked at %s to start the worker of database \"%s\", and it has "
							"not started: see the server log. " PTM_WITHOUT_WORKER,
							timestamptz_to_str(e->changed_at), dbname);
	}
}

/*
 * The "worker" row: whether a worker serves this database, and if not,
 * why and what to set.  Returns whether one serves it (running or
 * starting), which the history and backlog rows follow.
 */
static bool
worker_health(struct ReturnSetInfo *rsinfo, PtmHealthRowFn add_row, const char *dbname,
			  const PtmDbEntry *e, bool have_entry, pid_t launcher_pid,
			  TimestampTz launcher_started_at, TimestampTz now)
{
	HeapTuple	tup;
	bool		template = false;
	const char *setting = ptm_database_setting();

	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);

		template = d->datistemplate || !d->datallowconn;
		ReleaseSysCache(tup);
	}

	if (!ptm_database_selected(dbname))
	{
		add_row(rsinfo, "worker", "warning", "not configured",
				setting[0] == '\0' ?
				psprintf("ptm_lease.database is empty: no database gets a worker. Set ptm_lease.database = '*' "
						 "(every database with the extension), or a list that names \"%s\", and reload. " PTM_WITHOUT_WORKER,
						 dbname) :
				psprintf("ptm_lease.database = '%s' leaves out database \"%s\". Set ptm_lease.database = '*' "
						 "(every database with the extension), or add \"%s\" to the list, and reload. " PTM_WITHOUT_WORKER,
						 setting, dbname, dbname));
		return false;
	}
	if (template)
	{
		add_row(rsinfo, "worker", "warning", "template",
				psprintf("Database \"%s\" is a template or does not allow connections: it gets no worker, because a "
						 "session connected to a template makes CREATE DATABASE from it fail. Databases created "
						 "from it get their own. " PTM_WITHOUT_WORKER,
						 dbname));
		return false;
	}

	if (have_entry && e->pid != 0)
	{
		if (e->last_pass_at != 0 &&
			!TimestampDifferenceExceeds(e->last_pass_at, now, (int) stale_after_ms()))
			add_row(rsinfo, "worker", "ok", "running",
					psprintf("pid %d; last successful pass at %s; " INT64_FORMAT " passes, " INT64_FORMAT " failed, " INT64_FORMAT " leases expired",
							 (int) e->pid, timestamptz_to_str(e->last_pass_at),
							 e->passes, e->failures, e->expired_total));
		else if (e->last_pass_at == 0 &&
				 !TimestampDifferenceExceeds(e->started_at, now, (int) stale_after_ms()))
			add_row(rsinfo, "worker", "ok", "starting", psprintf("pid %d", (int) e->pid));
		else
			add_row(rsinfo, "worker", "warning", "stalled",
					e->last_pass_at != 0 ?
					psprintf("pid %d; last successful pass at %s; " INT64_FORMAT " passes failed. See the server log.",
							 (int) e->pid, timestamptz_to_str(e->last_pass_at), e->failures) :
					psprintf("pid %d; no successful pass yet. See the server log.", (int) e->pid));
		return true;
	}

	/* no worker yet: ok while the launcher is at it, for a short while */
	if ((have_entry && (e->state == PTM_DB_WANTED || e->state == PTM_DB_LAUNCHED) &&
		 !TimestampDifferenceExceeds(e->changed_at, now, PTM_START_GRACE_MS)) ||
		(!have_entry &&
		 !TimestampDifferenceExceeds(launcher_pid != 0 ? launcher_started_at : PgStartTime,
									 now, PTM_START_GRACE_MS)))
	{
		add_row(rsinfo, "worker", "ok", "starting",
				"The launcher is starting the worker of this database.");
		return true;
	}

	add_row(rsinfo, "worker", "warning", "not running",
			not_running_detail(dbname, e, have_entry, launcher_pid));
	return false;
}

/* The "history" row: when this database's worker last took a snapshot. */
static void
history_health(struct ReturnSetInfo *rsinfo, PtmHealthRowFn add_row, const char *dbname,
			   bool served, const PtmDbEntry *e, bool have_entry, TimestampTz now)
{
	if (!served)
		add_row(rsinfo, "history", "ok", "no worker",
				psprintf("No worker takes snapshots into ptm.metric_history in database \"%s\": see the worker row. SELECT ptm.snapshot_metrics() takes one.",
						 dbname));
	else if (ptm_history_interval_ms == 0)
		add_row(rsinfo, "history", "ok", "off",
				"ptm_lease.history_interval is 0: no snapshots are taken; ptm.rate() reads what ptm.metric_history holds.");
	else if (have_entry && e->pid != 0 && e->last_history_at != 0 &&
			 !TimestampDifferenceExceeds(e->last_history_at, now, (int) history_stale_after_ms()))
		add_row(rsinfo, "history", "ok", timestamptz_to_str(e->last_history_at),
				psprintf("Last snapshot at %s, every %d ms; " INT64_FORMAT " snapshots by pid %d.",
						 timestamptz_to_str(e->last_history_at), ptm_history_interval_ms,
						 e->snapshots, (int) e->pid));
	else if ((!have_entry || e->last_history_at == 0) &&
			 !TimestampDifferenceExceeds(have_entry && e->pid != 0 ? e->started_at : PgStartTime,
										 now, (int) history_stale_after_ms()))
		add_row(rsinfo, "history", "ok", "starting", NULL);
	else
		add_row(rsinfo, "history", "warning",
				have_entry && e->last_history_at != 0 ? timestamptz_to_str(e->last_history_at) : "none",
				"No snapshot lately. See the worker row and the server log; after an upgrade of the library run ALTER EXTENSION ptm_lease UPDATE.");
}

void
ptm_worker_health(struct ReturnSetInfo *rsinfo, PtmHealthRowFn add_row)
{
	char	   *dbname = get_database_name(MyDatabaseId);
	bool		standby = RecoveryInProgress();
	TimestampTz now = GetCurrentTimestamp();
	bool		young = TimestampDifferenceExceeds(PgStartTime, now, (int) stale_after_ms()) == false;
	pid_t		launcher_pid = 0;
	TimestampTz launcher_started_at = 0;
	PtmDbEntry	entry = {0};
	bool		have_entry = false;
	bool		served = false;
	int64		expired = 0;
	int64		overdue = 0;

	/* without preload there are no workers; the preload row says so */
	if (ptm_workers == NULL)
		return;
	if (dbname == NULL)
		dbname = "?";

	SpinLockAcquire(&ptm_workers->mutex);
	{
		PtmDbEntry *e = ptm_db_entry(MyDatabaseId);

		launcher_pid = ptm_workers->launcher_pid;
		launcher_started_at = ptm_workers->launcher_started_at;
		if (e != NULL)
		{
			entry = *e;
			have_entry = true;
		}
	}
	SpinLockRelease(&ptm_workers->mutex);

	/* launcher */
	if (standby)
		add_row(rsinfo, "launcher", "ok", "standby",
				"No worker runs on a standby; the launcher starts after promotion.");
	else if (launcher_pid != 0)
		add_row(rsinfo, "launcher", "ok", "running", psprintf("pid %d", (int) launcher_pid));
	else
		add_row(rsinfo, "launcher", young ? "ok" : "warning", young ? "starting" : "not running",
				"The postmaster restarts the launcher a few seconds after it ends.");

	/* this database's worker, and its metric history snapshots */
	if (!standby)
	{
		served = worker_health(rsinfo, add_row, dbname, &entry, have_entry,
							   launcher_pid, launcher_started_at, now);
		history_health(rsinfo, add_row, dbname, served, &entry, have_entry, now);
		ptm_announce_health(rsinfo, add_row);
	}

	/* sweep backlog: expired leases still owned */
	if (OidIsValid(get_extension_oid("ptm_lease", true)))
	{
		int64		now_ms = ptm_now_ms();
		Datum		args[2] = {Int64GetDatum(now_ms), Int64GetDatum(now_ms - stale_after_ms())};
		bool		isnull;

		SPI_connect();
		ptm_plan_run(ptm_schema_is_020() ? &plan_backlog : &plan_backlog_010, args, NULL);
		expired = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
		overdue = DatumGetInt64(ptm_spi_value(0, 2, &isnull));
		SPI_finish();

		add_row(rsinfo, "sweep_backlog",
				served && !standby && overdue > 0 ? "warning" : "ok",
				psprintf(INT64_FORMAT, expired),
				served ? psprintf(INT64_FORMAT " leases past expiry not yet swept, " INT64_FORMAT " of them for over %ld s.",
								  expired, overdue, stale_after_ms() / 1000) :
				"Leases past expiry still naming their owner; no worker sweeps this database.");
	}
}