\set k random(0, :rows - 1)
UPDATE bench_state
   SET claim_epoch = CASE WHEN claim_worker = 'w-' || :client_id AND claim_step = version
                          AND claim_expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                     THEN claim_epoch ELSE claim_epoch + 1 END,
       claim_worker = 'w-' || :client_id, claim_step = version,
       claim_expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 1
 WHERE workflow_key = 'wf-' || :k
   AND version = (SELECT version FROM bench_state WHERE workflow_key = 'wf-' || :k)
   AND (claim_expires_at IS NULL OR claim_expires_at <= (extract(epoch FROM clock_timestamp()) * 1000)::bigint
        OR claim_step IS DISTINCT FROM version OR claim_worker = 'w-' || :client_id)
RETURNING claim_epoch;
