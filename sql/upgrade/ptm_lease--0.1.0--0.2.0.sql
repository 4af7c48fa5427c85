-- ptm_lease 0.1.0 -> 0.2.0 (ALTER EXTENSION ptm_lease UPDATE TO '0.2.0').
-- Every object added or changed in sql/install/ since 0.1.0 is also created
-- here, so an updated database ends up with the same objects as a fresh
-- install (test/t/090_upgrade.pl compares the two catalogs).

\echo Use "ALTER EXTENSION ptm_lease UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------
-- Hardening (issue 9, roles and hostile input): sql/install/95_roles.sql
-- ---------------------------------------------------------------------
REVOKE ALL ON FUNCTION ptm._refuse_direct_dml() FROM PUBLIC;
