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

#endif							/* PTM_SRF_H */
