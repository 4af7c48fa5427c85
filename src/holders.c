/*-------------------------------------------------------------------------
 *
 * holders.c
 *	  Ending the backends whose transactions hold a lease row past its
 *	  lease.
 *
 * A client frozen inside a fenced transaction (SIGSTOP, a GC pause, a lost
 * network) keeps its FOR SHARE lock on the lease row, so no takeover can
 * happen until its transaction ends; left alone, that is forever.  The
 * worker (and force_expire(end_holder => true)) finds the holders of the row
 * with ptm_row_holders() and ends them here with pg_terminate_backend():
 * their transactions roll back, fenced writes included, and the row is free.
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
