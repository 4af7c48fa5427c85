/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The per-database background worker: its entry in the workers' table,
 *	  its look for the extension, and the loop that runs its passes.
 *
 * The launcher (launcher.c) starts one in every database that may have the
 * extension, as autoprewarm's leader starts autoprewarm_database_main.  The
 * worker first looks for ptm_lease there: where it is not installed it
 * leaves at once, quietly, and says so in its entry, so that the launcher
 * starts none there again until CREATE EXTENSION.  Where it is installed at
 * another version than this library's (a database still at 0.1.0 after the
 * library was upgraded) the worker stays but runs no pass: this library's
 * statements are written for its own version of the schema.  ALTER
 * EXTENSION ptm_lease UPDATE pokes it when it commits, and it serves the
 * database from then on; ptm.health() says what it waits for.  The version
 * is read once per look (at start and when poked), never per pass.
 *
 * Every ptm_lease.sweep_interval the worker runs the passes of
 * worker_passes.c, in short transactions: the expiry sweep, frozen holders,
 * the cleanup every ptm_lease.cleanup_interval and a snapshot of the
 * counters every ptm_lease.history_interval.  And, woken by the latch a
 * committing transaction sets, between passes: it sends the lease events
 * that transactions of its database queued in announce.c's ring, with
 * NOTIFY in its own transaction (a batch per commit), so that theirs need
 * not NOTIFY; see announce.c.
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

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "announce.h"
#include "ptm_lease.h"
#include "worker_passes.h"
#include "workers.h"

#define PTM_MAX_BACKOFF_MS			60000

/* Settings; see docs/workers.md. */
static int	ptm_sweep_interval_ms = 1000;
static int	ptm_history_interval_ms = 30000;
static int	ptm_cleanup_interval_ms = 60000;

static PtmDbEntry *my_entry = NULL; /* its entry in ptm_workers */
static bool extension_gone = false; /* a pass found no extension */
static bool waiting_for_update = false; /* the extension is at another version */
static TimestampTz last_cleanup = 0;	/* end of the last cleanup */
static TimestampTz last_history = 0;	/* start of the last snapshot */
static TimestampTz next_pass_at = 0;
static int	backoff_ms = 0;		/* after a failed pass, else 0 */

PGDLLEXPORT void ptm_worker_main(Datum arg);

/* ---------------------------------------------------------------------
 * Settings
 * ---------------------------------------------------------------------
 */
/* For the health rows' thresholds and messages (health.c). */
int
ptm_worker_sweep_interval_ms(void)
{
	return ptm_sweep_interval_ms;
}

int
ptm_worker_history_interval_ms(void)
{
	return ptm_history_interval_ms;
}

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

	DefineCustomIntVariable("ptm_lease.cleanup_interval",
							gettext_noop("Time between two deletions of expired dedup records and old audit rows."),
							NULL,
							&ptm_cleanup_interval_ms,
							60000, 10, INT_MAX,
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
}

/* ---------------------------------------------------------------------
 * Its entry, starting and leaving
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
			e->waiting_for_update = false;
			e->extversion[0] = '\0';
			my_entry = e;
			ok = true;
		}
	}
	SpinLockRelease(&ptm_workers->mutex);
	return ok;
}

/* ---------------------------------------------------------------------
 * Looking for the extension
 * ---------------------------------------------------------------------
 */

/*
 * The version of ptm_lease installed in this database (pg_extension), or
 * NULL; in the current transaction.  Also ptm.health()'s.
 */
char *
ptm_installed_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("ptm_lease"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	return version;
}

/* Copy the installed version into buf, in a transaction of its own; false when none. */
static bool
read_installed_version(char *buf, Size len)
{
	char	   *version;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	version = ptm_installed_version();
	if (version != NULL)
		strlcpy(buf, version, len);
	CommitTransactionCommand();
	return version != NULL;
}

/*
 * Serve the database only at this library's version; say so in the log when
 * that changes (at start, and when ALTER EXTENSION UPDATE pokes us).
 */
static void
follow_version(const char *version)
{
	bool		was_waiting = waiting_for_update;

	waiting_for_update = strcmp(version, PTM_LEASE_VERSION) != 0;
	if (waiting_for_update && !was_waiting)
		ereport(LOG,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ptm_lease worker for database \"%s\" waits: the extension there is version %s, the library %s",
						my_entry->dbname, version, PTM_LEASE_VERSION),
				 errdetail("The worker sweeps, cleans up and keeps the metric history only where the versions match."),
				 errhint("Run ALTER EXTENSION ptm_lease UPDATE in database \"%s\"; the worker serves it as soon as that commits.",
						 my_entry->dbname)));
	else if (!waiting_for_update && was_waiting)
		ereport(LOG,
				(errmsg("ptm_lease worker for database \"%s\" serves it: the extension is now version %s",
						my_entry->dbname, version)));
}

/*
 * Whether ptm_lease is installed in this database; if not, leave quietly
 * with the entry saying so, and the launcher starts no worker here until a
 * CREATE EXTENSION pokes it.  A poke that came while we looked (a CREATE
 * EXTENSION that committed meanwhile) makes us look again instead: the
 * check and the state change are one step under the spinlock, so that no
 * poke is lost between them.  Installed, its version says whether the
 * passes run (follow_version).
 */
static void
look_for_extension(void)
{
	for (;;)
	{
		char		version[NAMEDATALEN];
		bool		present;
		bool		had;

		SpinLockAcquire(&ptm_workers->mutex);
		my_entry->poked = false;
		SpinLockRelease(&ptm_workers->mutex);

		present = read_installed_version(version, sizeof(version));

		SpinLockAcquire(&ptm_workers->mutex);
		had = my_entry->has_extension;
		if (present)
		{
			my_entry->has_extension = true;
			my_entry->waiting_for_update = strcmp(version, PTM_LEASE_VERSION) != 0;
			strlcpy(my_entry->extversion, version, sizeof(my_entry->extversion));
			SpinLockRelease(&ptm_workers->mutex);
			extension_gone = false;
			if (!had)
			{
				/* no longer a look: the launcher may start the next one */
				ptm_wake_launcher();
				ereport(LOG,
						(errmsg("ptm_lease worker for database \"%s\" started", my_entry->dbname)));
			}
			follow_version(version);
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

/* Whether the extension was created, dropped or altered here since the last look. */
static bool
poked(void)
{
	bool		p;

	SpinLockAcquire(&ptm_workers->mutex);
	p = my_entry->poked;
	SpinLockRelease(&ptm_workers->mutex);
	return p;
}

/* ---------------------------------------------------------------------
 * The loop
 * ---------------------------------------------------------------------
 */

/* Milliseconds from now until t, 0 when it has passed. */
static long
ms_until(TimestampTz t)
{
	long		secs;
	int			usecs;

	TimestampDifference(GetCurrentTimestamp(), t, &secs, &usecs);
	return secs * 1000 + usecs / 1000;
}

/* Milliseconds until the next snapshot is due (history on), else -1. */
static long
history_due_in_ms(void)
{
	if (ptm_history_interval_ms <= 0)
		return -1;
	return ms_until(TimestampTzPlusMilliseconds(last_history, ptm_history_interval_ms));
}

/*
 * One pass: sweep (batches while full), holders, then cleanup and history
 * when due.  True when the sweep is behind: the next pass is due at once.
 */
static bool
run_pass(void)
{
	bool		behind;

	if (!ptm_worker_sweep_pass(my_entry, &behind))
	{
		extension_gone = true;
		return false;
	}
	ptm_worker_holders_pass(my_entry);

	if (TimestampDifferenceExceeds(last_cleanup, GetCurrentTimestamp(), ptm_cleanup_interval_ms))
	{
		ptm_worker_cleanup_pass(my_entry);
		last_cleanup = GetCurrentTimestamp();
	}

	if (history_due_in_ms() == 0)
	{
		last_history = GetCurrentTimestamp();
		ptm_worker_history_pass(my_entry);
	}
	return behind;
}

/* A pass committed: count it, and schedule the next one (now, when behind). */
static void
pass_done(bool behind)
{
	SpinLockAcquire(&ptm_workers->mutex);
	my_entry->last_pass_at = GetCurrentTimestamp();
	my_entry->passes++;
	SpinLockRelease(&ptm_workers->mutex);
	backoff_ms = 0;
	next_pass_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   behind ? 0 : ptm_sweep_interval_ms);
}

/* A pass raised: log, roll back, count, and try again later. */
static void
pass_failed(MemoryContext loopcxt)
{
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

/*
 * Announce what commits queued; then run a pass when one is due and the
 * extension is at this library's version.  The worker lives on an error.
 */
static void
serve(MemoryContext loopcxt)
{
	PG_TRY();
	{
		ptm_announce_pass();
		if (!waiting_for_update &&
			(GetCurrentTimestamp() >= next_pass_at || history_due_in_ms() == 0))
		{
			pass_done(run_pass());
		}
	}
	PG_CATCH();
	{
		pass_failed(loopcxt);
	}
	PG_END_TRY();
}

/*
 * How long to sleep before the next pass or snapshot, or -1: no end (a
 * worker waiting for ALTER EXTENSION UPDATE wakes on the poke).
 */
static long
sleep_ms(void)
{
	long		timeout;

	if (extension_gone)
		return 0;				/* look again now, and leave */
	if (waiting_for_update)
		return -1;
	timeout = Max(ms_until(next_pass_at), 1);
	/* wake for the next snapshot even when sweeps are rare */
	if (backoff_ms == 0 && history_due_in_ms() >= 0)
		timeout = Min(timeout, Max(history_due_in_ms(), 10));
	return timeout;
}

/* Sleep until the latch is set (a commit, a poke, SIGHUP) or timeout_ms (-1: none). */
static void
wait_for_latch(long timeout_ms)
{
	int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;

	if (timeout_ms >= 0)
		events |= WL_TIMEOUT;
	(void) WaitLatch(MyLatch, events, timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

/* Entry point of the worker; bgw_main_arg is the database's OID. */
void
ptm_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	MemoryContext loopcxt;

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
		CHECK_FOR_INTERRUPTS();
		ptm_worker_leave_if_asked(my_entry);
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
			wait_for_latch(ptm_sweep_interval_ms);
			continue;
		}
		serve(loopcxt);
		wait_for_latch(sleep_ms());
	}
}
