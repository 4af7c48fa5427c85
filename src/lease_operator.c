/*-------------------------------------------------------------------------
 *
 * lease_operator.c
 *	  The operators' lease calls: force_expire (end a lease now, audited)
 *	  and advance_epoch_era (the next era of epochs, audited).
 *
 * Locking
 *	  - force_expire locks the lease row FOR NO KEY UPDATE (within
 *		ptm_lease.lock_wait_timeout, lease_rows.c), checks that the lease is
 *		still the one the operator names, then raises its epoch with an
 *		UPDATE ... WHERE agent_id IS NOT NULL and audits it.  Like every
 *		change of owner it waits for the fenced transactions that passed
 *		before it (fence.c); with end_holder it first ends those that hold
 *		the row (holders.c).
 *	  - advance_epoch_era takes epochs.c's lock on ptm.epoch_eras.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "epochs.h"
#include "holders.h"
#include "identity.h"
#include "lease_events.h"
#include "lease_rows.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "validate.h"

/* $1 topic, $2 partition, $3 now_ms, $4 now */
static PtmPlan plan_force = {
	.sql = "UPDATE ptm.partition_leases SET agent_id = NULL, state = 'forced',"
	" previous_agent_id = agent_id, previous_epoch = lease_epoch,"
	" lease_epoch = pg_catalog.nextval('ptm.lease_epoch_seq'),"
	" lease_expires_at = $3, sweep_at = $3, ended_at = $4"
	" WHERE topic = $1 AND partition_id = $2 AND agent_id IS NOT NULL"
	" RETURNING previous_agent_id, previous_epoch, lease_epoch",
	.nargs = 4, .argtypes = (const Oid[]) {TEXTOID, INT4OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/* ---------------------------------------------------------------------
 * force_expire(topic, partition_id, reason, agent_id, lease_epoch, end_holder)
 * ---------------------------------------------------------------------
 */

/* The lease the operator means: by agent (when given) at epoch (when given). */
typedef struct ForceTarget
{
	text	   *agent;
	bool		agent_given;
	int64		epoch;
	bool		epoch_given;
} ForceTarget;

/*
 * Whether the lease is still the one the operator means to force: held, by
 * the agent and at the epoch given.  Otherwise the answer.
 */
static const char *
force_refusal(const PtmLeaseRow *row, const ForceTarget *target)
{
	if (!row->found || row->agent_id == NULL)
		return "no_lease";
	if (target->agent_given && !ptm_same_agent(row->agent_id, target->agent))
		return "not_owner";
	if (target->epoch_given && row->epoch != target->epoch)
		return "stale_epoch";
	return NULL;
}

/* Raise the locked lease's epoch and end it now: audited, announced, counted. */
static void
force_locked_lease(PtmLeaseResult *out, text *topic, int32 partition_id, Datum reason,
				   bool reason_null)
{
	int64		now_ms;
	Datum		args[4];
	bool		isnull;
	Oid			seq;
	char	   *prev_agent;
	int64		prev_epoch;
	PtmAudit	audit = {0};
	PtmLeaseEvent ev = {0};

	seq = ptm_epochs_lift_to_era();
	now_ms = ptm_now_ms();		/* after the lock: audit times are ordered */
	args[0] = PointerGetDatum(topic);
	args[1] = Int32GetDatum(partition_id);
	args[2] = Int64GetDatum(now_ms);
	args[3] = TimestampTzGetDatum(GetCurrentTimestamp());
	ptm_plan_run(&plan_force, args, NULL);
	ptm_epochs_after_raise(seq);	/* durable before the caller sees it */
	if (SPI_processed == 0)
		elog(ERROR, "locked lease of partition %s-%d changed under its lock",
			 text_to_cstring(topic), partition_id);

	prev_agent = TextDatumGetCString(ptm_spi_value(0, 1, &isnull));
	prev_epoch = DatumGetInt64(ptm_spi_value(0, 2, &isnull));
	out->result = "forced";
	out->has_lease = true;
	out->agent_id = NULL;
	out->epoch = DatumGetInt64(ptm_spi_value(0, 3, &isnull));
	out->expires_ms = now_ms;

	audit.action = "force_expire";
	audit.topic = topic;
	audit.partition_id = partition_id;
	audit.previous_agent_id = prev_agent;
	audit.previous_epoch = prev_epoch;
	audit.new_epoch = out->epoch;
	audit.reason = reason;
	audit.reason_null = reason_null;
	ptm_write_audit(&audit);

	ev.event = "forced";
	ev.topic = text_to_cstring(topic);
	ev.partition_id = partition_id;
	ev.previous_agent_id = prev_agent;
	ev.lease_epoch = out->epoch;
	ev.at_key = "forced_at_ms";
	ev.at_ms = now_ms;
	ptm_notify_lease_event(&ev);

	ptm_count_topic(PTM_LEASE_FORCED, topic);
	ereport(LOG,
			(errmsg("lease for partition %s-%d forced to expire: epoch " INT64_FORMAT " of agent \"%s\" fenced by epoch " INT64_FORMAT,
					ev.topic, partition_id, prev_epoch, prev_agent, out->epoch)));
}

PG_FUNCTION_INFO_V1(ptm_force_expire_0_2);
Datum
ptm_force_expire_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partition_id = ptm_get_partition(fcinfo, 1, "partition_id");
	bool		reason_null = PG_ARGISNULL(2);
	Datum		reason = reason_null ? (Datum) 0 : PG_GETARG_DATUM(2);
	bool		end_holder = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
	ForceTarget target = {0};
	MemoryContext callerctx = CurrentMemoryContext;
	PtmLeaseResult out = {0};
	PtmRowOutcome outcome;
	PtmLeaseRow row;
	const char *refusal;
	Datum		result;

	target.agent_given = PG_NARGS() > 3 && !PG_ARGISNULL(3);
	target.agent = target.agent_given ? ptm_get_name(fcinfo, 3, "agent_id") : NULL;
	target.epoch_given = PG_NARGS() > 4 && !PG_ARGISNULL(4);
	target.epoch = target.epoch_given ? ptm_get_epoch(fcinfo, 4, "lease_epoch") : 0;
	out.topic = topic;
	out.partition_id = partition_id;
	if (target.agent_given)
		ptm_check_agent(target.agent, "agent_id");

	spi = ptm_spi_connect(false);
	outcome = ptm_lease_lock(topic, partition_id, ptm_lease_lock_wait_ms(), &row);
	refusal = force_refusal(&row, &target);

	/* asked to: end the transactions that hold the row, then lock it again */
	if (outcome == PTM_ROW_BUSY && refusal == NULL && end_holder)
	{
		char	   *why = reason_null ? NULL : TextDatumGetCString(reason);

		ptm_end_lease_holders(topic, partition_id, row.agent_id, row.epoch, DT_NOBEGIN,
							  ptm_lease_lock_wait_ms(), "force_expire", why);
		outcome = ptm_lease_lock(topic, partition_id, ptm_lease_lock_wait_ms(), &row);
		refusal = force_refusal(&row, &target);
	}

	if (refusal != NULL)
	{
		out.result = refusal;
		ptm_lease_result_from_row(&out, &row);
	}
	else if (outcome == PTM_ROW_BUSY)
	{
		out.result = "busy";
		ptm_lease_result_from_row(&out, &row);
		ptm_count_busy(topic);
	}
	else
		force_locked_lease(&out, topic, partition_id, reason, reason_null);

	result = ptm_lease_result_datum(fcinfo, callerctx, &out);
	ptm_spi_finish(spi);

	PG_RETURN_DATUM(result);
}

/* ---------------------------------------------------------------------
 * advance_epoch_era(reason)
 * ---------------------------------------------------------------------
 */

/*
 * ptm.advance_epoch_era(reason text DEFAULT NULL) RETURNS bigint: after a
 * restore from a logical dump, the next era (epochs.c), audited.
 */
PG_FUNCTION_INFO_V1(ptm_advance_epoch_era);
Datum
ptm_advance_epoch_era(PG_FUNCTION_ARGS)
{
	int			spi;
	bool		reason_null = PG_ARGISNULL(0);
	Datum		reason = reason_null ? (Datum) 0 : PG_GETARG_DATUM(0);
	PtmEraChange change;
	PtmAudit	audit = {0};
	int64		floor;

	PreventCommandIfReadOnly("ptm.advance_epoch_era()");
	spi = ptm_spi_connect(false);
	floor = ptm_epochs_advance_era(reason, reason_null, &change);

	audit.action = "advance_epoch_era";
	audit.partition_id = -1;
	audit.new_epoch = floor;
	audit.reason = reason;
	audit.reason_null = reason_null;
	audit.details = psprintf("{\"timeline\": %u, \"era\": " INT64_FORMAT ", \"previous_era\": " INT64_FORMAT ", \"sequence_was\": " INT64_FORMAT "}",
							 change.timeline, change.era, change.previous_era, change.sequence_was);
	ptm_write_audit(&audit);
	ptm_spi_finish(spi);

	PG_RETURN_INT64(floor);
}
