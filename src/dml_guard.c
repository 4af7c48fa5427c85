/*-------------------------------------------------------------------------
 *
 * dml_guard.c
 *	  The statement trigger ptm._refuse_direct_dml() on the ptm tables whose
 *	  rows carry fencing state or history: UPDATE, DELETE and TRUNCATE are
 *	  refused unless a ptm function runs them (ptm_plan_run(), spi_util.c).
 *
 * INSERT stays allowed so that pg_restore can load data.  row_access.c's
 * direct updates fire no statement trigger; it recognises this one by its
 * function and steps aside to SQL for any other.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/rel.h"

#include "spi_util.h"

/*
 * Refuse changes made outside the ptm functions: TRUNCATE, UPDATE and DELETE
 * by hand would bypass fencing and the audit trail.
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
