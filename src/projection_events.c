/*-------------------------------------------------------------------------
 *
 * projection_events.c
 *	  What a projection event may carry, checked before anything is read or
 *	  written (its data within ptm_lease.max_data_bytes, a finite event
 *	  time), and the results it can get; for the single and the batch apply.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/memutils.h"

#include "ptm_lease.h"
#include "projections.h"

const char *const ptm_proj_result_names[] = {
	[PROJ_APPLIED] = "applied",
	[PROJ_DUPLICATE] = "duplicate",
	[PROJ_REGRESSION] = "regression",
	[PROJ_FENCING_REJECT] = "fencing_reject",
};

static int	max_data_bytes = 1024 * 1024;

void
ptm_projections_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.max_data_bytes",
							gettext_noop("Largest projection row data apply_projection accepts, in bytes."),
							gettext_noop("Measured as the uncompressed jsonb value; applies to each event of a batch."),
							&max_data_bytes,
							1024 * 1024, 1, MaxAllocSize,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

/* Row data within ptm_lease.max_data_bytes; index > 0 names an array element. */
void
ptm_check_event_data(Datum data, const char *argname, int index)
{
	ptm_check_jsonb_size(data, argname, index, max_data_bytes,
						 "ptm_lease.max_data_bytes", "data", "projection row");
}

/* An event time must be finite; index > 0 names an array element. */
void
ptm_check_event_time(TimestampTz t, const char *argname, int index)
{
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 index > 0 ? errmsg("%s[%d] must be finite", argname, index) :
				 errmsg("%s must be finite", argname),
				 errdetail("Lag is measured from the event time, so it cannot be infinity.")));
}
