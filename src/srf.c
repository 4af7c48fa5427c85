/*-------------------------------------------------------------------------
 *
 * srf.c
 *	  Set up a tuplestore for a materialize-mode set-returning function.
 *
 * PG 15 added SetSingleFuncCall (renamed InitMaterializedSRF in 16); this is
 * the same few lines for every supported version.  Also the row type of a
 * function returning one row, kept for the backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "srf.h"

ReturnSetInfo *
ptm_init_srf(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcontext;
	TupleDesc	tupdesc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	oldcontext = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setDesc = CreateTupleDescCopy(tupdesc);
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(oldcontext);

	return rsinfo;
}

/*
 * Row types of the ptm functions that return one row, by function OID.  The
 * executor gives every execution of a statement a new FmgrInfo, so fn_extra
 * alone would look the type up again on every call of a prepared statement.
 *
 * A cached row type is never freed: fn_extra of a running statement may
 * point at it.  Any change to a function, a type or a relation (a composite
 * type's columns are a relation's) marks the cache for checking; the next
 * lookup of each function builds its type again and keeps the old one when
 * it is equal, so only a real change of a row type (an extension update)
 * leaves an old copy behind.
 */
#define RESULT_TYPE_SLOTS 16

typedef struct ResultType
{
	Oid			fn_oid;
	bool		check;			/* an invalidation came since it was built */
	TupleDesc	tupdesc;		/* blessed, in CacheMemoryContext */
} ResultType;

static ResultType result_types[RESULT_TYPE_SLOTS];
static int	n_result_types = 0;

static void
check_result_types(Datum arg, int cacheid, uint32 hashvalue)
{
	int			i;

	for (i = 0; i < n_result_types; i++)
		result_types[i].check = true;
}

void
ptm_result_types_relcache_invalidated(Oid relid)
{
	check_result_types((Datum) 0, 0, 0);
}

/* At load: a change to any function or type marks the row types. */
void
ptm_result_types_init(void)
{
	CacheRegisterSyscacheCallback(PROCOID, check_result_types, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, check_result_types, (Datum) 0);
}

static TupleDesc
build_result_type(FunctionCallInfo fcinfo, MemoryContext context)
{
	TupleDesc	tupdesc;
	MemoryContext oldcontext;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	oldcontext = MemoryContextSwitchTo(context);
	tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
	MemoryContextSwitchTo(oldcontext);
	return tupdesc;
}

static TupleDesc
lookup_result_type(FunctionCallInfo fcinfo)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	ResultType *entry = NULL;
	TupleDesc	tupdesc;
	int			i;

	for (i = 0; i < n_result_types; i++)
		if (result_types[i].fn_oid == fn_oid)
			entry = &result_types[i];

	if (entry == NULL)
	{
		/* more callers than slots: keep it for this call site only */
		if (n_result_types == RESULT_TYPE_SLOTS)
			return build_result_type(fcinfo, fcinfo->flinfo->fn_mcxt);
		entry = &result_types[n_result_types];
		entry->check = false;
		entry->tupdesc = build_result_type(fcinfo, CacheMemoryContext);
		entry->fn_oid = fn_oid;
		n_result_types++;
	}
	else if (entry->check)
	{
		/* cleared first: an invalidation during the build sets it again */
		entry->check = false;
		tupdesc = build_result_type(fcinfo, CacheMemoryContext);
		if (equalTupleDescs(tupdesc, entry->tupdesc))
			FreeTupleDesc(tupdesc);
		else
			entry->tupdesc = tupdesc;
	}
	return entry->tupdesc;
}

TupleDesc
ptm_result_tupdesc(FunctionCallInfo fcinfo)
{
	TupleDesc	tupdesc = (TupleDesc) fcinfo->flinfo->fn_extra;

	if (tupdesc == NULL)
	{
		tupdesc = lookup_result_type(fcinfo);
		fcinfo->flinfo->fn_extra = tupdesc;
	}
	return tupdesc;
}
