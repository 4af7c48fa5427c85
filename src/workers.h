/*-------------------------------------------------------------------------
 *
 * workers.h
 *	  What the launcher (launcher.c), the per-database workers (worker.c,
 *	  worker_passes.c), the hooks that tell them of changes (ddl_hooks.c)
 *	  and ptm.health() (health.c) share: the table of databases in shared
 *	  memory, and the workers' settings that health reads.
 *
 * One PtmDbEntry per database the launcher is starting, or has started, a
 * worker for.  Databases without the extension have no entry: the launcher
 * remembers them in its own memory and forgets them on the next
 * CREATE EXTENSION there.  The locking protocol is in launcher.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_WORKERS_H
#define PTM_WORKERS_H

#include "postgres.h"

#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

/* Databases with an entry at a time; a worker is needed for each anyway. */
#define PTM_MAX_DATABASES			128
/* A worker that ended without being asked is started again after this. */
#define PTM_WORKER_RESTART_SECS		5
/* How long "starting" is ok in ptm.health() before it warns. */
#define PTM_START_GRACE_MS			15000

/* Where an entry stands; see the launcher's loop for the transitions. */
typedef enum PtmDbState
{
	PTM_DB_FREE = 0,			/* entry unused */
	PTM_DB_WANTED,				/* CREATE EXTENSION asked for a worker */
	PTM_DB_LAUNCHED,			/* registered with the postmaster */
	PTM_DB_RUNNING,				/* the worker is attached (pid set) */
	PTM_DB_NO_EXTENSION,		/* the worker found no ptm_lease and left */
	PTM_DB_STOPPED,				/* left when asked (DDL, ptm_lease.database) */
	PTM_DB_EXITED,				/* ended without being asked: restarted */
	PTM_DB_NO_SLOT				/* no background worker slot was free */
} PtmDbState;

typedef struct PtmDbEntry
{
	Oid			dboid;			/* InvalidOid when free */
	char		dbname[NAMEDATALEN];	/* at launch, for messages */
	PtmDbState	state;
	pid_t		pid;			/* the attached worker, else 0 */
	Latch	   *latch;			/* its latch, while attached */
	bool		stop_requested; /* leave at the next check */
	bool		poked;			/* the extension changed since the last check */
	bool		has_extension;	/* a worker found ptm_lease here */
	bool		waiting_for_update; /* ... at another version: no passes */
	char		extversion[NAMEDATALEN];	/* the version it found */
	TimestampTz changed_at;		/* when state last changed */
	TimestampTz started_at;		/* when the worker attached */
	TimestampTz last_pass_at;	/* last pass that committed */
	TimestampTz last_error_at;
	int64		passes;
	int64		failures;		/* passes that raised an error */
	int64		expired_total;	/* leases this worker marked expired */
	TimestampTz last_history_at;	/* last snapshot into ptm.metric_history */
	int64		snapshots;
} PtmDbEntry;

/* A database a DDL command needs without other sessions (ddl_hooks.c). */
#define PTM_MAX_HOLDS				16
typedef struct PtmDbHold
{
	Oid			dboid;
	pid_t		pid;			/* the backend running the command */
} PtmDbHold;

typedef struct PtmWorkerShared
{
	slock_t		mutex;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	TimestampTz launcher_started_at;
	PtmDbHold	holds[PTM_MAX_HOLDS];
	PtmDbEntry	dbs[PTM_MAX_DATABASES];
} PtmWorkerShared;

/* launcher.c: the launcher and this table */
extern void ptm_launcher_define_gucs(void);
extern void ptm_launcher_init(void);
extern PtmWorkerShared *ptm_workers;
extern void ptm_workers_shmem_request(void);
extern void ptm_workers_shmem_startup(void);
extern PtmDbEntry *ptm_db_entry(Oid dboid);
extern bool ptm_database_selected(const char *dbname);
extern const char *ptm_database_setting(void);
extern void ptm_wake_launcher(void);
extern PtmDbEntry *ptm_new_db_entry(Oid dboid, const char *dbname, PtmDbState state);

/* ddl_hooks.c: what backends tell the launcher and the workers */
extern void ptm_ddl_hooks_init(void);

/* worker.c: the per-database worker */
extern int	ptm_worker_sweep_interval_ms(void);
extern int	ptm_worker_history_interval_ms(void);
extern void ptm_worker_define_gucs(void);
extern char *ptm_installed_version(void);

#endif							/* PTM_WORKERS_H */
