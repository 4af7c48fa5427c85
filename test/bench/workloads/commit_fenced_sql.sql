\set k random(0, :rows - 1)
\set a random(1, 2000000000)
WITH fence AS (
  SELECT 1 FROM bench_leases WHERE topic = 'bench' AND partition_id = :k
     AND lease_epoch = :k + 1 AND lease_expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint FOR SHARE),
dedup AS (
  INSERT INTO bench_dedup (workflow_key, action_id, result_version)
  SELECT 'wf-' || :k, 'act-' || :a,
         (SELECT version + 1 FROM bench_state WHERE workflow_key = 'wf-' || :k) FROM fence
  ON CONFLICT DO NOTHING RETURNING 1)
UPDATE bench_state SET version = version + 1, state = '{"a": 1}', updated_at = now()
 WHERE workflow_key = 'wf-' || :k
   AND version = (SELECT version FROM bench_state WHERE workflow_key = 'wf-' || :k)
   AND EXISTS (SELECT 1 FROM dedup)
RETURNING version;
