/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background workers: a launcher, and one worker per database named in
 *	  ptm_lease.database that sweeps expired leases and deletes expired
 *	  dedup records and old audit rows.
 *
 * The launcher is a static worker registered by _PG_init when preloaded.  It
 * connects to no database; it reads ptm_lease.database (reloaded on SIGHUP)
 * and starts one dynamic worker per name.  Databases are named rather than
 * discovered so that a worker slot is spent only where a DBA asked for one
 * (max_worker_processes is 8 by default) and so that databases used for
 * tests or scratch work are left alone.
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
 * ptm.sweep_expired_leases() runs one batch of the same expiry sweep in the
 * caller's transaction (sweep_due_leases() serves both), for a database
 * without a worker or with a backlog.
 *
 * An error inside a pass is logged, the transaction rolled back, and the pass
 * retried after a backoff that doubles up to a minute; the worker lives on.
 * A worker that exits on SIGTERM (pg_terminate_backend) or dies is restarted
 * by the postmaster after PTM_WORKER_RESTART_SECS.  Nothing runs on a hot
 * standby: the launcher starts once recovery has finished, i.e. on promotion.
 *
 * Locking protocol of PtmWorkerShared
 *	  The whole struct is protected by its spinlock, held only to copy a few
 *	  fields in or out.  A worker owns the slot whose dbname it holds while
 *	  slot->pid is its pid; it clears the pid on exit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
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
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "epochs.h"
#include "leases.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

#define PTM_MAX_DB_WORKERS			32
#define PTM_WORKER_RESTART_SECS		5
#define PTM_LAUNCHER_RESTART_SECS	5
#define PTM_LAUNCHER_NAPTIME_MS		5000
#define PTM_MAX_BACKOFF_MS			60000
#define PTM_MAX_BATCHES_PER_PASS	10
#define PTM_MAX_SWEEP_BATCH			1000000 /* ptm_lease.sweep_batch_size and max_leases */


/* Settings; see docs/workers.md. */
char	   *ptm_worker_databases = NULL;
int			ptm_sweep_interval_ms = 1000;
int			ptm_sweep_batch_size = 1000;
int			ptm_cleanup_interval_ms = 60000;
int			ptm_audit_retention_s = 30 * 86400;
int			ptm_history_interval_ms = 30000;
int			ptm_holder_grace_ms = 1000;
int			ptm_history_retention_s = 86400;
int			ptm_claim_retention_s = 3600;

typedef struct PtmWorkerSlot
{
	char		dbname[NAMEDATALEN];
	pid_t		pid;			/* 0 when no worker owns the slot */
	TimestampTz started_at;
	TimestampTz last_pass_at;	/* last pass that committed */
	TimestampTz last_error_at;
	int64		passes;
	int64		failures;		/* passes that raised an error */
	int64		expired_total;	/* leases this worker marked expired */
	TimestampTz last_history_at;	/* last snapshot into ptm.metric_history */
	int64		snapshots;
	bool		extension_installed;
} PtmWorkerSlot;

typedef struct PtmWorkerShared
{
	slock_t		mutex;
	pid_t		launcher_pid;
	TimestampTz launcher_started_at;
	PtmWorkerSlot slots[PTM_MAX_DB_WORKERS];
} PtmWorkerShared;

static PtmWorkerShared *ptm_workers = NULL;
static PtmWorkerSlot *my_slot = NULL;
static TimestampTz last_cleanup = 0;	/* worker: end of the last cleanup */
static TimestampTz last_history = 0;	/* worker: start of the last snapshot */
static char *claim_scan_key = NULL; /* worker: last workflow_key visited */

#ifdef PTM_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PGDLLEXPORT void ptm_launcher_main(Datum arg);
PGDLLEXPORT void ptm_worker_main(Datum arg);

/* ---------------------------------------------------------------------
 * Settings and shared memory
 * ---------------------------------------------------------------------
 */
void
ptm_worker_define_gucs(void)
{
	DefineCustomStringVariable("ptm_lease.database",
							   gettext_noop("Comma-separated databases in which a ptm_lease worker runs."),
							   gettext_noop("Each named database gets a worker that sweeps expired leases "
											"and cleans up expired rows; an empty list runs none."),
							   &ptm_worker_databases,
							   "postgres",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

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

static Size
worker_shmem_size(void)
{
	return MAXALIGN(sizeof(PtmWorkerShared));
}

static void
worker_shmem_request(void)
{
#ifdef PTM_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(worker_shmem_size());
}

static void
worker_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ptm_workers = ShmemInitStruct("ptm_lease workers", worker_shmem_size(), &found);
	if (!found)
	{
		memset(ptm_workers, 0, worker_shmem_size());
		SpinLockInit(&ptm_workers->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Called from _PG_init when preloaded (and not in binary upgrade): ask for
 * the status memory and register the launcher.
 */
void
ptm_worker_init(void)
{
	BackgroundWorker worker;

#ifdef PTM_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = worker_shmem_request;
#else
	worker_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = worker_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* not on a hot standby: the postmaster starts it when recovery ends */
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = PTM_LAUNCHER_RESTART_SECS;
	strlcpy(worker.bgw_library_name, "ptm_lease", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ptm_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "ptm_lease launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "ptm_lease launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * The databases named in ptm_lease.database, at most PTM_MAX_DB_WORKERS.
 * Names are taken as written (not down-cased), like a dbname= option.
 */
static List *
configured_databases(void)
{
	char	   *raw = pstrdup(ptm_worker_databases ? ptm_worker_databases : "");
	List	   *names = NIL;

	if (!SplitGUCList(raw, ',', &names))
	{
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in ptm_lease.database"),
				 errdetail("The setting is \"%s\".", ptm_worker_databases)));
		return NIL;
	}
	if (list_length(names) > PTM_MAX_DB_WORKERS)
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("ptm_lease.database names %d databases, only the first %d get a worker",
						list_length(names), PTM_MAX_DB_WORKERS)));
		names = list_truncate(names, PTM_MAX_DB_WORKERS);
	}
	return names;
}

static bool
database_configured(const char *dbname)
{
	ListCell   *lc;

	foreach(lc, configured_databases())
	{
		if (strcmp((char *) lfirst(lc), dbname) == 0)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------------
 * Launcher
 * ---------------------------------------------------------------------
 */
typedef struct LaunchedWorker
{
	char		dbname[NAMEDATALEN];
	BackgroundWorkerHandle *handle;
	bool		warned;			/* said once why it could not start */
} LaunchedWorker;

static void
launcher_exit(int code, Datum arg)
{
	SpinLockAcquire(&ptm_workers->mutex);
	if (ptm_workers->launcher_pid == MyProcPid)
		ptm_workers->launcher_pid = 0;
	SpinLockRelease(&ptm_workers->mutex);
}

static bool
worker_running_for(const char *dbname)
{
	bool		running = false;
	int			i;

	SpinLockAcquire(&ptm_workers->mutex);
	for (i = 0; i < PTM_MAX_DB_WORKERS; i++)
	{
		if (ptm_workers->slots[i].pid != 0 &&
			strcmp(ptm_workers->slots[i].dbname, dbname) == 0)
			running = true;
	}
	SpinLockRelease(&ptm_workers->mutex);
	return running;
}

/*
 * Whether dbname exists (reads shared pg_database).  A heap scan, as the
 * autovacuum launcher does: without a database, an index of pg_database can
 * be opened only once the shared relcache init file exists, which after
 * initdb or a crash it does not yet (get_database_oid would end the launcher
 * with "cannot read pg_class without having selected a database").
 */
static bool
database_connectable(const char *dbname)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!found && HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
		found = strcmp(NameStr(((Form_pg_database) GETSTRUCT(tup))->datname), dbname) == 0;
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return found;
}

static void
launch_one(LaunchedWorker *lw)
{
	BackgroundWorker worker;
	pid_t		pid;

	if (lw->handle != NULL &&
		GetBackgroundWorkerPid(lw->handle, &pid) != BGWH_STOPPED)
		return;					/* running, or the postmaster will restart it */

	/* a worker left by an earlier launcher still serves this database */
	if (worker_running_for(lw->dbname))
		return;

	if (!database_connectable(lw->dbname))
	{
		if (!lw->warned)
			ereport(WARNING,
					(errcode(ERRCODE_UNDEFINED_DATABASE),
					 errmsg("database \"%s\" named in ptm_lease.database does not exist", lw->dbname),
					 errhint("Create it, or remove it from ptm_lease.database and reload.")));
		lw->warned = true;
		return;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = PTM_WORKER_RESTART_SECS;
	strlcpy(worker.bgw_library_name, "ptm_lease", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ptm_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "ptm_lease worker for database %s", lw->dbname);
	strlcpy(worker.bgw_type, "ptm_lease worker", BGW_MAXLEN);
	strlcpy(worker.bgw_extra, lw->dbname, BGW_EXTRALEN);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &lw->handle))
	{
		lw->handle = NULL;
		if (!lw->warned)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start the ptm_lease worker for database \"%s\": out of background worker slots",
							lw->dbname),
					 errhint("Raise max_worker_processes (and restart the server); the launcher keeps trying.")));
		lw->warned = true;
		return;
	}
	lw->warned = false;
}

void
ptm_launcher_main(Datum arg)
{
	LaunchedWorker launched[PTM_MAX_DB_WORKERS];
	int			nlaunched = 0;
	MemoryContext loopcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("ptm_lease launcher");

	SpinLockAcquire(&ptm_workers->mutex);
	ptm_workers->launcher_pid = MyProcPid;
	ptm_workers->launcher_started_at = GetCurrentTimestamp();
	SpinLockRelease(&ptm_workers->mutex);
	before_shmem_exit(launcher_exit, (Datum) 0);

	loopcxt = AllocSetContextCreate(TopMemoryContext, "ptm_lease launcher loop",
									ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		List	   *names;
		ListCell   *lc;
		LaunchedWorker next[PTM_MAX_DB_WORKERS];
		int			nnext = 0;
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextSwitchTo(loopcxt);
		MemoryContextReset(loopcxt);

		/*
		 * Keep what we launched for names still listed; a worker for a name
		 * no longer listed notices on its own reload and exits.
		 */
		names = configured_databases();
		foreach(lc, names)
		{
			const char *name = lfirst(lc);
			LaunchedWorker *lw = &next[nnext++];

			memset(lw, 0, sizeof(*lw));
			strlcpy(lw->dbname, name, NAMEDATALEN);
			for (i = 0; i < nlaunched; i++)
			{
				if (strcmp(launched[i].dbname, name) == 0)
				{
					*lw = launched[i];
					break;
				}
			}
		}
		memcpy(launched, next, sizeof(LaunchedWorker) * nnext);
		nlaunched = nnext;

		/* handles live in TopMemoryContext, beyond the loop's reset */
		MemoryContextSwitchTo(TopMemoryContext);
		for (i = 0; i < nlaunched; i++)
			launch_one(&launched[i]);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 PTM_LAUNCHER_NAPTIME_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
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
	SQL_SWEEP("sweep_at", ", sweep_at = l.lease_expires_at"),
	3, {INT8OID, INT8OID, TIMESTAMPTZOID}
};
static PtmPlan plan_sweep_010 = {
	SQL_SWEEP("lease_expires_at", ""),
	3, {INT8OID, INT8OID, TIMESTAMPTZOID}
};

static PtmPlan plan_dedup_cleanup = {
	"DELETE FROM ptm.action_dedup_log WHERE ctid = ANY (ARRAY("
	"  SELECT ctid FROM ptm.action_dedup_log WHERE expires_at <= $1"
	"   LIMIT $2 FOR UPDATE SKIP LOCKED))",
	2, {TIMESTAMPTZOID, INT8OID}
};

static PtmPlan plan_audit_cleanup = {
	"DELETE FROM ptm.lease_audit WHERE audit_id = ANY (ARRAY("
	"  SELECT audit_id FROM ptm.lease_audit WHERE at < $1"
	"   ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED))",
	2, {TIMESTAMPTZOID, INT8OID}
};

static PtmPlan plan_history_cleanup = {
	"DELETE FROM ptm.metric_history WHERE ctid = ANY (ARRAY("
	"  SELECT ctid FROM ptm.metric_history WHERE sampled_at < $1"
	"   ORDER BY sampled_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
	2, {TIMESTAMPTZOID, INT8OID}
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
	"WITH slice AS MATERIALIZED ("
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
	3, {TEXTOID, INT8OID, INT8OID}
};

/* Which of the optional objects exist (an extension not yet updated). */
static PtmPlan plan_schema = {
	"SELECT pg_catalog.to_regclass('ptm.action_dedup_log') IS NOT NULL,"
	"       pg_catalog.to_regclass('ptm.metric_history') IS NOT NULL,"
	"       pg_catalog.to_regprocedure('ptm.snapshot_metrics()') IS NOT NULL",
	0, {InvalidOid}
};

static PtmPlan plan_snapshot = {
	"SELECT ptm.snapshot_metrics()",
	0, {InvalidOid}
};

static void
begin_step(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
end_step(void)
{
	SPI_finish();
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

	ptm_spi_execute(ptm_schema_is_020() ? &plan_sweep : &plan_sweep_010,
					args, NULL, false, 0);
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
		end_step();
		my_slot->extension_installed = false;	/* our own slot */
		return 0;
	}
	my_slot->extension_installed = true;
	counts = sweep_due_leases(ptm_sweep_batch_size);
	end_step();

	/* counted once committed */
	if (counts.expired > 0)
	{
		ptm_count_n(PTM_LEASE_EXPIRATIONS, counts.expired);
		SpinLockAcquire(&ptm_workers->mutex);
		my_slot->expired_total += counts.expired;
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

	SPI_connect();
	counts = sweep_due_leases(max_leases);
	SPI_finish();

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
	"SELECT topic, partition_id, agent_id, lease_epoch, lease_expires_at"
	"  FROM ptm.partition_leases"
	" WHERE agent_id IS NOT NULL AND sweep_at <= $1 AND lease_expires_at <= $1"
	" ORDER BY sweep_at LIMIT 100",
	1, {INT8OID}
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

		ptm_spi_execute(&plan_held_past_expiry, &arg, NULL, true, 0);
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
		ptm_spi_execute(plan, args, NULL, false, 0);
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
	ptm_spi_execute(&plan_schema, NULL, NULL, true, 0);
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
		ptm_spi_execute(&plan_claim_cleanup, args, NULL, false, 0);
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

	if (!my_slot->extension_installed)
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
	if (!my_slot->extension_installed || !schema_objects().snapshot_metrics)
		return;

	begin_step("ptm_lease: snapshot metrics");
	ptm_spi_execute(&plan_snapshot, NULL, NULL, false, 0);
	end_step();

	SpinLockAcquire(&ptm_workers->mutex);
	my_slot->last_history_at = GetCurrentTimestamp();
	my_slot->snapshots++;
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
 * Worker: main loop
 * ---------------------------------------------------------------------
 */
static void
worker_exit(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&ptm_workers->mutex);
	if (my_slot->pid == MyProcPid)
		my_slot->pid = 0;
	SpinLockRelease(&ptm_workers->mutex);
}

/* Take the status slot for dbname; false if another worker holds it. */
static bool
claim_slot(const char *dbname)
{
	PtmWorkerSlot *free_slot = NULL;
	bool		ok = true;
	int			i;

	SpinLockAcquire(&ptm_workers->mutex);
	for (i = 0; i < PTM_MAX_DB_WORKERS; i++)
	{
		PtmWorkerSlot *s = &ptm_workers->slots[i];

		if (strcmp(s->dbname, dbname) == 0)
		{
			free_slot = s;
			break;
		}
		if (free_slot == NULL && s->pid == 0)
			free_slot = s;
	}
	if (free_slot == NULL || (free_slot->pid != 0 && free_slot->pid != MyProcPid))
		ok = false;
	else
	{
		if (strcmp(free_slot->dbname, dbname) != 0)
		{
			memset(free_slot, 0, sizeof(*free_slot));
			strlcpy(free_slot->dbname, dbname, NAMEDATALEN);
		}
		free_slot->pid = MyProcPid;
		free_slot->started_at = GetCurrentTimestamp();
		my_slot = free_slot;
	}
	SpinLockRelease(&ptm_workers->mutex);
	return ok;
}

void
ptm_worker_main(Datum arg)
{
	char		dbname[NAMEDATALEN];
	MemoryContext loopcxt;
	volatile int backoff_ms = 0;

	strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!claim_slot(dbname))
	{
		ereport(LOG,
				(errmsg("ptm_lease worker for database \"%s\" is already running", dbname)));
		proc_exit(0);			/* 0: do not restart this duplicate */
	}
	before_shmem_exit(worker_exit, (Datum) 0);

	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pgstat_report_appname("ptm_lease worker");
	/*
	 * The worker runs as the bootstrap superuser: pin its search_path as the
	 * SQL functions do, so that nothing a database or role setting puts first
	 * can stand in for pg_catalog's operators and functions.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	loopcxt = AllocSetContextCreate(TopMemoryContext, "ptm_lease worker loop",
									ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (!database_configured(dbname))
			{
				ereport(LOG,
						(errmsg("ptm_lease worker for database \"%s\" stops: no longer in ptm_lease.database",
								dbname)));
				proc_exit(0);
			}
		}

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
				run_pass();
				SpinLockAcquire(&ptm_workers->mutex);
				my_slot->last_pass_at = GetCurrentTimestamp();
				my_slot->passes++;
				SpinLockRelease(&ptm_workers->mutex);
				backoff_ms = 0;
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
				RESUME_INTERRUPTS();

				SpinLockAcquire(&ptm_workers->mutex);
				my_slot->last_error_at = GetCurrentTimestamp();
				my_slot->failures++;
				SpinLockRelease(&ptm_workers->mutex);
				backoff_ms = Min(Max(backoff_ms * 2, ptm_sweep_interval_ms), PTM_MAX_BACKOFF_MS);
			}
			PG_END_TRY();
			timeout = backoff_ms > 0 ? backoff_ms : ptm_sweep_interval_ms;
			/* wake for the next snapshot even when sweeps are rare */
			if (backoff_ms == 0 && history_due_in_ms() >= 0)
				timeout = Min(timeout, Max(history_due_in_ms(), 10));
		}

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

/* The "history" row: when this database's worker last took a snapshot. */
static void
history_health(struct ReturnSetInfo *rsinfo, PtmHealthRowFn add_row, const char *dbname,
			   bool served, const PtmWorkerSlot *slot, TimestampTz now)
{
	if (!served)
		add_row(rsinfo, "history", "ok", "not configured",
				psprintf("No worker for database \"%s\" takes snapshots into ptm.metric_history; SELECT ptm.snapshot_metrics() takes one.",
						 dbname ? dbname : "?"));
	else if (ptm_history_interval_ms == 0)
		add_row(rsinfo, "history", "ok", "off",
				"ptm_lease.history_interval is 0: no snapshots are taken; ptm.rate() reads what ptm.metric_history holds.");
	else if (slot != NULL && slot->pid != 0 && slot->last_history_at != 0 &&
			 !TimestampDifferenceExceeds(slot->last_history_at, now, (int) history_stale_after_ms()))
		add_row(rsinfo, "history", "ok", timestamptz_to_str(slot->last_history_at),
				psprintf("Last snapshot at %s, every %d ms; " INT64_FORMAT " snapshots by pid %d.",
						 timestamptz_to_str(slot->last_history_at), ptm_history_interval_ms,
						 slot->snapshots, (int) slot->pid));
	else if ((slot == NULL || slot->last_history_at == 0) &&
			 !TimestampDifferenceExceeds(slot != NULL && slot->pid != 0 ? slot->started_at : PgStartTime,
										 now, (int) history_stale_after_ms()))
		add_row(rsinfo, "history", "ok", "starting", NULL);
	else
		add_row(rsinfo, "history", "warning",
				slot != NULL && slot->last_history_at != 0 ? timestamptz_to_str(slot->last_history_at) : "none",
				"No snapshot lately. See the worker row and the server log; after an upgrade of the library run ALTER EXTENSION ptm_lease UPDATE.");
}

void
ptm_worker_health(struct ReturnSetInfo *rsinfo, PtmHealthRowFn add_row)
{
	char	   *dbname = get_database_name(MyDatabaseId);
	bool		served = dbname && database_configured(dbname);
	bool		standby = RecoveryInProgress();
	TimestampTz now = GetCurrentTimestamp();
	bool		young = TimestampDifferenceExceeds(PgStartTime, now, (int) stale_after_ms()) == false;
	pid_t		launcher_pid = 0;
	PtmWorkerSlot slot = {0};
	bool		have_slot = false;
	int64		expired = 0;
	int64		overdue = 0;

	if (ptm_workers != NULL)
	{
		int			i;

		SpinLockAcquire(&ptm_workers->mutex);
		launcher_pid = ptm_workers->launcher_pid;
		for (i = 0; i < PTM_MAX_DB_WORKERS && dbname; i++)
		{
			if (strcmp(ptm_workers->slots[i].dbname, dbname) == 0)
			{
				slot = ptm_workers->slots[i];
				have_slot = true;
				break;
			}
		}
		SpinLockRelease(&ptm_workers->mutex);
	}

	/* without preload there are no workers; the preload row says so */
	if (ptm_workers == NULL)
		return;

	/* launcher */
	if (standby)
		add_row(rsinfo, "launcher", "ok", "standby",
				"No worker runs on a standby; the launcher starts after promotion.");
	else if (launcher_pid != 0)
		add_row(rsinfo, "launcher", "ok", "running", psprintf("pid %d", (int) launcher_pid));
	else
		add_row(rsinfo, "launcher", young ? "ok" : "warning", young ? "starting" : "not running",
				"The postmaster restarts the launcher a few seconds after it ends.");

	/* this database's worker */
	if (standby)
		;
	else if (!served)
		add_row(rsinfo, "worker", "ok", "not configured",
				psprintf("No worker for database \"%s\": expired leases are taken over on the next acquire but not swept or notified. Add it to ptm_lease.database and reload to sweep.",
						 dbname ? dbname : "?"));
	else if (have_slot && slot.pid != 0 && slot.last_pass_at != 0 &&
			 !TimestampDifferenceExceeds(slot.last_pass_at, now, (int) stale_after_ms()))
		add_row(rsinfo, "worker", "ok", "running",
				psprintf("pid %d; last successful pass at %s; " INT64_FORMAT " passes, " INT64_FORMAT " failed, " INT64_FORMAT " leases expired",
						 (int) slot.pid, timestamptz_to_str(slot.last_pass_at),
						 slot.passes, slot.failures, slot.expired_total));
	else if (have_slot && slot.pid != 0 && slot.last_pass_at == 0 &&
			 !TimestampDifferenceExceeds(slot.started_at, now, (int) stale_after_ms()))
		add_row(rsinfo, "worker", "ok", "starting", psprintf("pid %d", (int) slot.pid));
	else if (!have_slot && young)
		add_row(rsinfo, "worker", "ok", "starting", NULL);
	else
		add_row(rsinfo, "worker", "warning", have_slot && slot.pid != 0 ? "stalled" : "not running",
				have_slot && slot.last_pass_at != 0 ?
				psprintf("Last successful pass at %s; " INT64_FORMAT " passes failed. See the server log.",
						 timestamptz_to_str(slot.last_pass_at), slot.failures) :
				"No successful pass yet. See the server log, and max_worker_processes.");

	/* this database's metric history snapshots */
	if (!standby)
		history_health(rsinfo, add_row, dbname, served, have_slot ? &slot : NULL, now);

	/* sweep backlog: expired leases still owned */
	if (OidIsValid(get_extension_oid("ptm_lease", true)))
	{
		int64		now_ms = ptm_now_ms();
		Datum		args[2] = {Int64GetDatum(now_ms), Int64GetDatum(now_ms - stale_after_ms())};
		/* sweep_at <= expiry: through partition_leases_sweep_idx (0.2.0) */
#define SQL_BACKLOG(DUE) \
			"SELECT count(*), count(*) FILTER (WHERE lease_expires_at <= $2)" \
			"  FROM ptm.partition_leases" \
			" WHERE agent_id IS NOT NULL" DUE " AND lease_expires_at <= $1"
		static PtmPlan plan_backlog = {SQL_BACKLOG(" AND sweep_at <= $1"), 2, {INT8OID, INT8OID}};
		static PtmPlan plan_backlog_010 = {SQL_BACKLOG(""), 2, {INT8OID, INT8OID}};
		bool		isnull;

		SPI_connect();
		ptm_spi_execute(ptm_schema_is_020() ? &plan_backlog : &plan_backlog_010,
						args, NULL, true, 0);
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
