/*-------------------------------------------------------------------------
 *
 * health.c
 *	  ptm.health(): one row per check, the extension's analogue of /healthz.
 *
 * Each row is (check, status, value, detail) with status 'ok', 'warning' or
 * 'error', so a monitoring query can alert on "status <> 'ok'".  The rows:
 * preload, library and extension versions; and, when the library is
 * preloaded, the launcher, this database's worker, its metric history
 * snapshots, the announcements (announce.c) and the sweep backlog.  A
 * warning's detail says why and what to set.
 *
 * Locking: the workers' table (workers.h) is copied under its spinlock,
 * once per call; the rows are built from the copy.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "announce.h"
#include "ptm_lease.h"
#include "srf.h"
#include "sweep.h"
#include "workers.h"

/* What a database without a worker misses, said in each warning. */
#define PTM_WITHOUT_WORKER \
	"Without a worker, expired leases are taken over by the next acquire but not swept or notified, " \
	"and there is no metric history for ptm.rate()."

static void
add_row(ReturnSetInfo *rsinfo, const char *check, const char *status,
		const char *value, const char *detail)
{
	Datum		values[4];
	bool		nulls[4] = {false};

	values[0] = CStringGetTextDatum(check);
	values[1] = CStringGetTextDatum(status);
	if (value)
		values[2] = CStringGetTextDatum(value);
	else
		nulls[2] = true;
	if (detail)
		values[3] = CStringGetTextDatum(detail);
	else
		nulls[3] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* ---------------------------------------------------------------------
 * The workers' rows
 * ---------------------------------------------------------------------
 */

/* What the workers' rows are built from: a copy taken under the spinlock. */
typedef struct WorkersView
{
	const char *dbname;
	TimestampTz now;
	pid_t		launcher_pid;
	TimestampTz launcher_started_at;
	bool		have_entry;		/* this database has an entry */
	PtmDbEntry	entry;
} WorkersView;

/* How long a worker may go without a successful pass before a warning. */
static long
stale_after_ms(void)
{
	return Max(60000L, 10L * ptm_worker_sweep_interval_ms());
}

/* How long the worker may go without a snapshot before a warning. */
static long
history_stale_after_ms(void)
{
	return Min((long) INT_MAX, Max(60000L, 3L * ptm_worker_history_interval_ms() + ptm_worker_sweep_interval_ms()));
}

/*
 * Why no worker serves this database although the setting selects it, for
 * the "not running" row.
 */
static char *
not_running_detail(const WorkersView *v)
{
	const PtmDbEntry *e = &v->entry;

	if (v->launcher_pid == 0)
		return psprintf("The launcher is not running (see the launcher row), so no worker serves database \"%s\". " PTM_WITHOUT_WORKER,
						v->dbname);
	if (!v->have_entry)
		return psprintf("No worker serves database \"%s\". The launcher starts one as soon as CREATE EXTENSION commits "
						"and at server start: see the server log (out of background worker slots, or more than %d "
						"databases with ptm_lease?). " PTM_WITHOUT_WORKER,
						v->dbname, PTM_MAX_DATABASES);
	switch (e->state)
	{
		case PTM_DB_NO_SLOT:
			return psprintf("No background worker slot was free for the worker of database \"%s\" "
							"(max_worker_processes = %d, shared with parallel queries and other extensions): "
							"raise max_worker_processes and restart the server; the launcher keeps trying every 5 s. "
							PTM_WITHOUT_WORKER,
							v->dbname, max_worker_processes);
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
							timestamptz_to_str(e->changed_at), v->dbname);
	}
}

/* Whether this database is a template or refuses connections: it gets no worker. */
static bool
is_template(void)
{
	HeapTuple	tup;
	bool		template = false;

	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);

		template = d->datistemplate || !d->datallowconn;
		ReleaseSysCache(tup);
	}
	return template;
}

/*
 * The "worker" row of a worker that runs here (pid set): waiting for ALTER
 * EXTENSION UPDATE, running, starting or stalled.  Returns whether it
 * serves the database.
 */
static bool
attached_worker_row(ReturnSetInfo *rsinfo, const WorkersView *v)
{
	const PtmDbEntry *e = &v->entry;

	if (e->waiting_for_update)
	{
		add_row(rsinfo, "worker", "warning", "waiting for update",
				psprintf("pid %d waits for ALTER EXTENSION ptm_lease UPDATE: the extension in database \"%s\" is "
						 "version %s and the library %s, whose statements need its own version. Until the update "
						 "commits, the worker sweeps nothing, cleans nothing up and takes no metric snapshots.",
						 (int) e->pid, v->dbname, e->extversion, PTM_LEASE_VERSION));
		return false;
	}
	if (e->last_pass_at != 0 &&
		!TimestampDifferenceExceeds(e->last_pass_at, v->now, (int) stale_after_ms()))
		add_row(rsinfo, "worker", "ok", "running",
				psprintf("pid %d; last successful pass at %s; " INT64_FORMAT " passes, " INT64_FORMAT " failed, " INT64_FORMAT " leases expired",
						 (int) e->pid, timestamptz_to_str(e->last_pass_at),
						 e->passes, e->failures, e->expired_total));
	else if (e->last_pass_at == 0 &&
			 !TimestampDifferenceExceeds(e->started_at, v->now, (int) stale_after_ms()))
		add_row(rsinfo, "worker", "ok", "starting", psprintf("pid %d", (int) e->pid));
	else
		add_row(rsinfo, "worker", "warning", "stalled",
				e->last_pass_at != 0 ?
				psprintf("pid %d; last successful pass at %s; " INT64_FORMAT " passes failed. See the server log.",
						 (int) e->pid, timestamptz_to_str(e->last_pass_at), e->failures) :
				psprintf("pid %d; no successful pass yet. See the server log.", (int) e->pid));
	return true;
}

/*
 * The "worker" row: whether a worker serves this database, and if not,
 * why and what to set.  Returns whether one serves it (running or
 * starting), which the history and backlog rows follow.
 */
static bool
worker_health(ReturnSetInfo *rsinfo, const WorkersView *v)
{
	const PtmDbEntry *e = &v->entry;
	const char *setting = ptm_database_setting();

	if (!ptm_database_selected(v->dbname))
	{
		add_row(rsinfo, "worker", "warning", "not configured",
				setting[0] == '\0' ?
				psprintf("ptm_lease.database is empty: no database gets a worker. Set ptm_lease.database = '*' "
						 "(every database with the extension), or a list that names \"%s\", and reload. " PTM_WITHOUT_WORKER,
						 v->dbname) :
				psprintf("ptm_lease.database = '%s' leaves out database \"%s\". Set ptm_lease.database = '*' "
						 "(every database with the extension), or add \"%s\" to the list, and reload. " PTM_WITHOUT_WORKER,
						 setting, v->dbname, v->dbname));
		return false;
	}
	if (is_template())
	{
		add_row(rsinfo, "worker", "warning", "template",
				psprintf("Database \"%s\" is a template or does not allow connections: it gets no worker, because a "
						 "session connected to a template makes CREATE DATABASE from it fail. Databases created "
						 "from it get their own. " PTM_WITHOUT_WORKER,
						 v->dbname));
		return false;
	}

	if (v->have_entry && e->pid != 0)
		return attached_worker_row(rsinfo, v);

	/* no worker yet: ok while the launcher is at it, for a short while */
	if ((v->have_entry && (e->state == PTM_DB_WANTED || e->state == PTM_DB_LAUNCHED) &&
		 !TimestampDifferenceExceeds(e->changed_at, v->now, PTM_START_GRACE_MS)) ||
		(!v->have_entry &&
		 !TimestampDifferenceExceeds(v->launcher_pid != 0 ? v->launcher_started_at : PgStartTime,
									 v->now, PTM_START_GRACE_MS)))
	{
		add_row(rsinfo, "worker", "ok", "starting",
				"The launcher is starting the worker of this database.");
		return true;
	}

	add_row(rsinfo, "worker", "warning", "not running", not_running_detail(v));
	return false;
}

/* The "history" row: when this database's worker last took a snapshot. */
static void
history_health(ReturnSetInfo *rsinfo, const WorkersView *v, bool served)
{
	const PtmDbEntry *e = &v->entry;

	if (!served)
		add_row(rsinfo, "history", "ok", "no worker",
				psprintf("No worker takes snapshots into ptm.metric_history in database \"%s\": see the worker row. SELECT ptm.snapshot_metrics() takes one.",
						 v->dbname));
	else if (ptm_worker_history_interval_ms() == 0)
		add_row(rsinfo, "history", "ok", "off",
				"ptm_lease.history_interval is 0: no snapshots are taken; ptm.rate() reads what ptm.metric_history holds.");
	else if (v->have_entry && e->pid != 0 && e->last_history_at != 0 &&
			 !TimestampDifferenceExceeds(e->last_history_at, v->now, (int) history_stale_after_ms()))
		add_row(rsinfo, "history", "ok", timestamptz_to_str(e->last_history_at),
				psprintf("Last snapshot at %s, every %d ms; " INT64_FORMAT " snapshots by pid %d.",
						 timestamptz_to_str(e->last_history_at), ptm_worker_history_interval_ms(),
						 e->snapshots, (int) e->pid));
	else if ((!v->have_entry || e->last_history_at == 0) &&
			 !TimestampDifferenceExceeds(v->have_entry && e->pid != 0 ? e->started_at : PgStartTime,
										 v->now, (int) history_stale_after_ms()))
		add_row(rsinfo, "history", "ok", "starting", NULL);
	else
		add_row(rsinfo, "history", "warning",
				v->have_entry && e->last_history_at != 0 ? timestamptz_to_str(e->last_history_at) : "none",
				"No snapshot lately. See the worker row and the server log; after an upgrade of the library run ALTER EXTENSION ptm_lease UPDATE.");
}

/* The "sweep_backlog" row: expired leases still owned (sweep.c counts them). */
static void
backlog_health(ReturnSetInfo *rsinfo, bool served, bool standby)
{
	PtmSweepBacklog b;
	bool		behind;

	ptm_sweep_backlog(stale_after_ms(), &b);
	behind = b.overdue > 0 || b.look_lag_ms > stale_after_ms();
	add_row(rsinfo, "sweep_backlog",
			served && !standby && behind ? "warning" : "ok",
			psprintf(INT64_FORMAT, b.expired),
			served ? psprintf(INT64_FORMAT " leases past expiry not yet swept, " INT64_FORMAT " of them for over %ld s; "
							  "the sweeper's oldest due look is " INT64_FORMAT " s late (warning over %ld s).",
							  b.expired, b.overdue, stale_after_ms() / 1000,
							  b.look_lag_ms / 1000, stale_after_ms() / 1000) :
			"Leases past expiry still naming their owner; no worker sweeps this database.");
}

/*
 * The rows of the launcher and of this database's worker.  The backlog is
 * counted only where the extension is at the library's version: the
 * statement needs that version's schema.
 */
static void
workers_health(ReturnSetInfo *rsinfo, bool extension_current)
{
	bool		standby = RecoveryInProgress();
	WorkersView v = {0};
	bool		young;
	bool		served = false;

	/* without preload there are no workers; the preload row says so */
	if (ptm_workers == NULL)
		return;
	v.dbname = get_database_name(MyDatabaseId);
	if (v.dbname == NULL)
		v.dbname = "?";
	v.now = GetCurrentTimestamp();
	young = !TimestampDifferenceExceeds(PgStartTime, v.now, (int) stale_after_ms());

	SpinLockAcquire(&ptm_workers->mutex);
	{
		PtmDbEntry *e = ptm_db_entry(MyDatabaseId);

		v.launcher_pid = ptm_workers->launcher_pid;
		v.launcher_started_at = ptm_workers->launcher_started_at;
		if (e != NULL)
		{
			v.entry = *e;
			v.have_entry = true;
		}
	}
	SpinLockRelease(&ptm_workers->mutex);

	/* launcher */
	if (standby)
		add_row(rsinfo, "launcher", "ok", "standby",
				"No worker runs on a standby; the launcher starts after promotion.");
	else if (v.launcher_pid != 0)
		add_row(rsinfo, "launcher", "ok", "running", psprintf("pid %d", (int) v.launcher_pid));
	else
		add_row(rsinfo, "launcher", young ? "ok" : "warning", young ? "starting" : "not running",
				"The postmaster restarts the launcher a few seconds after it ends.");

	/* this database's worker, and its metric history snapshots */
	if (!standby)
	{
		served = worker_health(rsinfo, &v);
		history_health(rsinfo, &v, served);
		ptm_announce_health(rsinfo, add_row);
	}

	if (extension_current)
		backlog_health(rsinfo, served, standby);
}

/* ---------------------------------------------------------------------
 * ptm.health()
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(ptm_health);
Datum
ptm_health(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = ptm_init_srf(fcinfo);
	char	   *ext_version = ptm_installed_version();
	bool		preloaded = ptm_shmem_available();
	bool		current = ext_version != NULL && strcmp(ext_version, PTM_LEASE_VERSION) == 0;

	if (preloaded)
		add_row(rsinfo, "preload", "ok", "yes",
				"ptm_lease is in shared_preload_libraries: counters and workers are available.");
	else
		add_row(rsinfo, "preload", "warning", "no",
				"Add ptm_lease to shared_preload_libraries and restart to enable counters and workers.");

	add_row(rsinfo, "library_version", "ok", PTM_LEASE_VERSION, NULL);
	add_row(rsinfo, "extension_version", ext_version ? "ok" : "error", ext_version,
			ext_version ? NULL : "The extension is not installed in this database.");

	/* an older extension: its lease, commit and projection calls refuse (old_versions.c), its worker waits */
	if (current)
		add_row(rsinfo, "version_match", "ok", "yes", NULL);
	else
		add_row(rsinfo, "version_match", "error", "no",
				psprintf("The library is version %s but the extension in this database is %s: the lease, commit and projection functions refuse until ALTER EXTENSION ptm_lease UPDATE, which takes a moment. Run it now.",
						 PTM_LEASE_VERSION, ext_version ? ext_version : "not installed"));

	workers_health(rsinfo, current);

	return (Datum) 0;
}
