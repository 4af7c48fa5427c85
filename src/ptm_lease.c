/*-------------------------------------------------------------------------
 *
 * ptm_lease.c
 *	  Module load: each file's settings (defined where they are read), the
 *	  shared-memory hooks, and the module's one relcache callback.
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
#include "identity.h"
#include "keyed_tables.h"
#include "lease_limits.h"
#include "ptm_lease.h"
#include "row_access.h"
#include "spi_util.h"
#include "srf.h"
#include "sweep.h"
#include "validate.h"
#include "worker_passes.h"
#include "workers.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * The module's one relcache callback (PostgreSQL has ten slots for all
 * loaded libraries together): every backend-local cache that depends on a
 * relation hears of its invalidation here.
 */
static void
relcache_invalidated(Datum arg, Oid relid)
{
	ptm_limits_relcache_invalidated(relid);
	ptm_keyed_tables_relcache_invalidated(relid);
	ptm_result_types_relcache_invalidated(relid);
}

void
_PG_init(void)
{
	ptm_announce_define_gucs();
	ptm_commits_define_gucs();
	ptm_identity_define_gucs();
	ptm_launcher_define_gucs();
	ptm_lease_rows_define_gucs();
	ptm_limits_define_gucs();
	ptm_metrics_define_gucs();
	ptm_projections_define_gucs();
	ptm_row_access_define_gucs();
	ptm_sweep_define_gucs();
	ptm_validate_define_gucs();
	ptm_worker_define_gucs();
	ptm_worker_passes_define_gucs();

	PTM_MARK_GUC_PREFIX_RESERVED("ptm_lease");

	CacheRegisterRelcacheCallback(relcache_invalidated, (Datum) 0);
	ptm_result_types_init();
	ptm_keyed_tables_init();

	/*
	 * Shared memory and workers only exist when the postmaster loads us; in
	 * binary upgrade mode nothing of ours should run.
	 */
	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;

	ptm_shmem_init();
	ptm_launcher_init();
	ptm_ddl_hooks_init();
}
