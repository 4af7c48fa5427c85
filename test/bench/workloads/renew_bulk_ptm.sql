\set c :client_id
SELECT count(*) FROM ptm.renew_leases('bulk-' || :c, array_fill('bulk'::text, ARRAY[500]),
       ARRAY(SELECT g FROM generate_series(:c * 500, :c * 500 + 499) g),
       ARRAY(SELECT g + 1 FROM generate_series(:c * 500, :c * 500 + 499) g), '1 h')
 WHERE result = 'renewed';
