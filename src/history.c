/*-------------------------------------------------------------------------
 *
 * history.c
 *	  The argument checks of the metric history functions (ptm.increase(),
 *	  ptm.rate(), ptm.histogram_quantile()).
 *
 * The history itself is SQL (sql/install/92_history.sql): the table
 * ptm.metric_history, ptm.snapshot_metrics() that fills it, and the
 * functions that read it.  The background worker (worker_passes.c) calls
 * ptm.snapshot_metrics() every ptm_lease.history_interval and deletes rows
 * older than ptm_lease.history_retention.  What is here needs C only because
 * the names of the series are the library's (metrics_catalog.c), known with
 * or without shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ptm_lease.h"
#include "spi_util.h"
#include "validate.h"

/* Whether ptm.metric_history holds any sample of metric $1. */
static PtmPlan plan_sampled = {
	.sql = "SELECT EXISTS (SELECT 1 FROM ptm.metric_history WHERE metric = $1)",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_CALLER
};

static bool
metric_sampled(text *metric)
{
	int			spi;
	Datum		args[1] = {PointerGetDatum(metric)};
	bool		isnull;
	bool		found;

	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_sampled, args, NULL);
	found = DatumGetBool(ptm_spi_value(0, 1, &isnull));
	ptm_spi_finish(spi);
	return found;
}

/*
 * ptm._history_window(metric text, window interval, at timestamptz)
 *		RETURNS timestamptz
 *
 * at - window, after checking that no argument is NULL, that the window is
 * positive and at finite, and that metric is a counter or a histogram series
 * of this library or at least has samples (e.g. from an older version).
 */
PG_FUNCTION_INFO_V1(ptm_history_window);
Datum
ptm_history_window(PG_FUNCTION_ARGS)
{
	text	   *metric_t;
	char	   *metric;
	Interval   *window;
	Interval	zero = {0};
	TimestampTz at;

	ptm_check_not_null(fcinfo, 0, "metric");
	ptm_check_not_null(fcinfo, 1, "window");
	ptm_check_not_null(fcinfo, 2, "at");
	metric_t = PG_GETARG_TEXT_PP(0);
	metric = text_to_cstring(metric_t);
	window = PG_GETARG_INTERVAL_P(1);
	at = PG_GETARG_TIMESTAMPTZ(2);

	if (DatumGetBool(DirectFunctionCall2(interval_le, IntervalPGetDatum(window),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window must be a positive interval"),
				 errdetail("The value given was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(window)))),
				 errhint("Give the range as PromQL does, e.g. '5 min' for [5m].")));
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at must be a finite time"),
				 errdetail("The window ends at at; the default is now().")));

	switch (ptm_series_kind(metric))
	{
		case PTM_SERIES_COUNTER:
		case PTM_SERIES_HISTOGRAM:
			break;
		case PTM_SERIES_HISTOGRAM_FAMILY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("metric %s is a histogram, not a series", metric),
					 errdetail("A histogram is sampled as three series: %s_bucket (one per le), %s_sum and %s_count.",
							   metric, metric, metric),
					 errhint("Name one of them, e.g. ptm.rate('%s_count', '5 min') for observations per second.",
							 metric)));
			break;
		case PTM_SERIES_UNKNOWN:
			if (!metric_sampled(metric_t))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("unknown metric \"%s\"", metric),
						 errdetail("It is neither a counter nor a histogram series of ptm_lease, and ptm.metric_history has no sample of it."),
						 errhint("Gauges are not sampled: read them from ptm.metrics. SELECT DISTINCT metric FROM ptm.metric_history lists what is.")));
			break;
	}

	PG_RETURN_DATUM(DirectFunctionCall2(timestamptz_mi_interval, TimestampTzGetDatum(at),
										IntervalPGetDatum(window)));
}
