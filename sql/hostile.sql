-- Search-path hijack (issue 9): an unprivileged role that owns schema public
-- plants objects shadowing what the extension uses (operators, functions,
-- function-style casts, tables and a sequence named like ptm's), agents and
-- operators then call every ptm function with public first in their
-- search_path (and with temp objects of their own).  Every hostile object
-- writes a marker and returns a wrong answer: none may run, every result must
-- be what it would be without them.
\set VERBOSITY terse
SELECT setval('ptm.lease_epoch_seq', 7000000) AS epoch_base;

CREATE ROLE ptm_hostile;
CREATE ROLE ptm_hostile_agent;
CREATE ROLE ptm_hostile_oncall;
SELECT count(*) AS agent_grants FROM ptm.grant_agent('ptm_hostile_agent');
SELECT count(*) AS operator_grants FROM ptm.grant_operator('ptm_hostile_oncall');
ALTER SCHEMA public OWNER TO ptm_hostile;

-- ---------------------------------------------------------------------
-- The hostile objects, created by the owner of public
-- ---------------------------------------------------------------------
SET ROLE ptm_hostile;
-- (pg_catalog first while planting: the traps must not catch the planter)
SET search_path = pg_catalog, public;
CREATE TABLE public.hostile_marker (what text);
GRANT INSERT, SELECT ON public.hostile_marker TO PUBLIC;
CREATE FUNCTION public.hostile_hit(what text) RETURNS void
  LANGUAGE sql VOLATILE AS $$ INSERT INTO public.hostile_marker VALUES (what) $$;
GRANT EXECUTE ON FUNCTION public.hostile_hit(text) TO PUBLIC;

DO $$
DECLARE
  t record;
  op text;
  n int := 0;
BEGIN
  -- comparison operators that always say yes: a hijacked WHERE matches anything
  FOR t IN SELECT * FROM (VALUES ('text', 'text'), ('bigint', 'bigint'), ('integer', 'integer'),
                                 ('bigint', 'integer'), ('integer', 'bigint'),
                                 ('timestamptz', 'timestamptz'), ('jsonb', 'jsonb'))
                         AS v(l, r) LOOP
    FOREACH op IN ARRAY ARRAY['=', '<>', '<', '<=', '>', '>='] LOOP
      n := n + 1;
      EXECUTE format('CREATE FUNCTION public.h_cmp_%s(%s, %s) RETURNS boolean LANGUAGE sql VOLATILE'
                     ' AS $f$ SELECT public.hostile_hit(%L); SELECT true $f$',
                     n, t.l, t.r, t.l || ' ' || op || ' ' || t.r);
      EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.h_cmp_%s)',
                     op, t.l, t.r, n);
    END LOOP;
  END LOOP;
  -- arithmetic that lies
  FOR t IN SELECT * FROM (VALUES ('bigint', 'bigint'), ('integer', 'integer'), ('bigint', 'integer'))
                         AS v(l, r) LOOP
    FOREACH op IN ARRAY ARRAY['+', '-', '*'] LOOP
      n := n + 1;
      EXECUTE format('CREATE FUNCTION public.h_arith_%s(%s, %s) RETURNS %s LANGUAGE sql VOLATILE'
                     ' AS $f$ SELECT public.hostile_hit(%L); SELECT 42::%s $f$',
                     n, t.l, t.r, t.l, t.l || ' ' || op || ' ' || t.r, t.l);
      EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.h_arith_%s)',
                     op, t.l, t.r, n);
    END LOOP;
  END LOOP;
END $$;

CREATE FUNCTION public.h_concat(text, text) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('text || text'); SELECT 'hijacked' $$;
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = public.h_concat);
CREATE FUNCTION public.h_jsonb_get(jsonb, text) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('jsonb ->> text'); SELECT 'hijacked' $$;
CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.h_jsonb_get);

-- functions the extension calls, and function-style casts
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('now()'); SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('clock_timestamp()'); SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION public.statement_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('statement_timestamp()'); SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION public.nextval(regclass) RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('nextval(regclass)'); SELECT 1::bigint $$;
CREATE FUNCTION public.nextval(text) RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('nextval(text)'); SELECT 1::bigint $$;
CREATE FUNCTION public.generate_series(integer, integer) RETURNS SETOF integer LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('generate_series()'); SELECT 0 $$;
CREATE FUNCTION public.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('unnest()'); SELECT $1[1] $$;
CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('upper()'); SELECT 'HIJACKED' $$;
CREATE FUNCTION public.to_timestamp(double precision) RETURNS timestamptz LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('to_timestamp()'); SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('current_setting()'); SELECT 'hijacked' $$;
CREATE FUNCTION public.inet_client_addr() RETURNS inet LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('inet_client_addr()'); SELECT '6.6.6.6'::inet $$;
CREATE FUNCTION public.to_regclass(text) RETURNS regclass LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('to_regclass()'); SELECT NULL::regclass $$;
CREATE FUNCTION public.to_regprocedure(text) RETURNS regprocedure LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('to_regprocedure()'); SELECT NULL::regprocedure $$;
CREATE FUNCTION public.round(double precision) RETURNS double precision LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('round()'); SELECT 0::double precision $$;
CREATE FUNCTION public.date_part(text, interval) RETURNS double precision LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('date_part()'); SELECT 0::double precision $$;
CREATE FUNCTION public.jsonb_build_object(text, text, text, text) RETURNS jsonb LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('jsonb_build_object()'); SELECT '{}'::jsonb $$;
CREATE FUNCTION public."coalesce"(text, text) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('coalesce()'); SELECT 'hijacked' $$;
CREATE FUNCTION public.greatest(bigint, bigint) RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('greatest()'); SELECT 0::bigint $$;
CREATE FUNCTION public.int8(text) RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('int8(text)'); SELECT 1::bigint $$;
CREATE FUNCTION public.text(bigint) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('text(bigint)'); SELECT 'hijacked' $$;
CREATE FUNCTION public.text(integer) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('text(integer)'); SELECT 'hijacked' $$;
CREATE FUNCTION public.format(text, text, text) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('format()'); SELECT 'SELECT 1' $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;

-- tables and a sequence named like ptm's, with a trigger that reports writes
CREATE FUNCTION public.h_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM public.hostile_hit(TG_OP || ' on public.' || TG_TABLE_NAME);
  RETURN NULL;
END $$;
CREATE TABLE public.partition_leases (topic text, partition_id integer, agent_id text,
  lease_epoch bigint, lease_expires_at bigint, state text, acquired_at timestamptz,
  renewed_at timestamptz, ended_at timestamptz, previous_agent_id text, previous_epoch bigint);
INSERT INTO public.partition_leases VALUES ('hostile', 0, 'mallory', 1, 9000000000000, 'active');
CREATE TABLE public.workflow_state (workflow_key text, version bigint, state jsonb,
  updated_at timestamptz, claim_worker text, claim_step bigint, claim_epoch bigint,
  claim_expires_at bigint);
INSERT INTO public.workflow_state VALUES ('hostile-wf', 99, '{"by": "mallory"}');
CREATE TABLE public.action_dedup_log (workflow_key text, action_id text, result_version bigint,
  created_at timestamptz, expires_at timestamptz);
CREATE TABLE public.lease_audit (LIKE public.action_dedup_log);
CREATE TABLE public.projection_watermarks (projection text, partition_id integer, "offset" bigint,
  previous_offset bigint);
CREATE TABLE public.workflow_projection (projection text, key text, data jsonb);
CREATE SEQUENCE public.lease_epoch_seq START 666;
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['partition_leases', 'workflow_state', 'action_dedup_log', 'lease_audit',
                           'projection_watermarks', 'workflow_projection'] LOOP
    EXECUTE format('CREATE TRIGGER h AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.%I'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION public.h_trigger()', t);
    EXECUTE format('GRANT ALL ON public.%I TO PUBLIC', t);
  END LOOP;
END $$;
GRANT ALL ON SEQUENCE public.lease_epoch_seq TO PUBLIC;
RESET ROLE;
RESET search_path;

SELECT count(*) AS hostile_operators FROM pg_operator WHERE oprnamespace = 'public'::regnamespace;
SELECT count(*) AS hostile_functions FROM pg_proc WHERE pronamespace = 'public'::regnamespace;

-- ---------------------------------------------------------------------
-- An agent calls every agent function with public first, and temp objects
-- of its own in pg_temp
-- ---------------------------------------------------------------------
SET ROLE ptm_hostile_agent;
CREATE TEMP TABLE partition_leases (topic text, partition_id integer, agent_id text,
  lease_epoch bigint, lease_expires_at bigint, state text);
INSERT INTO pg_temp.partition_leases VALUES ('hostile', 0, 'mallory', 1, 9000000000000, 'active');
CREATE FUNCTION pg_temp.nextval(regclass) RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ SELECT public.hostile_hit('pg_temp.nextval()'); SELECT 1::bigint $$;
SET search_path = pg_temp, public, pg_catalog, ptm;

SELECT result, agent_id, lease_epoch FROM ptm.acquire_partition_lease('hostile', 0, 'agent-1', '30 s');
SELECT lease_epoch AS e0 FROM ptm.acquire_partition_lease('hostile', 0, 'agent-1', '30 s') \gset
SELECT result, agent_id, lease_epoch FROM ptm.acquire_partition_lease('hostile', 0, 'agent-2');
SELECT result, lease_epoch FROM ptm.renew_lease('hostile', 0, 'agent-1', :e0, '20 s');
-- a wrong epoch, a wrong agent: a hijacked "=" would say renewed
SELECT result FROM ptm.renew_lease('hostile', 0, 'agent-1', 7000000);
SELECT result FROM ptm.renew_lease('hostile', 0, 'agent-2', :e0);
SELECT result FROM ptm.release_lease('hostile', 0, 'agent-2', :e0);
SELECT ptm.check_fence('hostile', 0, :e0);
SELECT ptm.check_fence('hostile', 0, 7000000);
SELECT ptm.ensure_partitions('hostile', 4) AS created;
SELECT result, partition_id, lease_epoch FROM ptm.acquire_partition_leases('hostile', 'agent-3', 2)
 ORDER BY partition_id;
SELECT result, topic, partition_id FROM ptm.renew_leases('agent-3', ARRAY['hostile', 'hostile'],
       ARRAY[1, 2], ARRAY[7000002, 7000001]::bigint[]);

SELECT * FROM ptm.try_commit('hostile-wf', 0, '{"n": 1}');
SELECT * FROM ptm.try_commit('hostile-wf', 1, '{"n": 2}', 'act-1', 'hostile', 0, :e0);
SELECT * FROM ptm.try_commit('hostile-wf', 1, '{"n": 2}', 'act-1', 'hostile', 0, :e0);
SELECT * FROM ptm.try_commit('hostile-wf', 1, '{"n": 3}');
SELECT * FROM ptm.try_commit('hostile-wf', 2, '{"n": 3}', NULL, 'hostile', 0, 7000000);
SELECT version, state FROM ptm.get_state('hostile-wf');
SELECT result, step, worker_id, claim_epoch FROM ptm.claim_step('hostile-wf', 2, 'worker-1');
SELECT result, step, worker_id FROM ptm.claim_step('hostile-wf', 2, 'worker-2');
SELECT result FROM ptm.claim_step('hostile-wf', 1, 'worker-2');
SELECT * FROM ptm.try_commit('hostile-wf', 2, '{"n": 3}', NULL, NULL, NULL, 1);
SELECT * FROM ptm.try_commit('hostile-wf', 3, '{"n": 4}', NULL, NULL, NULL, 1);

SELECT * FROM ptm.apply_projection('hostile-p', 0, 5, 'k1', '{"v": 1}', NULL, 'hostile', 0, :e0);
SELECT * FROM ptm.apply_projection('hostile-p', 0, 5, 'k1', '{"v": 2}');
SELECT * FROM ptm.apply_projection('hostile-p', 0, 3, 'k1', '{"v": 0}');
SELECT * FROM ptm.apply_projection('hostile-p', 0, 9, 'k2', '{"v": 9}', NULL, 'hostile', 0, 7000000);
SELECT ordinality, "offset", key, result, watermark
  FROM ptm.apply_projection_batch('hostile-p', 0, ARRAY[6, 8, 4, 8]::bigint[],
       ARRAY['k1', 'k2', 'k3', 'k2'], ARRAY['{"v": 6}', '{"v": 8}', '{"v": 4}', '{"v": 88}']::jsonb[]);
SELECT result FROM ptm.release_lease('hostile', 0, 'agent-1', :e0);
-- the agent's own temp objects are its own business
SELECT count(*) AS own_temp_rows FROM pg_temp.partition_leases;
RESET search_path;
RESET ROLE;

-- ---------------------------------------------------------------------
-- The same through SQL: with the direct paths off (what a DBA's trigger on
-- the tables also causes), the functions without a SET clause run their
-- statements under the search_path they pin in C
-- ---------------------------------------------------------------------
SET ptm_lease.direct_row_access = off;
SET ROLE ptm_hostile_agent;
SET search_path = pg_temp, public, pg_catalog, ptm;
SELECT lease_epoch AS e8 FROM ptm.acquire_partition_lease('hostile-sql', 8, 'agent-8', '30 s') \gset
SELECT result, agent_id FROM ptm.acquire_partition_lease('hostile-sql', 8, 'agent-9');
SELECT result FROM ptm.renew_lease('hostile-sql', 8, 'agent-8', :e8, '20 s');
SELECT result FROM ptm.renew_lease('hostile-sql', 8, 'agent-8', 7000000);
SELECT ptm.check_fence('hostile-sql', 8, :e8);
SELECT result FROM ptm.release_lease('hostile-sql', 8, 'agent-9', :e8);
SELECT result FROM ptm.release_lease('hostile-sql', 8, 'agent-8', :e8);
SELECT result, agent_id FROM ptm.acquire_partition_lease('hostile-sql', 8, 'agent-9');
SELECT result, version FROM ptm.try_commit('hostile-wf8', 0, '{"n": 1}');
SELECT result, version FROM ptm.try_commit('hostile-wf8', 1, '{"n": 2}');
SELECT result, version FROM ptm.try_commit('hostile-wf8', 1, '{"n": 3}');
SELECT result, step, worker_id FROM ptm.claim_step('hostile-wf8', 2, 'worker-8');
RESET search_path;
RESET ROLE;
RESET ptm_lease.direct_row_access;

-- ---------------------------------------------------------------------
-- An operator: force_expire, a sweep, resets, the views and metrics_text()
-- ---------------------------------------------------------------------
SELECT result FROM ptm.acquire_partition_lease('hostile', 5, 'agent-5');
SET ROLE ptm_hostile_oncall;
SET search_path = public, pg_catalog, ptm;
SELECT result, agent_id, lease_epoch FROM ptm.force_expire('hostile', 5, 'hostile test');
SELECT result, agent_id FROM ptm.force_expire('hostile', 5);
SELECT * FROM ptm.reset_projection('hostile-p', 0, true, 'hostile test');
-- a hijacked "<=" would make every owned lease due and expire the live ones
-- below (what earlier tests left is swept too: only the lease rows tell)
SELECT expired OPERATOR(pg_catalog.>=) 0 AS swept FROM ptm.sweep_expired_leases();
SELECT ptm.reset_counters() IS NOT NULL AS counters_reset;
SELECT topic, partition_id, agent_id, status FROM ptm.lease_status
 WHERE topic OPERATOR(pg_catalog.=) 'hostile' ORDER BY partition_id;
-- (the caller's own expressions qualify their operators: public is first)
SELECT count(*) OPERATOR(pg_catalog.>) 0 AS metrics_read FROM ptm.metrics;
SELECT pg_catalog.length(ptm.metrics_text()) OPERATOR(pg_catalog.>) 0 AS metrics_text_read;
SELECT count(*) AS views_read FROM (SELECT 1 FROM ptm.projection_lag UNION ALL
  SELECT 1 FROM ptm.stat_info UNION ALL SELECT 1 FROM ptm.lease_outcomes
  UNION ALL SELECT 1 FROM ptm.projection_metrics LIMIT 1) v;
SELECT "check", status FROM ptm.health() WHERE "check" OPERATOR(pg_catalog.=) 'preload';
SELECT count(*) AS role_functions FROM ptm.role_functions();
-- limits on: an acquisition runs the limit and fair-share queries
SELECT topic, max_leases, fair_share FROM ptm.set_topic_limit('hostile', 6, true, 'hostile test');
SELECT result, agent_id FROM ptm.acquire_partition_lease('hostile', 6, 'agent-6');
SELECT result, partition_id FROM ptm.rebalance('hostile', 'agent-6') ORDER BY partition_id;
SELECT ptm.drain_agent('agent-6', 'hostile test') AS drained_leases;
SELECT result FROM ptm.acquire_partition_lease('hostile', 7, 'agent-6');
SELECT ptm.undrain_agent('agent-6', 'hostile test') AS undrained;
SELECT ptm.leave_topic('hostile', 'agent-6') AS left_topic;
SELECT ptm.clear_topic_limit('hostile', 'hostile test') AS cleared;
SELECT count(*) AS balance_rows FROM ptm.balance WHERE topic OPERATOR(pg_catalog.=) 'hostile';
-- metric history
SELECT ptm.snapshot_metrics() OPERATOR(pg_catalog.>) 0 AS snapshot_taken;
SELECT count(*) AS rate_rows FROM ptm.rate('ptm_commit_total', '1 hour');
SELECT count(*) AS increase_rows FROM ptm.increase('lease_acquisitions_total', '1 hour');
SELECT ptm.histogram_quantile(0.5, 'canonical_store_commit_latency_ms_bucket', '1 hour') IS NULL AS no_quantile_yet;
RESET search_path;
RESET ROLE;

-- ---------------------------------------------------------------------
-- The verdict (as the owner, with pg_catalog first)
-- ---------------------------------------------------------------------
SET search_path = pg_catalog, ptm;
SELECT count(*) AS hostile_calls FROM public.hostile_marker;
SELECT what FROM public.hostile_marker;
SELECT topic, partition_id, agent_id, lease_epoch, state FROM ptm.partition_leases
 WHERE topic = 'hostile' ORDER BY partition_id;
SELECT version, state FROM ptm.workflow_state WHERE workflow_key = 'hostile-wf';
SELECT action_id, result_version FROM ptm.action_dedup_log WHERE workflow_key = 'hostile-wf';
SELECT action, topic, partition_id, previous_agent_id, reason, current_user_name
  FROM ptm.lease_audit WHERE topic IN ('hostile', 'hostile-p') ORDER BY audit_id;
SELECT (SELECT count(*) FROM public.partition_leases) AS their_leases,
       (SELECT count(*) FROM public.workflow_state) AS their_workflows,
       (SELECT count(*) FROM public.action_dedup_log) AS their_dedup,
       (SELECT count(*) FROM public.lease_audit) AS their_audit,
       (SELECT count(*) FROM public.projection_watermarks) AS their_watermarks,
       (SELECT count(*) FROM public.workflow_projection) AS their_projection,
       (SELECT last_value FROM public.lease_epoch_seq) AS their_seq;

-- The trap is armed: the same "=" with public first does run.
SET search_path = public, pg_catalog;
SELECT 'a'::text = 'b'::text AS hijacked_equal;
SET search_path = pg_catalog, ptm;
SELECT what FROM public.hostile_marker;

-- cleanup
SET session_replication_role = replica;
DELETE FROM ptm.partition_leases WHERE topic IN ('hostile', 'hostile-sql');
DELETE FROM ptm.lease_audit WHERE topic IN ('hostile', 'hostile-p') OR reason = 'hostile test';
DELETE FROM ptm.topic_agents WHERE topic IN ('hostile', 'hostile-sql');
DELETE FROM ptm.topic_generations WHERE topic IN ('hostile', 'hostile-sql');
DELETE FROM ptm.metric_history;
RESET session_replication_role;
DELETE FROM ptm.workflow_state WHERE workflow_key IN ('hostile-wf', 'hostile-wf8');
DELETE FROM ptm.action_dedup_log WHERE workflow_key = 'hostile-wf';
DELETE FROM ptm.workflow_projection WHERE projection = 'hostile-p';
DELETE FROM ptm.projection_watermarks WHERE projection = 'hostile-p';
RESET search_path;
ALTER SCHEMA public OWNER TO pg_database_owner;
DROP OWNED BY ptm_hostile, ptm_hostile_agent, ptm_hostile_oncall;
DROP ROLE ptm_hostile, ptm_hostile_agent, ptm_hostile_oncall;
