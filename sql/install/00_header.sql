-- ptm_lease install script, assembled by the Makefile from sql/install/NN_*.sql.
-- Objects are created in schema ptm (control file).  Every function pins its
-- search_path and qualifies pg_catalog, so objects in public cannot hijack it.

\echo Use "CREATE EXTENSION ptm_lease" to load this file. \quit

-- Anyone may look up names in ptm; what each role may execute is granted per
-- function (operator functions are revoked from PUBLIC where they are created).
GRANT USAGE ON SCHEMA ptm TO PUBLIC;
