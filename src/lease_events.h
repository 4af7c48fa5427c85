/*-------------------------------------------------------------------------
 *
 * lease_events.h
 *	  What a lease call leaves besides the lease row: its result row, its
 *	  audit row, its event on NOTIFY channel ptm_lease_events and its
 *	  per-topic counts.  See lease_events.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_LEASE_EVENTS_H
#define PTM_LEASE_EVENTS_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"

#include "metrics.h"
#include "srf.h"

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

/*
 * The function's ptm.lease_result datum, built in callerctx (the context of
 * the call: SPI's goes away at SPI_finish).  Inline: acquire_partition_lease
 * ends with it.
 */
static inline Datum
ptm_lease_result_datum(FunctionCallInfo fcinfo, MemoryContext callerctx,
					   const PtmLeaseResult *r)
{
	TupleDesc	tupdesc = ptm_result_tupdesc(fcinfo);
	MemoryContext old = MemoryContextSwitchTo(callerctx);
	Datum		result;

	result = HeapTupleGetDatum(ptm_lease_result_tuple(tupdesc, r));
	MemoryContextSwitchTo(old);
	return result;
}

/* An outcome that went wrong, counted overall and per topic. */
extern void ptm_count_topic(PtmCounter counter, text *topic);

/* A call answered "busy": counted overall and per topic. */
extern void ptm_count_busy(text *topic);

/* A result of "stale_epoch": counted in lease_conflicts_total. */
extern void ptm_count_if_stale(const char *result, text *topic);

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
 * (announce.c: by the worker or inline); one over the NOTIFY limit is logged
 * and dropped (topic and partition_id, < 0 for none, name it in the log).
 * Frees buf's data.
 */
extern void ptm_notify(StringInfo buf, const char *topic, int32 partition_id);

/*
 * A take (acquire, bulk acquire): announce "acquired" (unless
 * ptm_lease.notify_owner_changes is off), and observe recovery_latency_ms,
 * the time since the previous owner's lease ended (expiry, release or force;
 * ended_ms < 0 when the lease never had one).
 */
extern void ptm_lease_taken(text *topic, int32 partition_id, const char *agent,
							const char *previous_agent, int64 epoch, int64 expires_ms,
							int64 ended_ms, int64 now_ms);

/*
 * A release: announce "released" (unless ptm_lease.notify_owner_changes is
 * off).
 */
extern void ptm_lease_released(text *topic, int32 partition_id, text *agent, int64 epoch,
							   int64 released_ms);

#endif							/* PTM_LEASE_EVENTS_H */
