/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Saved SPI plans, and the DML guard of the ptm tables.
 *
 * The tables whose rows carry fencing state (partition_leases, the audit
 * trail, ...) refuse direct UPDATE, DELETE and TRUNCATE through a statement
 * trigger (ptm._refuse_direct_dml).  Our own statements run with a backend-
 * local flag raised; it is lowered again on success and on error, so it
 * never leaks into a later statement of the session.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/snapmgr.h"

#include "spi_util.h"

static int	internal_dml_depth = 0;

bool
ptm_in_internal_dml(void)
{
	return internal_dml_depth > 0;
}

static SPIPlanPtr
prepare_once(PtmPlan *plan)
{
	if (plan->saved == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(plan->sql, plan->nargs, (Oid *) plan->argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 plan->sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		plan->saved = p;
	}
	return plan->saved;
}

static int
execute(PtmPlan *plan, Datum *values, const char *nulls)
{
	switch (plan->snapshot)
	{
		case PTM_SNAPSHOT_CALLER:
			return SPI_execute_plan(plan->saved, values, nulls, true, plan->max_rows);
		case PTM_SNAPSHOT_LATEST:
			if (IsolationUsesXactSnapshot())
				return SPI_execute_snapshot(plan->saved, values, nulls, GetLatestSnapshot(),
											InvalidSnapshot, false, false, plan->max_rows);
			/* READ COMMITTED: a statement's own snapshot is the newest */
			break;
		case PTM_SNAPSHOT_STATEMENT:
			break;
	}
	return SPI_execute_plan(plan->saved, values, nulls, false, plan->max_rows);
}

uint64
ptm_plan_run(PtmPlan *plan, Datum *values, const char *nulls)
{
	int			ret;

	prepare_once(plan);

	internal_dml_depth++;
	PG_TRY();
	{
		ret = execute(plan, values, nulls);
	}
	PG_FINALLY();
	{
		internal_dml_depth--;
	}
	PG_END_TRY();

	if (ret != plan->expect)
		elog(ERROR, "\"%s\" returned %s, expected %s",
			 plan->sql, SPI_result_code_string(ret), SPI_result_code_string(plan->expect));
	return SPI_processed;
}

/*
 * Most ptm functions pin search_path with a SET clause.  The ones whose hot
 * path runs no SQL (renew_lease, check_fence, a plain try_commit;
 * acquire_partition_lease when it answers "conflict") are declared without
 * one, because a SET clause costs every call a GUC save and restore and a
 * search_path recomputation; they connect here with pin_search_path, which
 * pins it the way fmgr does for a SET clause.
 */
int
ptm_spi_connect(bool pin_search_path)
{
	int			nest_level = 0;

	if (pin_search_path)
	{
		nest_level = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	return nest_level;
}

void
ptm_spi_finish(int connection)
{
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	if (connection > 0)
		AtEOXact_GUC(true, connection);
}

Datum
ptm_spi_value(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

/*
 * Statement trigger on the ptm tables: refuse changes made outside the ptm
 * functions.  TRUNCATE, UPDATE and DELETE by hand would bypass fencing and
 * the audit trail; INSERT stays allowed so that pg_restore can load data.
 */
PG_FUNCTION_INFO_V1(ptm_refuse_direct_dml);
Datum
ptm_refuse_direct_dml(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;
	const char *relname;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ptm._refuse_direct_dml() must be called as a trigger")));

	if (ptm_in_internal_dml())
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "DELETE";
	else if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		op = "TRUNCATE";
	else
		op = "change";

	relname = RelationGetRelationName(trigdata->tg_relation);

	if (strcmp(relname, "partition_leases") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("direct %s of ptm.partition_leases is not allowed", op),
				 errdetail("Changing leases by hand would bypass epoch fencing and the audit trail."),
				 errhint("To end a lease, call ptm.force_expire(topic, partition_id, reason), e.g. SELECT * FROM ptm.force_expire('orders', 0, 'owner is dead');")));

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("direct %s of ptm.%s is not allowed", op, relname),
			 errdetail("This table is changed only by the ptm functions, so that its history can be trusted."),
			 errhint("See docs/reference.md for the function that does what you need.")));

	return PointerGetDatum(NULL);	/* keep compiler quiet */
}
