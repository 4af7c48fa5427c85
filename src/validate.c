/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Argument checks shared by every SQL-callable function, the settings
 *	  they enforce (ptm_lease.max_ttl, ptm_lease.max_name_bytes), and the
 *	  clock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"

#include "common/int.h"
#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "ptm_lease.h"
#include "validate.h"

/* Seconds from the Unix epoch (1970) to the PostgreSQL epoch (2000). */
#define UNIX_TO_PG_EPOCH_MS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000)

/* Settings; see docs/reference.md for each. */
static int	max_ttl_ms = 3600 * 1000;
static int	max_name_bytes = 256;

void
ptm_validate_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.max_ttl",
							gettext_noop("Longest lease TTL a caller may ask for."),
							gettext_noop("A lease that outlives its owner blocks its partition "
										 "for this long at most."),
							&max_ttl_ms,
							3600 * 1000, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ptm_lease.max_name_bytes",
							gettext_noop("Longest topic, agent, worker, workflow or projection name, in bytes."),
							NULL,
							&max_name_bytes,
							256, 1, 8192,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

void
ptm_check_not_null(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", argname)));
}

void
ptm_check_name(text *t, const char *argname, int element)
{
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len > 0 && len <= max_name_bytes)
		return;
	/* only now spend an allocation on the name of an array element */
	if (element > 0)
		argname = psprintf("%s[%d]", argname, element);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s is too long", argname),
			 errdetail("The value is %d bytes; ptm_lease.max_name_bytes is %d.",
					   len, max_name_bytes)));
}

text *
ptm_get_name(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	text	   *t;

	ptm_check_not_null(fcinfo, argno, argname);
	t = PG_GETARG_TEXT_PP(argno);
	ptm_check_name(t, argname, 0);
	return t;
}

void
ptm_get_array(FunctionCallInfo fcinfo, int argno, const char *argname, Oid elemtype,
			  Datum **elems, bool **nulls, int *n)
{
	ArrayType  *arr;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	bool	   *elem_nulls;
	int			i;

	ptm_check_not_null(fcinfo, argno, argname);
	arr = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", argname),
				 errdetail("The array given has %d dimensions.", ARR_NDIM(arr))));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign, elems, &elem_nulls, n);

	if (nulls != NULL)
		*nulls = elem_nulls;
	else
		for (i = 0; i < *n; i++)
			if (elem_nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("%s[%d] must not be null", argname, i + 1)));
}

int32
ptm_get_partition(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	int32		v;

	ptm_check_not_null(fcinfo, argno, argname);
	v = PG_GETARG_INT32(argno);
	if (v < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", argname),
				 errdetail("The value given was %d.", v)));
	return v;
}

int64
ptm_get_nonnegative_int64(FunctionCallInfo fcinfo, int argno, const char *argname,
						  const char *meaning)
{
	int64		v;

	ptm_check_not_null(fcinfo, argno, argname);
	v = PG_GETARG_INT64(argno);
	if (v < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", argname),
				 errdetail("The value given was " INT64_FORMAT "; %s.", v, meaning)));
	return v;
}

int64
ptm_get_epoch(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	int64		v;

	ptm_check_not_null(fcinfo, argno, argname);
	v = PG_GETARG_INT64(argno);
	if (v <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", argname),
				 errdetail("The value given was " INT64_FORMAT "; epochs start at 1.", v)));
	return v;
}

/* An interval as SHOW would print it, for an error's detail. */
static char *
interval_text(Interval *iv)
{
	return DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(iv)));
}

int64
ptm_get_ttl_ms(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	Interval   *iv;
	double		total;
	int64		usecs;

	ptm_check_not_null(fcinfo, argno, argname);
	iv = PG_GETARG_INTERVAL_P(argno);

	/*
	 * Months count as 30 days and days as 24 hours, as extract(epoch from
	 * interval) does.  The total is judged in double precision, so that an
	 * interval whose parts have opposite signs ("2147483647 days -2562047788
	 * hours") gets the error its sum deserves; it is exact for every TTL that
	 * passes (below 2^53 microseconds, about 285 years).
	 */
	total = ((double) iv->month * DAYS_PER_MONTH + (double) iv->day) * USECS_PER_DAY +
		(double) iv->time;
	usecs = total <= 0 ? 0 : total >= (double) PG_INT64_MAX ? PG_INT64_MAX : (int64) total;

	if (usecs <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a positive interval", argname),
				 errdetail("The value given was %s.", interval_text(iv))));
	if (usecs / 1000 > max_ttl_ms || usecs == PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s exceeds ptm_lease.max_ttl", argname),
				 errdetail("The value given was %s; the limit is %d ms.",
						   interval_text(iv), max_ttl_ms),
				 errhint("Ask for a shorter TTL and renew more often, or raise ptm_lease.max_ttl.")));

	/*
	 * Expiries are kept in whole milliseconds.  A TTL below one would have to
	 * be rounded up to a lease many times longer than asked for ('0.0001 s'
	 * is 100 us, not 1 ms), so it is refused; above it, a fraction of a
	 * millisecond is rounded up, so that the lease never ends before the TTL.
	 */
	if (usecs < 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at least 1 ms", argname),
				 errdetail("The value given was %s; expiries are kept in whole milliseconds.",
						   interval_text(iv))));
	return (usecs + 999) / 1000;
}

void
ptm_check_jsonb_size(Datum value, const char *argname, int element,
					 int limit, const char *setting,
					 const char *noun, const char *place)
{
	Size		bytes = toast_raw_datum_size(value) - VARHDRSZ;

	if (bytes > (Size) limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 element > 0 ? errmsg("%s[%d] is too large", argname, element) :
				 errmsg("%s is too large", argname),
				 errdetail("The %s is %zu bytes; %s is %d.", noun, bytes, setting, limit),
				 errhint("Keep large payloads outside the %s, or raise %s.", place, setting)));
}

void
ptm_get_fence_args(FunctionCallInfo fcinfo, int argno, bool claim_allowed,
				   PtmFenceArgs *fence)
{
	bool		has_topic = !PG_ARGISNULL(argno);
	bool		has_partition = !PG_ARGISNULL(argno + 1);
	bool		has_epoch = !PG_ARGISNULL(argno + 2);

	memset(fence, 0, sizeof(*fence));
	if (!has_topic && !has_partition && !has_epoch)
		return;

	if (claim_allowed && has_epoch && !has_topic && !has_partition)
	{
		fence->kind = PTM_FENCE_ARGS_CLAIM;
		fence->epoch = ptm_get_epoch(fcinfo, argno + 2, "fence_epoch");
		return;
	}

	if (!has_topic || !has_partition || !has_epoch)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fence_topic, fence_partition and fence_epoch must be given together"),
				 errdetail("%s was given without %s.",
						   has_topic ? "fence_topic" : has_partition ? "fence_partition" : "fence_epoch",
						   !has_epoch ? "fence_epoch" : !has_topic ? "fence_topic" : "fence_partition"),
				 claim_allowed ?
				 errhint("Give all three for a lease fence, or fence_epoch alone for the workflow's step claim.") : 0));

	fence->kind = PTM_FENCE_ARGS_LEASE;
	fence->topic = ptm_get_name(fcinfo, argno, "fence_topic");
	fence->partition_id = ptm_get_partition(fcinfo, argno + 1, "fence_partition");
	fence->epoch = ptm_get_epoch(fcinfo, argno + 2, "fence_epoch");
}

int64
ptm_now_ms(void)
{
	return GetCurrentTimestamp() / 1000 + UNIX_TO_PG_EPOCH_MS;
}

TimestampTz
ptm_ms_to_timestamptz(int64 ms)
{
	return (ms - UNIX_TO_PG_EPOCH_MS) * 1000;
}
