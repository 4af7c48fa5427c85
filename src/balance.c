/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  Fair share and backpressure: per-agent and per-topic lease limits, fair
 *	  share, drained agents, topic membership, rebalance and drain.
 *
 * An acquisition that would take a lease (acquire_partition_lease, the bulk
 * form) asks ptm_balance_allowance() how many it may take.  The answer is
 * "limited" when
 *	  - the agent is drained (ptm.agent_drains),
 *	  - the agent holds ptm_lease.max_leases_per_agent live leases (all topics),
 *	  - the topic holds ptm.topic_limits.max_leases live leases (all agents),
 *	  - fair share is on (ptm_lease.fair_share, or the topic's override) and
 *		the agent would go above ceil(capacity / live agents) while another
 *		live agent of the topic is below it (ptm.balance computes the same).
 * Held and conflicting acquisitions, renewals and fences never ask.
 *
 * Cost when off: both settings off, no topic limit and no drain means no
 * query at all.  Whether the two tables have rows is cached per backend; a
 * statement trigger on them (ptm._balance_changed) sends a relcache
 * invalidation at commit, which every backend receives before its next
 * transaction (or lock) and which makes it read the tables again.
 *
 * Locking protocol (why a limit is never exceeded, even concurrently)
 *	  - Before locking the lease row it may take, an acquisition takes
 *		transaction-level advisory locks: first on the agent (when
 *		max_leases_per_agent is on), then on the topic (when fair share is on
 *		or any topic limit exists).  Always in that order, and always before
 *		any lease row lock, so these locks cannot deadlock with each other.
 *	  - Holding them, it counts (the agent's live leases, the topic's, the
 *		shares) with a snapshot taken after the locks were granted (the newest
 *		snapshot also under REPEATABLE READ), decides, and takes or refuses.
 *	  - The locks are held until the transaction ends, so a second acquisition
 *		by the same agent, or on the same topic, waits and then counts the
 *		first one's committed lease.  Two acquisitions can thus never both see
 *		room for one lease.
 *	  - Only increases of a count need the locks; a release, expiry or drain
 *		lowers counts and never invalidates a decision made.
 *	  - The advisory lock tags are (database, hash of the name, 1 = agent or
 *		2 = topic, 0x5054): field 4 ("PT") keeps them apart from users'
 *		pg_advisory_xact_lock() keys, which use 1 or 2 there.  A hash
 *		collision only serializes two names needlessly.
 *	  - rebalance(), drain and leave take no advisory lock: they only lower
 *		counts or announce; topic_generations' row lock orders announcements.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "balance.h"
#include "identity.h"
#include "leases.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/* Settings; see docs/balancing.md. */
int			ptm_max_leases_per_agent = 0;
bool		ptm_fair_share = false;

/* Field 4 of our advisory lock tags ("PT"); users' advisory locks use 1 or 2. */
#define PTM_LOCK_FIELD4		0x5054
#define PTM_LOCK_AGENT		1
#define PTM_LOCK_TOPIC		2

/* Whether ptm.topic_limits and ptm.agent_drains have rows, per backend. */
static bool cache_valid = false;
static bool cache_any_topic_limits = false;
static bool cache_any_drains = false;
static Oid	cache_limits_relid = InvalidOid;
static Oid	cache_drains_relid = InvalidOid;
static uint64 cache_invalidations = 0;

/*
 * The limits' reads: in READ COMMITTED a fresh snapshot, under REPEATABLE
 * READ or SERIALIZABLE the newest one, so that a lease committed by the
 * transaction we waited for is counted (PTM_SNAPSHOT_LATEST).
 */
static PtmPlan plan_cache = {
	.sql = "SELECT EXISTS (SELECT 1 FROM ptm.topic_limits), EXISTS (SELECT 1 FROM ptm.agent_drains),"
	" 'ptm.topic_limits'::pg_catalog.regclass::pg_catalog.oid,"
	" 'ptm.agent_drains'::pg_catalog.regclass::pg_catalog.oid",
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_LATEST
};

static PtmPlan plan_drained = {
	.sql = "SELECT 1 FROM ptm.agent_drains WHERE agent_id = $1",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_LATEST
};

/* $1 agent, $2 now_ms; through partition_leases_agent_idx */
static PtmPlan plan_agent_total = {
	.sql = "SELECT pg_catalog.count(*)::integer FROM ptm.partition_leases"
	" WHERE agent_id = $1 AND lease_expires_at > $2",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT8OID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_LATEST
};

static PtmPlan plan_topic_limit = {
	.sql = "SELECT max_leases, fair_share FROM ptm.topic_limits WHERE topic = $1",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_LATEST
};

/* $1 topic, $2 now_ms */
static PtmPlan plan_topic_total = {
	.sql = "SELECT pg_catalog.count(*)::integer FROM ptm.partition_leases"
	" WHERE topic = $1 AND agent_id IS NOT NULL AND lease_expires_at > $2",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT8OID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_LATEST
};

static PtmPlan plan_shares = {
	.sql = "SELECT agent_id, leases, draining, capacity, live_agents FROM ptm.balance WHERE topic = $1",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_LATEST
};

/* ---------------------------------------------------------------------
 * Settings and the cache
 * ---------------------------------------------------------------------
 */
void
ptm_balance_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.max_leases_per_agent",
							gettext_noop("Most live leases one agent may hold, over all topics; 0 turns the limit off."),
							gettext_noop("An acquisition past it returns \"limited\" and counts "
										 "ptm_backpressure_total{reason=\"worker_limit\"}."),
							&ptm_max_leases_per_agent,
							0, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("ptm_lease.fair_share",
							 gettext_noop("Refuses an acquisition that would put an agent above its fair share "
										  "of a topic while another live agent is below it."),
							 gettext_noop("ptm.topic_limits.fair_share overrides it per topic."),
							 &ptm_fair_share,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

void
ptm_balance_relcache_invalidated(Oid relid)
{
	if (relid == InvalidOid || relid == cache_limits_relid || relid == cache_drains_relid)
	{
		cache_valid = false;
		cache_invalidations++;
	}
}

static void
load_cache(void)
{
	uint64		before;
	bool		isnull;

	/* a change committed before this call is seen now */
	AcceptInvalidationMessages();
	if (cache_valid)
		return;

	/* An invalidation that arrives while we read leaves the cache invalid. */
	before = cache_invalidations;
	ptm_plan_run(&plan_cache, NULL, NULL);
	cache_any_topic_limits = DatumGetBool(ptm_spi_value(0, 1, &isnull));
	cache_any_drains = DatumGetBool(ptm_spi_value(0, 2, &isnull));
	cache_limits_relid = DatumGetObjectId(ptm_spi_value(0, 3, &isnull));
	cache_drains_relid = DatumGetObjectId(ptm_spi_value(0, 4, &isnull));
	if (cache_invalidations == before)
		cache_valid = true;
}

/* Trigger on ptm.topic_limits and ptm.agent_drains: every backend re-reads. */
PG_FUNCTION_INFO_V1(ptm_balance_changed);
Datum
ptm_balance_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ptm._balance_changed() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

bool
ptm_balance_active(void)
{
	if (ptm_max_leases_per_agent > 0 || ptm_fair_share)
		return true;
	load_cache();
	return cache_any_topic_limits || cache_any_drains;
}

/* ---------------------------------------------------------------------
 * Locks and the allowance
 * ---------------------------------------------------------------------
 */
static void
lock_name(text *name, uint32 kind)
{
	LOCKTAG		tag;
	uint32		h = DatumGetUInt32(hash_any((const unsigned char *) VARDATA_ANY(name),
											VARSIZE_ANY_EXHDR(name)));

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, h, kind, PTM_LOCK_FIELD4);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

void
ptm_balance_lock(text *topic, text *agent)
{
	if (ptm_max_leases_per_agent > 0)
		lock_name(agent, PTM_LOCK_AGENT);
	load_cache();
	if (ptm_fair_share || cache_any_topic_limits)
		lock_name(topic, PTM_LOCK_TOPIC);
}

/* Lower *allowance to room (never below 0), naming the limit that did it. */
static void
cut(int *allowance, int room, PtmLimitReason reason, PtmLimitReason *why)
{
	if (room < 0)
		room = 0;
	if (room < *allowance)
	{
		*allowance = room;
		*why = reason;
	}
}

/* Whether a name read from a row (a C string) is the text t. */
static bool
is_name(const char *s, text *t)
{
	return strlen(s) == VARSIZE_ANY_EXHDR(t) &&
		memcmp(s, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) == 0;
}

/*
 * The fair-share room of agent on topic: share - held, when another live
 * agent is below the share; otherwise want (no cut).  *total gets the
 * topic's live leases.  The rule is ptm.balance's, with the caller counted
 * as live even before it joined.
 */
static int
fair_share_room(text *topic, text *agent, int want, int *total)
{
	Datum		args[1] = {PointerGetDatum(topic)};
	uint64		i;
	int			mine = 0;
	int			live = 0;
	int			capacity = 0;
	bool		present = false;
	int			share;
	bool		other_below = false;

	ptm_plan_run(&plan_shares, args, NULL);
	*total = 0;
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *a = TextDatumGetCString(ptm_spi_value(i, 1, &isnull));
		int			leases = DatumGetInt32(ptm_spi_value(i, 2, &isnull));

		*total += leases;
		capacity = DatumGetInt32(ptm_spi_value(i, 4, &isnull));
		live = DatumGetInt32(ptm_spi_value(i, 5, &isnull));
		if (is_name(a, agent))
		{
			present = true;
			mine = leases;
		}
	}
	if (SPI_processed == 0)
		return want;			/* nobody else is live here */
	if (!present)
		live++;
	share = (capacity + live - 1) / live;
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *a = TextDatumGetCString(ptm_spi_value(i, 1, &isnull));

		if (!DatumGetBool(ptm_spi_value(i, 3, &isnull)) && !is_name(a, agent) &&
			DatumGetInt32(ptm_spi_value(i, 2, &isnull)) < share)
			other_below = true;
	}
	return other_below ? share - mine : want;
}

int
ptm_balance_allowance(text *topic, text *agent, int want, PtmLimitReason *why)
{
	int64		now_ms = ptm_now_ms();
	int			allowance = want;
	bool		fair = ptm_fair_share;
	int			topic_max = -1;
	int			total = -1;
	bool		isnull;

	*why = PTM_LIMIT_NONE;
	load_cache();

	if (cache_any_drains)
	{
		Datum		args[1] = {PointerGetDatum(agent)};

		ptm_plan_run(&plan_drained, args, NULL);
		if (SPI_processed > 0)
		{
			*why = PTM_LIMIT_DRAINING;
			return 0;
		}
	}

	if (ptm_max_leases_per_agent > 0)
	{
		Datum		args[2] = {PointerGetDatum(agent), Int64GetDatum(now_ms)};

		ptm_plan_run(&plan_agent_total, args, NULL);
		cut(&allowance, ptm_max_leases_per_agent - DatumGetInt32(ptm_spi_value(0, 1, &isnull)),
			PTM_LIMIT_WORKER, why);
		if (allowance == 0)
			return 0;
	}

	if (cache_any_topic_limits)
	{
		Datum		args[1] = {PointerGetDatum(topic)};

		ptm_plan_run(&plan_topic_limit, args, NULL);
		if (SPI_processed > 0)
		{
			Datum		max = ptm_spi_value(0, 1, &isnull);

			if (!isnull)
				topic_max = DatumGetInt32(max);
			max = ptm_spi_value(0, 2, &isnull);
			if (!isnull)
				fair = DatumGetBool(max);
		}
	}

	if (fair)
	{
		int			room = fair_share_room(topic, agent, want, &total);

		if (topic_max >= 0)
			cut(&allowance, topic_max - total, PTM_LIMIT_TENANT, why);
		cut(&allowance, room, PTM_LIMIT_FAIR_SHARE, why);
	}
	else if (topic_max >= 0)
	{
		Datum		args[2] = {PointerGetDatum(topic), Int64GetDatum(now_ms)};

		ptm_plan_run(&plan_topic_total, args, NULL);
		cut(&allowance, topic_max - DatumGetInt32(ptm_spi_value(0, 1, &isnull)),
			PTM_LIMIT_TENANT, why);
	}
	return allowance;
}

void
ptm_balance_count_refusal(PtmLimitReason why, text *topic)
{
	PtmCounter	c;

	switch (why)
	{
		case PTM_LIMIT_DRAINING:
			c = PTM_BACKPRESSURE_DRAINING;
			break;
		case PTM_LIMIT_WORKER:
			c = PTM_BACKPRESSURE_WORKER;
			break;
		case PTM_LIMIT_TENANT:
			c = PTM_BACKPRESSURE_TENANT;
			break;
		case PTM_LIMIT_FAIR_SHARE:
			c = PTM_BACKPRESSURE_FAIR_SHARE;
			break;
		default:
			return;
	}
	ptm_count_topic(c, topic);
}

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
	uint64		i;

	ptm_check_agent(agent, "agent_id");
	spi = ptm_spi_connect(false);
	{
		Datum		args[5] = {PointerGetDatum(topic), PointerGetDatum(agent),
			Int64GetDatum(now_ms + ttl_ms), TimestampTzGetDatum(GetCurrentTimestamp()),
		Int64GetDatum(now_ms)};

		ptm_plan_run(&plan_join, args, NULL);
		args[1] = Int64GetDatum(now_ms);
		ptm_plan_run(&plan_forget, args, NULL);
	}
	announce_agents(topic);
	{
		Datum		args[3] = {PointerGetDatum(topic), PointerGetDatum(agent),
		Int64GetDatum(now_ms)};

		ptm_plan_run(&plan_hand_back, args, NULL);
	}
	for (i = 0; i < SPI_processed; i++)
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

static int
agent_live_leases(text *agent)
{
	Datum		args[2] = {PointerGetDatum(agent), Int64GetDatum(ptm_now_ms())};
	bool		isnull;

	ptm_plan_run(&plan_agent_total, args, NULL);
	return DatumGetInt32(ptm_spi_value(0, 1, &isnull));
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
	live = agent_live_leases(agent);
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
		audit_drain("undrain_agent", agent, agent_live_leases(agent), fcinfo);
		announce_agent_topics(agent);
	}
	ptm_spi_finish(spi);

	PG_RETURN_BOOL(was_drained);
}
