-- Workflow state with optimistic commits, action dedup and ordered step claims
-- (issue 4; seeds 000 "CAS and Fencing" and 003 "Pure Reducer").  The
-- functions are in src/commits.c; see docs/commits.md.

-- One row per workflow.  The primary key's index is named the way seed 003
-- spells it, so the runbook's "CREATE INDEX IF NOT EXISTS
-- idx_workflow_state_workflow_key ON workflow_state(workflow_key)" finds it and
-- skips instead of adding a second index every commit would have to maintain.
-- The claim columns live in the same row so that a claim, a fenced commit and
-- a plain commit all serialise on one row lock (see src/commits.c).
CREATE TABLE ptm.workflow_state (
    workflow_key     text        NOT NULL,
    version          bigint      NOT NULL,
    state            jsonb       NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    claim_worker     text,
    claim_step       bigint,
    claim_epoch      bigint      NOT NULL DEFAULT 0,
    claim_expires_at bigint,
    CONSTRAINT idx_workflow_state_workflow_key PRIMARY KEY (workflow_key),
    CONSTRAINT workflow_state_version_check CHECK (version OPERATOR(pg_catalog.>=) 1),
    CONSTRAINT workflow_state_claim_epoch_check CHECK (claim_epoch OPERATOR(pg_catalog.>=) 0)
);

COMMENT ON TABLE ptm.workflow_state IS
  'Versioned workflow state: written by ptm.try_commit() and ptm.claim_step(), read by ptm.get_state()';
COMMENT ON COLUMN ptm.workflow_state.version IS
  'Committed version: 1 after creation, raised by one per ok commit, never lowered';
COMMENT ON COLUMN ptm.workflow_state.updated_at IS
  'Time of the transaction that committed this version';
COMMENT ON COLUMN ptm.workflow_state.claim_worker IS
  'Worker of the last step claim (ptm.claim_step)';
COMMENT ON COLUMN ptm.workflow_state.claim_step IS
  'Step of the last claim; the claim is void once version has moved past it';
COMMENT ON COLUMN ptm.workflow_state.claim_epoch IS
  'Epoch of the last claim; strictly increases with every new claim (0: never claimed)';
COMMENT ON COLUMN ptm.workflow_state.claim_expires_at IS
  'Expiry of the last claim in Unix epoch milliseconds (database clock); NULL once a fenced commit ended it';

-- Action ids already applied, per workflow: the primary key is what makes two
-- concurrent commits of one action apply once (the second waits for the first).
CREATE TABLE ptm.action_dedup_log (
    workflow_key   text        NOT NULL,
    action_id      text        NOT NULL,
    result_version bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at     timestamptz NOT NULL,
    CONSTRAINT action_dedup_log_pkey PRIMARY KEY (workflow_key, action_id)
);

CREATE INDEX action_dedup_log_expires_at_idx ON ptm.action_dedup_log (expires_at);

COMMENT ON TABLE ptm.action_dedup_log IS
  'Actions committed by ptm.try_commit(action_id => ...), kept for ptm_lease.dedup_ttl';
COMMENT ON COLUMN ptm.action_dedup_log.result_version IS
  'Workflow version the action produced; a repeat of the action returns it as duplicate';
COMMENT ON COLUMN ptm.action_dedup_log.expires_at IS
  'After this time the action id is forgotten and a repeat applies again';
COMMENT ON INDEX ptm.action_dedup_log_expires_at_idx IS
  'For the cleanup of expired action ids';

-- pg_dump keeps the rows of extension tables only when told to.
SELECT pg_catalog.pg_extension_config_dump('ptm.workflow_state', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.action_dedup_log', '');

CREATE FUNCTION ptm.try_commit(
    workflow_key text,
    expected_version bigint,
    new_state jsonb,
    action_id text DEFAULT NULL,
    fence_topic text DEFAULT NULL,
    fence_partition integer DEFAULT NULL,
    fence_epoch bigint DEFAULT NULL,
    OUT result text, OUT version bigint, OUT state jsonb)
RETURNS record
LANGUAGE c VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_try_commit_0_2';
-- No SET clause: a plain commit runs no SQL (src/row_access.c), and the other
-- paths pin search_path in C before their SQL (ptm_spi_connect_pinned).

COMMENT ON FUNCTION ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint) IS
  'Commit new_state if the workflow is at expected_version (0: create); result ok, cas_conflict, fencing_reject or duplicate';

CREATE FUNCTION ptm.get_state(
    workflow_key text,
    OUT version bigint, OUT state jsonb, OUT updated_at timestamptz)
RETURNS record
LANGUAGE c STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_get_state_0_2';

COMMENT ON FUNCTION ptm.get_state(text) IS
  'Current version, state and updated_at of a workflow; version 0 and NULLs when it does not exist';

CREATE FUNCTION ptm.claim_step(
    workflow_key text,
    step bigint,
    worker_id text,
    ttl interval DEFAULT '30 s',
    OUT result text, OUT workflow_key text, OUT step bigint, OUT worker_id text,
    OUT claim_epoch bigint, OUT expires_at timestamptz)
RETURNS record
LANGUAGE c VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_claim_step_0_2';

COMMENT ON FUNCTION ptm.claim_step(text, bigint, text, interval) IS
  'Claim the next step of a workflow for worker_id; result claimed, stale, out_of_order or busy';

-- The functions run as the extension owner, so that a service role needs only
-- EXECUTE and can never write the tables past the version check.  Who may
-- commit is the DBA's grant, not PUBLIC's default.
REVOKE ALL ON FUNCTION ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION ptm.get_state(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION ptm.claim_step(text, bigint, text, interval) FROM PUBLIC;
REVOKE ALL ON ptm.workflow_state, ptm.action_dedup_log FROM PUBLIC;
GRANT SELECT ON ptm.workflow_state, ptm.action_dedup_log TO pg_monitor;
