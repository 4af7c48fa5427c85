/*-------------------------------------------------------------------------
 *
 * identity.h
 *	  Whether the calling role may act as the agent it names
 *	  (ptm_lease.agent_identity; see docs/security.md).
 *
 * Each check returns at once under the default 'any'.  Under 'role', an
 * agent or worker id must be the name of the calling role (current_user
 * outside ptm's SECURITY DEFINER functions) or of a role it is a member of;
 * otherwise SQLSTATE 42501 (insufficient_privilege).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_IDENTITY_H
#define PTM_IDENTITY_H

#include "fmgr.h"

#include "validate.h"

typedef enum PtmAgentIdentity
{
	PTM_IDENTITY_ANY,			/* agent ids are not bound to roles */
	PTM_IDENTITY_ROLE			/* an agent id names the caller's role or one of its roles */
} PtmAgentIdentity;

extern int	ptm_agent_identity;
extern void ptm_identity_define_gucs(void);

/* The caller may act as the agent (or worker) named by argument argname. */
extern void ptm_check_agent(text *agent, const char *argname);

/* A fence that passed: the caller may write under the lease of owner. */
extern void ptm_check_fence_owner(const char *owner);

/* A try_commit fenced by a step claim: the caller may write under that claim. */
extern void ptm_check_claim_owner(text *workflow_key, const PtmFenceArgs *fence);

#endif							/* PTM_IDENTITY_H */
