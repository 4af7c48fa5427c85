/*-------------------------------------------------------------------------
 *
 * row_access.c
 *	  Read or update one row of a ptm table by its primary key, without SQL.
 *
 * ptm_row_update() does what "UPDATE ptm.t SET ... WHERE <key> AND <judge>"
 * does in the calling transaction, with the executor's own calls where the
 * executor has one.  Logical replication's apply worker updates a row the
 * same way (ExecSimpleRelationUpdate() in execReplication.c); measured
 * against that list of duties:
 *
 * Performed, as UPDATE performs them:
 *	- CheckCmdReplicaIdentity(): a published table without a usable replica
 *	  identity, or whose row filter or column list reads a column outside
 *	  it, refuses the update (55000) before any row is read.
 *	- A fresh snapshot for each call, as SPI gives each statement of a
 *	  volatile function: under READ COMMITTED one taken now (so a row
 *	  committed while the calling statement ran is seen), under REPEATABLE
 *	  READ and SERIALIZABLE the transaction's; CommandCounterIncrement()
 *	  first, so a second call in one statement sees the first one's change.
 *	- The row is found through the primary key index (the btree scan and
 *	  the heap fetch take SERIALIZABLE's predicate locks).
 *	- Columns dropped from the table are stored as NULL in the new version
 *	  (the old version's value, TOASTed or not, is not carried forward).
 *	- ExecConstraints(): NOT NULL and every CHECK constraint, NOT VALID ones
 *	  included, on the new version, after every recheck.  The compiled CHECK
 *	  expressions are kept per table until its relcache entry or any function
 *	  changes.
 *	- table_tuple_update() waits for a concurrent writer of the row (for at
 *	  most wait_ms when the caller bounds the wait: "Bounded waits" below).
 *	  If that writer committed a newer version: under REPEATABLE READ or
 *	  SERIALIZABLE the call fails with 40001; under READ COMMITTED the newest
 *	  version is locked (TUPLE_LOCK_FLAG_FIND_LAST_VERSION) and judged again,
 *	  which is the executor's EvalPlanQual recheck.  So two callers never
 *	  both win on a stale reading.
 *	- ExecInsertIndexTuples() when the new version is not a HOT update, with
 *	  the columns the judge changed as the statement's updated columns (the
 *	  btree "index unchanged" hint reads them).
 *
 * Not performed, so the caller is told PTM_ROW_USE_SQL and runs its SQL:
 *	- Triggers: any enabled UPDATE trigger, row or statement level, other
 *	  than the tables' own guard (ptm._refuse_direct_dml, which exists to
 *	  refuse DML from outside the ptm functions); rules; row security;
 *	  stored generated columns; a partitioned table or a partition.
 *	- A table whose key or caller's columns no longer have the types the C
 *	  code reads and writes (ALTER COLUMN ... TYPE): SQL converts, C would
 *	  misread.
 *	- ptm_lease.direct_row_access = off: every call, for the differential
 *	  test (test/t/113_differential.pl) and for a DBA who suspects this file.
 *	- No permission check either way: like the SQL it replaces, it runs for
 *	  a SECURITY DEFINER function whose owner owns the table.
 *
 * Bounded waits (the lease functions, docs/leases.md)
 *	  An UPDATE waits for as long as the transaction holding the row lives;
 *	  a frozen client idle inside a fenced transaction would hold every
 *	  caller behind it.  heap_update() has no way to give up, so before it
 *	  runs, the row's xmax is looked at: when another live transaction holds
 *	  the row, the row is locked first, in a subtransaction with
 *	  lock_timeout at wait_ms (lock_wait.c), and the caller is told
 *	  PTM_ROW_BUSY, or once locked PTM_ROW_RETRY: judge again on a fresh
 *	  clock.  A lock taken by someone between that look and the update is the
 *	  one wait left; lock_timeout bounds it to wait_ms too (an ERROR, 55P03,
 *	  in that narrow race).  With wait_ms = 0 the race would be lost at once,
 *	  so such a call locks the row first (without waiting), then updates it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/multixact.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/subtrans.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "keyed_tables.h"
#include "lock_wait.h"
#include "row_access.h"

/* ptm_lease.direct_row_access: off sends every call to SQL */
static bool direct_row_access = true;

void
ptm_row_access_define_gucs(void)
{
	DefineCustomBoolVariable("ptm_lease.direct_row_access",
							 gettext_noop("Lets the hot calls find and change their row without SQL."),
							 gettext_noop("Off sends renew_lease, release_lease, acquire's first read and its take, "
										  "try_commit's version update, claim_step and the lease fence through SQL, "
										  "with the same results."),
							 &direct_row_access,
							 true,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
}

/*
 * A snapshot for one statement of the calling function, as SPI gives each
 * statement of a volatile function: under READ COMMITTED a new one, under
 * REPEATABLE READ the transaction's, with the command counter advanced past
 * the earlier commands.  Pop it after.
 */
static Snapshot
push_statement_snapshot(void)
{
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	return GetActiveSnapshot();
}

/* What an access does with the row, which decides what makes it need SQL. */
typedef enum RowAccessKind
{
	ACCESS_READ,				/* SELECT */
	ACCESS_LOCK,				/* SELECT ... FOR SHARE / FOR NO KEY UPDATE */
	ACCESS_UPDATE,				/* UPDATE */
	ACCESS_HOLDERS				/* the row's xmax, for the worker */
} RowAccessKind;

/* One access to a keyed table: the relation, its key index, a snapshot, a slot. */
typedef struct RowAccess
{
	Relation	rel;
	Relation	index;
	Snapshot	snapshot;
	TupleTableSlot *row;		/* the row found, then its newest version */
} RowAccess;

/* Whether the key columns still have the types key_eqfuncs compare. */
static bool
keys_have_their_types(PtmKeyedTable *t, Relation rel, Relation index)
{
	int			i;

	if (index->rd_index->indnkeyatts != t->nkeys)
		return false;
	for (i = 0; i < t->nkeys; i++)
	{
		AttrNumber	attnum = index->rd_index->indkey.values[i];

		if (attnum <= 0 ||
			TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != t->key_types[i])
			return false;
	}
	return true;
}

/*
 * Whether the caller's columns still have the types its judge reads and
 * writes, in a plain table (ALTER COLUMN ... TYPE needs SQL's conversions).
 */
static bool
columns_have_their_types(PtmKeyedTable *t, Relation rel)
{
	int			i;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition)
		return false;
	for (i = 0; i < t->ncolumns; i++)
		if (TupleDescAttr(RelationGetDescr(rel), t->attnums[i] - 1)->atttypid != t->column_types[i])
			return false;
	return true;
}

/*
 * Whether an UPDATE of this table fires a trigger of the DBA's, row or
 * statement level: every enabled UPDATE trigger but the tables' own guard.
 */
static bool
has_update_trigger(PtmKeyedTable *t, Relation rel)
{
	TriggerDesc *trigdesc = rel->trigdesc;
	int			i;

	if (trigdesc == NULL)
		return false;
	for (i = 0; i < trigdesc->numtriggers; i++)
	{
		Trigger    *trigger = &trigdesc->triggers[i];

		if (TRIGGER_FOR_UPDATE(trigger->tgtype) &&
			trigger->tgenabled != TRIGGER_DISABLED &&
			trigger->tgfoid != t->guard_fn)
			return true;
	}
	return false;
}

/* What makes an access of this kind take SQL: see the header. */
static bool
access_needs_sql(RowAccessKind kind, PtmKeyedTable *t, Relation rel, Relation index)
{
	if (!keys_have_their_types(t, rel, index))
		return true;
	if (kind == ACCESS_HOLDERS)
		return false;
	if (!direct_row_access || !columns_have_their_types(t, rel) ||
		rel->rd_rel->relrowsecurity)
		return true;
	if (kind != ACCESS_UPDATE)
		return false;
	return rel->rd_rel->relhasrules ||
		(rel->rd_att->constr && rel->rd_att->constr->has_generated_stored) ||
		has_update_trigger(t, rel);
}

/*
 * Open the table and its key index with lock and push the statement
 * snapshot.  Returns false, with nothing left open (the locks stay), when
 * the access needs SQL.  An update checks the replica identity first, as
 * UPDATE does when its executor starts, row or no row.
 */
static bool
begin_access(RowAccess *ra, PtmKeyedTable *t, LOCKMODE lock, RowAccessKind kind)
{
	ra->rel = ptm_keyed_table_open(t, lock, &ra->index);
	if (access_needs_sql(kind, t, ra->rel, ra->index))
	{
		index_close(ra->index, NoLock);
		table_close(ra->rel, NoLock);
		return false;
	}
	if (kind == ACCESS_UPDATE)
		CheckCmdReplicaIdentity(ra->rel, CMD_UPDATE);
	ra->snapshot = push_statement_snapshot();
	ra->row = table_slot_create(ra->rel, NULL);
	return true;
}

/* Find the row with the given key, visible to the snapshot, into ra->row. */
static bool
fetch_by_key(PtmKeyedTable *t, RowAccess *ra, const Datum *keys)
{
	ScanKeyData skey[PTM_ROW_MAX_KEYS];
	IndexScanDesc scan;
	bool		found;
	int			i;

	for (i = 0; i < t->nkeys; i++)
		ScanKeyEntryInitialize(&skey[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   ra->index->rd_indcollation[i], t->key_eqfuncs[i], keys[i]);
	scan = index_beginscan(ra->rel, ra->index, ra->snapshot, t->nkeys, 0);
	index_rescan(scan, skey, t->nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, ra->row);
	index_endscan(scan);
	if (found)
		slot_getallattrs(ra->row);
	return found;
}

/* Close what begin_access opened; the locks stay until the transaction ends. */
static void
end_access(RowAccess *ra)
{
	ExecDropSingleTupleTableSlot(ra->row);
	PopActiveSnapshot();
	index_close(ra->index, NoLock);
	table_close(ra->rel, NoLock);
}

/* A concurrent change committed: under REPEATABLE READ or SERIALIZABLE, 40001. */
static void
refuse_if_xact_snapshot(TM_Result result)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to concurrent %s",
						result == TM_Updated ? "update" : "delete")));
}

/*
 * The executor's state for the result relation of one update, made when the
 * first constraint check or index entry needs it: what ExecConstraints()
 * and ExecInsertIndexTuples() read.  Its range table names the table with
 * the columns the judge changed as the statement's updated columns.
 */
typedef struct ResultRel
{
	EState	   *estate;
	ResultRelInfo *rri;
	Bitmapset **updated_cols;	/* in the range table's entry */
	bool		shared_checks;	/* rri uses the table's compiled CHECKs */
} ResultRel;

/* Depth of ExecConstraints() calls evaluating a table's compiled CHECKs. */
static int	checks_running = 0;

/*
 * The table's CHECK expressions, compiled as ExecRelCheck() compiles them,
 * kept until the table or a function changes; NULL when there are none, or
 * while they are being evaluated (a CHECK calling a ptm function that
 * updates the same table: the inner call compiles its own, so no compiled
 * expression is run twice at once or freed while it runs).
 */
static ExprState **
compiled_checks(PtmKeyedTable *t, Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	ExprState **checks;
	MemoryContext oldcontext;
	int			i;

	if (constr == NULL || constr->num_check == 0 || checks_running > 0)
		return NULL;
	if (t->checks_valid && t->checks != NULL)
		return t->checks;

	if (t->checks_cxt != NULL)
		MemoryContextDelete(t->checks_cxt);
	t->checks = NULL;
	t->checks_cxt = AllocSetContextCreate(CacheMemoryContext, "ptm_lease row checks",
										  ALLOCSET_SMALL_SIZES);
	/* valid from here on: an invalidation while compiling counts for next time */
	t->checks_valid = true;
	oldcontext = MemoryContextSwitchTo(t->checks_cxt);
	checks = palloc(constr->num_check * sizeof(ExprState *));
	for (i = 0; i < constr->num_check; i++)
		checks[i] = ExecInitExpr(expression_planner(stringToNode(constr->check[i].ccbin)), NULL);
	MemoryContextSwitchTo(oldcontext);
	t->checks = checks;
	return checks;
}

/* A range table of the one table, with its updated-columns set. */
static Bitmapset **
init_range_table(EState *estate, Relation rel)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
#if PG_VERSION_NUM >= 160000
	{
		RTEPermissionInfo *perminfo = makeNode(RTEPermissionInfo);

		perminfo->relid = rte->relid;
		perminfo->requiredPerms = ACL_UPDATE;
		rte->perminfoindex = 1;
		ExecInitRangeTable(estate, list_make1(rte), list_make1(perminfo));
		return &perminfo->updatedCols;
	}
#else
	rte->requiredPerms = ACL_UPDATE;
	ExecInitRangeTable(estate, list_make1(rte));
	return &rte->updatedCols;
#endif
}

static void
begin_result_rel(ResultRel *rr, PtmKeyedTable *t, Relation rel)
{
	MemoryContext oldcontext;

	if (rr->estate != NULL)
		return;
	rr->estate = CreateExecutorState();
	oldcontext = MemoryContextSwitchTo(rr->estate->es_query_cxt);
	rr->updated_cols = init_range_table(rr->estate, rel);
	rr->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rr->rri, rel, 1, NULL, 0);
	rr->rri->ri_ConstraintExprs = compiled_checks(t, rel);
	rr->shared_checks = rr->rri->ri_ConstraintExprs != NULL;
	MemoryContextSwitchTo(oldcontext);
}

static void
end_result_rel(ResultRel *rr)
{
	if (rr->estate != NULL)
		FreeExecutorState(rr->estate);
}

/* ExecConstraints() on the new version: NOT NULL and every CHECK. */
static void
check_constraints(ResultRel *rr, PtmKeyedTable *t, Relation rel, TupleTableSlot *next)
{
	if (RelationGetDescr(rel)->constr == NULL)
		return;
	begin_result_rel(rr, t, rel);
	if (!rr->shared_checks)
		ExecConstraints(rr->rri, next, rr->estate);
	else
	{
		checks_running++;
		PG_TRY();
		{
			ExecConstraints(rr->rri, next, rr->estate);
		}
		PG_FINALLY();
		{
			checks_running--;
		}
		PG_END_TRY();
	}
	ResetPerTupleExprContext(rr->estate);
}

/*
 * The columns whose value the judge changed, as the range table counts an
 * UPDATE's SET list: a dropped column set to NULL is none of them.
 */
static Bitmapset *
changed_columns(TupleTableSlot *row, TupleTableSlot *next, int natts)
{
	Bitmapset  *changed = NULL;
	int			i;

	for (i = 0; i < natts; i++)
	{
		if (TupleDescAttr(next->tts_tupleDescriptor, i)->attisdropped)
			continue;
		if (next->tts_isnull[i] != row->tts_isnull[i] ||
			(!next->tts_isnull[i] && next->tts_values[i] != row->tts_values[i]))
			changed = bms_add_member(changed, i + 1 - FirstLowInvalidHeapAttributeNumber);
	}
	return changed;
}

/* The new version is not a HOT update: give every index its entry. */
static void
insert_index_entries(ResultRel *rr, PtmKeyedTable *t, Relation rel, TupleTableSlot *row,
					 TupleTableSlot *next, int natts, bool only_summarizing)
{
	MemoryContext oldcontext;

	begin_result_rel(rr, t, rel);
	oldcontext = MemoryContextSwitchTo(rr->estate->es_query_cxt);
	*rr->updated_cols = changed_columns(row, next, natts);
	MemoryContextSwitchTo(oldcontext);

	ExecOpenIndices(rr->rri, false);
#if PG_VERSION_NUM >= 160000
	ExecInsertIndexTuples(rr->rri, next, rr->estate, true, false, NULL, NIL, only_summarizing);
#elif PG_VERSION_NUM >= 140000
	ExecInsertIndexTuples(rr->rri, next, rr->estate, true, false, NULL, NIL);
#else
	rr->estate->es_result_relation_info = rr->rri;
	ExecInsertIndexTuples(next, rr->estate, false, NULL, NIL);
#endif
	ExecCloseIndices(rr->rri);
}

/*
 * The other live transactions that hold the row in ra->row (lock it, or
 * change it), read from its xmax: at most max of them into xids, and how
 * many there were.  Neither the calling transaction's own locks count nor
 * FOR KEY SHARE ones (a foreign key check): no ptm call changes a key.
 */
static int
row_holders(RowAccess *ra, TransactionId *xids, int max)
{
	BufferHeapTupleTableSlot *bslot = (BufferHeapTupleTableSlot *) ra->row;
	HeapTupleHeader tup;
	uint16		infomask;
	TransactionId xmax;
	int			n = 0;

	if (!TTS_IS_BUFFERTUPLE(ra->row) || bslot->base.tuple == NULL)
		return 0;
	tup = bslot->base.tuple->t_data;

	/*
	 * The common case, a row nobody holds, is told by a hint bit without the
	 * buffer lock: a holder that comes after this look is the update's
	 * lock_timeout's to bound.
	 */
	if (tup->t_infomask & HEAP_XMAX_INVALID)
		return 0;
	LockBuffer(bslot->buffer, BUFFER_LOCK_SHARE);
	infomask = tup->t_infomask;
	xmax = HeapTupleHeaderGetRawXmax(tup);
	LockBuffer(bslot->buffer, BUFFER_LOCK_UNLOCK);

	if ((infomask & HEAP_XMAX_INVALID) || HEAP_LOCKED_UPGRADED(infomask))
		return 0;
	if (infomask & HEAP_XMAX_IS_MULTI)
	{
		MultiXactMember *members;
		int			nmembers = GetMultiXactIdMembers(xmax, &members, false,
													 HEAP_XMAX_IS_LOCKED_ONLY(infomask));
		int			i;

		for (i = 0; i < nmembers; i++)
			if (members[i].status != MultiXactStatusForKeyShare &&
				!TransactionIdIsCurrentTransactionId(members[i].xid) &&
				TransactionIdIsInProgress(members[i].xid))
			{
				if (n < max)
					xids[n] = members[i].xid;
				n++;
			}
		if (nmembers > 0)
			pfree(members);
	}
	else if (!(HEAP_XMAX_IS_LOCKED_ONLY(infomask) && HEAP_XMAX_IS_KEYSHR_LOCKED(infomask)) &&
			 !TransactionIdIsCurrentTransactionId(xmax) && TransactionIdIsInProgress(xmax))
	{
		if (max > 0)
			xids[0] = xmax;
		n = 1;
	}
	return n;
}

/* A waiting table_tuple_lock(), run by ptm_with_lock_timeout(). */
typedef struct TupleLockWait
{
	RowAccess  *ra;
	ItemPointerData tid;
	CommandId	cid;
	LockTupleMode mode;
	int			flags;
	TM_FailureData *tmfd;
	TM_Result	result;
} TupleLockWait;

static void
wait_for_tuple_lock(void *arg)
{
	TupleLockWait *w = (TupleLockWait *) arg;

	w->result = table_tuple_lock(w->ra->rel, &w->tid, w->ra->snapshot, w->ra->row, w->cid,
								 w->mode, LockWaitBlock, w->flags, w->tmfd);
	/* the slot's buffer pin belongs to the subtransaction: drop it there */
	ExecClearTuple(w->ra->row);
}

/*
 * table_tuple_lock() of the row at *tid, waiting at most wait_ms (< 0: as
 * long as it takes), with the newest version locked left in ra->row.  The
 * wait is an ordinary lock wait (pg_locks and pg_blocking_pids() show it),
 * ended by lock_timeout in a subtransaction; the first try does not wait, so
 * a row nobody holds costs no subtransaction.  TM_WouldBlock: still held
 * when the time was up.
 */
static TM_Result
lock_row_within(RowAccess *ra, ItemPointer tid, CommandId cid, LockTupleMode mode,
				int flags, int wait_ms, TM_FailureData *tmfd)
{
	TupleLockWait w;
	TM_Result	result;

	if (wait_ms < 0)
		return table_tuple_lock(ra->rel, tid, ra->snapshot, ra->row, cid, mode,
								LockWaitBlock, flags, tmfd);

	result = table_tuple_lock(ra->rel, tid, ra->snapshot, ra->row, cid, mode,
							  LockWaitSkip, flags, tmfd);
	if (result != TM_WouldBlock || wait_ms == 0)
		return result;

	/* no pin of ours may be released inside the subtransaction */
	ExecClearTuple(ra->row);
	w.ra = ra;
	w.tid = *tid;
	w.cid = cid;
	w.mode = mode;
	w.flags = flags;
	w.tmfd = tmfd;
	w.result = TM_WouldBlock;
	if (!ptm_with_lock_timeout(wait_ms, wait_for_tuple_lock, &w))
		return TM_WouldBlock;
	*tid = w.tid;
	/* the version we locked, whatever the statement snapshot sees */
	if (w.result == TM_Ok &&
		!table_tuple_fetch_row_version(ra->rel, tid, SnapshotAny, ra->row))
		elog(ERROR, "locked row of ptm.%s not found", RelationGetRelationName(ra->rel));
	return w.result;
}

/*
 * table_tuple_update() with lock_timeout at most wait_ms, for the lock taken
 * between row_holders()' look and the update (see "Bounded waits").
 */
static TM_Result
update_within(RowAccess *ra, ItemPointer tid, TupleTableSlot *next, CommandId cid,
			  int wait_ms, TM_FailureData *tmfd, LockTupleMode *lockmode,
#if PG_VERSION_NUM >= 160000
			  TU_UpdateIndexes *update_indexes)
#else
			  bool *update_indexes)
#endif
{
	int			saved_lock_timeout = LockTimeout;
	volatile TM_Result result = TM_Ok;

	if (wait_ms >= 0)
		LockTimeout = ptm_bounded_lock_timeout(wait_ms);
	PG_TRY();
	{
		result = table_tuple_update(ra->rel, tid, next, cid, ra->snapshot, InvalidSnapshot,
									true, tmfd, lockmode, update_indexes);
	}
	PG_FINALLY();
	{
		LockTimeout = saved_lock_timeout;
	}
	PG_END_TRY();
	return result;
}

/* The lock flags of a locking read: READ COMMITTED follows the update chain. */
static int
lock_flags(void)
{
	return TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS |
		(IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION);
}

/*
 * The new version as UPDATE starts it: the row's values, with NULL in the
 * columns dropped from the table.
 */
static void
copy_for_update(TupleTableSlot *next, TupleTableSlot *row, TupleDesc desc)
{
	int			i;

	ExecClearTuple(next);
	memcpy(next->tts_values, row->tts_values, desc->natts * sizeof(Datum));
	memcpy(next->tts_isnull, row->tts_isnull, desc->natts * sizeof(bool));
	for (i = 0; i < desc->natts; i++)
		if (TupleDescAttr(desc, i)->attisdropped)
		{
			next->tts_values[i] = (Datum) 0;
			next->tts_isnull[i] = true;
		}
}

/*
 * Judge the row in ra->row and write the judge's new version, waiting for a
 * concurrent writer (at most wait_ms) and judging the newest version again
 * after it committed.
 */
static PtmRowOutcome
update_found_row(PtmKeyedTable *t, RowAccess *ra, ResultRel *rr, TupleTableSlot *next,
				 CommandId cid, int wait_ms, PtmRowJudge judge, void *arg)
{
	TupleDesc	desc = RelationGetDescr(ra->rel);
	bool		locked = false; /* by this call: the update cannot wait */

	for (;;)
	{
		TM_Result	result;
		TM_FailureData tmfd;
		LockTupleMode lockmode;
		ItemPointerData tid = ra->row->tts_tid;
#if PG_VERSION_NUM >= 160000
		TU_UpdateIndexes update_indexes;
#else
		bool		update_indexes;
#endif

		copy_for_update(next, ra->row, desc);
		if (!judge(t, ra->row, next->tts_values, next->tts_isnull, arg))
			return PTM_ROW_KEPT;
		ExecStoreVirtualTuple(next);

		/* held by another (or no waiting allowed): lock it first, within the bound */
		if (!locked && (wait_ms == 0 || (wait_ms > 0 && row_holders(ra, NULL, 0) > 0)))
		{
			result = lock_row_within(ra, &tid, cid, LockTupleNoKeyExclusive, lock_flags(),
									 wait_ms, &tmfd);
			if (result == TM_WouldBlock)
				return PTM_ROW_BUSY;
			if (result == TM_Ok && wait_ms > 0)
				return PTM_ROW_RETRY;
			if (result == TM_Ok)
			{
				/* no time passed: judge the version locked, the newest */
				locked = true;
				slot_getallattrs(ra->row);
				continue;
			}
			if (result == TM_Updated || result == TM_Deleted)
				refuse_if_xact_snapshot(result);
			return PTM_ROW_MISSING;
		}

		check_constraints(rr, t, ra->rel, next);
		result = update_within(ra, &tid, next, cid, wait_ms, &tmfd, &lockmode, &update_indexes);
		if (result == TM_Ok)
		{
#if PG_VERSION_NUM >= 160000
			if (update_indexes != TU_None)
				insert_index_entries(rr, t, ra->rel, ra->row, next, desc->natts,
									 update_indexes == TU_Summarizing);
#else
			if (update_indexes)
				insert_index_entries(rr, t, ra->rel, ra->row, next, desc->natts, false);
#endif
			return PTM_ROW_UPDATED;
		}
		if (result == TM_SelfModified)
			ereport(ERROR,
					(errcode(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION),
					 errmsg("tuple to be updated was already modified by an operation triggered by the current command"),
					 errhint("Consider using an AFTER trigger instead of a BEFORE trigger to propagate changes to other rows.")));
		if (result != TM_Updated && result != TM_Deleted)
			elog(ERROR, "unexpected result %d updating a row of ptm.%s",
				 (int) result, t->relname);

		/* A concurrent transaction changed the row and committed. */
		refuse_if_xact_snapshot(result);
		if (result == TM_Deleted)
			return PTM_ROW_MISSING;

		/* READ COMMITTED: lock the newest version and judge that one. */
		result = lock_row_within(ra, &tid, cid, lockmode,
								 TUPLE_LOCK_FLAG_FIND_LAST_VERSION, wait_ms, &tmfd);
		if (result == TM_WouldBlock)
			return PTM_ROW_BUSY;
		if (result == TM_Deleted)
			return PTM_ROW_MISSING;
		if (result != TM_Ok)
			elog(ERROR, "unexpected result %d locking a row of ptm.%s",
				 (int) result, t->relname);
		locked = true;
		slot_getallattrs(ra->row);
	}
}

/* What an UPDATE statement checks before it starts: where it may run at all. */
static void
refuse_update_here(void)
{
	PreventCommandIfReadOnly("UPDATE");
	PreventCommandIfParallelMode("UPDATE");
}

void
ptm_row_check_update(PtmKeyedTable *t)
{
	Relation	index;
	Relation	rel;

	refuse_update_here();
	rel = ptm_keyed_table_open(t, RowExclusiveLock, &index);
	CheckCmdReplicaIdentity(rel, CMD_UPDATE);
	index_close(index, NoLock);
	table_close(rel, NoLock);
}

PtmRowOutcome
ptm_row_update(PtmKeyedTable *t, const Datum *keys, int wait_ms, PtmRowJudge judge, void *arg)
{
	RowAccess	ra;
	ResultRel	rr = {0};
	TupleTableSlot *next;
	CommandId	cid;
	PtmRowOutcome outcome = PTM_ROW_MISSING;

	CHECK_FOR_INTERRUPTS();		/* a caller that loops on PTM_ROW_RETRY */
	refuse_update_here();

	if (!begin_access(&ra, t, RowExclusiveLock, ACCESS_UPDATE))
		return PTM_ROW_USE_SQL;
	cid = GetCurrentCommandId(true);
	next = MakeSingleTupleTableSlot(RelationGetDescr(ra.rel), &TTSOpsVirtual);

	if (fetch_by_key(t, &ra, keys))
		outcome = update_found_row(t, &ra, &rr, next, cid, wait_ms, judge, arg);

	end_result_rel(&rr);
	ExecDropSingleTupleTableSlot(next);
	end_access(&ra);
	return outcome;
}

/*
 * What ExecLockRows does for one row of "SELECT ... FOR SHARE" (or FOR NO
 * KEY UPDATE, by mode): lock the version the snapshot sees, or under READ
 * COMMITTED the newest one after a concurrent update (the key columns never
 * change, so the WHERE clause needs no recheck); under REPEATABLE READ a
 * concurrent change is 40001.  A bounded wait that runs out gives
 * PTM_ROW_BUSY, with the judge shown the row as the snapshot saw it.
 */
PtmRowOutcome
ptm_row_lock(PtmKeyedTable *t, const Datum *keys, LockTupleMode mode, int wait_ms,
			 PtmRowJudge judge, void *arg)
{
	RowAccess	ra;
	PtmRowOutcome outcome = PTM_ROW_MISSING;
	const char *what = mode == LockTupleShare ? "SELECT FOR SHARE" : "SELECT FOR NO KEY UPDATE";

	/* a row lock is a write: refused where SELECT ... FOR SHARE is */
	PreventCommandIfReadOnly(what);
	PreventCommandIfParallelMode(what);

	if (!begin_access(&ra, t, RowShareLock, ACCESS_LOCK))
		return PTM_ROW_USE_SQL;

	if (fetch_by_key(t, &ra, keys))
	{
		TM_FailureData tmfd;
		ItemPointerData tid = ra.row->tts_tid;
		TM_Result	result;

		result = lock_row_within(&ra, &tid, GetCurrentCommandId(true), mode, lock_flags(),
								 wait_ms, &tmfd);
		switch (result)
		{
			case TM_Ok:
				slot_getallattrs(ra.row);
				judge(t, ra.row, NULL, NULL, arg);
				outcome = PTM_ROW_KEPT;
				break;
			case TM_WouldBlock:
				/* the lock attempts may have cleared the slot: fetch again */
				if (fetch_by_key(t, &ra, keys))
				{
					judge(t, ra.row, NULL, NULL, arg);
					outcome = PTM_ROW_BUSY;
				}
				break;
			case TM_Deleted:
			case TM_Updated:
				/* READ COMMITTED follows updates: only a delete ends here */
				refuse_if_xact_snapshot(result);
				break;
			case TM_SelfModified:
				/* changed by a later command of this transaction: gone for us */
				break;
			default:
				elog(ERROR, "unexpected result %d locking a row of ptm.%s",
					 (int) result, t->relname);
		}
	}

	end_access(&ra);
	return outcome;
}

int
ptm_row_holders(PtmKeyedTable *t, const Datum *keys, int *pids, int max)
{
	RowAccess	ra;
	TransactionId xids[PTM_ROW_MAX_HOLDERS];
	int			nxids = 0;
	int			n = 0;
	int			i;

	/* a table whose key changed type: the holders cannot be told */
	if (!begin_access(&ra, t, AccessShareLock, ACCESS_HOLDERS))
		return 0;
	if (fetch_by_key(t, &ra, keys))
		nxids = Min(row_holders(&ra, xids, PTM_ROW_MAX_HOLDERS), PTM_ROW_MAX_HOLDERS);
	end_access(&ra);

	/* a lock or change made in a subtransaction is held by its top transaction */
	for (i = 0; i < nxids && n < max; i++)
	{
		int			pid = BackendXidGetPid(SubTransGetTopmostTransaction(xids[i]));

		if (pid != 0)
			pids[n++] = pid;
	}
	return n;
}

PtmRowOutcome
ptm_row_read(PtmKeyedTable *t, const Datum *keys, PtmRowJudge judge, void *arg)
{
	RowAccess	ra;
	PtmRowOutcome outcome = PTM_ROW_MISSING;

	if (!begin_access(&ra, t, AccessShareLock, ACCESS_READ))
		return PTM_ROW_USE_SQL;
	if (fetch_by_key(t, &ra, keys))
	{
		judge(t, ra.row, NULL, NULL, arg);
		outcome = PTM_ROW_KEPT;
	}
	end_access(&ra);
	return outcome;
}
