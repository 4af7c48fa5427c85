/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  The few places where the server API differs between PostgreSQL 13 and 17.
 *
 * Keep every PG_VERSION_NUM switch of the extension here, so the rest of the
 * code reads as if there were one server version.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_COMPAT_H
#define PTM_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 130000
#error "ptm_lease requires PostgreSQL 13 or later"
#endif

/* PG 15 split shared-memory requests into shmem_request_hook. */
#if PG_VERSION_NUM >= 150000
#define PTM_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/* PG 15 lets an extension reserve its GUC prefix; older servers only warn. */
#if PG_VERSION_NUM >= 150000
#define PTM_MARK_GUC_PREFIX_RESERVED(prefix) MarkGUCPrefixReserved(prefix)
#else
#define PTM_MARK_GUC_PREFIX_RESERVED(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#endif							/* PTM_COMPAT_H */
