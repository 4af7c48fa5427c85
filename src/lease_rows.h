/*-------------------------------------------------------------------------
 *
 * lease_rows.h
 *	  One row of ptm.partition_leases, as the lease functions read and lock
 *	  it, and ptm_lease.lock_wait_timeout, the bound of every wait for it.
 *	  See lease_rows.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_LEASE_ROWS_H
#define PTM_LEASE_ROWS_H

#include "fmgr.h"

#include "lease_events.h"
#include "row_access.h"

/* ptm_lease.lock_wait_timeout: the longest wait for a lease row, in ms. */
extern int	ptm_lease_lock_wait_ms(void);

/* A lease row as read from ptm.partition_leases. */
typedef struct PtmLeaseRow
{
	bool		found;
	char	   *agent_id;		/* NULL when free */
	int64		epoch;
	int64		expires_ms;
	char	   *state;
	char	   *previous_agent_id;
} PtmLeaseRow;

/*
 * The lease table as the hot paths reach it without SQL (row_access.c):
 * the updates of renew_lease, release_lease and acquire's take, the fence,
 * and the unlocked read that answers a contended acquire.  Columns by index
 * in ptm_lease_table's list.
 */
enum
{
	LEASE_COL_AGENT,
	LEASE_COL_EPOCH,
	LEASE_COL_EXPIRES,
	LEASE_COL_STATE,
	LEASE_COL_PREVIOUS_AGENT,
	LEASE_COL_RENEWED_AT,
	LEASE_COL_PREVIOUS_EPOCH,
	LEASE_COL_SWEEP_AT,
	LEASE_COL_ACQUIRED_AT,
	LEASE_COL_ENDED_AT
};
extern PtmKeyedTable ptm_lease_table;

/* A judge (row_access.c) that fills the PtmLeaseRow arg from the row and keeps it. */
extern bool ptm_lease_row_from_slot(PtmKeyedTable *t, TupleTableSlot *slot, Datum *values,
									bool *isnull, void *arg);

typedef enum PtmLeaseRead
{
	PTM_LEASE_READ,				/* no lock */
	PTM_LEASE_READ_SHARE,		/* FOR SHARE: a fence */
	PTM_LEASE_READ_LOCK			/* FOR NO KEY UPDATE: about to change it */
} PtmLeaseRead;

/*
 * Read the lease row by SQL, locked as mode says (waiting without a bound).
 * Needs an SPI connection.
 */
extern PtmLeaseRow ptm_lease_read(text *topic, int32 partition_id, PtmLeaseRead mode);

/*
 * The unlocked read without SQL, and without an SPI connection unless the
 * table needs SQL (row_access.c), with a snapshot of its own, as SPI takes.
 */
extern PtmLeaseRow ptm_lease_read_direct(text *topic, int32 partition_id);

/*
 * Lock the lease row FOR NO KEY UPDATE for a change, waiting at most wait_ms
 * (ptm_lease.lock_wait_timeout) for another transaction that holds it.
 * PTM_ROW_KEPT: locked, *row is the newest version; PTM_ROW_BUSY: still held,
 * *row is the lease as last committed; PTM_ROW_MISSING.  A table that needs
 * SQL takes the SQL way, which needs an SPI connection.
 */
extern PtmRowOutcome ptm_lease_lock(text *topic, int32 partition_id, int wait_ms,
									PtmLeaseRow *row);

/*
 * Lock the lease row FOR SHARE (a fence), waiting at most
 * ptm_lease.lock_wait_timeout: outcomes as ptm_lease_lock().  Without SQL
 * unless the table needs it; callable with or without an SPI connection.
 */
extern PtmRowOutcome ptm_lease_lock_share(text *topic, int32 partition_id, PtmLeaseRow *row);

/* Whether the agent read from a row (a C string, NULL when free) is b. */
static inline bool
ptm_same_agent(const char *a, text *b)
{
	return a != NULL && strlen(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(a, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)) == 0;
}

/* The lease part of a result, from the row as it is. */
static inline void
ptm_lease_result_from_row(PtmLeaseResult *out, const PtmLeaseRow *row)
{
	out->has_lease = row->found;
	out->agent_id = row->agent_id;
	out->epoch = row->epoch;
	out->expires_ms = row->expires_ms;
}

#endif							/* PTM_LEASE_ROWS_H */
