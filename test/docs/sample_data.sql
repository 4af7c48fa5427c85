-- Sample data for the executable docs (test/t/070_docs.pl): every ```sql block
-- of README.md and docs/**/*.md runs verbatim against a database holding this.
-- The names are those the docs and the seed runbooks use.  Loaded as a
-- superuser into a fresh database with ptm_lease installed and
-- search_path = "$user", public, ptm (as the README tells DBAs).
\set ON_ERROR_STOP 1
SET client_min_messages = error;

-- Leases on 'orders' partitions 0..7: agent-abc holds 0..3, agent-xyz 4..7.
-- The epoch sequence is moved so that orders-0 is at epoch 42, as in seed 002
-- ("Stale epoch (current: 42, attempted: 41)").
SELECT ptm.ensure_partitions('orders', 8);
SELECT setval('ptm.lease_epoch_seq', 41);
SELECT ptm.acquire_partition_lease('orders', p, CASE WHEN p < 4 THEN 'agent-abc' ELSE 'agent-xyz' END,
                                   '30 min')
  FROM generate_series(0, 7) AS p ORDER BY p;

-- A stale writer: agent-old tries to renew and to fence orders-0 at epoch 41.
SELECT ptm.renew_lease('orders', 0, 'agent-old', 41);
DO $$
BEGIN
  PERFORM ptm.check_fence('orders', 0, 41);
EXCEPTION WHEN SQLSTATE 'PTM01' THEN NULL;
END $$;
-- A second agent competing for a live partition.
SELECT ptm.acquire_partition_lease('orders', 1, 'agent-xyz', '30 s');

-- 'payments': partition 0 held by agent-1 (README), partition 1 expired
-- (its owner stopped renewing; no worker sweeps this database), partition 2
-- forced by an operator (audited).
SELECT ptm.acquire_partition_lease('payments', 0, 'agent-1', '30 min');
SELECT ptm.acquire_partition_lease('payments', 1, 'agent-2', '1 ms');
SELECT ptm.acquire_partition_lease('payments', 2, 'agent-2', '30 min');
SELECT ptm.force_expire('payments', 2, 'agent-2 is dead (INC-1234)');
SELECT pg_sleep(0.01);

-- The lease the projection materializer of partition 3 holds (docs/projections.md).
SELECT ptm.acquire_partition_lease('state-committed', 3, 'materializer-1', '30 min');

-- An application table written under a lease (the same as test/demo.sql's):
-- the fenced-write examples insert into it after ptm.check_fence().
CREATE TABLE public.orders_log (partition_id int, epoch bigint, payload text);

-- Workflows: wf-42 at version 3 (with action ids), a CAS conflict on it, a
-- duplicate action; task-7 a task chain at step 3 with a live claim by
-- worker-a; a stale and an out-of-order claim.
SELECT ptm.try_commit('wf-42', 0, '{"status": "new"}', action_id => 'act-1');
SELECT ptm.try_commit('wf-42', 1, '{"status": "paid"}', action_id => 'act-2');
SELECT ptm.try_commit('wf-42', 2, '{"status": "shipped"}', action_id => 'act-3');
SELECT ptm.try_commit('wf-42', 2, '{"status": "cancelled"}', action_id => 'act-4');
SELECT ptm.try_commit('wf-42', 2, '{"status": "shipped"}', action_id => 'act-3');
SELECT ptm.try_commit('wf-' || g, 0, jsonb_build_object('n', g)) FROM generate_series(1, 20) AS g;
SELECT ptm.try_commit('task-7', 0, '{"done": []}');
SELECT ptm.claim_step('task-7', 1, 'worker-a', '30 min');
SELECT ptm.try_commit('task-7', 1, '{"done": [1]}', fence_epoch =>
       (SELECT claim_epoch FROM ptm.workflow_state WHERE workflow_key = 'task-7'));
SELECT ptm.claim_step('task-7', 2, 'worker-a', '30 min');
SELECT ptm.try_commit('task-7', 2, '{"done": [1, 2]}', fence_epoch =>
       (SELECT claim_epoch FROM ptm.workflow_state WHERE workflow_key = 'task-7'));
SELECT ptm.claim_step('task-7', 3, 'worker-a', '30 min');
SELECT ptm.claim_step('task-7', 1, 'worker-b');     -- stale: step 1 is committed
SELECT ptm.claim_step('task-7', 5, 'worker-b');     -- out_of_order
SELECT ptm.claim_step('task-7', 3, 'worker-b');     -- busy: worker-a holds it

-- Projection 'workflow_view': partitions 0..3 with watermarks, events 10 s
-- old; one duplicate and one regression on partition 0.
SELECT ptm.apply_projection('workflow_view', p, o, 'wf-' || (p * 100 + o),
                            jsonb_build_object('offset', o), now() - interval '10 s')
  FROM generate_series(0, 3) AS p, generate_series(1, 5) AS o ORDER BY p, o;
SELECT ptm.apply_projection('workflow_view', 0, 5, 'wf-5', '{"offset": 5}');
SELECT ptm.apply_projection('workflow_view', 0, 2, 'wf-2', '{"offset": 2}');

RESET client_min_messages;
