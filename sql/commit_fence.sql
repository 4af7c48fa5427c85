-- try_commit fenced by a partition lease: the fence is checked before the
-- version, so a writer whose lease moved gets fencing_reject even at the
-- right version (seed 000's decision tree: fencing_reject vs cas_conflict).
SET search_path = public, ptm;
SELECT setval('ptm.lease_epoch_seq', 5000000) AS epoch_base;

SELECT result, lease_epoch FROM ptm.acquire_partition_lease('wf-topic', 0, 'agent-a');
SELECT * FROM ptm.try_commit('wf-f', 0, '{"by": "a"}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000001);
SELECT * FROM ptm.try_commit('wf-f', 1, '{"by": "a", "n": 2}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000001);
-- Live fence, wrong version: cas_conflict.
SELECT * FROM ptm.try_commit('wf-f', 1, '{"by": "a", "n": 3}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000001);

-- Takeover: the old owner is fenced, even with the right version.
SELECT result, agent_id, lease_epoch FROM ptm.force_expire('wf-topic', 0, 'agent-a is stuck');
SELECT result, agent_id, lease_epoch FROM ptm.acquire_partition_lease('wf-topic', 0, 'agent-b');
SELECT * FROM ptm.try_commit('wf-f', 2, '{"by": "a", "n": 3}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000001);
-- ... and even with a version that is also wrong: the fence comes first.
SELECT * FROM ptm.try_commit('wf-f', 1, '{"by": "a", "n": 3}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000001);
-- ... and even when it repeats an action already applied (by the new owner):
-- a fenced-out writer must learn to stop, not that its work is done.
SELECT * FROM ptm.try_commit('wf-f', 2, '{"by": "b", "n": 3}', action_id => 'act-b3',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000003);
SELECT * FROM ptm.try_commit('wf-f', 3, '{"by": "a", "n": 4}', action_id => 'act-b3',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000001);
-- The new owner's repeat of its own action is a duplicate.
SELECT * FROM ptm.try_commit('wf-f', 3, '{"by": "b", "n": 4}', action_id => 'act-b3',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000003);

-- Every other way a fence fails is a fencing_reject too, and writes nothing:
-- an epoch from the future, no lease at all, a released lease, an expired one.
SELECT result, version FROM ptm.try_commit('wf-f', 3, '{}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000009);
SELECT result, version FROM ptm.try_commit('wf-f', 3, '{}',
    fence_topic => 'wf-topic', fence_partition => 7, fence_epoch => 5000003);
SELECT result FROM ptm.release_lease('wf-topic', 0, 'agent-b', 5000003);
SELECT result, version FROM ptm.try_commit('wf-f', 3, '{}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000003);
SELECT result, lease_epoch FROM ptm.acquire_partition_lease('wf-topic', 0, 'agent-c', '10 ms');
SELECT pg_sleep(0.05);
SELECT result, version FROM ptm.try_commit('wf-f', 3, '{}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000004);
-- A fenced create on a workflow that does not exist is refused the same way.
SELECT * FROM ptm.try_commit('wf-g', 0, '{}',
    fence_topic => 'wf-topic', fence_partition => 0, fence_epoch => 5000004);
SELECT workflow_key, version, state FROM ptm.workflow_state ORDER BY workflow_key;

-- check_fence and try_commit agree: the fence of a commit is check_fence's.
\set VERBOSITY sqlstate
SELECT ptm.check_fence('wf-topic', 0, 5000001);
\set VERBOSITY default

DELETE FROM ptm.action_dedup_log;
DELETE FROM ptm.workflow_state;
-- Leave no lease or audit row behind for the lease tests.
SET session_replication_role = replica;
DELETE FROM ptm.lease_audit WHERE topic = 'wf-topic';
DELETE FROM ptm.partition_leases WHERE topic = 'wf-topic';
RESET session_replication_role;
