/*-------------------------------------------------------------------------
 *
 * leases.h
 *	  The lease fence, for every write that must be fenced (try_commit,
 *	  apply_projection, check_fence itself); lease results, the audit row and
 *	  the lease events on NOTIFY channel ptm_lease_events, shared with
 *	  balance.c and worker.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_LEASES_H
#define PTM_LEASES_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "utils/timestamp.h"

#include "metrics.h"

typedef enum PtmFenceStatus
{
	PTM_FENCE_OK,				/* epoch current, lease held and live */
	PTM_FENCE_NO_LEASE,			/* no lease row for the partition */
	PTM_FENCE_STALE,			/* epoch below the current epoch */
	PTM_FENCE_FUTURE,			/* epoch above the current epoch */
	PTM_FENCE_NOT_HELD,			/* epoch current but released or forced */
	PTM_FENCE_EXPIRED			/* epoch current but past its expiry */
} PtmFenceStatus;

/*
 * Check that lease_epoch is the live epoch of (topic, partition_id).  When it
 * is, the lease row stays locked FOR SHARE until the calling transaction ends,
 * so a takeover (acquire, force_expire) waits for the fenced write to commit
 * or abort.  With raise_error, anything but PTM_FENCE_OK raises SQLSTATE
 * PTM01 (ERRCODE_PTM_FENCING_REJECT) with the details; without it the status
 * is returned and counted.  Callable with or without an SPI connection.
 */
extern PtmFenceStatus ptm_fence(text *topic, int32 partition_id, int64 lease_epoch,
								bool raise_error);

/* One ptm.lease_result row, before it becomes a tuple. */
typedef struct PtmLeaseResult
{
	const char *result;
	text	   *topic;
	int32		partition_id;
	char	   *agent_id;
	int64		epoch;
	int64		expires_ms;
	bool		has_lease;		/* false: epoch and expiry are NULL */
} PtmLeaseResult;

extern HeapTuple ptm_lease_result_tuple(TupleDesc tupdesc, const PtmLeaseResult *r);

/* An outcome that went wrong, counted overall and per topic. */
extern void ptm_count_topic(PtmCounter counter, text *topic);

/* A row of ptm.lease_audit; the caller's role and session are filled in. */
typedef struct PtmAudit
{
	const char *action;
	text	   *topic;			/* NULL: none */
	int32		partition_id;	/* < 0: none */
	const char *previous_agent_id;	/* NULL: none */
	int64		previous_epoch; /* 0: none */
	int64		new_epoch;		/* 0: none */
	Datum		reason;			/* text */
	bool		reason_null;
	const char *details;		/* jsonb text; NULL: none */
} PtmAudit;

/* Insert the audit row (needs an SPI connection). */
extern void ptm_write_audit(const PtmAudit *audit);

/* NOTIFY channel of every lease event; see docs/workers.md. */
#define PTM_NOTIFY_CHANNEL			"ptm_lease_events"

/*
 * A change of owner: {"event": .., "topic": .., "partition_id": ..,
 * ["agent_id": ..,] "previous_agent_id": .., "lease_epoch": .., "<at_key>": ..}.
 */
typedef struct PtmLeaseEvent
{
	const char *event;			/* acquired, released, forced, expired */
	const char *topic;
	int32		partition_id;
	const char *agent_id;		/* the new owner; NULL: key left out */
	const char *previous_agent_id;	/* NULL: JSON null */
	int64		lease_epoch;
	const char *at_key;			/* expires_at_ms, released_at_ms, ... */
	int64		at_ms;
} PtmLeaseEvent;

extern void ptm_notify_lease_event(const PtmLeaseEvent *ev);

/*
 * Send a JSON payload on PTM_NOTIFY_CHANNEL when the transaction commits
 * (announce.c: by the worker or inline); one over the NOTIFY limit is logged and dropped (topic and partition_id, < 0 for none, name it
 * in the log).  Frees buf's data.
 */
extern void ptm_notify(StringInfo buf, const char *topic, int32 partition_id);

/*
 * End (pg_terminate_backend) the backends whose transactions hold the row
 * of lease (topic, partition_id) and began before began_before (DT_NOBEGIN:
 * whenever), waiting up to wait_ms for each to exit; each is audited
 * ("end_holder", with by and reason), counted and logged.  agent_id and
 * epoch name the lease for the audit.  Returns how many.  Needs SPI.
 */
extern int	ptm_end_lease_holders(text *topic, int32 partition_id, const char *agent_id,
								  int64 epoch, TimestampTz began_before, int wait_ms,
								  const char *by, const char *reason);

#endif							/* PTM_LEASES_H */
