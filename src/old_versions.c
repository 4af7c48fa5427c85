/*-------------------------------------------------------------------------
 *
 * old_versions.c
 *	  The entry points that version 0.1.0's SQL objects name, which this
 *	  library refuses to run.
 *
 * A SQL function names its C symbol (AS 'MODULE_PATHNAME', 'symbol'), and a
 * database keeps the declarations of the version it was created or last
 * updated at: after the new library is installed and the server restarted,
 * a database still at 0.1.0 calls this library through 0.1.0's symbols until
 * ALTER EXTENSION ptm_lease UPDATE rebinds them.  As pg_stat_statements does
 * (pg_stat_statements_1_10), each SQL version binds its own symbols: since
 * 0.2.0 the functions whose C code reads or writes the ptm tables are bound
 * to names ending in _0_2 (ptm_try_commit_0_2), and the names 0.1.0 bound
 * are defined here, each raising the same error with the one command that
 * ends it.  So the C code assumes the current schema everywhere, without a
 * catalog probe per call, and an old declaration is told apart by the
 * symbol it names alone.
 *
 * 0.1.0's functions that read only shared memory or the system catalogs
 * keep their symbols and work at either version: ptm.health(),
 * ptm._refuse_direct_dml(), ptm._metric_series(), ptm._key_counters(),
 * ptm._stat_info() and ptm.reset_counters().  docs/architecture.md,
 * "Versions of the SQL objects and the library", says why.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

/*
 * The one error of every refused entry point.  55000 (object not in
 * prerequisite state), as for a library not in shared_preload_libraries:
 * the call is valid and becomes possible after one command, which is not
 * what 0A000 (feature not supported) says.
 */
static Datum
refuse_0_1_0(const char *function)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("ptm_lease's SQL objects in this database are at version 0.1.0, the library at %s",
					PTM_LEASE_VERSION),
			 errdetail("%s is bound to the entry point of version 0.1.0; this library runs the lease, commit "
					   "and projection functions only for the SQL objects of version %s.",
					   function, PTM_LEASE_VERSION),
			 errhint("Run ALTER EXTENSION ptm_lease UPDATE.")));
	pg_unreachable();
	return (Datum) 0;
}

/* Leases (0.1.0: sql/upgrade/ptm_lease--0.1.0.sql) */

PG_FUNCTION_INFO_V1(ptm_acquire_partition_lease);
Datum
ptm_acquire_partition_lease(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.acquire_partition_lease()");
}

PG_FUNCTION_INFO_V1(ptm_renew_lease);
Datum
ptm_renew_lease(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.renew_lease()");
}

PG_FUNCTION_INFO_V1(ptm_release_lease);
Datum
ptm_release_lease(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.release_lease()");
}

PG_FUNCTION_INFO_V1(ptm_force_expire);
Datum
ptm_force_expire(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.force_expire()");
}

PG_FUNCTION_INFO_V1(ptm_check_fence);
Datum
ptm_check_fence(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.check_fence()");
}

PG_FUNCTION_INFO_V1(ptm_acquire_partition_leases);
Datum
ptm_acquire_partition_leases(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.acquire_partition_leases()");
}

PG_FUNCTION_INFO_V1(ptm_renew_leases);
Datum
ptm_renew_leases(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.renew_leases()");
}

PG_FUNCTION_INFO_V1(ptm_ensure_partitions);
Datum
ptm_ensure_partitions(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.ensure_partitions()");
}

/* Commits */

PG_FUNCTION_INFO_V1(ptm_try_commit);
Datum
ptm_try_commit(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.try_commit()");
}

PG_FUNCTION_INFO_V1(ptm_get_state);
Datum
ptm_get_state(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.get_state()");
}

PG_FUNCTION_INFO_V1(ptm_claim_step);
Datum
ptm_claim_step(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.claim_step()");
}

/* Projections */

PG_FUNCTION_INFO_V1(ptm_apply_projection);
Datum
ptm_apply_projection(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.apply_projection()");
}

PG_FUNCTION_INFO_V1(ptm_apply_projection_batch);
Datum
ptm_apply_projection_batch(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.apply_projection_batch()");
}

PG_FUNCTION_INFO_V1(ptm_reset_projection);
Datum
ptm_reset_projection(PG_FUNCTION_ARGS)
{
	return refuse_0_1_0("ptm.reset_projection()");
}
