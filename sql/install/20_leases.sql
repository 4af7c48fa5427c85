-- Epoch-fenced partition leases (docs/leases.md).

-- Epochs come from one sequence: strictly increasing for every lease, across
-- release, expiry, force_expire, crash, restart and even a lease row deleted
-- and created again.  They are not consecutive per lease.  A promotion or a
-- point-in-time recovery starts a new era (21_epochs.sql).
CREATE SEQUENCE ptm.lease_epoch_seq AS bigint MINVALUE 1 NO CYCLE;
COMMENT ON SEQUENCE ptm.lease_epoch_seq IS
  'Source of lease epochs (fencing tokens): every change of owner takes the next value';

CREATE TABLE ptm.partition_leases (
    topic             text        NOT NULL,
    partition_id      integer     NOT NULL,
    agent_id          text,                         -- NULL when free
    lease_epoch       bigint      NOT NULL DEFAULT 0,
    lease_expires_at  bigint      NOT NULL DEFAULT 0,  -- Unix epoch ms, database clock
    state             text        NOT NULL DEFAULT 'free',
    acquired_at       timestamptz,
    renewed_at        timestamptz,
    ended_at          timestamptz,                  -- released, forced or found expired
    previous_agent_id text,
    previous_epoch    bigint,
    sweep_at          bigint,                       -- when the sweeper looks next, <= expiry
    PRIMARY KEY (topic, partition_id),
    CONSTRAINT partition_leases_state_check
      CHECK (state IN ('free', 'active', 'released', 'expired', 'forced')),
    CONSTRAINT partition_leases_owner_check
      CHECK ((agent_id IS NOT NULL) = (state = 'active')),
    CONSTRAINT partition_leases_partition_check CHECK (partition_id >= 0)
) WITH (fillfactor = 80);

-- No index covers lease_expires_at or renewed_at, so a renewal is a HOT
-- update (room for it on the page: fillfactor 80).  The sweeper finds due
-- leases through sweep_at, a lower bound of the expiry that only the owner
-- changes and the sweeper itself moves up (docs/workers.md): cost follows
-- what is due, not the size of the table.
CREATE INDEX partition_leases_sweep_idx
    ON ptm.partition_leases (sweep_at) WHERE agent_id IS NOT NULL;
-- Per-agent live counts (balancing); renew keeps agent_id, so HOT too.
CREATE INDEX partition_leases_agent_idx
    ON ptm.partition_leases (agent_id) WHERE agent_id IS NOT NULL;

COMMENT ON TABLE ptm.partition_leases IS
  'One row per (topic, partition): owner, epoch (fencing token) and expiry in Unix ms; change it only through the ptm lease functions';
COMMENT ON COLUMN ptm.partition_leases.agent_id IS 'Owner; NULL when free, released, expired or forced';
COMMENT ON COLUMN ptm.partition_leases.lease_epoch IS 'Fencing token: raised on every change of owner and by force_expire';
COMMENT ON COLUMN ptm.partition_leases.lease_expires_at IS 'Expiry, Unix epoch milliseconds on the database clock';
COMMENT ON COLUMN ptm.partition_leases.state IS 'free, active, released, expired (found by the sweeper) or forced';
COMMENT ON COLUMN ptm.partition_leases.sweep_at IS 'When the sweeper next looks at an owned lease, Unix epoch milliseconds; never after lease_expires_at (renewals leave it behind)';

-- Operator actions, for the audit trail the runbooks ask for.
CREATE TABLE ptm.lease_audit (
    audit_id          bigserial   PRIMARY KEY,
    at                timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    action            text        NOT NULL,
    topic             text,
    partition_id      integer,
    previous_agent_id text,
    previous_epoch    bigint,
    new_epoch         bigint,
    reason            text,
    session_user_name text        NOT NULL DEFAULT pg_catalog."session_user"(),
    current_user_name text        NOT NULL DEFAULT pg_catalog."current_user"(),
    application_name  text        DEFAULT pg_catalog.current_setting('application_name'),
    client_addr       inet        DEFAULT pg_catalog.inet_client_addr(),
    details           jsonb
);
CREATE INDEX lease_audit_at_idx ON ptm.lease_audit (at);
CREATE INDEX lease_audit_lease_idx ON ptm.lease_audit (topic, partition_id, at);
COMMENT ON TABLE ptm.lease_audit IS
  'Who did what to which lease (force_expire, refused direct DML, resets): append-only';

SELECT pg_catalog.pg_extension_config_dump('ptm.partition_leases', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.lease_audit', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.lease_audit_audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('ptm.lease_epoch_seq', '');

-- Direct UPDATE, DELETE or TRUNCATE would bypass fencing and the audit trail
-- (the old runbook's "UPDATE partition_leases SET lease_expires_at = 0"), so
-- only the extension's own functions may change these tables.
CREATE FUNCTION ptm._refuse_direct_dml()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'ptm_refuse_direct_dml';
COMMENT ON FUNCTION ptm._refuse_direct_dml() IS
  'Trigger: refuses UPDATE, DELETE and TRUNCATE on ptm tables outside ptm functions';

CREATE TRIGGER partition_leases_guard
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ptm.partition_leases
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._refuse_direct_dml();
CREATE TRIGGER lease_audit_guard
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ptm.lease_audit
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._refuse_direct_dml();

-- A row inserted with an owner but without sweep_at (pg_restore of a 0.1.0
-- dump, a hand-written INSERT) would never be swept: fill it from the expiry.
-- The functions' own INSERT always sets it, so the WHEN clause skips them.
CREATE FUNCTION ptm._fill_sweep_at()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  NEW.sweep_at := NEW.lease_expires_at;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION ptm._fill_sweep_at() IS
  'Trigger: sets sweep_at of an owned lease row inserted without one (restore, hand-written INSERT)';
REVOKE ALL ON FUNCTION ptm._fill_sweep_at() FROM PUBLIC;
CREATE TRIGGER partition_leases_fill_sweep_at
  BEFORE INSERT ON ptm.partition_leases
  FOR EACH ROW WHEN (NEW.agent_id IS NOT NULL AND NEW.sweep_at IS NULL)
  EXECUTE FUNCTION ptm._fill_sweep_at();

-- What every lease function returns: the outcome and the lease as it stands.
CREATE TYPE ptm.lease_result AS (
    result        text,
    topic         text,
    partition_id  integer,
    agent_id      text,
    lease_epoch   bigint,
    expires_at    timestamptz
);
COMMENT ON TYPE ptm.lease_result IS
  'Outcome of a lease call and the lease after it (agent_id, lease_epoch, expires_at)';

CREATE FUNCTION ptm.acquire_partition_lease(
    topic text, partition_id integer, agent_id text,
    ttl interval DEFAULT '30 s')
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_acquire_partition_lease_0_2';
COMMENT ON FUNCTION ptm.acquire_partition_lease(text, integer, text, interval) IS
  'Take a free, released or expired lease (acquired, epoch raised), extend your own (held), or learn its owner (conflict)';

CREATE FUNCTION ptm.renew_lease(
    topic text, partition_id integer, agent_id text, lease_epoch bigint,
    ttl interval DEFAULT '30 s')
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_renew_lease_0_2';
COMMENT ON FUNCTION ptm.renew_lease(text, integer, text, bigint, interval) IS
  'Extend a live lease you hold at this epoch: renewed, stale_epoch, not_owner or expired; never changes the epoch';

CREATE FUNCTION ptm.release_lease(
    topic text, partition_id integer, agent_id text, lease_epoch bigint)
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_release_lease_0_2';
COMMENT ON FUNCTION ptm.release_lease(text, integer, text, bigint) IS
  'Free a lease you hold at this epoch at once: released, stale_epoch, not_owner or expired';

CREATE FUNCTION ptm.force_expire(
    topic text, partition_id integer, reason text DEFAULT NULL,
    agent_id text DEFAULT NULL, lease_epoch bigint DEFAULT NULL,
    end_holder boolean DEFAULT false)
RETURNS ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_force_expire_0_2';
COMMENT ON FUNCTION ptm.force_expire(text, integer, text, text, bigint, boolean) IS
  'Operator: end a lease now, raise its epoch so the old owner is fenced, and audit it: forced, no_lease, not_owner or stale_epoch (agent_id / lease_epoch given and the lease moved on), busy (row held past ptm_lease.lock_wait_timeout; end_holder => true ends the holding transaction first)';

-- The worker's expiry sweep, one batch, for a database without a worker or
-- with a backlog (docs/workers.md); the worker and this share one C path.
CREATE FUNCTION ptm.sweep_expired_leases(
    max_leases integer DEFAULT NULL,
    OUT expired bigint, OUT rescheduled bigint)
RETURNS record
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_sweep_expired_leases';
COMMENT ON FUNCTION ptm.sweep_expired_leases(integer) IS
  'Operator: one batch of the worker''s expiry sweep in this transaction (max_leases NULL: ptm_lease.sweep_batch_size); leases past expiry marked expired, logged and NOTIFYed, renewed ones rescheduled; locked rows skipped';

CREATE FUNCTION ptm.check_fence(
    topic text, partition_id integer, lease_epoch bigint)
RETURNS void
LANGUAGE c VOLATILE SECURITY DEFINER
AS 'MODULE_PATHNAME', 'ptm_check_fence_0_2';
COMMENT ON FUNCTION ptm.check_fence(text, integer, bigint) IS
  'Inside a write''s transaction: ERROR PTM01 unless the epoch is current and live; on success a takeover waits for this transaction';

CREATE FUNCTION ptm.acquire_partition_leases(
    topic text, agent_id text, max_leases integer,
    ttl interval DEFAULT '30 s')
RETURNS SETOF ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_acquire_partition_leases_0_2';
COMMENT ON FUNCTION ptm.acquire_partition_leases(text, text, integer, interval) IS
  'Bulk: acquire up to max_leases free or expired partitions of a topic, skipping rows locked by others';

CREATE FUNCTION ptm.renew_leases(
    agent_id text, topics text[], partition_ids integer[], lease_epochs bigint[],
    ttl interval DEFAULT '30 s')
RETURNS SETOF ptm.lease_result
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_renew_leases_0_2';
COMMENT ON FUNCTION ptm.renew_leases(text, text[], integer[], bigint[], interval) IS
  'Bulk: renew many leases of one agent in one call, one result row per lease in input order';

CREATE FUNCTION ptm.ensure_partitions(topic text, partitions integer)
RETURNS integer
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_ensure_partitions_0_2';
COMMENT ON FUNCTION ptm.ensure_partitions(text, integer) IS
  'Create free lease rows for partitions 0 .. partitions-1 of a topic (for bulk acquire); returns how many were new';

-- What a DBA reads at 3 a.m.: every lease with its status on the database clock.
CREATE VIEW ptm.lease_status AS
SELECT l.topic, l.partition_id, l.agent_id, l.lease_epoch,
       pg_catalog.to_timestamp(l.lease_expires_at / 1000.0) AS expires_at,
       CASE
         WHEN l.agent_id IS NULL THEN pg_catalog.upper(l.state)
         WHEN l.lease_expires_at > (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint
           THEN 'ACTIVE'
         ELSE 'EXPIRED'
       END AS status,
       CASE WHEN l.agent_id IS NOT NULL
            THEN pg_catalog.to_timestamp(l.lease_expires_at / 1000.0) - pg_catalog.clock_timestamp()
       END AS remaining,
       l.acquired_at, l.renewed_at, l.ended_at, l.previous_agent_id, l.previous_epoch
  FROM ptm.partition_leases l;
COMMENT ON VIEW ptm.lease_status IS
  'Every lease with status ACTIVE, EXPIRED, FREE, RELEASED or FORCED on the database clock';
GRANT SELECT ON ptm.partition_leases, ptm.lease_status, ptm.lease_audit TO pg_monitor;

-- The functions run as the extension's owner (SECURITY DEFINER, search_path
-- pinned, every name qualified), so callers need no privilege on the tables.
-- renew_lease, release_lease, acquire_partition_lease and check_fence have
-- no SET clause:
-- their hot path runs no SQL, and they pin search_path in C before any
-- (src/spi_util.c);
-- who may call them is granted per role: see ptm.grant_agent() and
-- ptm.grant_operator() in 95_roles.sql.
REVOKE ALL ON FUNCTION
  ptm.acquire_partition_lease(text, integer, text, interval),
  ptm.renew_lease(text, integer, text, bigint, interval),
  ptm.release_lease(text, integer, text, bigint),
  ptm.force_expire(text, integer, text, text, bigint, boolean),
  ptm.sweep_expired_leases(integer),
  ptm.check_fence(text, integer, bigint),
  ptm.acquire_partition_leases(text, text, integer, interval),
  ptm.renew_leases(text, text[], integer[], bigint[], interval),
  ptm.ensure_partitions(text, integer)
FROM PUBLIC;
REVOKE ALL ON ptm.partition_leases, ptm.lease_audit FROM PUBLIC;
