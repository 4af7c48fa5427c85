-- ptm_lease.notify_owner_changes: an enum (worker, inline, off) that still
-- takes the old boolean spellings (on means worker), refuses other values
-- with 22023 and, being superuser-only, a plain role with 42501.
BEGIN;
SELECT plan(12);

SELECT is(current_setting('ptm_lease.notify_owner_changes'), 'worker', 'the default is worker');
SELECT is((SELECT vartype FROM pg_settings WHERE name = 'ptm_lease.notify_owner_changes'), 'enum',
          'an enum setting');
SELECT is((SELECT enumvals FROM pg_settings WHERE name = 'ptm_lease.notify_owner_changes'),
          ARRAY['worker', 'inline', 'off'], 'whose values are worker, inline and off');
SELECT is((SELECT context FROM pg_settings WHERE name = 'ptm_lease.notify_owner_changes'), 'superuser',
          'set by a superuser (or ALTER ROLE / DATABASE by one)');

CREATE FUNCTION pg_temp.set_to(v text) RETURNS text LANGUAGE sql AS $$
  SELECT set_config('ptm_lease.notify_owner_changes', v, true)
$$;
SELECT is(pg_temp.set_to('inline'), 'inline', 'inline');
SELECT is(pg_temp.set_to('off'), 'off', 'off');
SELECT is(pg_temp.set_to('on'), 'worker', 'on, the old default, means worker');
SELECT is(pg_temp.set_to('false'), 'off', 'false means off');
SELECT is(pg_temp.set_to('WORKER'), 'worker', 'case does not matter');
SELECT throws_ok($$SELECT pg_temp.set_to('sometimes')$$, '22023',
                 'invalid value for parameter "ptm_lease.notify_owner_changes": "sometimes"',
                 'another value is refused with 22023');

CREATE ROLE ptm_tap_announce_plain;
SET LOCAL ROLE ptm_tap_announce_plain;
SELECT throws_ok($$SET ptm_lease.notify_owner_changes = inline$$, '42501', NULL,
                 'a plain role may not change it');
RESET ROLE;
SELECT is(current_setting('ptm_lease.notify_owner_changes'), 'worker', 'and it did not change');

SELECT * FROM finish();
ROLLBACK;
