\set p random(0, :rows - 1)
SELECT result FROM ptm.renew_lease('bench', :p, 'agent-' || :p, :p + 1, '1 h');
