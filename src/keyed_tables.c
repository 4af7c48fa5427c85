/*-------------------------------------------------------------------------
 *
 * keyed_tables.c
 *	  The ptm tables the C paths reach by primary key (row_access.c): found
 *	  by name in schema ptm, their OIDs and column numbers kept per backend,
 *	  opened together with their key index.
 *
 * Invalidations
 *	  Any relcache invalidation of a table or of its key index marks the
 *	  table's OIDs unchecked and its compiled CHECKs stale.  Most of them
 *	  change nothing this file keeps (a GRANT, the statistics VACUUM and
 *	  ANALYZE write); a few do (DROP and CREATE EXTENSION give new OIDs,
 *	  REINDEX CONCURRENTLY a new key index, ALTER TABLE moves columns).  So
 *	  the OIDs are never cleared by the callback: taking a lock runs the
 *	  callbacks, and an opener holding one OID while a callback clears the
 *	  other would open OID 0.  Instead ptm_keyed_table_open() looks the names
 *	  up again after its locks are granted whenever the table was marked
 *	  meanwhile, and keeps what it opened only if the names still lead there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "keyed_tables.h"

/* Every table a caller has used, so that invalidation can reach it. */
#define PTM_MAX_KEYED_TABLES	8
static PtmKeyedTable *known_tables[PTM_MAX_KEYED_TABLES];
static int	n_known_tables = 0;

void
ptm_keyed_tables_relcache_invalidated(Oid relid)
{
	int			i;

	for (i = 0; i < n_known_tables; i++)
	{
		PtmKeyedTable *t = known_tables[i];

		if (relid == InvalidOid || relid == t->relid || relid == t->pkey)
		{
			t->oids_checked = false;
			t->checks_valid = false;
		}
	}
}

/* A function changed: a compiled CHECK may have inlined or folded it. */
static void
functions_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	int			i;

	for (i = 0; i < n_known_tables; i++)
		known_tables[i]->checks_valid = false;
}

void
ptm_keyed_tables_init(void)
{
	CacheRegisterSyscacheCallback(PROCOID, functions_changed, (Datum) 0);
}

static void
remember_table(PtmKeyedTable *t)
{
	int			i;

	for (i = 0; i < n_known_tables; i++)
		if (known_tables[i] == t)
			return;
	if (n_known_tables >= PTM_MAX_KEYED_TABLES)
		elog(ERROR, "too many ptm tables with direct row access");
	known_tables[n_known_tables++] = t;
}

/*
 * Look up the table, its primary key and the caller's columns.  Checked from
 * the start: an invalidation read by the look-ups themselves marks it again.
 */
static void
resolve_table(PtmKeyedTable *t)
{
	Oid			nsp = get_namespace_oid("ptm", false);
	Oid			relid = get_relname_relid(t->relname, nsp);
	Oid			pkey = get_relname_relid(t->pkey_name, nsp);
	int			i;

	remember_table(t);
	t->oids_checked = true;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"ptm.%s\" does not exist", t->relname),
				 errhint("Reinstall the extension: DROP EXTENSION ptm_lease; CREATE EXTENSION ptm_lease;")));
	if (!OidIsValid(pkey) || IndexGetRelation(pkey, true) != relid)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("primary key index \"ptm.%s\" of relation \"ptm.%s\" does not exist",
						t->pkey_name, t->relname),
				 errdetail("The ptm functions find rows of ptm.%s through that index by its name.",
						   t->relname),
				 errhint("Give the index its name back with ALTER INDEX ... RENAME TO %s.",
						 t->pkey_name)));
	for (i = 0; i < t->ncolumns; i++)
	{
		t->attnums[i] = get_attnum(relid, t->columns[i]);
		if (t->attnums[i] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"ptm.%s\" does not exist",
							t->columns[i], t->relname),
					 errhint("Run ALTER EXTENSION ptm_lease UPDATE, or give the column its name back.")));
	}
	t->guard_fn = LookupFuncName(list_make2(makeString("ptm"), makeString("_refuse_direct_dml")),
								 0, NULL, true);
	t->pkey = pkey;
	t->relid = relid;
}

/*
 * Lock and open the relations the cached OIDs name, the index only when the
 * table is there; false, with nothing left open, when either is gone.
 */
static bool
open_by_oids(Oid relid, Oid pkey, LOCKMODE lock, Relation *rel, Relation *index)
{
	*rel = try_table_open(relid, lock);
	*index = *rel ? try_relation_open(pkey, lock) : NULL;
	if (*index != NULL && (*index)->rd_rel->relkind == RELKIND_INDEX)
		return true;
	if (*index != NULL)
		relation_close(*index, lock);
	if (*rel != NULL)
		table_close(*rel, lock);
	return false;
}

Relation
ptm_keyed_table_open(PtmKeyedTable *t, LOCKMODE lock, Relation *index)
{
	for (;;)
	{
		Oid			relid;
		Oid			pkey;
		Relation	rel;

		/* never looked up, or a look-up that raised: look up first */
		if (!t->oids_checked || !OidIsValid(t->relid))
			resolve_table(t);
		relid = t->relid;
		pkey = t->pkey;
		if (open_by_oids(relid, pkey, lock, &rel, index))
		{
			/* the locks read the invalidations: do the names still lead here? */
			if (!t->oids_checked)
				resolve_table(t);
			if (t->relid == relid && t->pkey == pkey)
				return rel;
			relation_close(*index, lock);
			table_close(rel, lock);
		}
		else
			t->oids_checked = false;
		CHECK_FOR_INTERRUPTS();
	}
}
