-- Privilege matrix (issue 9): each role x each function, table, view and
-- sequence of the extension.  The decision for every object is written down
-- once, in the list below; the expectations for every role are derived from
-- it.  An extension object missing from the list fails the test, so a new
-- function or table cannot ship without a decision about who may use it.
--
-- Levels: public (anyone), agent (ptm.grant_agent), operator
-- (ptm.grant_operator: agent + operator functions + pg_monitor), monitor
-- (pg_monitor: read), owner (the extension owner only).
BEGIN;

CREATE TEMP TABLE decision (kind text, name text, level text) ON COMMIT DROP;
INSERT INTO decision VALUES
  -- functions
  ('function', 'ptm.health()', 'public'),
  ('function', 'ptm.role_functions()', 'public'),
  ('function', 'ptm.acquire_partition_lease(text,integer,text,interval)', 'agent'),
  ('function', 'ptm.renew_lease(text,integer,text,bigint,interval)', 'agent'),
  ('function', 'ptm.release_lease(text,integer,text,bigint)', 'agent'),
  ('function', 'ptm.check_fence(text,integer,bigint)', 'agent'),
  ('function', 'ptm.acquire_partition_leases(text,text,integer,interval)', 'agent'),
  ('function', 'ptm.renew_leases(text,text[],integer[],bigint[],interval)', 'agent'),
  ('function', 'ptm.ensure_partitions(text,integer)', 'agent'),
  ('function', 'ptm.try_commit(text,bigint,jsonb,text,text,integer,bigint)', 'agent'),
  ('function', 'ptm.get_state(text)', 'agent'),
  ('function', 'ptm.claim_step(text,bigint,text,interval)', 'agent'),
  ('function', 'ptm.apply_projection(text,integer,bigint,text,jsonb,timestamptz,text,integer,bigint)', 'agent'),
  ('function', 'ptm.apply_projection_batch(text,integer,bigint[],text[],jsonb[],timestamptz[],text,integer,bigint)', 'agent'),
  ('function', 'ptm.force_expire(text,integer,text,text,bigint,boolean)', 'operator'),
  ('function', 'ptm.advance_epoch_era(text)', 'operator'),
  ('function', 'ptm.sweep_expired_leases(integer)', 'operator'),
  ('function', 'ptm.reset_counters()', 'operator'),
  ('function', 'ptm.reset_projection(text,integer,boolean,text)', 'operator'),
  ('function', 'ptm.metrics_text()', 'monitor'),
  ('function', 'ptm._metric_series()', 'monitor'),
  ('function', 'ptm._key_counters()', 'monitor'),
  ('function', 'ptm._stat_info()', 'monitor'),
  ('function', 'ptm.grant_agent(regrole)', 'owner'),
  ('function', 'ptm.grant_operator(regrole)', 'owner'),
  ('function', 'ptm._grant_execute(regrole,boolean)', 'owner'),
  ('function', 'ptm._refuse_direct_dml()', 'owner'),
  ('function', 'ptm._fill_sweep_at()', 'owner'),
  -- fair share (docs/balancing.md)
  ('function', 'ptm.rebalance(text,text,interval)', 'agent'),
  ('function', 'ptm.leave_topic(text,text)', 'agent'),
  ('function', 'ptm.set_topic_limit(text,integer,boolean,text)', 'operator'),
  ('function', 'ptm.clear_topic_limit(text,text)', 'operator'),
  ('function', 'ptm.drain_agent(text,text)', 'operator'),
  ('function', 'ptm.undrain_agent(text,text)', 'operator'),
  ('function', 'ptm._balance_changed()', 'owner'),
  -- metric history (docs/workers.md)
  ('function', 'ptm.snapshot_metrics()', 'operator'),
  ('function', 'ptm.increase(text,interval,timestamptz)', 'monitor'),
  ('function', 'ptm.rate(text,interval,timestamptz)', 'monitor'),
  ('function', 'ptm.histogram_quantile(double precision,text,interval,timestamptz)', 'monitor'),
  ('function', 'ptm._history_window(text,interval,timestamptz)', 'monitor'),
  -- tables: read by pg_monitor, written only through the functions
  ('table', 'ptm.partition_leases', 'monitor'),
  ('table', 'ptm.lease_audit', 'monitor'),
  ('table', 'ptm.workflow_state', 'monitor'),
  ('table', 'ptm.action_dedup_log', 'monitor'),
  ('table', 'ptm.projection_watermarks', 'monitor'),
  ('table', 'ptm.workflow_projection', 'owner'),   -- projected user data
  ('table', 'ptm.topic_limits', 'monitor'),
  ('table', 'ptm.agent_drains', 'monitor'),
  ('table', 'ptm.topic_agents', 'monitor'),
  ('table', 'ptm.topic_generations', 'monitor'),
  ('table', 'ptm.metric_history', 'monitor'),
  ('table', 'ptm.epoch_eras', 'monitor'),      -- written only by advance_epoch_era()
  -- views
  ('view', 'ptm.lease_status', 'monitor'),
  ('view', 'ptm.projection_lag', 'monitor'),
  ('view', 'ptm.projection_metrics', 'monitor'),
  ('view', 'ptm.metric_series', 'monitor'),
  ('view', 'ptm.metrics', 'monitor'),
  ('view', 'ptm.histograms', 'monitor'),
  ('view', 'ptm.commit_results', 'monitor'),
  ('view', 'ptm.claim_results', 'monitor'),
  ('view', 'ptm.lease_outcomes', 'monitor'),
  ('view', 'ptm.key_counters', 'monitor'),
  ('view', 'ptm.top_workflow_conflicts', 'monitor'),
  ('view', 'ptm.top_topic_conflicts', 'monitor'),
  ('view', 'ptm.stat_info', 'monitor'),
  ('view', 'ptm.balance', 'monitor'),
  -- sequences: only the functions draw from them
  ('sequence', 'ptm.lease_epoch_seq', 'owner'),
  ('sequence', 'ptm.lease_audit_audit_id_seq', 'owner');

-- The roles of the matrix, and which levels each reaches.
CREATE ROLE ptm_priv_public;
CREATE ROLE ptm_priv_agent;
CREATE ROLE ptm_priv_operator;
CREATE ROLE ptm_priv_monitor IN ROLE pg_monitor;
DO $$ BEGIN
  PERFORM ptm.grant_agent('ptm_priv_agent');
  PERFORM ptm.grant_operator('ptm_priv_operator');
END $$;

CREATE TEMP TABLE reach (role name, level text) ON COMMIT DROP;
INSERT INTO reach
SELECT r.role, l.level
  FROM (VALUES ('ptm_priv_public'::name, ARRAY['public']),
               ('ptm_priv_agent', ARRAY['public', 'agent']),
               ('ptm_priv_operator', ARRAY['public', 'agent', 'operator', 'monitor']),
               ('ptm_priv_monitor', ARRAY['public', 'monitor']),
               ((SELECT r.rolname FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner
                  WHERE e.extname = 'ptm_lease'),
                ARRAY['public', 'agent', 'operator', 'monitor', 'owner'])) AS r(role, levels),
       unnest(r.levels) AS l(level);

-- Every object of the extension, with its kind.
CREATE TEMP VIEW member AS
SELECT CASE WHEN d.classid = 'pg_proc'::regclass THEN 'function'
            WHEN c.relkind IN ('r', 'p') THEN 'table'
            WHEN c.relkind = 'v' THEN 'view'
            WHEN c.relkind = 'S' THEN 'sequence' END AS kind,
       CASE WHEN d.classid = 'pg_proc'::regclass THEN d.objid::regprocedure::text
            ELSE d.objid::regclass::text END AS name,
       d.objid
  FROM pg_depend d
  LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ptm_lease')
   AND d.deptype = 'e'
   AND (d.classid = 'pg_proc'::regclass OR c.relkind IN ('r', 'p', 'v', 'S'));

-- The decisions resolved to objects (regprocedure spells types its own way).
CREATE TEMP VIEW decided AS
SELECT d.kind, d.name, d.level,
       CASE WHEN d.kind = 'function' THEN to_regprocedure(d.name)::oid
            ELSE to_regclass(d.name)::oid END AS objid
  FROM decision d;

-- Expected and actual privileges, one row per (object, role).
CREATE TEMP VIEW matrix AS
SELECT d.kind, d.name, d.level, r.role,
       CASE d.kind
         WHEN 'function' THEN CASE WHEN reached THEN ARRAY['EXECUTE'] ELSE '{}' END
         WHEN 'sequence' THEN CASE WHEN owner THEN ARRAY['SELECT', 'UPDATE', 'USAGE'] ELSE '{}' END
         ELSE CASE WHEN owner THEN ARRAY['DELETE', 'INSERT', 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE']
                   WHEN reached THEN ARRAY['SELECT'] ELSE '{}' END
       END AS expected,
       ARRAY(SELECT p FROM unnest(CASE d.kind
                  WHEN 'function' THEN ARRAY['EXECUTE']
                  WHEN 'sequence' THEN ARRAY['SELECT', 'UPDATE', 'USAGE']
                  ELSE ARRAY['DELETE', 'INSERT', 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE']
                END) AS p
              WHERE CASE d.kind
                  WHEN 'function' THEN has_function_privilege(r.role, d.objid, p)
                  WHEN 'sequence' THEN has_sequence_privilege(r.role, d.objid, p)
                  ELSE has_table_privilege(r.role, d.objid, p) END
              ORDER BY p) AS actual
  FROM decided d
 CROSS JOIN (SELECT DISTINCT role FROM reach) r
 CROSS JOIN LATERAL (SELECT EXISTS (SELECT FROM reach x WHERE x.role = r.role AND x.level = d.level) AS reached,
                            EXISTS (SELECT FROM reach x WHERE x.role = r.role AND x.level = 'owner') AS owner) AS f
 WHERE d.objid IS NOT NULL;

SELECT plan(7 + (SELECT count(*)::int FROM matrix));

-- 1. The list covers the extension exactly.
SELECT is_empty(
  $$SELECT kind || ' ' || name FROM member m
     WHERE NOT EXISTS (SELECT FROM decided d WHERE d.objid = m.objid AND d.kind = m.kind)$$,
  'every function, table, view and sequence of ptm_lease has a privilege decision in this test');
SELECT is_empty(
  $$SELECT kind || ' ' || name FROM decided d
     WHERE NOT EXISTS (SELECT FROM member m WHERE m.objid = d.objid AND m.kind = d.kind)$$,
  'every decision names an object of ptm_lease');

-- 2. The grant functions agree with the decisions.
SELECT set_eq(
  $$SELECT function::oid, needed_by FROM ptm.role_functions()$$,
  $$SELECT objid, level FROM decided WHERE level IN ('agent', 'operator')$$,
  'ptm.role_functions() lists exactly the agent and operator functions');

-- 3. No role but the owner may write a table, view or sequence, whatever was
--    granted since; direct DML is never granted to agents.
SELECT is_empty(
  $$SELECT m.name || ': ' || a.privilege_type || ' to ' || a.grantee::regrole::text
      FROM member m JOIN pg_class c ON c.oid = m.objid,
           aclexplode(c.relacl) a
     WHERE m.kind IN ('table', 'view', 'sequence')
       AND a.grantee <> c.relowner
       AND a.privilege_type NOT IN ('SELECT')$$,
  'only the owner may insert, update, delete, truncate or draw from a sequence');

-- 4. Every object belongs to the extension's owner, and every function that
--    runs SQL has its search_path pinned (trigger functions run none): by a
--    SET clause, or, for the hot paths that usually run no SQL, in C before
--    any SQL (ptm_spi_connect_pinned; sql/hostile.sql attacks both kinds).
SELECT is_empty(
  $$SELECT m.name FROM member m
      LEFT JOIN pg_proc p ON m.kind = 'function' AND p.oid = m.objid
      LEFT JOIN pg_class c ON m.kind <> 'function' AND c.oid = m.objid
     WHERE coalesce(p.proowner, c.relowner) <>
           (SELECT extowner FROM pg_extension WHERE extname = 'ptm_lease')$$,
  'every object is owned by the extension owner');
SELECT is_empty(
  $$SELECT m.name FROM member m JOIN pg_proc p ON p.oid = m.objid
     WHERE p.prorettype <> 'trigger'::regtype
       AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
       AND p.oid NOT IN ('ptm.renew_lease(text, integer, text, bigint, interval)'::regprocedure,
                         'ptm.release_lease(text, integer, text, bigint)'::regprocedure,
                         'ptm.acquire_partition_lease(text, integer, text, interval)'::regprocedure,
                         'ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)'::regprocedure,
                         'ptm.check_fence(text, integer, bigint)'::regprocedure,
                         'ptm.claim_step(text, bigint, text, interval)'::regprocedure)$$,
  'every function runs with search_path = pg_catalog, pg_temp');
SELECT is_empty(
  $$SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.oid IN ('ptm.renew_lease(text, integer, text, bigint, interval)'::regprocedure,
                     'ptm.release_lease(text, integer, text, bigint)'::regprocedure,
                     'ptm.acquire_partition_lease(text, integer, text, interval)'::regprocedure,
                     'ptm.try_commit(text, bigint, jsonb, text, text, integer, bigint)'::regprocedure,
                     'ptm.check_fence(text, integer, bigint)'::regprocedure,
                     'ptm.claim_step(text, bigint, text, interval)'::regprocedure)
       AND (p.proconfig IS NOT NULL OR p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c'))$$,
  'the hot paths are C functions without a SET clause (they pin search_path in C)');

-- 5. The matrix.
SELECT is(actual, expected,
          format('%s may %s %s %s', role,
                 CASE WHEN expected = '{}' THEN 'not use' ELSE array_to_string(expected, ', ') END,
                 kind, name))
  FROM matrix ORDER BY kind, name, role;

SELECT * FROM finish();
ROLLBACK;
