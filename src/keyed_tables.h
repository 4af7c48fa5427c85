/*-------------------------------------------------------------------------
 *
 * keyed_tables.h
 *	  The ptm tables the C paths reach by primary key: found by name, their
 *	  OIDs kept per backend, opened with their key index.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_KEYED_TABLES_H
#define PTM_KEYED_TABLES_H

#include "utils/relcache.h"
#include "storage/lockdefs.h"

#define PTM_ROW_MAX_KEYS	2
#define PTM_ROW_MAX_COLUMNS 12

/*
 * A ptm table reached by its primary key.  The first part is written by the
 * caller; the rest is looked up on first use and checked again by name after
 * any invalidation of the table (ALTER TABLE, GRANT, VACUUM's statistics,
 * ALTER EXTENSION UPDATE, DROP EXTENSION).
 */
typedef struct PtmKeyedTable
{
	const char *relname;		/* in schema ptm */
	const char *pkey_name;		/* its primary key index */
	int			nkeys;			/* columns of the primary key, in order */
	Oid			key_types[PTM_ROW_MAX_KEYS];	/* type of each key column */
	Oid			key_eqfuncs[PTM_ROW_MAX_KEYS];	/* equality of each key column */
	int			ncolumns;		/* columns the caller reads or writes ... */
	const char *columns[PTM_ROW_MAX_COLUMNS];	/* ... by these names */
	Oid			column_types[PTM_ROW_MAX_COLUMNS];	/* ... of these types */

	/* looked up by name (keyed_tables.c) */
	bool		oids_checked;	/* no invalidation of the table since */
	Oid			relid;
	Oid			pkey;
	Oid			guard_fn;		/* ptm._refuse_direct_dml(), the tables' own trigger */
	AttrNumber	attnums[PTM_ROW_MAX_COLUMNS];	/* of columns[i] */

	/* the table's CHECK expressions, compiled (row_access.c) */
	MemoryContext checks_cxt;
	struct ExprState **checks;
	bool		checks_valid;
} PtmKeyedTable;

/*
 * The table and its primary key index, opened with lock (the index in
 * *index); close both with NoLock.  The OIDs opened are those the names lead
 * to once the locks are held.
 */
extern Relation ptm_keyed_table_open(PtmKeyedTable *t, LOCKMODE lock, Relation *index);

/* A relcache invalidation: the tables it may concern are looked up again. */
extern void ptm_keyed_tables_relcache_invalidated(Oid relid);

/* At load: hear of changed functions (a compiled CHECK may call one). */
extern void ptm_keyed_tables_init(void);

#endif							/* PTM_KEYED_TABLES_H */
