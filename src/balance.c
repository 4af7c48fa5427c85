/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  Balancing operators: topic membership and its announcements
 *	  (rebalance, leave_topic, event agents_changed), the limits an operator
 *	  sets (set_topic_limit, clear_topic_limit) and drains for deploys
 *	  (drain_agent, undrain_agent), each audited.
 *
 * The limits themselves are enforced by lease_limits.c, which every acquire
 * asks; what is set here reaches it through ptm.topic_limits and
 * ptm.agent_drains, whose statement trigger invalidates its cache.
 *
 * Locking: rebalance(), drain and leave take no advisory lock (the limits'
 * protocol is in lease_limits.c): they only lower counts or announce;
 * topic_generations' row lock orders announcements.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "identity.h"
#include "lease_events.h"
#include "lease_limits.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/* ---------------------------------------------------------------------
 * Announcing a topic's live agents (event agents_changed)
 * ---------------------------------------------------------------------
 */
static PtmPlan plan_live_agents = {
	.sql = "SELECT coalesce(pg_catalog.array_agg(agent_id ORDER BY agent_id) FILTER (WHERE NOT draining),"
	"                '{}'::text[])"
	"  FROM ptm.balance WHERE topic = $1",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_SELECT
};

/*
 * $1 topic, $2 live agents, $3 now: a row back when the set changed (or a
 * topic's first non-empty set was recorded).  A concurrent announcement
 * waits on the row lock and compares with what the first one stored.
 */
static PtmPlan plan_generation = {
	.sql = "INSERT INTO ptm.topic_generations AS g (topic, agents, generation, changed_at)"
	" SELECT $1, $2, 1, $3 WHERE pg_catalog.cardinality($2) > 0"
	"    OR EXISTS (SELECT 1 FROM ptm.topic_generations WHERE topic = $1)"
	" ON CONFLICT (topic) DO UPDATE"
	" SET agents = EXCLUDED.agents, generation = g.generation + 1, changed_at = EXCLUDED.changed_at"
	" WHERE g.agents IS DISTINCT FROM EXCLUDED.agents"
	" RETURNING g.generation, pg_catalog.cardinality(g.agents)",
	.nargs = 3, .argtypes = (const Oid[]) {TEXTOID, TEXTARRAYOID, TIMESTAMPTZOID},
	.expect = SPI_OK_INSERT_RETURNING
};

/* Record the topic's live agents; NOTIFY agents_changed when they changed. */
static void
announce_agents(text *topic)
{
	Datum		args[3];
	bool		isnull;
	StringInfoData buf;
	char	   *t;

	args[0] = PointerGetDatum(topic);
	ptm_plan_run(&plan_live_agents, args, NULL);
	args[1] = ptm_spi_value(0, 1, &isnull);
	args[2] = TimestampTzGetDatum(GetCurrentTimestamp());
	ptm_plan_run(&plan_generation, args, NULL);
	if (SPI_processed == 0)
		return;

	t = text_to_cstring(topic);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"event\": \"agents_changed\", \"topic\": ");
	escape_json(&buf, t);
	appendStringInfo(&buf, ", \"live_agents\": %d, \"generation\": " INT64_FORMAT "}",
					 DatumGetInt32(ptm_spi_value(0, 2, &isnull)),
					 DatumGetInt64(ptm_spi_value(0, 1, &isnull)));
	ptm_notify(&buf, t, -1);
}

/* Announce every topic where the agent holds a live lease or a membership. */
static PtmPlan plan_agent_topics = {
	.sql = "SELECT DISTINCT topic FROM ptm.balance WHERE agent_id = $1",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_SELECT
};

static void
announce_agent_topics(text *agent)
{
	Datum		args[1] = {PointerGetDatum(agent)};
	uint64		n;
	uint64		i;
	text	  **topics;
	bool		isnull;

	ptm_plan_run(&plan_agent_topics, args, NULL);
	n = SPI_processed;
	topics = palloc(sizeof(text *) * (n + 1));
	for (i = 0; i < n; i++)
		topics[i] = DatumGetTextPCopy(ptm_spi_value(i, 1, &isnull));
	for (i = 0; i < n; i++)
		announce_agents(topics[i]);
}

/* ---------------------------------------------------------------------
 * rebalance(topic, agent_id, ttl) and leave_topic(topic, agent_id)
 * ---------------------------------------------------------------------
 */
/* $1 topic, $2 agent, $3 member_until, $4 now */
static PtmPlan plan_join = {
	.sql = "INSERT INTO ptm.topic_agents AS m (topic, agent_id, member_until, joined_at, seen_at)"
	" VALUES ($1, $2, $3, $4, $4)"
	" ON CONFLICT (topic, agent_id) DO UPDATE"
	" SET member_until = EXCLUDED.member_until, seen_at = EXCLUDED.seen_at,"
	"     joined_at = CASE WHEN m.member_until > $5 THEN m.joined_at ELSE EXCLUDED.joined_at END",
	.nargs = 5, .argtypes = (const Oid[]) {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, INT8OID},
	.expect = SPI_OK_INSERT
};

/* $1 topic, $2 now_ms: memberships over for a minute are forgotten */
static PtmPlan plan_forget = {
	.sql = "DELETE FROM ptm.topic_agents WHERE topic = $1 AND member_until < $2 - 60000",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT8OID},
	.expect = SPI_OK_DELETE
};

/*
 * $1 topic, $2 agent, $3 now_ms: the leases to hand back, least recently
 * renewed first (then by partition, a stable rule), as many as the excess.
 */
static PtmPlan plan_hand_back = {
	.sql = "SELECT l.partition_id, l.lease_epoch, l.lease_expires_at"
	"  FROM ptm.partition_leases l"
	" WHERE l.topic = $1 AND l.agent_id = $2 AND l.lease_expires_at > $3"
	" ORDER BY l.renewed_at, l.partition_id"
	" LIMIT (SELECT GREATEST(b.excess, 0) FROM ptm.balance b"
	"         WHERE b.topic = $1 AND b.agent_id = $2)",
	.nargs = 3, .argtypes = (const Oid[]) {TEXTOID, TEXTOID, INT8OID},
	.expect = SPI_OK_SELECT
};

/* Join the topic (or stay) until now + ttl; forget memberships long over. */
static void
join_topic(text *topic, text *agent, int64 now_ms, int64 ttl_ms)
{
	Datum		args[5] = {PointerGetDatum(topic), PointerGetDatum(agent),
		Int64GetDatum(now_ms + ttl_ms), TimestampTzGetDatum(GetCurrentTimestamp()),
	Int64GetDatum(now_ms)};

	ptm_plan_run(&plan_join, args, NULL);
	args[1] = Int64GetDatum(now_ms);
	ptm_plan_run(&plan_forget, args, NULL);
}

/* A "release" row for each lease the agent holds above its share. */
static void
put_hand_backs(ReturnSetInfo *rsinfo, text *topic, text *agent, char *agent_str, int64 now_ms)
{
	Datum		args[3] = {PointerGetDatum(topic), PointerGetDatum(agent), Int64GetDatum(now_ms)};
	uint64		n = ptm_plan_run(&plan_hand_back, args, NULL);
	uint64		i;

	for (i = 0; i < n; i++)
	{
		bool		isnull;
		PtmLeaseResult r = {0};

		r.result = "release";
		r.topic = topic;
		r.partition_id = DatumGetInt32(ptm_spi_value(i, 1, &isnull));
		r.agent_id = agent_str;
		r.has_lease = true;
		r.epoch = DatumGetInt64(ptm_spi_value(i, 2, &isnull));
		r.expires_ms = DatumGetInt64(ptm_spi_value(i, 3, &isnull));
		tuplestore_puttuple(rsinfo->setResult, ptm_lease_result_tuple(rsinfo->setDesc, &r));
	}
}

PG_FUNCTION_INFO_V1(ptm_rebalance);
Datum
ptm_rebalance(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	text	   *agent = ptm_get_name(fcinfo, 1, "agent_id");
	int64		ttl_ms = ptm_get_ttl_ms(fcinfo, 2, "ttl");
	int64		now_ms = ptm_now_ms();
	ReturnSetInfo *rsinfo = ptm_init_srf(fcinfo);
	char	   *agent_str = text_to_cstring(agent);

	ptm_check_agent(agent, "agent_id");
	spi = ptm_spi_connect(false);
	join_topic(topic, agent, now_ms, ttl_ms);
	announce_agents(topic);
	put_hand_backs(rsinfo, topic, agent, agent_str, now_ms);
	ptm_spi_finish(spi);

	return (Datum) 0;
}

static PtmPlan plan_leave = {
	.sql = "DELETE FROM ptm.topic_agents WHERE topic = $1 AND agent_id = $2",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, TEXTOID},
	.expect = SPI_OK_DELETE
};

PG_FUNCTION_INFO_V1(ptm_leave_topic);
Datum
ptm_leave_topic(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	text	   *agent = ptm_get_name(fcinfo, 1, "agent_id");
	Datum		args[2] = {PointerGetDatum(topic), PointerGetDatum(agent)};
	bool		was_member;

	ptm_check_agent(agent, "agent_id");
	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_leave, args, NULL);
	was_member = SPI_processed > 0;
	announce_agents(topic);
	ptm_spi_finish(spi);

	PG_RETURN_BOOL(was_member);
}

/* ---------------------------------------------------------------------
 * Operators: set_topic_limit, clear_topic_limit, drain_agent, undrain_agent
 * ---------------------------------------------------------------------
 */
/* The role that called a SECURITY DEFINER function (it runs as its owner). */
static Datum
caller_name(void)
{
	return CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
}

/* $1 topic, $2 max_leases, $3 fair_share, $4 reason, $5 caller */
static PtmPlan plan_set_limit = {
	.sql = "INSERT INTO ptm.topic_limits AS t (topic, max_leases, fair_share, reason, updated_at, updated_by)"
	" VALUES ($1, $2, $3, $4, pg_catalog.clock_timestamp(), $5)"
	" ON CONFLICT (topic) DO UPDATE"
	" SET max_leases = EXCLUDED.max_leases, fair_share = EXCLUDED.fair_share,"
	"     reason = EXCLUDED.reason, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by"
	" RETURNING t.*",
	.nargs = 5, .argtypes = (const Oid[]) {TEXTOID, INT4OID, BOOLOID, TEXTOID, TEXTOID},
	.expect = SPI_OK_INSERT_RETURNING
};

static PtmPlan plan_clear_limit = {
	.sql = "DELETE FROM ptm.topic_limits WHERE topic = $1 RETURNING max_leases, fair_share",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_DELETE_RETURNING
};

/* The details of a topic-limit audit row: {"max_leases": .., "fair_share": ..}. */
static char *
limit_details(bool max_null, int32 max_leases, bool fair_null, bool fair_share)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"max_leases\": ");
	if (max_null)
		appendStringInfoString(&buf, "null");
	else
		appendStringInfo(&buf, "%d", max_leases);
	appendStringInfo(&buf, ", \"fair_share\": %s}",
					 fair_null ? "null" : fair_share ? "true" : "false");
	return buf.data;
}

PG_FUNCTION_INFO_V1(ptm_set_topic_limit);
Datum
ptm_set_topic_limit(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	bool		max_null = PG_ARGISNULL(1);
	int32		max_leases = max_null ? 0 : PG_GETARG_INT32(1);
	bool		fair_null = PG_ARGISNULL(2);
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	PtmAudit	audit = {0};
	Datum		result;

	if (!max_null && max_leases < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_leases must not be negative"),
				 errdetail("The value given was %d; NULL removes the limit, 0 lets no lease be acquired.",
						   max_leases)));

	args[0] = PointerGetDatum(topic);
	args[1] = Int32GetDatum(max_leases);
	nulls[1] = max_null ? 'n' : ' ';
	args[2] = fair_null ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = fair_null ? 'n' : ' ';
	args[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	args[4] = caller_name();

	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_set_limit, args, nulls);
	result = PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc));

	audit.action = "set_topic_limit";
	audit.topic = topic;
	audit.partition_id = -1;
	audit.reason = args[3];
	audit.reason_null = PG_ARGISNULL(3);
	audit.details = limit_details(max_null, max_leases, fair_null,
								  fair_null ? false : PG_GETARG_BOOL(2));
	ptm_write_audit(&audit);
	ptm_spi_finish(spi);

	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(ptm_clear_topic_limit);
Datum
ptm_clear_topic_limit(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	Datum		args[1] = {PointerGetDatum(topic)};
	bool		cleared;

	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_clear_limit, args, NULL);
	cleared = SPI_processed > 0;
	if (cleared)
	{
		bool		max_null,
					fair_null;
		Datum		max = ptm_spi_value(0, 1, &max_null);
		Datum		fair = ptm_spi_value(0, 2, &fair_null);
		PtmAudit	audit = {0};

		audit.action = "clear_topic_limit";
		audit.topic = topic;
		audit.partition_id = -1;
		audit.reason = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
		audit.reason_null = PG_ARGISNULL(1);
		audit.details = limit_details(max_null, max_null ? 0 : DatumGetInt32(max),
									  fair_null, fair_null ? false : DatumGetBool(fair));
		ptm_write_audit(&audit);
	}
	ptm_spi_finish(spi);

	PG_RETURN_BOOL(cleared);
}

/* $1 agent, $2 reason, $3 caller */
static PtmPlan plan_drain = {
	.sql = "INSERT INTO ptm.agent_drains (agent_id, reason, drained_by) VALUES ($1, $2, $3)"
	" ON CONFLICT (agent_id) DO NOTHING",
	.nargs = 3, .argtypes = (const Oid[]) {TEXTOID, TEXTOID, TEXTOID},
	.expect = SPI_OK_INSERT
};

static PtmPlan plan_undrain = {
	.sql = "DELETE FROM ptm.agent_drains WHERE agent_id = $1",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_DELETE
};

/* Audit a drain or undrain: the agent, its live leases, in details. */
static void
audit_drain(const char *action, text *agent, int live, FunctionCallInfo fcinfo)
{
	PtmAudit	audit = {0};
	StringInfoData buf;
	char	   *a = text_to_cstring(agent);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"agent_id\": ");
	escape_json(&buf, a);
	appendStringInfo(&buf, ", \"live_leases\": %d}", live);

	audit.action = action;
	audit.partition_id = -1;
	audit.previous_agent_id = a;
	audit.reason = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	audit.reason_null = PG_ARGISNULL(1);
	audit.details = buf.data;
	ptm_write_audit(&audit);
	ereport(LOG,
			(errmsg("agent \"%s\" %s: it holds %d live leases", a,
					strcmp(action, "drain_agent") == 0 ? "drained" : "no longer drained", live),
			 errdetail("By role \"%s\".", GetUserNameFromId(GetOuterUserId(), false))));
}

PG_FUNCTION_INFO_V1(ptm_drain_agent);
Datum
ptm_drain_agent(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *agent = ptm_get_name(fcinfo, 0, "agent_id");
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			live;

	args[0] = PointerGetDatum(agent);
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	args[2] = caller_name();

	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_drain, args, nulls);
	live = ptm_agent_live_leases(agent, ptm_now_ms());
	/* every call is audited, a repeated one too (it may carry a new reason) */
	audit_drain("drain_agent", agent, live, fcinfo);
	announce_agent_topics(agent);
	ptm_spi_finish(spi);

	PG_RETURN_INT32(live);
}

PG_FUNCTION_INFO_V1(ptm_undrain_agent);
Datum
ptm_undrain_agent(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *agent = ptm_get_name(fcinfo, 0, "agent_id");
	Datum		args[1] = {PointerGetDatum(agent)};
	bool		was_drained;

	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_undrain, args, NULL);
	was_drained = SPI_processed > 0;
	if (was_drained)
	{
		audit_drain("undrain_agent", agent, ptm_agent_live_leases(agent, ptm_now_ms()), fcinfo);
		announce_agent_topics(agent);
	}
	ptm_spi_finish(spi);

	PG_RETURN_BOOL(was_drained);
}
