/*-------------------------------------------------------------------------
 *
 * ddl_hooks.c
 *	  What backends tell the launcher and the workers (launcher.c,
 *	  worker.c): the extension created, dropped or updated here, a database
 *	  created, and the commands that need a database without its worker.
 *
 * Hooks, installed when the library is preloaded:
 *	  - an object access hook sees every extension created, dropped or
 *		altered (by any path: CASCADE, DROP OWNED, ALTER EXTENSION ...
 *		UPDATE); when the transaction commits, the database's worker is
 *		poked and looks again (it leaves if the extension is gone, and
 *		serves once it is at this library's version), or, where none runs
 *		and the extension is installed, the launcher is asked for one;
 *	  - CREATE DATABASE wakes the launcher when it commits (a database
 *		created from a template with the extension has it too);
 *	  - a worker connected to a database makes DROP DATABASE, ALTER DATABASE
 *		RENAME / SET TABLESPACE and CREATE DATABASE ... TEMPLATE of it fail
 *		("being accessed by other users"; before PostgreSQL 18 nothing
 *		terminates background workers for them).  The ProcessUtility hook
 *		therefore asks the worker to leave before such a command runs and
 *		holds the database until the command's transaction ends: the
 *		launcher starts no worker there meanwhile.
 *
 * Locking: entries and holds of PtmWorkerShared (workers.h) are read and
 * written under its spinlock, as launcher.c describes; latches are set
 * after releasing it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/acl.h"

#include "ptm_lease.h"
#include "workers.h"

#define PTM_HOLD_WAIT_MS			1000	/* then SIGTERM */

static ProcessUtility_hook_type prev_process_utility = NULL;
static object_access_hook_type prev_object_access = NULL;

/* Backend state until the end of the current transaction. */
static bool extension_changed = false;	/* an extension was created, dropped or altered */
static bool extension_present = false;	/* ptm_lease exists at pre-commit */
static char extension_dbname[NAMEDATALEN];	/* this database, at pre-commit */
static bool wake_at_commit = false; /* CREATE DATABASE */
static bool holding = false;	/* this backend holds a database */

/*
 * An extension was created, dropped or altered in this database and the
 * transaction committed: a running worker looks again at once (it leaves if
 * ptm_lease is gone, and serves once it is at this library's version);
 * otherwise, if ptm_lease is installed, the launcher starts one now.
 */
static void
poke_database(bool installed, const char *dbname)
{
	Latch	   *worker_latch = NULL;
	PtmDbEntry *e;

	SpinLockAcquire(&ptm_workers->mutex);
	e = ptm_db_entry(MyDatabaseId);
	if (e != NULL && (e->state == PTM_DB_RUNNING || e->state == PTM_DB_LAUNCHED))
	{
		e->poked = true;
		worker_latch = e->latch;
	}
	else if (installed)
	{
		if (e == NULL)
			e = ptm_new_db_entry(MyDatabaseId, dbname, PTM_DB_WANTED);
		else
		{
			e->state = PTM_DB_WANTED;
			e->changed_at = GetCurrentTimestamp();
		}
	}
	SpinLockRelease(&ptm_workers->mutex);

	if (worker_latch)
		SetLatch(worker_latch);
	ptm_wake_launcher();
}

/*
 * Before a command that needs the database alone: hold it (the launcher
 * starts no worker there until this transaction ends), ask its worker to
 * leave and wait a moment for it; a worker still there after
 * PTM_HOLD_WAIT_MS gets SIGTERM.  The command itself waits up to 5 s for
 * other sessions to go.
 */
static void
hold_database(const char *dbname)
{
	Oid			dboid = get_database_oid(dbname, true);
	PtmDbEntry *e;
	Latch	   *latch = NULL;
	pid_t		pid = 0;
	int			waited = 0;
	int			i;

	/*
	 * Only for a command that may succeed: each of them needs the database's
	 * owner (a database with a worker is no template), and nobody else
	 * should be able to make its worker go and come back.
	 */
	if (!OidIsValid(dboid) || !PTM_DATABASE_OWNERCHECK(dboid, GetUserId()))
		return;

	SpinLockAcquire(&ptm_workers->mutex);
	for (i = 0; i < PTM_MAX_HOLDS; i++)
	{
		if (ptm_workers->holds[i].dboid == InvalidOid)
		{
			ptm_workers->holds[i].dboid = dboid;
			ptm_workers->holds[i].pid = MyProcPid;
			holding = true;
			break;
		}
	}
	e = ptm_db_entry(dboid);
	if (e != NULL)
	{
		e->stop_requested = true;
		latch = e->latch;
		pid = e->pid;
	}
	SpinLockRelease(&ptm_workers->mutex);

	if (pid == 0)
		return;
	if (latch)
		SetLatch(latch);

	for (;;)
	{
		pid_t		now_pid;

		SpinLockAcquire(&ptm_workers->mutex);
		now_pid = e->dboid == dboid ? e->pid : 0;
		SpinLockRelease(&ptm_workers->mutex);
		if (now_pid != pid)
			return;
		if (waited >= PTM_HOLD_WAIT_MS)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		waited += 10;
	}
	/* busy in a long statement: end it; its entry says it was asked to stop */
	(void) kill(pid, SIGTERM);
}

static void
release_holds(void)
{
	int			i;

	SpinLockAcquire(&ptm_workers->mutex);
	for (i = 0; i < PTM_MAX_HOLDS; i++)
	{
		if (ptm_workers->holds[i].pid == MyProcPid)
			ptm_workers->holds[i].dboid = InvalidOid;
	}
	SpinLockRelease(&ptm_workers->mutex);
	holding = false;
}

/* The database a utility statement needs without other sessions, or NULL. */
static const char *
database_needed_alone(Node *stmt)
{
	ListCell   *lc;

	if (IsA(stmt, DropdbStmt))
		return ((DropdbStmt *) stmt)->dbname;
	if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		return ((RenameStmt *) stmt)->subname;
	if (IsA(stmt, AlterDatabaseStmt))
	{
		foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
		{
			if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
				return ((AlterDatabaseStmt *) stmt)->dbname;
		}
	}
	if (IsA(stmt, CreatedbStmt))
	{
		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *def = lfirst(lc);

			if (strcmp(def->defname, "template") == 0 && def->arg != NULL)
				return defGetString(def);
		}
	}
	return NULL;
}

static void
process_utility(PTM_PROCESS_UTILITY_PARAMS)
{
	Node	   *stmt = pstmt->utilityStmt;
	const char *alone = database_needed_alone(stmt);

	if (alone != NULL)
		hold_database(alone);
	if (IsA(stmt, CreatedbStmt))
		wake_at_commit = true;

	if (prev_process_utility)
		prev_process_utility(PTM_PROCESS_UTILITY_ARGS);
	else
		standard_ProcessUtility(PTM_PROCESS_UTILITY_ARGS);
}

/*
 * Any extension created, dropped or altered, by any path (CASCADE, DROP
 * OWNED, ...): ALTER EXTENSION ... UPDATE is how a worker waiting for this
 * library's version learns that it may serve the database.
 */
static void
object_access(ObjectAccessType access, Oid classId, Oid objectId,
			  int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	if (classId == ExtensionRelationId &&
		(access == OAT_POST_CREATE || access == OAT_DROP || access == OAT_POST_ALTER))
		extension_changed = true;
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* still in the transaction: the catalog says what commits */
			if (extension_changed)
			{
				char	   *dbname = get_database_name(MyDatabaseId);

				extension_present = OidIsValid(get_extension_oid("ptm_lease", true));
				strlcpy(extension_dbname, dbname ? dbname : "?", NAMEDATALEN);
			}
			break;
		case XACT_EVENT_COMMIT:
			if (holding)
			{
				release_holds();
				wake_at_commit = true;	/* a renamed or copied database gets its worker back */
			}
			if (extension_changed)
				poke_database(extension_present, extension_dbname);
			else if (wake_at_commit)
				ptm_wake_launcher();
			extension_changed = wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
			if (holding)
			{
				release_holds();
				ptm_wake_launcher();
			}
			extension_changed = wake_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * Called from _PG_init when preloaded (and not in binary upgrade), after
 * ptm_shmem_init(): install the hooks.
 */
void
ptm_ddl_hooks_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
	prev_object_access = object_access_hook;
	object_access_hook = object_access;
	RegisterXactCallback(xact_callback, NULL);
}
