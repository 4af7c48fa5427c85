/*-------------------------------------------------------------------------
 *
 * sweep.c
 *	  The expiry sweep of ptm.partition_leases: leases past their expiry
 *	  are marked 'expired', logged and announced.
 *
 * One implementation, sweep_due_leases(), serves the two callers: the
 * database's worker, a batch per transaction while batches come back full
 * (worker_passes.c), and ptm.sweep_expired_leases(), one batch in the
 * caller's transaction for a database that no worker serves or whose
 * backlog an operator wants gone now.  ptm.health() counts the backlog the
 * sweep has left with ptm_sweep_backlog().
 *
 * Locking: rows another transaction holds (an acquire taking over, a fenced
 * write, a renewal) are skipped (FOR UPDATE SKIP LOCKED) and found again by
 * the next batch; see docs/architecture.md for the races.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "lease_events.h"
#include "ptm_lease.h"
#include "spi_util.h"
#include "srf.h"
#include "sweep.h"
#include "validate.h"

#define PTM_MAX_SWEEP_BATCH			1000000 /* ptm_lease.sweep_batch_size and max_leases */

/* Setting; see docs/workers.md. */
static int	sweep_batch_size = 1000;

/* ptm_lease.sweep_batch_size: rows per transaction of every worker pass too */
int
ptm_sweep_batch_size(void)
{
	return sweep_batch_size;
}

void
ptm_sweep_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.sweep_batch_size",
							gettext_noop("Most rows a worker changes or deletes in one transaction."),
							gettext_noop("Keeps each transaction, and the locks it holds, short."),
							&sweep_batch_size,
							1000, 1, PTM_MAX_SWEEP_BATCH,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
}

/*
 * Leases due for a look (sweep_at <= now), oldest first, through
 * partition_leases_sweep_idx.  sweep_at is a lower bound of the expiry that
 * renewals leave behind (they stay HOT updates): a due lease that expired is
 * expired here, one renewed since gets sweep_at = its expiry, so the worker
 * writes the index once per lease per TTL.  Column 6 says which.  Rows
 * another transaction holds are skipped and found again next pass.  The
 * epoch is left alone: renew by the old owner then says 'expired', and the
 * next acquire raises it.
 */
static PtmPlan plan_sweep = {
	.sql = "WITH due AS ("
	"  SELECT topic, partition_id FROM ptm.partition_leases"
	"   WHERE agent_id IS NOT NULL AND sweep_at <= $1"
	"   ORDER BY sweep_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
	" UPDATE ptm.partition_leases l SET"
	"        agent_id = CASE WHEN l.lease_expires_at <= $1 THEN NULL ELSE l.agent_id END,"
	"        state = CASE WHEN l.lease_expires_at <= $1 THEN 'expired' ELSE l.state END,"
	"        previous_agent_id = CASE WHEN l.lease_expires_at <= $1"
	"                                 THEN l.agent_id ELSE l.previous_agent_id END,"
	"        previous_epoch = CASE WHEN l.lease_expires_at <= $1"
	"                              THEN l.lease_epoch ELSE l.previous_epoch END,"
	"        ended_at = CASE WHEN l.lease_expires_at <= $1 THEN $3 ELSE l.ended_at END,"
	"        sweep_at = l.lease_expires_at"
	"   FROM due"
	"  WHERE l.topic = due.topic AND l.partition_id = due.partition_id"
	"    AND l.agent_id IS NOT NULL AND l.sweep_at <= $1"
	" RETURNING l.topic, l.partition_id, l.previous_agent_id, l.lease_epoch, l.lease_expires_at,"
	"           l.agent_id IS NULL",
	.nargs = 3, .argtypes = (const Oid[]) {INT8OID, INT8OID, TIMESTAMPTZOID},
	.expect = SPI_OK_UPDATE_RETURNING
};

/*
 * The backlog: $1 now_ms, $2 the expiry before which a lease is overdue.
 * sweep_at <= expiry, so the leases past expiry are found through
 * partition_leases_sweep_idx.  The third column is how late the sweeper's
 * oldest look is: now minus the smallest sweep_at of an owned lease (the
 * head of its queue, the index's first entry).  A renewal leaves sweep_at
 * behind, so the queue holds every lease due a look, expired or not: when
 * the sweeper falls behind, expiries are marked and announced this late
 * even if agents take the expired leases back before it gets there.
 */
static PtmPlan plan_backlog = {
	.sql = "SELECT count(*), count(*) FILTER (WHERE lease_expires_at <= $2),"
	"       (SELECT $1 - min(sweep_at) FROM ptm.partition_leases WHERE agent_id IS NOT NULL)"
	"  FROM ptm.partition_leases"
	" WHERE agent_id IS NOT NULL AND sweep_at <= $1 AND lease_expires_at <= $1",
	.nargs = 2, .argtypes = (const Oid[]) {INT8OID, INT8OID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_CALLER
};

/* Send one lease event on PTM_NOTIFY_CHANNEL; see docs/workers.md. */
static void
notify_expired(const char *topic, int32 partition_id, const char *agent,
			   int64 epoch, int64 expires_ms)
{
	PtmLeaseEvent ev = {0};

	ev.event = "expired";
	ev.topic = topic;
	ev.partition_id = partition_id;
	ev.previous_agent_id = agent;
	ev.lease_epoch = epoch;
	ev.at_key = "expired_at_ms";
	ev.at_ms = expires_ms;
	ptm_notify_lease_event(&ev);
}

/*
 * One batch of the expiry sweep, at most limit due leases, in the current
 * transaction (the caller has connected to SPI).  Each lease it expires is
 * logged and announced (the NOTIFY goes out at commit).  Counting is left
 * to the caller, which knows when the batch stands.
 */
PtmSweepCounts
ptm_sweep_due_leases(int64 limit)
{
	int64		now_ms = ptm_now_ms();
	Datum		args[3] = {Int64GetDatum(now_ms), Int64GetDatum(limit),
	TimestampTzGetDatum(GetCurrentTimestamp())};
	PtmSweepCounts counts = {0, 0};
	uint64		n;
	uint64		i;

	n = ptm_plan_run(&plan_sweep, args, NULL);
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *topic;
		int32		part;
		char	   *agent;
		int64		epoch;
		int64		exp_ms;

		/* renewed since it was scheduled: only rescheduled */
		if (!DatumGetBool(ptm_spi_value(i, 6, &isnull)))
		{
			counts.rescheduled++;
			continue;
		}
		counts.expired++;
		topic = TextDatumGetCString(ptm_spi_value(i, 1, &isnull));
		part = DatumGetInt32(ptm_spi_value(i, 2, &isnull));
		agent = TextDatumGetCString(ptm_spi_value(i, 3, &isnull));
		epoch = DatumGetInt64(ptm_spi_value(i, 4, &isnull));
		exp_ms = DatumGetInt64(ptm_spi_value(i, 5, &isnull));

		ereport(LOG,
				(errmsg("lost lease for partition %s-%d (expired at %s)",
						topic, part, timestamptz_to_str(ptm_ms_to_timestamptz(exp_ms))),
				 errdetail("Agent \"%s\" held it at epoch " INT64_FORMAT "; the next acquisition raises the epoch.",
						   agent, epoch)));
		notify_expired(topic, part, agent, epoch, exp_ms);
	}
	return counts;
}

/*
 * ptm.sweep_expired_leases(max_leases DEFAULT NULL): one batch of the
 * worker's expiry sweep in the caller's transaction, for a database that no
 * worker serves or whose backlog an operator wants gone now.  The same
 * statement and the same log lines and NOTIFYs as the worker; rows another
 * transaction holds are skipped, as the worker skips them.
 */
PG_FUNCTION_INFO_V1(ptm_sweep_expired_leases);
Datum
ptm_sweep_expired_leases(PG_FUNCTION_ARGS)
{
	int			spi;
	int32		max_leases = PG_ARGISNULL(0) ? sweep_batch_size : PG_GETARG_INT32(0);
	PtmSweepCounts counts;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (max_leases < 1 || max_leases > PTM_MAX_SWEEP_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_leases must be between 1 and %d", PTM_MAX_SWEEP_BATCH),
				 errdetail("The value given was %d.", max_leases),
				 errhint("Pass NULL for ptm_lease.sweep_batch_size (%d), and call again while a batch comes back full.",
						 sweep_batch_size)));

	spi = ptm_spi_connect(false);
	counts = ptm_sweep_due_leases(max_leases);
	ptm_spi_finish(spi);

	/*
	 * Counted at the call, as every function counts its outcomes; only the
	 * worker, which commits its own batch, waits for the commit.
	 */
	ptm_count_n(PTM_LEASE_EXPIRATIONS, counts.expired);

	values[0] = Int64GetDatum((int64) counts.expired);
	values[1] = Int64GetDatum((int64) counts.rescheduled);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(ptm_result_tupdesc(fcinfo), values, nulls)));
}

/* In the caller's transaction and snapshot (ptm.health()): one statement. */
void
ptm_sweep_backlog(long stale_after_ms, PtmSweepBacklog *backlog)
{
	int64		now_ms = ptm_now_ms();
	Datum		args[2] = {Int64GetDatum(now_ms), Int64GetDatum(now_ms - stale_after_ms)};
	bool		isnull;
	int			spi;

	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_backlog, args, NULL);
	backlog->expired = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
	backlog->overdue = DatumGetInt64(ptm_spi_value(0, 2, &isnull));
	backlog->look_lag_ms = DatumGetInt64(ptm_spi_value(0, 3, &isnull));
	if (isnull || backlog->look_lag_ms < 0)
		backlog->look_lag_ms = 0;
	ptm_spi_finish(spi);
}
