/*-------------------------------------------------------------------------
 *
 * ptm_lease.c
 *	  Module load: the ptm_lease.* settings and the shared-memory request.
 *
 * Loaded through shared_preload_libraries, the module asks for shared memory
 * (counters) and registers its background workers (launcher.c).  Loaded
 * on demand by CREATE EXTENSION or a function call, it only defines its
 * settings: the SQL functions work, and what needs shared memory says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/inval.h"

#include "announce.h"
#include "balance.h"
#include "identity.h"
#include "ptm_lease.h"
#include "row_access.h"
#include "spi_util.h"
#include "srf.h"

PG_MODULE_MAGIC;

/* Settings; see docs/reference.md for each. */
int			ptm_max_ttl_ms = 3600 * 1000;
int			ptm_max_name_bytes = 256;
bool		ptm_enable_counters = true;

void		_PG_init(void);

/*
 * The module's one relcache callback (PostgreSQL has ten slots for all
 * loaded libraries together): every backend-local cache that depends on a
 * relation hears of its invalidation here.
 */
static void
relcache_invalidated(Datum arg, Oid relid)
{
	ptm_schema_relcache_invalidated(relid);
	ptm_balance_relcache_invalidated(relid);
	ptm_row_access_relcache_invalidated(relid);
	ptm_result_types_relcache_invalidated(relid);
}

void
_PG_init(void)
{
	DefineCustomIntVariable("ptm_lease.max_ttl",
							gettext_noop("Longest lease TTL a caller may ask for."),
							gettext_noop("A lease that outlives its owner blocks its partition "
										 "for this long at most."),
							&ptm_max_ttl_ms,
							3600 * 1000, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ptm_lease.max_name_bytes",
							gettext_noop("Longest topic, agent, worker, workflow or projection name, in bytes."),
							NULL,
							&ptm_max_name_bytes,
							256, 1, 8192,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("ptm_lease.enable_counters",
							 gettext_noop("Counts every call's outcome in shared memory."),
							 gettext_noop("Turning it off only serves to measure what counting costs."),
							 &ptm_enable_counters,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	ptm_announce_define_gucs();
	ptm_balance_define_gucs();
	ptm_commits_define_gucs();
	ptm_identity_define_gucs();
	ptm_launcher_define_gucs();
	ptm_leases_define_gucs();
	ptm_metrics_define_gucs();
	ptm_projections_define_gucs();
	ptm_row_access_define_gucs();
	ptm_worker_define_gucs();

	PTM_MARK_GUC_PREFIX_RESERVED("ptm_lease");

	CacheRegisterRelcacheCallback(relcache_invalidated, (Datum) 0);
	ptm_result_types_init();
	ptm_row_access_init();

	/*
	 * Shared memory and workers only exist when the postmaster loads us; in
	 * binary upgrade mode nothing of ours should run.
	 */
	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;

	ptm_shmem_init();
	ptm_launcher_init();
}
