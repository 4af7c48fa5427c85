/*-------------------------------------------------------------------------
 *
 * lease_bulk.c
 *	  The bulk lease calls: acquire_partition_leases (take up to n free or
 *	  expired leases of a topic), renew_leases (renew many leases in one
 *	  statement) and ensure_partitions (create a topic's lease rows).
 *
 * Locking
 *	  - acquire_partition_leases locks free or expired rows with SELECT ...
 *		FOR UPDATE SKIP LOCKED and takes them in the same statement: a row in
 *		a takeover, a renewal or under a fence is skipped, never waited for.
 *		Before it, the limits' advisory locks are taken (lease_limits.c),
 *		which come before any lease row lock, as in the single acquire.
 *	  - renew_leases is one UPDATE ... FROM unnest(...): as renew_lease, per
 *		row, READ COMMITTED re-checks its WHERE clause on the newest row
 *		version.  Its waits are bounded by ptm_lease.lock_wait_timeout; past
 *		the bound every lease is renewed alone without waiting, so the held
 *		ones come back "busy".
 *	  - ensure_partitions is INSERT ... ON CONFLICT DO NOTHING: existing rows
 *		are left untouched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "epochs.h"
#include "identity.h"
#include "lease_events.h"
#include "lease_limits.h"
#include "lease_rows.h"
#include "leases.h"
#include "lock_wait.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/*
 * $1 topic, $2 agent, $3 now_ms, $4 max, $5 expires_ms, $6 now.  Returns the
 * lease's end before the take (its expiry, release or force; NULL when it
 * never had an owner) for recovery_latency_ms, and its last owner.
 */
static PtmPlan plan_bulk_acquire = {
	.sql = "WITH candidates AS ("
	"  SELECT topic, partition_id, state, lease_expires_at FROM ptm.partition_leases"
	"   WHERE topic = $1 AND (agent_id IS NULL OR lease_expires_at <= $3)"
	"   ORDER BY partition_id LIMIT $4 FOR UPDATE SKIP LOCKED)"
	" UPDATE ptm.partition_leases l SET"
	" previous_agent_id = coalesce(l.agent_id, l.previous_agent_id),"
	" previous_epoch = CASE WHEN l.agent_id IS NOT NULL THEN l.lease_epoch ELSE l.previous_epoch END,"
	" agent_id = $2, state = 'active',"
	" lease_epoch = pg_catalog.nextval('ptm.lease_epoch_seq'),"
	" lease_expires_at = $5, sweep_at = $5, acquired_at = $6, renewed_at = $6, ended_at = NULL"
	" FROM candidates c WHERE l.topic = c.topic AND l.partition_id = c.partition_id"
	" RETURNING l.partition_id, l.lease_epoch,"
	"  CASE WHEN c.state <> 'free' THEN c.lease_expires_at END, l.previous_agent_id",
	.nargs = 6, .argtypes = (const Oid[]) {TEXTOID, TEXTOID, INT8OID, INT4OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/* $1 topic, $2 now_ms: is a lease still free or expired (bulk acquire cut by a limit)? */
static PtmPlan plan_any_free = {
	.sql = "SELECT 1 FROM ptm.partition_leases"
	" WHERE topic = $1 AND (agent_id IS NULL OR lease_expires_at <= $2) LIMIT 1",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT8OID},
	.expect = SPI_OK_SELECT
};

/* $1 agent, $2 topics, $3 partitions, $4 epochs, $5 now_ms, $6 expires_ms, $7 now */
static PtmPlan plan_bulk_renew = {
	.sql = "UPDATE ptm.partition_leases l"
	" SET lease_expires_at = greatest(l.lease_expires_at, $6), renewed_at = $7"
	/* PG 13 has no multi-argument unnest(): spell out ROWS FROM */
	" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
	"   WITH ORDINALITY AS r(topic, partition_id, lease_epoch, ord)"
	" WHERE l.topic = r.topic AND l.partition_id = r.partition_id"
	"   AND l.agent_id = $1 AND l.lease_epoch = r.lease_epoch AND l.lease_expires_at > $5"
	" RETURNING r.ord, l.lease_expires_at",
	.nargs = 7, .argtypes = (const Oid[]) {TEXTOID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/* $1 topic, $2 partitions */
static PtmPlan plan_ensure = {
	.sql = "INSERT INTO ptm.partition_leases (topic, partition_id)"
	" SELECT $1, p FROM pg_catalog.generate_series(0, $2 - 1) AS p"
	" ON CONFLICT (topic, partition_id) DO NOTHING",
	.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, INT4OID},
	.expect = SPI_OK_INSERT
};

/* ---------------------------------------------------------------------
 * acquire_partition_leases(topic, agent_id, max_leases, ttl)
 * ---------------------------------------------------------------------
 */

/* Take up to allowance free or expired leases of topic: how many were taken. */
static uint64
take_free_leases(text *topic, text *agent, int allowance, int64 now_ms, int64 ttl_ms)
{
	Datum		args[6] = {PointerGetDatum(topic), PointerGetDatum(agent),
		Int64GetDatum(now_ms), Int32GetDatum(allowance),
	Int64GetDatum(now_ms + ttl_ms), TimestampTzGetDatum(GetCurrentTimestamp())};
	Oid			seq = ptm_epochs_lift_to_era();
	uint64		n;

	n = ptm_plan_run(&plan_bulk_acquire, args, NULL);
	ptm_epochs_after_raise(seq);	/* durable before the caller sees it */
	return n;
}

/* A result row and an "acquired" event for each of the n leases taken. */
static void
put_taken_leases(ReturnSetInfo *rsinfo, text *topic, char *agent_str, uint64 n,
				 int64 now_ms, int64 ttl_ms)
{
	uint64		i;

	for (i = 0; i < n; i++)
	{
		bool		isnull;
		bool		never_owned;
		bool		no_previous;
		Datum		ended = ptm_spi_value(i, 3, &never_owned);
		Datum		previous = ptm_spi_value(i, 4, &no_previous);
		PtmLeaseResult out = {0};

		out.result = "acquired";
		out.topic = topic;
		out.partition_id = DatumGetInt32(ptm_spi_value(i, 1, &isnull));
		out.agent_id = agent_str;
		out.epoch = DatumGetInt64(ptm_spi_value(i, 2, &isnull));
		out.expires_ms = now_ms + ttl_ms;
		out.has_lease = true;
		tuplestore_puttuple(rsinfo->setResult, ptm_lease_result_tuple(rsinfo->setDesc, &out));
		ptm_lease_taken(topic, out.partition_id, agent_str,
						no_previous ? NULL : TextDatumGetCString(previous),
						out.epoch, out.expires_ms, never_owned ? -1 : DatumGetInt64(ended), now_ms);
	}
}

/*
 * A limit cut the request and every lease it allowed was taken: when a lease
 * was still there to take, the limit kept the agent from it (backpressure).
 */
static void
count_cut_short(text *topic, PtmLimitReason why)
{
	Datum		args[2] = {PointerGetDatum(topic), Int64GetDatum(ptm_now_ms())};

	if (ptm_plan_run(&plan_any_free, args, NULL) > 0)
		ptm_limits_count_refusal(why, topic);
}

PG_FUNCTION_INFO_V1(ptm_acquire_partition_leases_0_2);
Datum
ptm_acquire_partition_leases_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	text	   *agent = ptm_get_name(fcinfo, 1, "agent_id");
	int32		max_leases;
	int64		ttl_ms = ptm_get_ttl_ms(fcinfo, 3, "ttl");
	ReturnSetInfo *rsinfo;
	int64		now_ms = ptm_now_ms();
	int			allowance;
	PtmLimitReason why = PTM_LIMIT_NONE;
	char	   *agent_str;
	uint64		n;

	ptm_check_not_null(fcinfo, 2, "max_leases");
	max_leases = PG_GETARG_INT32(2);
	if (max_leases <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_leases must be positive"),
				 errdetail("The value given was %d.", max_leases)));
	allowance = max_leases;

	ptm_check_agent(agent, "agent_id");
	rsinfo = ptm_init_srf(fcinfo);
	agent_str = text_to_cstring(agent);

	spi = ptm_spi_connect(false);

	/* The limits cut the request to what the agent may take (lease_limits.c). */
	if (ptm_limits_active())
	{
		ptm_limits_lock(topic, agent);
		allowance = ptm_limits_allowance(topic, agent, max_leases, &why);
		now_ms = ptm_now_ms();
	}
	n = allowance > 0 ? take_free_leases(topic, agent, allowance, now_ms, ttl_ms) : 0;
	put_taken_leases(rsinfo, topic, agent_str, n, now_ms, ttl_ms);
	ptm_count_n(PTM_LEASE_ACQUIRE_SUCCESS, n);
	if (allowance < max_leases && n == (uint64) allowance)
		count_cut_short(topic, why);
	ptm_spi_finish(spi);

	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * renew_leases(agent_id, topics, partition_ids, lease_epochs, ttl)
 * ---------------------------------------------------------------------
 */

/* The leases to renew: element i of each array names one. */
typedef struct RenewInput
{
	Datum	   *topics;
	Datum	   *partitions;
	Datum	   *epochs;
	int			n;
} RenewInput;

/* The arrays have one length, and each element is a valid name, partition and epoch. */
static void
check_renew_input(const RenewInput *in, int np, int ne)
{
	int			i;

	if (np != in->n || ne != in->n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("topics, partition_ids and lease_epochs must have the same length"),
				 errdetail("They have %d, %d and %d elements.", in->n, np, ne)));
	for (i = 0; i < in->n; i++)
	{
		ptm_check_name(DatumGetTextPP(in->topics[i]), "topics", i + 1);
		if (DatumGetInt32(in->partitions[i]) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("partition_ids[%d] must not be negative", i + 1)));
		if (DatumGetInt64(in->epochs[i]) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lease_epochs[%d] must be positive", i + 1)));
	}
}

/* One plan_bulk_renew, for ptm_with_lock_timeout(). */
typedef struct BulkRenew
{
	Datum	   *args;
	bool	   *renewed;
	int64	   *renewed_until;
} BulkRenew;

/* Each updated row names the input it came from (1-based). */
static void
bulk_renew(void *arg)
{
	BulkRenew  *b = (BulkRenew *) arg;
	uint64		r;

	ptm_plan_run(&plan_bulk_renew, b->args, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		ord = DatumGetInt64(ptm_spi_value(r, 1, &isnull));

		b->renewed[ord - 1] = true;
		b->renewed_until[ord - 1] = DatumGetInt64(ptm_spi_value(r, 2, &isnull));
	}
}

/*
 * A row was held past the bound: renew each lease alone, without waiting
 * again, so the held ones come back "busy".
 */
static void
renew_each_alone(ReturnSetInfo *rsinfo, const RenewInput *in, text *agent, int64 ttl_ms)
{
	int			i;

	for (i = 0; i < in->n; i++)
	{
		PtmLeaseResult out = {0};

		ptm_renew_one(&out, DatumGetTextPP(in->topics[i]), DatumGetInt32(in->partitions[i]),
					  agent, DatumGetInt64(in->epochs[i]), ttl_ms, 0);
		tuplestore_puttuple(rsinfo->setResult, ptm_lease_result_tuple(rsinfo->setDesc, &out));
	}
}

/*
 * A lease named twice is updated once, for one of its inputs: the others
 * renewed it too.  Only inputs left unmarked are compared, so the common
 * case stays linear.
 */
static void
mark_repeated_inputs(const RenewInput *in, bool *renewed, int64 *renewed_until)
{
	int			i;

	for (i = 0; i < in->n; i++)
	{
		int			j;

		if (renewed[i])
			continue;
		for (j = 0; j < in->n; j++)
			if (renewed[j] && j != i &&
				DatumGetInt32(in->partitions[j]) == DatumGetInt32(in->partitions[i]) &&
				DatumGetInt64(in->epochs[j]) == DatumGetInt64(in->epochs[i]) &&
				ptm_row_text_eq(DatumGetTextPP(in->topics[j]), DatumGetTextPP(in->topics[i])))
			{
				renewed[i] = true;
				renewed_until[i] = renewed_until[j];
				break;
			}
	}
}

/*
 * A result row for each input: renewed, or why not from the row as it is
 * now (counted).  Returns how many were renewed.
 */
static uint64
put_renewals(ReturnSetInfo *rsinfo, const RenewInput *in, text *agent, int64 now_ms,
			 const bool *renewed, const int64 *renewed_until)
{
	char	   *agent_str = text_to_cstring(agent);
	uint64		nrenewed = 0;
	int			i;

	for (i = 0; i < in->n; i++)
	{
		PtmLeaseResult out = {0};
		text	   *t = DatumGetTextPP(in->topics[i]);

		out.topic = t;
		out.partition_id = DatumGetInt32(in->partitions[i]);
		if (renewed[i])
		{
			out.result = "renewed";
			out.has_lease = true;
			out.agent_id = agent_str;
			out.epoch = DatumGetInt64(in->epochs[i]);
			out.expires_ms = renewed_until[i];
			nrenewed++;
		}
		else
		{
			PtmLeaseRow row = ptm_lease_read(t, out.partition_id, PTM_LEASE_READ);

			out.result = ptm_lease_failure(&row, agent, DatumGetInt64(in->epochs[i]), now_ms);
			ptm_lease_result_from_row(&out, &row);
			ptm_count_topic(PTM_LEASE_RENEW_FAILURE, t);
			ptm_count_if_stale(out.result, t);
		}
		tuplestore_puttuple(rsinfo->setResult, ptm_lease_result_tuple(rsinfo->setDesc, &out));
	}
	return nrenewed;
}

PG_FUNCTION_INFO_V1(ptm_renew_leases_0_2);
Datum
ptm_renew_leases_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *agent = ptm_get_name(fcinfo, 0, "agent_id");
	RenewInput	in;
	int			np,
				ne;
	int64		ttl_ms;
	int64		now_ms = ptm_now_ms();
	ReturnSetInfo *rsinfo;
	bool	   *renewed;
	int64	   *renewed_until;

	ptm_get_array(fcinfo, 1, "topics", TEXTOID, &in.topics, NULL, &in.n);
	ptm_get_array(fcinfo, 2, "partition_ids", INT4OID, &in.partitions, NULL, &np);
	ptm_get_array(fcinfo, 3, "lease_epochs", INT8OID, &in.epochs, NULL, &ne);
	ttl_ms = ptm_get_ttl_ms(fcinfo, 4, "ttl");
	check_renew_input(&in, np, ne);

	ptm_check_agent(agent, "agent_id");
	rsinfo = ptm_init_srf(fcinfo);
	renewed = palloc0(sizeof(bool) * (in.n + 1));
	renewed_until = palloc0(sizeof(int64) * (in.n + 1));

	spi = ptm_spi_connect(false);
	{
		Datum		args[7] = {PointerGetDatum(agent), PG_GETARG_DATUM(1),
			PG_GETARG_DATUM(2), PG_GETARG_DATUM(3), Int64GetDatum(now_ms),
		Int64GetDatum(now_ms + ttl_ms), TimestampTzGetDatum(GetCurrentTimestamp())};
		BulkRenew	b = {args, renewed, renewed_until};

		if (!ptm_with_lock_timeout(ptm_lease_lock_wait_ms(), bulk_renew, &b))
		{
			renew_each_alone(rsinfo, &in, agent, ttl_ms);
			ptm_spi_finish(spi);
			return (Datum) 0;
		}
	}
	mark_repeated_inputs(&in, renewed, renewed_until);
	ptm_count_n(PTM_LEASE_RENEW_SUCCESS,
				put_renewals(rsinfo, &in, agent, now_ms, renewed, renewed_until));
	ptm_spi_finish(spi);

	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * ensure_partitions(topic, partitions)
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(ptm_ensure_partitions_0_2);
Datum
ptm_ensure_partitions_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *topic = ptm_get_name(fcinfo, 0, "topic");
	int32		partitions;
	Datum		args[2];
	uint64		created;

	ptm_check_not_null(fcinfo, 1, "partitions");
	partitions = PG_GETARG_INT32(1);
	if (partitions <= 0 || partitions > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partitions must be between 1 and 1000000"),
				 errdetail("The value given was %d.", partitions)));

	args[0] = PointerGetDatum(topic);
	args[1] = Int32GetDatum(partitions);
	spi = ptm_spi_connect(false);
	created = ptm_plan_run(&plan_ensure, args, NULL);
	ptm_spi_finish(spi);

	PG_RETURN_INT32((int32) created);
}
