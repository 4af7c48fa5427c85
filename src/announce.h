/*-------------------------------------------------------------------------
 *
 * announce.h
 *	  Announcing lease events on NOTIFY channel ptm_lease_events without
 *	  serializing the commits of the transactions that change leases.
 *
 * A changing transaction queues its payloads in backend memory; at commit
 * they go into a ring in shared memory, and the worker of the database
 * (worker.c) sends them in its own transactions.  See announce.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_ANNOUNCE_H
#define PTM_ANNOUNCE_H

#include "postgres.h"

/* ptm_lease.notify_owner_changes */
typedef enum PtmAnnounceMode
{
	PTM_ANNOUNCE_OFF,			/* acquired / released are not sent */
	PTM_ANNOUNCE_WORKER,		/* the database's worker sends them */
	PTM_ANNOUNCE_INLINE			/* NOTIFY in the changing transaction */
} PtmAnnounceMode;

extern bool ptm_announce_owner_changes(void);

extern void ptm_announce_define_gucs(void);
extern void ptm_announce_shmem_request(void);
extern void ptm_announce_shmem_startup(void);

/*
 * Announce payload (a JSON text, NUL-terminated) on PTM_NOTIFY_CHANNEL when
 * the current transaction commits, by the path ptm_lease.notify_owner_changes
 * and the database's worker allow.
 */
extern void ptm_announce(const char *payload);

/* The worker: send what the ring holds for this database (worker.c). */
extern void ptm_announce_worker_start(void);
extern int	ptm_announce_pass(void);
extern void ptm_announce_pass_failed(void);

/* The "announcements" row of ptm.health(). */
struct ReturnSetInfo;
extern void ptm_announce_health(struct ReturnSetInfo *rsinfo,
								void (*add_row) (struct ReturnSetInfo *rsinfo, const char *check,
												 const char *status, const char *value,
												 const char *detail));

#endif							/* PTM_ANNOUNCE_H */
