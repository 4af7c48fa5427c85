/*-------------------------------------------------------------------------
 *
 * health.c
 *	  ptm.health(): one row per check, the extension's analogue of /healthz.
 *
 * Each row is (check, status, value, detail) with status 'ok', 'warning' or
 * 'error', so a monitoring query can alert on "status <> 'ok'".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "access/genam.h"
#include "access/table.h"
#include "catalog/indexing.h"

#include "ptm_lease.h"
#include "srf.h"

/*
 * Installed version of the extension from pg_extension, or NULL.
 */
static char *
installed_extension_version(void)
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

PG_FUNCTION_INFO_V1(ptm_health);
Datum
ptm_health(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = ptm_init_srf(fcinfo);
	char	   *ext_version = installed_extension_version();
	bool		preloaded = ptm_shmem_available();

	if (preloaded)
		add_row(rsinfo, "preload", "ok", "yes",
				"ptm_lease is in shared_preload_libraries: counters and workers are available.");
	else
		add_row(rsinfo, "preload", "warning", "no",
				"Add ptm_lease to shared_preload_libraries and restart to enable counters and workers.");

	add_row(rsinfo, "library_version", "ok", PTM_LEASE_VERSION, NULL);
	add_row(rsinfo, "extension_version", ext_version ? "ok" : "error", ext_version,
			ext_version ? NULL : "The extension is not installed in this database.");

	/* an older extension's lease, commit and projection calls refuse (old_versions.c) */
	if (ext_version && strcmp(ext_version, PTM_LEASE_VERSION) == 0)
		add_row(rsinfo, "version_match", "ok", "yes", NULL);
	else
		add_row(rsinfo, "version_match", "error", "no",
				psprintf("The library is version %s but the extension in this database is %s: the lease, commit and projection functions refuse until ALTER EXTENSION ptm_lease UPDATE, which takes a moment. Run it now.",
						 PTM_LEASE_VERSION, ext_version ? ext_version : "not installed"));

	/* launcher, this database's worker, sweep backlog (worker.c) */
	ptm_worker_health(rsinfo, add_row);

	return (Datum) 0;
}
