-- Bad input is an ERROR with an SQLSTATE, and nothing changes.
SET search_path = public, ptm;

-- err(sql): run sql, and show the SQLSTATE (code), message and detail it fails with.
CREATE FUNCTION pg_temp.err(sql text,
    OUT code text, OUT message text, OUT detail text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    code := 'none';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL;
END
$$;
\pset format unaligned
\pset fieldsep ' | '
SELECT * FROM ptm.try_commit('wf-e', 0, '{"v": 1}');

-- workflow_key: NULL (22004), empty or too long (22023)
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit(NULL, 1, '{}')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('', 1, '{}')$$);
SET ptm_lease.max_name_bytes = 8;
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-too-long', 1, '{}')$$);
RESET ptm_lease.max_name_bytes;

-- expected_version: NULL (22004), negative (22023)
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', NULL, '{}')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', -1, '{}')$$);

-- expected_version at the last bigint: nothing can follow it (22003)
UPDATE ptm.workflow_state SET version = 9223372036854775807 WHERE workflow_key = 'wf-e';
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 9223372036854775807, '{}')$$);
UPDATE ptm.workflow_state SET version = 1 WHERE workflow_key = 'wf-e';

-- new_state: NULL (22004), larger than ptm_lease.max_state_bytes (54000)
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, NULL)$$);
SET ptm_lease.max_state_bytes = 64;
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, jsonb_build_object('pad', repeat('x', 100)))$$);
-- ... measured uncompressed, so a compressible state counts in full.
SET ptm_lease.max_state_bytes = 4000;
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, jsonb_build_object('pad', repeat('x', 10000)))$$);
RESET ptm_lease.max_state_bytes;

-- action_id: empty (22023); NULL means no action id
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', action_id => '')$$);

-- fence arguments half given (22023)
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', fence_topic => 't')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', fence_partition => 0)$$);
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', fence_topic => 't', fence_partition => 0)$$);
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', fence_topic => 't', fence_epoch => 1)$$);
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', fence_partition => 0, fence_epoch => 1)$$);
-- ... or out of range (22023)
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', fence_epoch => 0)$$);
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', fence_topic => 't', fence_partition => -1, fence_epoch => 1)$$);
SELECT * FROM pg_temp.err($$SELECT ptm.try_commit('wf-e', 1, '{}', fence_topic => '', fence_partition => 0, fence_epoch => 1)$$);

-- get_state: NULL (22004), empty (22023)
SELECT * FROM pg_temp.err($$SELECT ptm.get_state(NULL)$$);
SELECT * FROM pg_temp.err($$SELECT ptm.get_state('')$$);

-- claim_step: NULL or empty key, NULL or negative step, NULL or empty worker,
-- NULL, zero, negative or too long ttl
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step(NULL, 1, 'w')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('', 1, 'w')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', NULL, 'w')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', -1, 'w')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', 1, NULL)$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', 1, '')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', 1, 'w', NULL)$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', 1, 'w', '0 s')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', 1, 'w', '-1 s')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', 1, 'w', '0.0001 s')$$);
SELECT * FROM pg_temp.err($$SELECT ptm.claim_step('wf-e', 1, 'w', '2 hours')$$);

-- Nothing changed: the workflow is as created, no claim, no action.
\pset format aligned
SELECT version, state, claim_epoch, claim_worker FROM ptm.workflow_state;
SELECT count(*) FROM ptm.action_dedup_log;

-- The settings refuse nonsense values.
SET ptm_lease.max_state_bytes = 0;
SET ptm_lease.dedup_ttl = 0;

-- The functions need EXECUTE, which PUBLIC does not have; the tables are
-- not writable past them.
CREATE ROLE ptm_commit_nobody;
SET ROLE ptm_commit_nobody;
SELECT * FROM ptm.try_commit('wf-e', 1, '{}');
SELECT * FROM ptm.get_state('wf-e');
SELECT * FROM ptm.claim_step('wf-e', 1, 'w');
UPDATE ptm.workflow_state SET version = 42;
RESET ROLE;
-- A service role with EXECUTE commits without any table privilege.
GRANT EXECUTE ON FUNCTION ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint),
                          ptm.get_state(text) TO ptm_commit_nobody;
SET ROLE ptm_commit_nobody;
SELECT * FROM ptm.try_commit('wf-e', 1, '{"by": "service"}');
SELECT version, state FROM ptm.get_state('wf-e');
RESET ROLE;
REVOKE ALL ON FUNCTION ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint),
                       ptm.get_state(text) FROM ptm_commit_nobody;
DROP ROLE ptm_commit_nobody;

DELETE FROM ptm.workflow_state;
