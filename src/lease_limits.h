/*-------------------------------------------------------------------------
 *
 * lease_limits.h
 *	  The limits an acquisition must respect (per agent, per topic, fair
 *	  share, drain), for the acquire paths.  See lease_limits.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_LEASE_LIMITS_H
#define PTM_LEASE_LIMITS_H

#include "fmgr.h"

/* Why an acquisition was refused (or cut short, for the bulk form). */
typedef enum PtmLimitReason
{
	PTM_LIMIT_NONE,
	PTM_LIMIT_DRAINING,			/* the agent is drained by an operator */
	PTM_LIMIT_WORKER,			/* ptm_lease.max_leases_per_agent */
	PTM_LIMIT_TENANT,			/* ptm.topic_limits.max_leases */
	PTM_LIMIT_FAIR_SHARE		/* above its fair share while another is below */
} PtmLimitReason;

/* Settings (ptm_lease.max_leases_per_agent, ptm_lease.fair_share). */
extern void ptm_limits_define_gucs(void);
extern void ptm_limits_relcache_invalidated(Oid relid);

/*
 * Whether any limit may refuse an acquisition now: false (and free) while
 * both settings are off, no topic has a row in ptm.topic_limits and no agent
 * is drained.  Needs an SPI connection (it may reload its cache).
 */
extern bool ptm_limits_active(void);

/*
 * Take the transaction-level locks that make the limits exact (see the
 * protocol in lease_limits.c).  Call before locking any lease row; once per
 * transaction suffices, more is harmless.
 */
extern void ptm_limits_lock(text *topic, text *agent);

/*
 * How many leases of topic the agent may take now, at most want; *why says
 * which limit cut it (PTM_LIMIT_NONE when none did).  Call with the locks of
 * ptm_limits_lock held and an SPI connection.
 */
extern int	ptm_limits_allowance(text *topic, text *agent, int want, PtmLimitReason *why);

/* Count a refusal in ptm_backpressure_total{reason}, overall and per topic. */
extern void ptm_limits_count_refusal(PtmLimitReason why, text *topic);

/*
 * The agent's live leases over all topics, as of now_ms, read with the
 * newest snapshot.  Needs an SPI connection.
 */
extern int	ptm_agent_live_leases(text *agent, int64 now_ms);

#endif							/* PTM_LEASE_LIMITS_H */
