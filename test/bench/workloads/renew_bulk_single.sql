\set c :client_id
\set p random(:c * 500, :c * 500 + 499)
SELECT result FROM ptm.renew_lease('bulk', :p, 'bulk-' || :c, :p + 1, '1 h');
