/*-------------------------------------------------------------------------
 *
 * srf.h
 *	  Set-returning functions in materialize mode, the same on PG 13 to 17.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_SRF_H
#define PTM_SRF_H

#include "fmgr.h"
#include "funcapi.h"

extern ReturnSetInfo *ptm_init_srf(FunctionCallInfo fcinfo);

/*
 * The blessed row type of a function returning one composite value, looked
 * up once per function for the backend and kept in fn_extra
 * (get_call_result_type is not free on a hot path).
 */
extern TupleDesc ptm_result_tupdesc(FunctionCallInfo fcinfo);
extern void ptm_result_types_init(void);
extern void ptm_result_types_relcache_invalidated(Oid relid);

#endif							/* PTM_SRF_H */
