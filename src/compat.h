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

/* PG 14 added readOnlyTree to ProcessUtility_hook. */
#if PG_VERSION_NUM >= 140000
#define PTM_PROCESS_UTILITY_PARAMS \
	PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, \
	ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv, \
	DestReceiver *dest, QueryCompletion *qc
#define PTM_PROCESS_UTILITY_ARGS \
	pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc
#else
#define PTM_PROCESS_UTILITY_PARAMS \
	PlannedStmt *pstmt, const char *queryString, \
	ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv, \
	DestReceiver *dest, QueryCompletion *qc
#define PTM_PROCESS_UTILITY_ARGS \
	pstmt, queryString, context, params, queryEnv, dest, qc
#endif

/* PG 16 folded the per-kind owner checks into object_ownercheck(). */
#if PG_VERSION_NUM >= 160000
#define PTM_DATABASE_OWNERCHECK(dboid, roleid) \
	object_ownercheck(DatabaseRelationId, (dboid), (roleid))
#else
#define PTM_DATABASE_OWNERCHECK(dboid, roleid) pg_database_ownercheck((dboid), (roleid))
#endif

/* Minor releases of 13-15 from 2023 on mark a half-dropped database so. */
#ifndef DATCONNLIMIT_INVALID_DB
#define DATCONNLIMIT_INVALID_DB -2
#endif

#endif							/* PTM_COMPAT_H */
