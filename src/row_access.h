/*-------------------------------------------------------------------------
 *
 * row_access.h
 *	  Read or update one row of a ptm table by its primary key, without SQL.
 *
 * The hot paths (renew_lease, the contended acquire's read, try_commit's
 * version update, claim_step, the lease fence) touch exactly one row found
 * by its primary key.  Through SPI each such call planned nothing but still paid a second
 * executor start and the tables' statement trigger; here the row is found
 * with the primary key index and changed with table_tuple_update(), with the
 * executor's own checks and the recheck READ COMMITTED's UPDATE does after a
 * concurrent change.  A table whose UPDATE would do more is left to SQL
 * (PTM_ROW_USE_SQL).  See row_access.c for what is and is not done on the
 * caller's behalf.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_ROW_ACCESS_H
#define PTM_ROW_ACCESS_H

#include "executor/tuptable.h"
#include "nodes/lockoptions.h"

#include "keyed_tables.h"


/*
 * Judge the current version of a row.  To change it, write the new values
 * into values/isnull (indexed by attribute number - 1, filled with the row's
 * own) and return true; return false to leave the row as it is.  After a
 * concurrent change the judge is asked again about the newest version, so it
 * must not keep state from an earlier call.
 */
typedef bool (*PtmRowJudge) (PtmKeyedTable *t, TupleTableSlot *row,
							 Datum *values, bool *isnull, void *arg);

typedef enum PtmRowOutcome
{
	PTM_ROW_MISSING,			/* no row with that key */
	PTM_ROW_KEPT,				/* the judge left the (newest) row alone */
	PTM_ROW_UPDATED,			/* the judge's new version is written */
	PTM_ROW_USE_SQL,			/* the table needs SQL (row_access.c): use it */
	PTM_ROW_BUSY,				/* another transaction held it past wait_ms */
	PTM_ROW_RETRY				/* held by another: now locked for the caller
								 * after a wait; call again (fresh clock) */
} PtmRowOutcome;

/* wait_ms for a wait as long as the row's holder lives, as UPDATE waits */
#define PTM_ROW_WAIT_FOREVER	(-1)

/* holders ptm_row_holders() reports at most */
#define PTM_ROW_MAX_HOLDERS		16

/*
 * Raise the errors an UPDATE of the table raises when it starts, before it
 * reads any row (a read-only transaction or parallel mode; a publication
 * without the replica identity it needs), as ptm_row_update() raises them:
 * for a caller's SQL path that may end without its UPDATE.
 */
extern void ptm_row_check_update(PtmKeyedTable *t);

/*
 * Update the row with primary key keys[] as an UPDATE statement of the
 * calling transaction would: see row_access.c.  When another transaction
 * holds the row, wait at most wait_ms (PTM_ROW_WAIT_FOREVER: as UPDATE
 * does) and return PTM_ROW_BUSY, or PTM_ROW_RETRY once the row is locked.
 */
extern PtmRowOutcome ptm_row_update(PtmKeyedTable *t, const Datum *keys, int wait_ms,
									PtmRowJudge judge, void *arg);

/*
 * Read the row with primary key keys[] as a SELECT statement would, and let
 * the judge copy out what it needs (its return value is ignored).  Returns
 * PTM_ROW_KEPT after the judge saw the row, PTM_ROW_MISSING without calling
 * it, or PTM_ROW_USE_SQL.
 */
extern PtmRowOutcome ptm_row_read(PtmKeyedTable *t, const Datum *keys,
								  PtmRowJudge judge, void *arg);

/*
 * Lock the row with primary key keys[] in mode (LockTupleShare: FOR SHARE;
 * LockTupleNoKeyExclusive: FOR NO KEY UPDATE), as "SELECT ... FOR ..." would
 * in the calling transaction (waiting at most wait_ms for a holder of the
 * row, then locking its newest version), and let the judge copy out what it
 * needs (its return value is ignored).  Returns PTM_ROW_KEPT when locked,
 * PTM_ROW_BUSY when still held after wait_ms (the judge sees the row as last
 * committed), PTM_ROW_MISSING without calling the judge, or PTM_ROW_USE_SQL.
 */
extern PtmRowOutcome ptm_row_lock(PtmKeyedTable *t, const Datum *keys, LockTupleMode mode,
								  int wait_ms, PtmRowJudge judge, void *arg);

/*
 * The backends whose transactions hold the row with primary key keys[]
 * (locked or being changed), other than the caller's: at most max pids, and
 * how many were found.  A prepared transaction has no backend and is left
 * out.
 */
extern int	ptm_row_holders(PtmKeyedTable *t, const Datum *keys, int *pids, int max);

/* At load: ptm_lease.direct_row_access. */
extern void ptm_row_access_define_gucs(void);

/* Column i of the caller's list, from a row handed to a judge. */
static inline Datum
ptm_row_column(PtmKeyedTable *t, TupleTableSlot *row, int i, bool *isnull)
{
	*isnull = row->tts_isnull[t->attnums[i] - 1];
	return row->tts_values[t->attnums[i] - 1];
}

/* Set column i of the caller's list in a judge's new values. */
static inline void
ptm_row_set(PtmKeyedTable *t, Datum *values, bool *isnull, int i, Datum value, bool null)
{
	values[t->attnums[i] - 1] = value;
	isnull[t->attnums[i] - 1] = null;
}

/*
 * Whether two texts are equal as "=" finds them under the ptm tables'
 * deterministic collation: byte equality, for a judge comparing a column.
 */
static inline bool
ptm_row_text_eq(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

#endif							/* PTM_ROW_ACCESS_H */
