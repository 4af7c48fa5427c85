/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  Which databases get a ptm_lease worker, and when: the launcher, and
 *	  the workers' table in shared memory that it shares with the workers.
 *
 * As TimescaleDB's launcher does, the launcher serves every database where
 * the extension is installed, with no setting to turn it on.  It is a
 * static background worker that connects to no database (as the autovacuum
 * launcher does) and reads the shared catalog pg_database.  It starts a
 * worker (worker.c) in each database that
 *	  - allows connections, is not a template (a session connected to a
 *		template makes CREATE DATABASE fail) and is not half-dropped, and
 *	  - is selected by ptm_lease.database: '*' (the default) selects all, a
 *		list only those named, '' none.
 * The launcher cannot see pg_extension of a database it is not connected
 * to, so the worker looks: where ptm_lease is not installed it leaves at
 * once, quietly, and the launcher starts none there again until something
 * changes.  A worker slot is spent only where the extension is installed,
 * plus a short look per database when the launcher starts (at most
 * PTM_MAX_PROBES at a time).
 *
 * What wakes the launcher, and so bounds the time to a worker:
 *	  - CREATE EXTENSION ptm_lease (and DROP EXTENSION, by any path) pokes it
 *		when the transaction commits: a worker starts at once (ddl_hooks.c);
 *	  - CREATE DATABASE wakes it when it commits (a database created from a
 *		template with the extension has it too);
 *	  - a worker that ends, SIGHUP (ptm_lease.database changed), and in any
 *		case every PTM_LAUNCHER_NAPTIME_MS (5 s), when it rescans pg_database.
 *
 * A command that needs a database without other sessions (DROP DATABASE,
 * ...) holds it until its transaction ends (ddl_hooks.c): the launcher
 * starts no worker there meanwhile, and removes the holds of backends that
 * are gone.  A dropped database simply disappears from the next scan.
 *
 * Workers are registered BGW_NEVER_RESTART: the launcher alone decides,
 * from the entry a worker leaves behind, whether to start one again (after
 * PTM_WORKER_RESTART_SECS when it ended without being asked, e.g.
 * pg_terminate_backend), so that a worker for a dropped database is not
 * restarted by the postmaster forever.
 *
 * Locking protocol of PtmWorkerShared (workers.h)
 *	  Everything is protected by its spinlock, held only to read or write a
 *	  few fields; latches are set after releasing it.  Entries are allocated
 *	  by the launcher (to start a worker) or by a backend whose CREATE
 *	  EXTENSION committed (state WANTED); only the launcher frees them.  A
 *	  worker owns its entry's pid, latch and statistics while its pid is set.
 *	  Holds are added and removed by the backend running the command; the
 *	  launcher removes those of backends that are gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"

#include "ptm_lease.h"
#include "workers.h"

#define PTM_LAUNCHER_RESTART_SECS	5
#define PTM_LAUNCHER_NAPTIME_MS		5000
#define PTM_MAX_PROBES				2	/* workers looking for the extension at once */

/* Setting; see docs/workers.md. */
static char *ptm_worker_databases = NULL;

PtmWorkerShared *ptm_workers = NULL;

PGDLLEXPORT void ptm_launcher_main(Datum arg);

/* ---------------------------------------------------------------------
 * ptm_lease.database
 * ---------------------------------------------------------------------
 */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval ? *newval : "");
	List	   *names = NIL;
	bool		ok = SplitGUCList(raw, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid: write '*', '' or names separated by commas.");
	list_free(names);
	pfree(raw);
	return ok;
}

void
ptm_launcher_define_gucs(void)
{
	DefineCustomStringVariable("ptm_lease.database",
							   gettext_noop("Databases where ptm_lease workers may run: '*' every database with the extension, "
											"or a comma-separated list, or '' none."),
							   gettext_noop("A worker sweeps expired leases, sends their NOTIFY, cleans up and keeps "
											"the metric history of its database."),
							   &ptm_worker_databases,
							   "*",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_databases, NULL, NULL);
}

const char *
ptm_database_setting(void)
{
	return ptm_worker_databases ? ptm_worker_databases : "";
}

/*
 * Whether ptm_lease.database lets dbname have a worker.  Names are taken as
 * written (not down-cased), like a dbname= option; a '*' element selects
 * every database.
 */
bool
ptm_database_selected(const char *dbname)
{
	char	   *raw = pstrdup(ptm_database_setting());
	List	   *names = NIL;
	ListCell   *lc;
	bool		selected = false;

	if (!SplitGUCList(raw, ',', &names))
		return false;			/* the check hook makes this impossible */
	foreach(lc, names)
	{
		const char *name = lfirst(lc);

		if (strcmp(name, "*") == 0 || strcmp(name, dbname) == 0)
			selected = true;
	}
	list_free(names);
	pfree(raw);
	return selected;
}

/* ---------------------------------------------------------------------
 * Shared memory (asked for and set up by shmem.c's hooks)
 * ---------------------------------------------------------------------
 */
static Size
workers_shmem_size(void)
{
	return MAXALIGN(sizeof(PtmWorkerShared));
}

void
ptm_workers_shmem_request(void)
{
	RequestAddinShmemSpace(workers_shmem_size());
}

void
ptm_workers_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ptm_workers = ShmemInitStruct("ptm_lease workers", workers_shmem_size(), &found);
	if (!found)
	{
		memset(ptm_workers, 0, workers_shmem_size());
		SpinLockInit(&ptm_workers->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The entry of dboid, or NULL.  Caller holds the spinlock. */
PtmDbEntry *
ptm_db_entry(Oid dboid)
{
	int			i;

	for (i = 0; i < PTM_MAX_DATABASES; i++)
	{
		if (ptm_workers->dbs[i].dboid == dboid && OidIsValid(dboid))
			return &ptm_workers->dbs[i];
	}
	return NULL;
}

/* A fresh entry for dboid, or NULL when all are taken.  Caller holds the spinlock. */
PtmDbEntry *
ptm_new_db_entry(Oid dboid, const char *dbname, PtmDbState state)
{
	int			i;

	for (i = 0; i < PTM_MAX_DATABASES; i++)
	{
		PtmDbEntry *e = &ptm_workers->dbs[i];

		if (e->dboid != InvalidOid)
			continue;
		memset(e, 0, sizeof(*e));
		e->dboid = dboid;
		strlcpy(e->dbname, dbname, NAMEDATALEN);
		e->state = state;
		e->changed_at = GetCurrentTimestamp();
		return e;
	}
	return NULL;
}

void
ptm_wake_launcher(void)
{
	Latch	   *latch;

	SpinLockAcquire(&ptm_workers->mutex);
	latch = ptm_workers->launcher_latch;
	SpinLockRelease(&ptm_workers->mutex);
	if (latch)
		SetLatch(latch);
}

/* ---------------------------------------------------------------------
 * Launcher
 * ---------------------------------------------------------------------
 */

/* What the launcher knows of one database (its own memory, keyed by OID). */
typedef struct LauncherDb
{
	Oid			dboid;			/* hash key */
	char		dbname[NAMEDATALEN];
	bool		seen;			/* eligible in the latest scan */
	bool		no_extension;	/* its last worker found none: wait for a poke */
	BackgroundWorkerHandle *handle; /* of the worker this launcher started */
	TimestampTz retry_at;		/* start no worker before */
	bool		warned;			/* said once why it could not start one */
} LauncherDb;

static HTAB *launcher_dbs = NULL;
static bool names_checked = false;	/* ptm_lease.database's names looked up */
static bool table_full_warned = false;

static void
launcher_exit(int code, Datum arg)
{
	SpinLockAcquire(&ptm_workers->mutex);
	if (ptm_workers->launcher_pid == MyProcPid)
	{
		ptm_workers->launcher_pid = 0;
		ptm_workers->launcher_latch = NULL;
	}
	SpinLockRelease(&ptm_workers->mutex);
}

/*
 * Scan pg_database: mark the eligible databases seen (adding new ones) and
 * the others not.  A heap scan, as the autovacuum launcher does: without a
 * database, an index of pg_database can be opened only once the shared
 * relcache init file exists, which after initdb or a crash it does not yet.
 * Once per setting, warn about listed names that get no worker.
 */
static void
scan_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	HASH_SEQ_STATUS seq;
	LauncherDb *db;
	List	   *listed = NIL;
	List	   *found = NIL;
	ListCell   *lc;
	char	   *raw = pstrdup(ptm_database_setting());
	MemoryContext cxt = CurrentMemoryContext;	/* the loop's: outlives the scan */

	(void) SplitGUCList(raw, ',', &listed);

	hash_seq_init(&seq, launcher_dbs);
	while ((db = hash_seq_search(&seq)) != NULL)
		db->seen = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);
		const char *name = NameStr(d->datname);
		Oid			dboid = d->oid;
		bool		usable = d->datallowconn && !d->datistemplate &&
			d->datconnlimit != DATCONNLIMIT_INVALID_DB;
		bool		isnew;

		MemoryContext txcxt;

		if (!ptm_database_selected(name))
			continue;
		txcxt = MemoryContextSwitchTo(cxt);
		found = lappend(found, pstrdup(name));
		MemoryContextSwitchTo(txcxt);
		if (!usable)
		{
			/* only a name listed on purpose deserves a word */
			foreach(lc, listed)
			{
				if (!names_checked && strcmp((char *) lfirst(lc), name) == 0)
					ereport(WARNING,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("database \"%s\" named in ptm_lease.database gets no ptm_lease worker", name),
							 errdetail("It is a template or does not allow connections: a session connected to "
									   "a template makes CREATE DATABASE from it fail.")));
			}
			continue;
		}

		db = hash_search(launcher_dbs, &dboid, HASH_ENTER, &isnew);
		if (isnew)
		{
			memset(((char *) db) + sizeof(Oid), 0, sizeof(*db) - sizeof(Oid));
			db->retry_at = 0;
		}
		strlcpy(db->dbname, name, NAMEDATALEN);
		db->seen = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);

	if (!names_checked)
	{
		foreach(lc, listed)
		{
			const char *name = lfirst(lc);
			ListCell   *lf;
			bool		exists = strcmp(name, "*") == 0;

			foreach(lf, found)
				exists = exists || strcmp((char *) lfirst(lf), name) == 0;
			if (!exists)
				ereport(WARNING,
						(errcode(ERRCODE_UNDEFINED_DATABASE),
						 errmsg("database \"%s\" named in ptm_lease.database does not exist", name),
						 errhint("Create it, or remove it from ptm_lease.database and reload.")));
		}
		names_checked = true;
	}
	pfree(raw);
}

/* Whether a backend running a DDL command holds dboid; drops holds of gone backends. */
static bool
database_held(Oid dboid)
{
	bool		held = false;
	int			i;

	SpinLockAcquire(&ptm_workers->mutex);
	for (i = 0; i < PTM_MAX_HOLDS; i++)
	{
		PtmDbHold  *h = &ptm_workers->holds[i];

		if (h->dboid != dboid || dboid == InvalidOid)
			continue;
		/* BackendPidGetProc takes an LWLock: not under the spinlock */
		SpinLockRelease(&ptm_workers->mutex);
		if (BackendPidGetProc(h->pid) != NULL)
			return true;
		SpinLockAcquire(&ptm_workers->mutex);
		if (h->dboid == dboid)
			h->dboid = InvalidOid;	/* the backend is gone */
	}
	SpinLockRelease(&ptm_workers->mutex);
	return held;
}

/*
 * Read what the entries say and settle them: learn which databases have no
 * extension, free entries no longer needed, ask workers to leave databases
 * that are no longer eligible, and schedule the restart of workers that
 * ended.  Returns the workers now looking for the extension (probes).
 */
static int
settle_entries(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			probes = 0;
	int			i;

	for (i = 0; i < PTM_MAX_DATABASES; i++)
	{
		PtmDbEntry *e = &ptm_workers->dbs[i];
		LauncherDb *db;
		Oid			dboid;
		Latch	   *wake = NULL;
		bool		had_handle;
		bool		launched_alive = false;

		SpinLockAcquire(&ptm_workers->mutex);
		dboid = e->dboid;
		SpinLockRelease(&ptm_workers->mutex);
		if (!OidIsValid(dboid))
			continue;

		db = hash_search(launcher_dbs, &dboid, HASH_FIND, NULL);
		had_handle = db != NULL && db->handle != NULL;
		if (had_handle)
		{
			pid_t		pid;

			launched_alive = GetBackgroundWorkerPid(db->handle, &pid) != BGWH_STOPPED;
			if (!launched_alive)
			{
				pfree(db->handle);
				db->handle = NULL;
			}
		}

		SpinLockAcquire(&ptm_workers->mutex);
		if (e->dboid != dboid)
		{
			SpinLockRelease(&ptm_workers->mutex);
			continue;
		}
		if (db == NULL || !db->seen)
		{
			/* dropped, or no longer eligible: the worker leaves, the entry goes */
			if (e->pid != 0)
			{
				e->stop_requested = true;
				wake = e->latch;
			}
			else if (!launched_alive)
				e->dboid = InvalidOid;
			else
				e->stop_requested = true;	/* it leaves as it attaches */
		}
		else
		{
			switch (e->state)
			{
				case PTM_DB_WANTED:
					db->no_extension = false;
					db->retry_at = 0;
					break;
				case PTM_DB_LAUNCHED:

					/*
					 * Ended before attaching (an error at start), or started
					 * by an earlier launcher and never attached.
					 */
					if (e->pid == 0 && !launched_alive &&
						(had_handle || TimestampDifferenceExceeds(e->changed_at, now, 10 * 1000)))
					{
						e->state = PTM_DB_EXITED;
						e->changed_at = now;
						db->retry_at = TimestampTzPlusMilliseconds(now, PTM_WORKER_RESTART_SECS * 1000);
					}
					else if (!e->has_extension)
						probes++;
					break;
				case PTM_DB_RUNNING:
					if (!e->has_extension)
						probes++;
					break;
				case PTM_DB_NO_EXTENSION:
					db->no_extension = true;
					e->dboid = InvalidOid;
					break;
				case PTM_DB_EXITED:
					db->retry_at = TimestampTzPlusMilliseconds(e->changed_at,
															   PTM_WORKER_RESTART_SECS * 1000);
					break;
				case PTM_DB_STOPPED:
				case PTM_DB_NO_SLOT:
				case PTM_DB_FREE:
					break;
			}
			/* a look that found nothing leaves no entry behind */
			if (e->dboid != InvalidOid && !e->has_extension && e->pid == 0 &&
				!launched_alive && e->state != PTM_DB_WANTED && e->state != PTM_DB_EXITED &&
				e->state != PTM_DB_LAUNCHED)
				e->dboid = InvalidOid;
		}
		SpinLockRelease(&ptm_workers->mutex);
		if (wake)
			SetLatch(wake);
	}
	return probes;
}

/* Register the worker for db; on failure note why in its entry. */
static void
launch_worker(LauncherDb *db, PtmDbEntry *e, bool known)
{
	BackgroundWorker worker;
	MemoryContext oldcxt;
	bool		registered;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
#ifdef BGWORKER_INTERRUPTIBLE
	/* PostgreSQL 18+: DROP DATABASE and friends end it themselves */
	worker.bgw_flags |= BGWORKER_INTERRUPTIBLE;
#endif
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher decides */
	strlcpy(worker.bgw_library_name, "ptm_lease", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ptm_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "ptm_lease worker for database %s", db->dbname);
	strlcpy(worker.bgw_type, "ptm_lease worker", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(db->dboid);
	worker.bgw_notify_pid = MyProcPid;

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);	/* the handle outlives the loop */
	registered = RegisterDynamicBackgroundWorker(&worker, &db->handle);
	MemoryContextSwitchTo(oldcxt);
	if (registered)
	{
		db->warned = false;
		return;
	}

	db->handle = NULL;
	SpinLockAcquire(&ptm_workers->mutex);
	if (known)
	{
		e->state = PTM_DB_NO_SLOT;
		e->changed_at = GetCurrentTimestamp();
	}
	else
		e->dboid = InvalidOid;	/* only a look: try again later */
	SpinLockRelease(&ptm_workers->mutex);
	db->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PTM_LAUNCHER_NAPTIME_MS);
	if (known && !db->warned)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the ptm_lease worker for database \"%s\": out of background worker slots",
						db->dbname),
				 errhint("Raise max_worker_processes (and restart the server); the launcher keeps trying.")));
	db->warned = db->warned || known;
}

/*
 * Start the workers that should run and do not: in every eligible database
 * not known to lack the extension and not held by a DDL command, once its
 * restart delay has passed.  Looks for the extension (databases never
 * served) are limited to PTM_MAX_PROBES at a time.  Returns the time until
 * the next restart is due, in ms, or -1.
 */
static long
start_workers(int probes)
{
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS seq;
	LauncherDb *db;
	long		next_ms = -1;

	hash_seq_init(&seq, launcher_dbs);
	while ((db = hash_seq_search(&seq)) != NULL)
	{
		PtmDbEntry *e;
		bool		known;
		bool		wanted;

		if (!db->seen)
		{
			pid_t		pid;

			if (db->handle == NULL || GetBackgroundWorkerPid(db->handle, &pid) == BGWH_STOPPED)
			{
				if (db->handle)
					pfree(db->handle);
				(void) hash_search(launcher_dbs, &db->dboid, HASH_REMOVE, NULL);
			}
			continue;
		}
		if (db->retry_at > now)
		{
			long		secs;
			int			usecs;

			TimestampDifference(now, db->retry_at, &secs, &usecs);
			next_ms = next_ms < 0 ? secs * 1000 + usecs / 1000 + 1 :
				Min(next_ms, secs * 1000 + usecs / 1000 + 1);
			continue;
		}
		if (database_held(db->dboid))
			continue;

		SpinLockAcquire(&ptm_workers->mutex);
		e = ptm_db_entry(db->dboid);
		if (e != NULL && (e->state == PTM_DB_LAUNCHED || e->state == PTM_DB_RUNNING))
		{
			SpinLockRelease(&ptm_workers->mutex);
			continue;
		}
		wanted = e != NULL && e->state == PTM_DB_WANTED;
		known = e != NULL && (e->has_extension || wanted);
		if ((db->no_extension && !wanted) || (!known && probes >= PTM_MAX_PROBES))
		{
			SpinLockRelease(&ptm_workers->mutex);
			continue;
		}
		if (e == NULL)
			e = ptm_new_db_entry(db->dboid, db->dbname, PTM_DB_LAUNCHED);
		if (e == NULL)
		{
			SpinLockRelease(&ptm_workers->mutex);
			if (!table_full_warned)
				ereport(WARNING,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("ptm_lease workers serve at most %d databases; database \"%s\" gets none",
								PTM_MAX_DATABASES, db->dbname),
						 errhint("Name the databases that need a worker in ptm_lease.database.")));
			table_full_warned = true;
			continue;
		}
		strlcpy(e->dbname, db->dbname, NAMEDATALEN);
		e->state = PTM_DB_LAUNCHED;
		e->stop_requested = false;
		e->changed_at = now;
		SpinLockRelease(&ptm_workers->mutex);

		if (!known)
			probes++;
		db->no_extension = false;
		launch_worker(db, e, known);
	}
	return next_ms;
}

void
ptm_launcher_main(Datum arg)
{
	HASHCTL		ctl;
	MemoryContext loopcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("ptm_lease launcher");

	SpinLockAcquire(&ptm_workers->mutex);
	ptm_workers->launcher_pid = MyProcPid;
	ptm_workers->launcher_latch = MyLatch;
	ptm_workers->launcher_started_at = GetCurrentTimestamp();
	SpinLockRelease(&ptm_workers->mutex);
	before_shmem_exit(launcher_exit, (Datum) 0);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(LauncherDb);
	launcher_dbs = hash_create("ptm_lease launcher databases", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS);
	loopcxt = AllocSetContextCreate(TopMemoryContext, "ptm_lease launcher loop",
									ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		timeout = PTM_LAUNCHER_NAPTIME_MS;
		long		next_ms;
		int			probes;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			names_checked = false;
		}

		MemoryContextSwitchTo(loopcxt);
		MemoryContextReset(loopcxt);
		scan_databases();
		probes = settle_entries();
		next_ms = start_workers(probes);
		if (next_ms >= 0)
			timeout = Min(timeout, next_ms);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Called from _PG_init when preloaded (and not in binary upgrade), after
 * ptm_shmem_init(): register the launcher.
 */
void
ptm_launcher_init(void)
{
	BackgroundWorker worker;

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
