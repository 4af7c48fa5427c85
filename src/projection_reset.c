/*-------------------------------------------------------------------------
 *
 * projection_reset.c
 *	  reset_projection(), for operators: start a projection, or one
 *	  partition of it, afresh.
 *
 * Locking protocol (the whole of it: projection_watermarks.c)
 *	  - The watermark rows are deleted first, which waits for applies in
 *		progress (they lock them first), then the projection rows: the same
 *		order as an apply, so no deadlock.  An apply waiting on a deleted
 *		watermark starts the partition afresh.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/*
 * reset_projection's statements, all with the same parameters: $1
 * projection, $2 partition (NULL: all), $3 reason, $4 delete_rows, $5 rows
 * deleted, $6 the watermarks removed, $7 the calling role.
 */
#define RESET_TYPES (const Oid[]) {TEXTOID, INT4OID, TEXTOID, BOOLOID, INT8OID, JSONBOID, TEXTOID}
static PtmPlan plan_reset_watermarks = {
	.sql = "WITH removed AS ("
	"  DELETE FROM ptm.projection_watermarks"
	"   WHERE projection = $1 AND ($2 IS NULL OR partition_id = $2)"
	"  RETURNING partition_id, \"offset\", applied_count)"
	" SELECT count(*),"
	"        jsonb_agg(jsonb_build_object('partition_id', partition_id,"
	"                                     'offset', \"offset\","
	"                                     'applied_count', applied_count)"
	"                  ORDER BY partition_id)"
	"   FROM removed",
	.nargs = 2, .argtypes = RESET_TYPES,
	.expect = SPI_OK_SELECT
};
static PtmPlan plan_reset_rows = {
	.sql = "DELETE FROM ptm.workflow_projection"
	" WHERE projection = $1 AND ($2 IS NULL OR source_partition = $2)",
	.nargs = 2, .argtypes = RESET_TYPES,
	.expect = SPI_OK_DELETE
};
static PtmPlan plan_reset_audit = {
	.sql = "INSERT INTO ptm.lease_audit"
	"  (action, topic, partition_id, reason, details, current_user_name)"
	" VALUES ('reset_projection', $1, $2, $3,"
	"         jsonb_build_object('projection', $1, 'delete_rows', $4,"
	"                            'rows_deleted', $5,"
	"                            'watermarks', COALESCE($6, '[]'::jsonb)), $7)",
	.nargs = 7, .argtypes = RESET_TYPES,
	.expect = SPI_OK_INSERT
};

/*
 * ptm.reset_projection(projection, partition_id, delete_rows, reason)
 *	→ (result, partitions_reset, rows_deleted)
 *
 * Removes the watermarks (all partitions, or one) so that a replay starts
 * afresh, optionally deletes the projection's rows, and writes an audit row
 * with the watermarks removed.  Revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(ptm_reset_projection_0_2);
Datum
ptm_reset_projection_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *projection;
	bool		delete_rows;
	TupleDesc	tupdesc;
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Datum		out[3];
	bool		out_null[3] = {false, false, false};
	int64		partitions_reset;
	uint64		rows_deleted = 0;
	bool		isnull;

	projection = ptm_get_name(fcinfo, 0, "projection");
	values[0] = PointerGetDatum(projection);
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';			/* every partition */
	else
		values[1] = Int32GetDatum(ptm_get_partition(fcinfo, 1, "partition_id"));
	ptm_check_not_null(fcinfo, 2, "delete_rows");
	delete_rows = PG_GETARG_BOOL(2);
	values[2] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	if (PG_ARGISNULL(3))
		nulls[2] = 'n';
	values[3] = BoolGetDatum(delete_rows);

	tupdesc = ptm_result_tupdesc(fcinfo);

	spi = ptm_spi_connect(false);

	/* Watermarks first: this waits for applies in progress, which lock them first. */
	ptm_plan_run(&plan_reset_watermarks, values, nulls);
	partitions_reset = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
	values[5] = ptm_spi_value(0, 2, &isnull);
	nulls[5] = isnull ? 'n' : ' ';

	if (delete_rows)
		rows_deleted = ptm_plan_run(&plan_reset_rows, values, nulls);
	values[4] = Int64GetDatum((int64) rows_deleted);

	/*
	 * Audit every call, including one that found nothing to reset.  The
	 * function runs as its owner: name the role that called it.
	 */
	values[6] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	ptm_plan_run(&plan_reset_audit, values, nulls);

	ptm_spi_finish(spi);

	out[0] = CStringGetTextDatum(partitions_reset > 0 || rows_deleted > 0 ? "reset" : "nothing_to_reset");
	out[1] = Int32GetDatum((int32) partitions_reset);
	out[2] = Int64GetDatum((int64) rows_deleted);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, out, out_null)));
}
