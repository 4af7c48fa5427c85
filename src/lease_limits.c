/*-------------------------------------------------------------------------
 *
 * lease_limits.c
 *	  Backpressure: the limits an acquisition must respect (per-agent and
 *	  per-topic lease limits, fair share, drained agents), and their
 *	  refusals counted.
 *
 * An acquisition that would take a lease (acquire_partition_lease, the bulk
 * form) asks ptm_limits_allowance() how many it may take.  The answer is
 * "limited" when
 *	  - the agent is drained (ptm.agent_drains),
 *	  - the agent holds ptm_lease.max_leases_per_agent live leases (all topics),
 *	  - the topic holds ptm.topic_limits.max_leases live leases (all agents),
 *	  - fair share is on (ptm_lease.fair_share, or the topic's override) and
 *		the agent would go above ceil(capacity / live agents) while another
 *		live agent of the topic is below it (ptm.balance computes the same).
 * Held and conflicting acquisitions, renewals and fences never ask.  The
 * operators that set the limits (set_topic_limit, drain_agent, ...) are in
 * balance.c.
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
 *	  - The operators of balance.c take none of these locks (see there).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"

#include "lease_events.h"
#include "lease_limits.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "validate.h"

/* Settings; see docs/balancing.md. */
static int	ptm_max_leases_per_agent = 0;
static bool ptm_fair_share = false;

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
ptm_limits_define_gucs(void)
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
ptm_limits_relcache_invalidated(Oid relid)
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
ptm_limits_active(void)
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
ptm_limits_lock(text *topic, text *agent)
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
ptm_agent_live_leases(text *agent, int64 now_ms)
{
	Datum		args[2] = {PointerGetDatum(agent), Int64GetDatum(now_ms)};
	bool		isnull;

	ptm_plan_run(&plan_agent_total, args, NULL);
	return DatumGetInt32(ptm_spi_value(0, 1, &isnull));
}

int
ptm_limits_allowance(text *topic, text *agent, int want, PtmLimitReason *why)
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
		cut(&allowance, ptm_max_leases_per_agent - ptm_agent_live_leases(agent, now_ms),
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
ptm_limits_count_refusal(PtmLimitReason why, text *topic)
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
