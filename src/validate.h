/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Argument checks shared by every SQL-callable function.
 *
 * Functions are declared non-STRICT so that a NULL argument gets a clear
 * error naming it instead of a silent NULL result.  Each check raises
 * SQLSTATE 22004 (null_value_not_allowed) or 22023 (invalid_parameter_value)
 * before anything is read or written.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_VALIDATE_H
#define PTM_VALIDATE_H

#include "fmgr.h"

/* Module load: ptm_lease.max_ttl and ptm_lease.max_name_bytes. */
extern void ptm_validate_define_gucs(void);

/* Argument n must not be NULL. */
extern void ptm_check_not_null(FunctionCallInfo fcinfo, int argno, const char *argname);

/* A non-empty name no longer than ptm_lease.max_name_bytes; element > 0 names an array element (keys[2]). */
extern void ptm_check_name(text *t, const char *argname, int element);

/* A non-NULL, non-empty name no longer than ptm_lease.max_name_bytes. */
extern text *ptm_get_name(FunctionCallInfo fcinfo, int argno, const char *argname);

/*
 * A non-NULL one-dimensional array argument, deconstructed.  With nulls NULL,
 * a NULL element is an error ("keys[2] must not be null"); otherwise the
 * caller gets the null flags.
 */
extern void ptm_get_array(FunctionCallInfo fcinfo, int argno, const char *argname,
						  Oid elemtype, Datum **elems, bool **nulls, int *n);

/* A non-NULL integer >= 0 (partition ids, offsets). */
extern int32 ptm_get_partition(FunctionCallInfo fcinfo, int argno, const char *argname);

/* A non-NULL bigint >= 0 (versions, steps, offsets); meaning ends the detail. */
extern int64 ptm_get_nonnegative_int64(FunctionCallInfo fcinfo, int argno,
									   const char *argname, const char *meaning);

/* A non-NULL bigint > 0 (epochs). */
extern int64 ptm_get_epoch(FunctionCallInfo fcinfo, int argno, const char *argname);

/* A non-NULL interval of at least 1 ms and <= ptm_lease.max_ttl, in milliseconds. */
extern int64 ptm_get_ttl_ms(FunctionCallInfo fcinfo, int argno, const char *argname);

/*
 * The optional fence arguments fence_topic, fence_partition, fence_epoch at
 * argno .. argno + 2: none, all three (a lease fence), or, where claim_allowed,
 * fence_epoch alone (the step claim of the workflow).  Anything else is
 * SQLSTATE 22023 naming what is missing.
 */
typedef enum PtmFenceKind
{
	PTM_FENCE_ARGS_NONE,
	PTM_FENCE_ARGS_LEASE,
	PTM_FENCE_ARGS_CLAIM
} PtmFenceKind;

typedef struct PtmFenceArgs
{
	PtmFenceKind kind;
	text	   *topic;
	int32		partition_id;
	int64		epoch;
} PtmFenceArgs;

extern void ptm_get_fence_args(FunctionCallInfo fcinfo, int argno, bool claim_allowed,
							   PtmFenceArgs *fence);

/*
 * A jsonb value within a size limit (measured uncompressed), else 54000
 * naming the setting: "The <noun> is N bytes; <setting> is L." and a hint to
 * keep large payloads outside the <place>.  element > 0 names an array element.
 */
extern void ptm_check_jsonb_size(Datum value, const char *argname, int element,
								 int limit, const char *setting,
								 const char *noun, const char *place);

/* The database clock as Unix epoch milliseconds (clock_timestamp(), not now()). */
extern int64 ptm_now_ms(void);
extern TimestampTz ptm_ms_to_timestamptz(int64 ms);

#endif							/* PTM_VALIDATE_H */
