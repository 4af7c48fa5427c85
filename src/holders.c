/*-------------------------------------------------------------------------
 *
 * holders.c
 *	  Ending the backends whose transactions hold a lease row past its
 *	  lease.
 *
 * A client frozen inside a fenced transaction (SIGSTOP, a GC pause, a lost
 * network) keeps its FOR SHARE lock on the lease row, so no takeover can
 * happen until its transaction ends; left alone, that is forever.
 * ptm_end_lease_holders(), called by the worker and by
 * force_expire(end_holder => true), finds the holders of the row with
 * ptm_row_holders() and ends them with pg_terminate_backend(), each one
 * audited, counted and logged: their transactions roll back, fenced writes
 * included, and the row is free.
 *
 * Only a transaction that began before the lease expired is ended: it is
 * the one that could have passed a fence of that lease.  A transaction that
 * began later holds the row for a takeover or a sweep of its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "holders.h"
#include "lease_events.h"
#include "lease_rows.h"
#include "spi_util.h"

/* $1 pids, $2 began before (NULL: whenever), $3 by, $4 wait for exit (ms) */
static PtmPlan plan_end = {
	.sql = "SELECT a.pid,"
	"       pg_catalog.jsonb_build_object('pid', a.pid, 'usename', a.usename,"
	"         'application_name', a.application_name, 'client_addr', a.client_addr,"
	"         'backend_start', a.backend_start, 'xact_start', a.xact_start,"
	"         'state', a.state, 'by', $3::text)::text,"
#if PG_VERSION_NUM >= 140000
	"       pg_catalog.pg_terminate_backend(a.pid, $4)"
#else
	/* no wait for the exit before 14: the caller's next lock wait covers it */
	"       pg_catalog.pg_terminate_backend(a.pid)"
#endif
	"  FROM pg_catalog.pg_stat_activity a"
	" WHERE a.pid = ANY ($1) AND ($2::timestamptz IS NULL OR a.xact_start < $2)",
	.nargs = 4, .argtypes = (const Oid[]) {INT4ARRAYOID, TIMESTAMPTZOID, TEXTOID, INT8OID},
	.expect = SPI_OK_SELECT
};

int
ptm_end_backends(const int *pids, int npids, TimestampTz started_before, int wait_ms,
				 const char *by, PtmEndedHolder *out)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(npids, 1));
	Datum		args[4];
	char		nulls[4] = {' ', TIMESTAMP_NOT_FINITE(started_before) ? 'n' : ' ', ' ', ' '};
	uint64		r;
	int			n = 0;
	int			i;

	if (npids == 0)
		return 0;
	for (i = 0; i < npids; i++)
		elems[i] = Int32GetDatum(pids[i]);
	args[0] = PointerGetDatum(construct_array(elems, npids, INT4OID, sizeof(int32), true,
											  TYPALIGN_INT));
	args[1] = TimestampTzGetDatum(started_before);
	args[2] = CStringGetTextDatum(by);
	args[3] = Int64GetDatum((int64) wait_ms);
	ptm_plan_run(&plan_end, args, nulls);

	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;

		if (!DatumGetBool(ptm_spi_value(r, 3, &isnull)))
			continue;			/* gone already, or not a backend */
		out[n].pid = DatumGetInt32(ptm_spi_value(r, 1, &isnull));
		out[n].details = TextDatumGetCString(ptm_spi_value(r, 2, &isnull));
		n++;
	}
	return n;
}

int
ptm_end_lease_holders(text *topic, int32 partition_id, const char *agent_id, int64 epoch,
					  TimestampTz began_before, int wait_ms, const char *by,
					  const char *reason)
{
	Datum		keys[2] = {PointerGetDatum(topic), Int32GetDatum(partition_id)};
	int			pids[PTM_ROW_MAX_HOLDERS];
	PtmEndedHolder ended[PTM_ROW_MAX_HOLDERS];
	int			npids;
	int			n;
	int			i;

	npids = ptm_row_holders(&ptm_lease_table, keys, pids, PTM_ROW_MAX_HOLDERS);
	n = ptm_end_backends(pids, npids, began_before, wait_ms, by, ended);
	for (i = 0; i < n; i++)
	{
		PtmAudit	audit = {0};

		audit.action = "end_holder";
		audit.topic = topic;
		audit.partition_id = partition_id;
		audit.previous_agent_id = agent_id;
		audit.previous_epoch = epoch;
		audit.reason = reason ? CStringGetTextDatum(reason) : (Datum) 0;
		audit.reason_null = reason == NULL;
		audit.details = ended[i].details;
		ptm_write_audit(&audit);
		ptm_count_topic(PTM_LEASE_HOLDERS_ENDED, topic);
		ereport(LOG,
				(errmsg("ptm_lease: ended backend %d, which held the row of partition %s-%d (agent \"%s\", epoch " INT64_FORMAT ")",
						ended[i].pid, text_to_cstring(topic), partition_id,
						agent_id ? agent_id : "", epoch),
				 errdetail("%s: %s", by, reason ? reason : ""),
				 errhint("Its transaction rolled back, fenced writes included.")));
	}
	return n;
}
