-- ptm_lease install script, assembled by the Makefile from sql/install/NN_*.sql.
-- Objects are created in schema ptm (control file).  Every function pins its
-- search_path and qualifies pg_catalog, so objects in public cannot hijack it.
-- The functions 0.1.0 had whose C code reads or writes the ptm tables are
-- bound to symbols named by version (ptm_try_commit_0_2); the symbols 0.1.0
-- named refuse, with a hint to run ALTER EXTENSION ptm_lease UPDATE
-- (src/old_versions.c, docs/architecture.md).

\echo Use "CREATE EXTENSION ptm_lease" to load this file. \quit

-- Anyone may look up names in ptm; what each role may execute is granted per
-- function (operator functions are revoked from PUBLIC where they are created).
GRANT USAGE ON SCHEMA ptm TO PUBLIC;
