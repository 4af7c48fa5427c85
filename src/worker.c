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
 * starts none there again until CREATE EXTENSION.
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

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "announce.h"
#include "ptm_lease.h"
#include "worker_passes.h"
#include "workers.h"

#define PTM_MAX_BACKOFF_MS			60000

/* Settings; see docs/workers.md. */
int			ptm_sweep_interval_ms = 1000;
int			ptm_history_interval_ms = 30000;
static int	ptm_cleanup_interval_ms = 60000;

static PtmDbEntry *my_entry = NULL; /* its entry in ptm_workers */
static bool extension_gone = false; /* a pass found no extension */
static TimestampTz last_cleanup = 0;	/* end of the last cleanup */
static TimestampTz last_history = 0;	/* start of the last snapshot */
static TimestampTz next_pass_at = 0;
static int	backoff_ms = 0;		/* after a failed pass, else 0 */

PGDLLEXPORT void ptm_worker_main(Datum arg);

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

/* One pass: sweep (batches while full), holders, then cleanup and history when due. */
static void
run_pass(void)
{
	if (!ptm_worker_sweep_pass(my_entry))
	{
		extension_gone = true;
		return;
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
}

/* A pass committed: count it, and schedule the next one. */
static void
pass_done(void)
{
	SpinLockAcquire(&ptm_workers->mutex);
	my_entry->last_pass_at = GetCurrentTimestamp();
	my_entry->passes++;
	SpinLockRelease(&ptm_workers->mutex);
	backoff_ms = 0;
	next_pass_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ptm_sweep_interval_ms);
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
 * Announce what commits queued; then run a pass when one is due.  The
 * worker lives on an error.
 */
static void
serve(MemoryContext loopcxt)
{
	PG_TRY();
	{
		ptm_announce_pass();
		if (GetCurrentTimestamp() >= next_pass_at || history_due_in_ms() == 0)
		{
			run_pass();
			pass_done();
		}
	}
	PG_CATCH();
	{
		pass_failed(loopcxt);
	}
	PG_END_TRY();
}

/* How long to sleep before the next pass or snapshot. */
static long
sleep_ms(void)
{
	long		timeout;

	if (extension_gone)
		return 0;				/* look again now, and leave */
	timeout = Max(ms_until(next_pass_at), 1);
	/* wake for the next snapshot even when sweeps are rare */
	if (backoff_ms == 0 && history_due_in_ms() >= 0)
		timeout = Min(timeout, Max(history_due_in_ms(), 10));
	return timeout;
}

/* Sleep until the latch is set (a commit, a poke, SIGHUP) or timeout_ms. */
static void
wait_for_latch(long timeout_ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout_ms, PG_WAIT_EXTENSION);
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
