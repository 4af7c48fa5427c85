/*-------------------------------------------------------------------------
 *
 * lease_events.c
 *	  What a lease call leaves besides the lease row: its ptm.lease_result
 *	  row, its ptm.lease_audit row, its event on NOTIFY channel
 *	  ptm_lease_events and its per-topic counts.
 *
 * These sit below every file that changes leases or reports on them: the
 * lease functions (leases.c, lease_bulk.c, lease_operator.c, fence.c), the
 * limits and the balancing operators (lease_limits.c, balance.c), holders.c
 * and the worker's sweep (sweep.c).  They take no lock of their own: the audit row is an
 * INSERT in the caller's transaction, and events leave at its commit
 * (announce.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "announce.h"
#include "lease_events.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/*
 * $1 action, $2 topic, $3 partition, $4 prev agent, $5 prev epoch,
 * $6 new epoch, $7 reason, $8 the caller's role, $9 details.  An INSERT, which
 * the DML guard allows.
 */
static PtmPlan plan_audit = {
	.sql = "INSERT INTO ptm.lease_audit"
	" (action, topic, partition_id, previous_agent_id, previous_epoch, new_epoch, reason,"
	"  current_user_name, details)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
	.nargs = 9,
	.argtypes = (const Oid[]) {TEXTOID, TEXTOID, INT4OID, TEXTOID, INT8OID, INT8OID,
	TEXTOID, TEXTOID, TEXTOID},
	.expect = SPI_OK_INSERT
};

/* ---------------------------------------------------------------------
 * Result rows
 * ---------------------------------------------------------------------
 */
HeapTuple
ptm_lease_result_tuple(TupleDesc tupdesc, const PtmLeaseResult *out)
{
	Datum		values[6];
	bool		nulls[6] = {false};

	values[0] = CStringGetTextDatum(out->result);
	values[1] = PointerGetDatum(out->topic);
	values[2] = Int32GetDatum(out->partition_id);
	if (out->agent_id)
		values[3] = CStringGetTextDatum(out->agent_id);
	else
		nulls[3] = true;
	if (out->has_lease)
	{
		values[4] = Int64GetDatum(out->epoch);
		values[5] = TimestampTzGetDatum(ptm_ms_to_timestamptz(out->expires_ms));
	}
	else
		nulls[4] = nulls[5] = true;
	return heap_form_tuple(tupdesc, values, nulls);
}

/* ---------------------------------------------------------------------
 * Per-topic counts
 * ---------------------------------------------------------------------
 */

/*
 * The per-topic counts rank topics in ptm.top_topic_conflicts; successes are
 * counted only overall, so that busy topics do not evict troubled ones.
 */
void
ptm_count_topic(PtmCounter counter, text *topic)
{
	ptm_count(counter);
	ptm_count_key(PTM_KEY_TOPIC, VARDATA_ANY(topic), VARSIZE_ANY_EXHDR(topic), counter);
}

void
ptm_count_busy(text *topic)
{
	ptm_count_topic(PTM_LEASE_BUSY, topic);
}

/* lease_conflicts_total counts every stale epoch, overall and per topic. */
void
ptm_count_if_stale(const char *result, text *topic)
{
	if (strcmp(result, "stale_epoch") == 0)
		ptm_count_topic(PTM_LEASE_CONFLICTS, topic);
}

/* ---------------------------------------------------------------------
 * The audit row
 * ---------------------------------------------------------------------
 */
void
ptm_write_audit(const PtmAudit *a)
{
	Datum		v[9];
	char		n[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	v[0] = CStringGetTextDatum(a->action);
	v[1] = PointerGetDatum(a->topic);
	n[1] = a->topic ? ' ' : 'n';
	v[2] = Int32GetDatum(a->partition_id);
	n[2] = a->partition_id >= 0 ? ' ' : 'n';
	v[3] = a->previous_agent_id ? CStringGetTextDatum(a->previous_agent_id) : (Datum) 0;
	n[3] = a->previous_agent_id ? ' ' : 'n';
	v[4] = Int64GetDatum(a->previous_epoch);
	n[4] = a->previous_epoch > 0 ? ' ' : 'n';
	v[5] = Int64GetDatum(a->new_epoch);
	n[5] = a->new_epoch > 0 ? ' ' : 'n';
	v[6] = a->reason;
	n[6] = a->reason_null ? 'n' : ' ';

	/*
	 * The functions run as their owner; the audit names the role that called
	 * them (the current_user outside the function).
	 */
	v[7] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	v[8] = a->details ? CStringGetTextDatum(a->details) : (Datum) 0;
	n[8] = a->details ? ' ' : 'n';
	ptm_plan_run(&plan_audit, v, n);
}

/* ---------------------------------------------------------------------
 * Events on ptm_lease_events
 * ---------------------------------------------------------------------
 */

/* longest NOTIFY payload the server accepts (NOTIFY_PAYLOAD_MAX_LENGTH) */
#define PTM_NOTIFY_PAYLOAD_MAX		(BLCKSZ - NAMEDATALEN - 128)

void
ptm_notify(StringInfo buf, const char *topic, int32 partition_id)
{
	/* a payload over the NOTIFY limit would fail the whole transaction */
	if (buf->len >= PTM_NOTIFY_PAYLOAD_MAX)
	{
		if (partition_id >= 0)
			ereport(LOG,
					(errmsg("ptm_lease: no notification for partition %s-%d: payload of %d bytes is too long",
							topic, partition_id, buf->len)));
		else
			ereport(LOG,
					(errmsg("ptm_lease: no notification for topic %s: payload of %d bytes is too long",
							topic, buf->len)));
	}
	else
		ptm_announce(buf->data);
	pfree(buf->data);
}

void
ptm_notify_lease_event(const PtmLeaseEvent *ev)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"event\": \"%s\", \"topic\": ", ev->event);
	escape_json(&buf, ev->topic);
	appendStringInfo(&buf, ", \"partition_id\": %d", ev->partition_id);
	if (ev->agent_id)
	{
		appendStringInfoString(&buf, ", \"agent_id\": ");
		escape_json(&buf, ev->agent_id);
	}
	appendStringInfoString(&buf, ", \"previous_agent_id\": ");
	if (ev->previous_agent_id)
		escape_json(&buf, ev->previous_agent_id);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfo(&buf, ", \"lease_epoch\": " INT64_FORMAT ", \"%s\": " INT64_FORMAT "}",
					 ev->lease_epoch, ev->at_key, ev->at_ms);
	ptm_notify(&buf, ev->topic, ev->partition_id);
}

void
ptm_lease_taken(text *topic, int32 partition_id, const char *agent, const char *previous_agent,
				int64 epoch, int64 expires_ms, int64 ended_ms, int64 now_ms)
{
	if (ptm_announce_owner_changes())
	{
		PtmLeaseEvent ev = {0};

		ev.event = "acquired";
		ev.topic = text_to_cstring(topic);
		ev.partition_id = partition_id;
		ev.agent_id = agent;
		ev.previous_agent_id = previous_agent;
		ev.lease_epoch = epoch;
		ev.at_key = "expires_at_ms";
		ev.at_ms = expires_ms;
		ptm_notify_lease_event(&ev);
	}
	if (ended_ms >= 0)
		ptm_observe(PTM_HIST_RECOVERY_LATENCY, (double) (now_ms - ended_ms));
}

void
ptm_lease_released(text *topic, int32 partition_id, text *agent, int64 epoch, int64 released_ms)
{
	PtmLeaseEvent ev = {0};

	if (!ptm_announce_owner_changes())
		return;
	ev.event = "released";
	ev.topic = text_to_cstring(topic);
	ev.partition_id = partition_id;
	ev.previous_agent_id = text_to_cstring(agent);
	ev.lease_epoch = epoch;
	ev.at_key = "released_at_ms";
	ev.at_ms = released_ms;
	ptm_notify_lease_event(&ev);
}
