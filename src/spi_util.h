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
 * Which snapshot a statement runs on.
 */
typedef enum PtmSnapshot
{
	/*
	 * As a statement of the calling function: in READ COMMITTED a new
	 * snapshot that sees what this transaction and others committed so far
	 * (SPI read-write).  The default.
	 */
	PTM_SNAPSHOT_STATEMENT = 0,
	/* The caller's snapshot, for a statement that only reads (SPI read-only) */
	PTM_SNAPSHOT_CALLER,
	/*
	 * The newest snapshot even under REPEATABLE READ, so that a row a
	 * transaction we waited for committed is counted (the limits' reads).
	 */
	PTM_SNAPSHOT_LATEST
} PtmSnapshot;

/*
 * One statement of ours: prepared on first use and kept for the backend's
 * lifetime (the plan cache re-plans it when the tables change), run only by
 * ptm_plan_run().  Written with designated initializers, e.g.
 *
 *	static PtmPlan plan_drained = {
 *		.sql = "SELECT 1 FROM ptm.agent_drains WHERE agent_id = $1",
 *		.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
 *		.expect = SPI_OK_SELECT
 *	};
 */
typedef struct PtmPlan
{
	const char *sql;
	int			nargs;
	const Oid  *argtypes;		/* nargs of them */
	int			expect;			/* the SPI_OK_* code the statement returns */
	PtmSnapshot snapshot;
	long		max_rows;		/* rows to process at most; 0: all */
	SPIPlanPtr	saved;			/* set on first use */
} PtmPlan;

/*
 * Run a statement with the ptm tables' DML guard lifted for its duration.
 * Needs an SPI connection (ptm_spi_connect).  Raises unless SPI returns
 * plan->expect; returns SPI_processed, the rows in SPI_tuptable.
 */
extern uint64 ptm_plan_run(PtmPlan *plan, Datum *values, const char *nulls);

/*
 * Connect to SPI, the one way the ptm functions do.  With pin_search_path,
 * search_path is "pg_catalog, pg_temp" until ptm_spi_finish(), for a
 * function declared without a SET clause (its hot path runs no SQL, and a
 * SET clause would cost every call).  An error unwinds both with the
 * (sub)transaction.  Returns what ptm_spi_finish() takes.
 */
extern int	ptm_spi_connect(bool pin_search_path);
extern void ptm_spi_finish(int connection);

/* True while a ptm function runs its own statements (for the DML guard). */
extern bool ptm_in_internal_dml(void);

/* Column n (1-based) of row 0 of SPI_tuptable, with its null flag. */
extern Datum ptm_spi_value(int row, int col, bool *isnull);

#endif							/* PTM_SPI_UTIL_H */
