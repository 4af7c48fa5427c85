/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *	  Saved SPI plans and the "inside a ptm function" flag.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_SPI_UTIL_H
#define PTM_SPI_UTIL_H

#include "executor/spi.h"

/*
 * A statement prepared once per backend and kept for its lifetime; the plan
 * cache re-plans it if the tables change (e.g. the extension is recreated).
 */
typedef struct PtmPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[8];
	SPIPlanPtr	plan;
} PtmPlan;

/*
 * The plan in *slot, prepared and kept on first use.  For callers that keep
 * their own plan slots; ptm_spi_execute() uses it for a PtmPlan.
 */
extern SPIPlanPtr ptm_spi_prepare(SPIPlanPtr *slot, const char *sql, int nargs,
								  const Oid *argtypes);

/*
 * Execute a saved plan (preparing it on first use) with the ptm tables'
 * DML guard lifted for the duration.  Needs an SPI connection.  Returns the
 * SPI result code; raises on any SPI error.
 */
extern int	ptm_spi_execute(PtmPlan *plan, Datum *values, const char *nulls,
							bool read_only, long count);

/*
 * SPI_connect() with search_path pinned to "pg_catalog, pg_temp" until
 * ptm_spi_finish_pinned(), for a function declared without a SET clause.
 * An error unwinds both with the (sub)transaction.
 */
extern int	ptm_spi_connect_pinned(void);
extern void ptm_spi_finish_pinned(int nest_level);

/*
 * Whether this database has the 0.2.0 SQL objects.  The library also serves a
 * database still at 0.1.0 until ALTER EXTENSION ptm_lease UPDATE: there the
 * lease statements leave out sweep_at and no limit applies.
 */
extern bool ptm_schema_is_020(void);
extern void ptm_schema_relcache_invalidated(Oid relid);

/* True while a ptm function runs its own statements (for the DML guard). */
extern bool ptm_in_internal_dml(void);

/* Column n (1-based) of row 0 of SPI_tuptable, with its null flag. */
extern Datum ptm_spi_value(int row, int col, bool *isnull);

#endif							/* PTM_SPI_UTIL_H */
