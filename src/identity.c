/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  Agent identity: ptm_lease.agent_identity binds agent and worker ids to
 *	  database roles, so that one agent cannot act on another's lease.
 *
 * Under 'role', the lease functions that name an agent (acquire, renew,
 * release and their bulk forms), claim_step (worker_id), and every fenced
 * write (check_fence, try_commit and apply_projection with a lease fence,
 * try_commit with a claim fence) ask here whether the calling role may act
 * as that agent: it may when the id is its own role name or the name of a
 * role it is a member of (superusers are members of every role).  The
 * calling role is the one outside ptm's SECURITY DEFINER functions: the
 * session user, or the role set with SET ROLE.
 *
 * The setting is superuser-only (PGC_SUSET), so an agent cannot turn it off;
 * it can be set per database or role (ALTER ROLE ... SET).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "identity.h"
#include "spi_util.h"

int			ptm_agent_identity = PTM_IDENTITY_ANY;

static const struct config_enum_entry identity_options[] = {
	{"any", PTM_IDENTITY_ANY, false},
	{"role", PTM_IDENTITY_ROLE, false},
	{NULL, 0, false}
};

/* The live claim of a workflow: its worker and epoch. */
static PtmPlan plan_claim_owner = {
	.sql = "SELECT claim_worker, claim_epoch FROM ptm.workflow_state WHERE workflow_key = $1",
	.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
	.expect = SPI_OK_SELECT,
	.snapshot = PTM_SNAPSHOT_CALLER
};

void
ptm_identity_define_gucs(void)
{
	DefineCustomEnumVariable("ptm_lease.agent_identity",
							 gettext_noop("Whether agent and worker ids must name the calling role."),
							 gettext_noop("any: an agent id is only a name; role: it must be the calling "
										  "role or a role the caller is a member of."),
							 &ptm_agent_identity,
							 PTM_IDENTITY_ANY,
							 identity_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

/* Whether the calling role is, or is a member of, the role named name[0..len). */
static bool
acts_as(const char *name, int len)
{
	char		buf[NAMEDATALEN];
	Oid			roleid;

	/* a longer id cannot be a role name (and must not match a truncated one) */
	if (len <= 0 || len >= NAMEDATALEN)
		return false;
	memcpy(buf, name, len);
	buf[len] = '\0';
	roleid = get_role_oid(buf, true);
	return OidIsValid(roleid) && is_member_of_role(GetOuterUserId(), roleid);
}

static char *
caller_name(void)
{
	return GetUserNameFromId(GetOuterUserId(), false);
}

void
ptm_check_agent(text *agent, const char *argname)
{
	if (ptm_agent_identity == PTM_IDENTITY_ANY ||
		acts_as(VARDATA_ANY(agent), VARSIZE_ANY_EXHDR(agent)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may not act as %s \"%s\"",
					caller_name(), argname, text_to_cstring(agent)),
			 errdetail("ptm_lease.agent_identity is \"role\": %s must be the calling role or a role it is a member of.",
					   argname),
			 errhint("Connect as that role or SET ROLE to it, or GRANT it to the calling role.")));
}

static void
refuse_write_under(const char *what, const char *owner)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may not write under the %s of \"%s\"", caller_name(), what, owner),
			 errdetail("ptm_lease.agent_identity is \"role\": a fenced write must come from the owner's role or a member of it.")));
}

void
ptm_check_fence_owner(const char *owner)
{
	if (ptm_agent_identity == PTM_IDENTITY_ANY || owner == NULL ||
		acts_as(owner, strlen(owner)))
		return;
	refuse_write_under("lease", owner);
}

/*
 * A claim epoch names one claim of one worker: the epoch rises whenever the
 * worker changes.  So the worker of the claim at fence->epoch is checked when
 * that is the current claim; a lower epoch is refused by try_commit itself
 * (fencing_reject), and a higher one was never issued (only a guess can
 * name it), so it is refused here rather than left to race a later claim.
 */
void
ptm_check_claim_owner(text *workflow_key, const PtmFenceArgs *fence)
{
	int			spi;
	Datum		args[1] = {PointerGetDatum(workflow_key)};
	bool		worker_null;
	bool		epoch_null;
	char	   *worker = NULL;
	int64		epoch = 0;
	MemoryContext callerctx = CurrentMemoryContext;

	if (ptm_agent_identity == PTM_IDENTITY_ANY || fence->kind != PTM_FENCE_ARGS_CLAIM)
		return;

	spi = ptm_spi_connect(false);
	ptm_plan_run(&plan_claim_owner, args, NULL);
	if (SPI_processed == 1)
	{
		Datum		w = ptm_spi_value(0, 1, &worker_null);

		epoch = DatumGetInt64(ptm_spi_value(0, 2, &epoch_null));
		if (!worker_null)
			worker = MemoryContextStrdup(callerctx, TextDatumGetCString(w));
	}
	ptm_spi_finish(spi);

	if (fence->epoch > epoch)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("claim epoch " INT64_FORMAT " was never issued for workflow \"%s\"",
						fence->epoch, text_to_cstring(workflow_key)),
				 errdetail("ptm_lease.agent_identity is \"role\": a claim-fenced commit must name a claim made with ptm.claim_step().")));
	if (fence->epoch == epoch && worker != NULL && !acts_as(worker, strlen(worker)))
		refuse_write_under("step claim", worker);
}
