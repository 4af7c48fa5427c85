\set off :off + 1
\set k random(0, :rows - 1)
SELECT result FROM ptm.apply_projection('bench', :client_id, :off, 'k-' || :k, '{"v": 1}', now());
