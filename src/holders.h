/*-------------------------------------------------------------------------
 *
 * holders.h
 *	  Ending the backends whose transactions hold a lease row past its
 *	  lease (a client frozen inside a fenced transaction).  See holders.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_HOLDERS_H
#define PTM_HOLDERS_H

#include "fmgr.h"
#include "utils/timestamp.h"

/* One backend ended, for the audit row and the log. */
typedef struct PtmEndedHolder
{
	int			pid;
	char	   *details;		/* jsonb text: who, from where, since when */
} PtmEndedHolder;

/*
 * Terminate those of the npids backends whose transaction began before
 * started_before (DT_NOBEGIN: whenever), waiting up to wait_ms for each to
 * exit, and describe each in out[] (npids entries).  Returns how many were
 * ended.  Needs an SPI connection.
 */
extern int	ptm_end_backends(const int *pids, int npids, TimestampTz started_before,
							 int wait_ms, const char *by, PtmEndedHolder *out);

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

#endif							/* PTM_HOLDERS_H */
