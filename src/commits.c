/*-------------------------------------------------------------------------
 *
 * commits.c
 *	  Optimistic commits of workflow state (try_commit), reads (get_state)
 *	  and ordered step claims (claim_step).
 *
 * Each call runs a few saved SPI plans (prepared once per backend and kept),
 * so that a plain commit costs one UPDATE, the same as the hand-written
 * "UPDATE ... WHERE workflow_key = $1 AND version = $2 RETURNING version".
 * The decision of a commit is taken by that one statement; the statements
 * that follow a refusal only read, to say why.  That UPDATE (unless it is
 * fenced by a claim) and the UPDATE of a claim find and change the row
 * without SQL when the table allows (row_access.c), in the same place of
 * the locking order below.
 *
 * Locking order, the same in every path, so that no two calls deadlock:
 *
 *	1. the lease row (ptm_fence, FOR SHARE, only with fence_topic);
 *	2. the action_dedup_log row (with action_id): the INSERT ... ON CONFLICT
 *	   waits for a concurrent insert of the same action id, which is what
 *	   makes two concurrent repeats of one action apply once;
 *	3. the workflow_state row: the UPDATE of a commit or a claim.  The claim
 *	   columns live in that row, so that a claim and a claim-fenced commit
 *	   serialise on one row lock, and READ COMMITTED's recheck of the
 *	   UPDATE's WHERE clause sees the latest version and claim together.
 *
 * A version only ever moves by "version + 1" under that row lock: it never
 * goes down, and each version is produced by exactly one commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "fence.h"
#include "identity.h"
#include "ptm_lease.h"
#include "row_access.h"
#include "spi_util.h"
#include "srf.h"
#include "validate.h"

/* Settings; see docs/commits.md. */
int			ptm_dedup_ttl_s = 24 * 3600;
int			ptm_max_state_bytes = 1024 * 1024;

/* The statements, prepared on first use and kept for the backend's life. */
typedef enum CommitPlan
{
	PLAN_UPDATE,				/* plain commit of an existing workflow */
	PLAN_UPDATE_CLAIMED,		/* commit fenced by the workflow's claim */
	PLAN_INSERT,				/* expected_version = 0: create */
	PLAN_READ,					/* the row as it stands */
	PLAN_READ_STABLE,			/* the same, in get_state's snapshot */
	PLAN_DEDUP_INSERT,			/* record an action id (or find it) */
	PLAN_DEDUP_READ,			/* what a recorded action produced */
	PLAN_DEDUP_DELETE,			/* forget an action whose commit was refused */
	PLAN_CLAIM,					/* claim the current step */
	NUM_PLANS
} CommitPlan;

#define SQL_READ \
	"SELECT version::pg_catalog.int8, state::pg_catalog.jsonb, updated_at," \
	"       claim_worker, claim_step::pg_catalog.int8," \
	"       claim_epoch::pg_catalog.int8, claim_expires_at::pg_catalog.int8" \
	"  FROM ptm.workflow_state WHERE workflow_key = $1"

static PtmPlan plans[NUM_PLANS] = {
	[PLAN_UPDATE] = {
		.sql = "UPDATE ptm.workflow_state"
		"   SET version = version + 1, state = $3, updated_at = pg_catalog.now()"
		" WHERE workflow_key = $1 AND version = $2"
		" RETURNING version::pg_catalog.int8",
		.nargs = 3, .argtypes = (const Oid[]) {TEXTOID, INT8OID, JSONBOID},
		.expect = SPI_OK_UPDATE_RETURNING
	},
	[PLAN_UPDATE_CLAIMED] = {
		.sql = "UPDATE ptm.workflow_state"
		"   SET version = version + 1, state = $3, updated_at = pg_catalog.now(),"
		"       claim_expires_at = NULL"
		" WHERE workflow_key = $1 AND version = $2"
		"   AND claim_epoch = $4 AND claim_expires_at > $5"
		" RETURNING version::pg_catalog.int8",
		.nargs = 5, .argtypes = (const Oid[]) {TEXTOID, INT8OID, JSONBOID, INT8OID, INT8OID},
		.expect = SPI_OK_UPDATE_RETURNING
	},
	[PLAN_INSERT] = {
		.sql = "INSERT INTO ptm.workflow_state (workflow_key, version, state)"
		" VALUES ($1, 1, $2)"
		" ON CONFLICT (workflow_key) DO NOTHING"
		" RETURNING version::pg_catalog.int8",
		.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, JSONBOID},
		.expect = SPI_OK_INSERT_RETURNING
	},
	[PLAN_READ] = {
		.sql = SQL_READ,
		.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
		.expect = SPI_OK_SELECT
	},
	[PLAN_READ_STABLE] = {
		.sql = SQL_READ,
		.nargs = 1, .argtypes = (const Oid[]) {TEXTOID},
		.expect = SPI_OK_SELECT,
		.snapshot = PTM_SNAPSHOT_CALLER
	},
	/* An expired entry is taken over as if it were not there. */
	[PLAN_DEDUP_INSERT] = {
		.sql = "INSERT INTO ptm.action_dedup_log AS d"
		"       (workflow_key, action_id, result_version, created_at, expires_at)"
		" VALUES ($1, $2, $3, $4, $5)"
		" ON CONFLICT (workflow_key, action_id) DO UPDATE"
		"   SET result_version = excluded.result_version,"
		"       created_at = excluded.created_at, expires_at = excluded.expires_at"
		" WHERE d.expires_at <= excluded.created_at"
		" RETURNING d.result_version",
		.nargs = 5, .argtypes = (const Oid[]) {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID},
		.expect = SPI_OK_INSERT_RETURNING
	},
	[PLAN_DEDUP_READ] = {
		.sql = "SELECT d.result_version, s.state::pg_catalog.jsonb"
		"  FROM ptm.action_dedup_log d"
		"  LEFT JOIN ptm.workflow_state s"
		"    ON s.workflow_key = d.workflow_key AND s.version = d.result_version"
		" WHERE d.workflow_key = $1 AND d.action_id = $2",
		.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, TEXTOID},
		.expect = SPI_OK_SELECT
	},
	[PLAN_DEDUP_DELETE] = {
		.sql = "DELETE FROM ptm.action_dedup_log WHERE workflow_key = $1 AND action_id = $2",
		.nargs = 2, .argtypes = (const Oid[]) {TEXTOID, TEXTOID},
		.expect = SPI_OK_DELETE
	},
	/*
	 * Claimable when no claim is live on the current step, or when the
	 * caller holds it (then the epoch is kept and the expiry extended).
	 */
	[PLAN_CLAIM] = {
		.sql = "UPDATE ptm.workflow_state"
		"   SET claim_epoch = CASE WHEN claim_worker = $3 AND claim_step = $2"
		"                          AND claim_expires_at > $4"
		"                     THEN claim_epoch ELSE claim_epoch + 1 END,"
		"       claim_worker = $3, claim_step = $2, claim_expires_at = $5"
		" WHERE workflow_key = $1 AND version = $2"
		"   AND (claim_expires_at IS NULL OR claim_expires_at <= $4"
		"        OR claim_step IS DISTINCT FROM version OR claim_worker = $3)"
		" RETURNING claim_epoch::pg_catalog.int8",
		.nargs = 5, .argtypes = (const Oid[]) {TEXTOID, INT8OID, TEXTOID, INT8OID, INT8OID},
		.expect = SPI_OK_UPDATE_RETURNING
	},
};

/* Columns of PLAN_READ. */
#define READ_VERSION		1
#define READ_STATE			2
#define READ_UPDATED_AT		3
#define READ_CLAIM_WORKER	4
#define READ_CLAIM_STEP		5
#define READ_CLAIM_EPOCH	6
#define READ_CLAIM_EXPIRES	7

/* Claims retried when the row changed between the claim and the look. */
#define CLAIM_ATTEMPTS		5

void
ptm_commits_define_gucs(void)
{
	DefineCustomIntVariable("ptm_lease.dedup_ttl",
							gettext_noop("How long try_commit remembers an action id."),
							gettext_noop("A repeat of an action within this time returns duplicate; "
										 "after it, the action applies again."),
							&ptm_dedup_ttl_s,
							24 * 3600, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ptm_lease.max_state_bytes",
							gettext_noop("Largest workflow state try_commit accepts, in bytes."),
							gettext_noop("Measured as the uncompressed jsonb value."),
							&ptm_max_state_bytes,
							1024 * 1024, 1, MaxAllocSize,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

/*
 * Run one of the saved plans (prepared on first use); the caller is connected
 * to SPI.  Returns the number of rows processed.
 */
static int
run_plan(CommitPlan id, Datum *values)
{
	return (int) ptm_plan_run(&plans[id], values, NULL);
}

/* Column col of the first result row. */
static Datum
result_col(int col, bool *isnull)
{
	return ptm_spi_value(0, col, isnull);
}

static int64
result_int8(int col, bool *isnull)
{
	Datum		d = result_col(col, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

/* A jsonb column copied out of SPI's memory, so it survives SPI_finish. */
static Datum
result_jsonb(int col, bool *isnull)
{
	Datum		d = result_col(col, isnull);

	return *isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
}

/* try_commit's result column, by counter. */
static const char *const commit_result_names[] = {
	[PTM_COMMIT_OK] = "ok",
	[PTM_COMMIT_CAS_CONFLICT] = "cas_conflict",
	[PTM_COMMIT_FENCING_REJECT] = "fencing_reject",
	[PTM_COMMIT_DUPLICATE] = "duplicate",
};

/* One try_commit call: its checked arguments, its answer, and how it got there. */
typedef struct TryCommit
{
	text	   *key;
	int64		expected;
	Datum		new_state;
	text	   *action_id;		/* NULL without one */
	PtmFenceArgs fence;

	PtmCounter	result;			/* ok, cas_conflict, fencing_reject, duplicate */
	int64		version;		/* on ok the new version, else the current */
	Datum		state;			/* the current state, unless ok */
	bool		state_null;

	bool		recorded;		/* this call recorded its action id */
	int64		now_ms;			/* the clock the claim fence was judged by */
} TryCommit;

/*
 * The workflow table as a plain commit reaches it without SQL (row_access.c).
 * The new values can break no constraint: version rises from >= 1, and
 * new_state is never NULL.
 */
enum
{
	WF_COL_VERSION,
	WF_COL_STATE,
	WF_COL_UPDATED_AT
};
static PtmKeyedTable workflow_table = {
	.relname = "workflow_state",
	.pkey_name = "idx_workflow_state_workflow_key",
	.nkeys = 1,
	.key_types = {TEXTOID},
	.key_eqfuncs = {F_TEXTEQ},
	.ncolumns = 3,
	.columns = {"version", "state", "updated_at"},
	.column_types = {INT8OID, JSONBOID, TIMESTAMPTZOID}
};

/* One plain commit, as its judge sees it. */
typedef struct CommitCall
{
	int64		expected;
	Datum		new_state;
	int64		version;		/* on success the new version, else the current */
	Datum		state;			/* the current state, on refusal */
	bool		state_null;
} CommitCall;

/* "n + 1" as SQL's bigint addition computes it: past the range, 22003. */
static int64
bigint_plus_one(int64 n)
{
	int64		result;

	if (pg_add_s64_overflow(n, 1, &result))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	return result;
}

/* PLAN_UPDATE's WHERE clause and SET. */
static bool
judge_commit(PtmKeyedTable *t, TupleTableSlot *row, Datum *values, bool *isnull, void *arg)
{
	CommitCall *call = (CommitCall *) arg;
	bool		null;
	int64		version = DatumGetInt64(ptm_row_column(t, row, WF_COL_VERSION, &null));

	if (version != call->expected)
	{
		Datum		state = ptm_row_column(t, row, WF_COL_STATE, &call->state_null);

		call->version = version;
		call->state = call->state_null ? (Datum) 0 : datumCopy(state, false, -1);
		return false;
	}
	call->version = bigint_plus_one(version);
	ptm_row_set(t, values, isnull, WF_COL_VERSION, Int64GetDatum(call->version), false);
	ptm_row_set(t, values, isnull, WF_COL_STATE, call->new_state, false);
	ptm_row_set(t, values, isnull, WF_COL_UPDATED_AT,
				TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
	return true;
}

/* PLAN_UPDATE without SQL: the row's outcome, with the judge's findings in *call. */
static PtmRowOutcome
commit_row(text *key, int64 expected, Datum new_state, CommitCall *call)
{
	Datum		keys[1] = {PointerGetDatum(key)};

	call->expected = expected;
	call->new_state = new_state;
	call->state_null = true;
	return ptm_row_update(&workflow_table, keys, PTM_ROW_WAIT_FOREVER, judge_commit, call);
}

/*
 * PLAN_UPDATE without SQL, for a commit past its lease fence and action id
 * (step 3 of the locking order): the same row lock, taken after theirs.
 * Returns the new version, 0 when refused (the caller reads the row to say
 * why), or -1 when the table needs SQL: then run PLAN_UPDATE.
 */
static int64
update_direct(text *key, int64 expected, Datum new_state)
{
	CommitCall	call = {0};
	PtmRowOutcome outcome = commit_row(key, expected, new_state, &call);

	if (outcome == PTM_ROW_USE_SQL)
		return -1;
	return outcome == PTM_ROW_UPDATED ? call.version : 0;
}

/* Validate every argument, before anything is read or written, into *tc. */
static void
get_commit_args(FunctionCallInfo fcinfo, TryCommit *tc)
{
	memset(tc, 0, sizeof(*tc));
	tc->state_null = true;

	tc->key = ptm_get_name(fcinfo, 0, "workflow_key");
	tc->expected = ptm_get_nonnegative_int64(fcinfo, 1, "expected_version",
											 "0 means the workflow must not exist yet");
	if (tc->expected == PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("workflow version cannot be raised past " INT64_FORMAT, PG_INT64_MAX),
				 errdetail("Version " INT64_FORMAT " is the last version a workflow can have.",
						   PG_INT64_MAX)));
	ptm_check_not_null(fcinfo, 2, "new_state");
	tc->new_state = PG_GETARG_DATUM(2);
	ptm_check_jsonb_size(tc->new_state, "new_state", 0, ptm_max_state_bytes,
						 "ptm_lease.max_state_bytes", "state", "workflow state");
	if (!PG_ARGISNULL(3))
		tc->action_id = ptm_get_name(fcinfo, 3, "action_id");
	ptm_get_fence_args(fcinfo, 4, true, &tc->fence);
}

/*
 * The plain path: a commit without lease fence, claim fence or action id, of
 * an existing workflow, decided without SQL (the reducers' hot path).
 * Returns false, having done nothing, for any other commit or when the table
 * needs SQL (a row trigger, say).
 */
static bool
commit_plain(TryCommit *tc)
{
	CommitCall	call = {0};
	PtmRowOutcome outcome;

	if (tc->fence.kind != PTM_FENCE_ARGS_NONE || tc->action_id != NULL || tc->expected == 0)
		return false;
	outcome = commit_row(tc->key, tc->expected, tc->new_state, &call);
	if (outcome == PTM_ROW_USE_SQL)
		return false;
	if (outcome == PTM_ROW_UPDATED)
	{
		tc->result = PTM_COMMIT_OK;
		ptm_count(PTM_STORE_COMMITS);
	}
	else
	{
		/* refused, or no such workflow (at version 0, without state) */
		tc->result = PTM_COMMIT_CAS_CONFLICT;
		ptm_count(PTM_STORE_CONFLICTS);
	}
	tc->version = call.version;
	tc->state = call.state;
	tc->state_null = call.state_null;
	return true;
}

/*
 * The deduplicated path, step 2 of the locking order: record the action id
 * with the version a successful commit will produce.  A concurrent repeat
 * waits here for this transaction.  Returns false when the action was
 * already committed: the call is then answered, duplicate, with the version
 * it produced (and the state, while the workflow is still at it).
 */
static bool
record_action(TryCommit *tc)
{
	TimestampTz now = GetCurrentTimestamp();
	Datum		args[5];
	bool		isnull;

	ptm_count(PTM_DEDUP_CHECKS);
	args[0] = PointerGetDatum(tc->key);
	args[1] = PointerGetDatum(tc->action_id);
	args[2] = Int64GetDatum(tc->expected + 1);
	args[3] = TimestampTzGetDatum(now);
	args[4] = TimestampTzGetDatum(now + (TimestampTz) ptm_dedup_ttl_s * USECS_PER_SEC);
	if (run_plan(PLAN_DEDUP_INSERT, args) != 0)
	{
		tc->recorded = true;
		return true;
	}

	if (run_plan(PLAN_DEDUP_READ, args) != 1)
		elog(ERROR, "action id of a conflicting insert not found");
	ptm_count(PTM_DEDUP_HITS);
	tc->result = PTM_COMMIT_DUPLICATE;
	tc->version = result_int8(1, &isnull);
	tc->state = result_jsonb(2, &tc->state_null);
	return false;
}

/* A refused commit must not leave its action id behind: it did not happen. */
static void
forget_action(TryCommit *tc)
{
	Datum		args[2] = {PointerGetDatum(tc->key), PointerGetDatum(tc->action_id)};

	run_plan(PLAN_DEDUP_DELETE, args);
}

/*
 * Step 3 of the locking order: the version, and the claim fence, decided by
 * one statement (or its equivalent without SQL).  Returns whether the commit
 * was made; tc->version is then the new version.
 */
static bool
commit_version(TryCommit *tc)
{
	Datum		args[5];
	bool		isnull;

	args[0] = PointerGetDatum(tc->key);
	if (tc->expected == 0 && tc->fence.kind != PTM_FENCE_ARGS_CLAIM)
	{
		args[1] = tc->new_state;
		tc->version = run_plan(PLAN_INSERT, args) == 1 ? 1 : 0;
	}
	else if (tc->fence.kind == PTM_FENCE_ARGS_CLAIM)
	{
		tc->now_ms = ptm_now_ms();
		args[1] = Int64GetDatum(tc->expected);
		args[2] = tc->new_state;
		args[3] = Int64GetDatum(tc->fence.epoch);
		args[4] = Int64GetDatum(tc->now_ms);
		tc->version = run_plan(PLAN_UPDATE_CLAIMED, args) == 1 ? result_int8(1, &isnull) : 0;
	}
	else
	{
		tc->version = update_direct(tc->key, tc->expected, tc->new_state);
		if (tc->version < 0)
		{
			args[1] = Int64GetDatum(tc->expected);
			args[2] = tc->new_state;
			tc->version = run_plan(PLAN_UPDATE, args) == 1 ? result_int8(1, &isnull) : 0;
		}
	}

	if (tc->version <= 0)
		return false;
	tc->result = PTM_COMMIT_OK;
	ptm_count(PTM_STORE_COMMITS);
	if (tc->recorded)
		ptm_count(PTM_DEDUP_RECORDS);
	return true;
}

/*
 * Explain a refusal with the row as it stands now: the current version and
 * state, and, behind a claim fence, whether the claim refused (no longer the
 * caller's epoch, or expired) rather than the version.
 */
static void
explain_refusal(TryCommit *tc, PtmCounter result)
{
	Datum		args[1] = {PointerGetDatum(tc->key)};
	bool		isnull;

	tc->result = result;
	if (run_plan(PLAN_READ, args) == 1)
	{
		tc->version = result_int8(READ_VERSION, &isnull);
		tc->state = result_jsonb(READ_STATE, &tc->state_null);
		if (tc->fence.kind == PTM_FENCE_ARGS_CLAIM && tc->result == PTM_COMMIT_CAS_CONFLICT)
		{
			bool		epoch_null;
			bool		expires_null;
			int64		claim_epoch = result_int8(READ_CLAIM_EPOCH, &epoch_null);
			int64		claim_expires = result_int8(READ_CLAIM_EXPIRES, &expires_null);

			if (claim_epoch != tc->fence.epoch || expires_null || claim_expires <= tc->now_ms)
				tc->result = PTM_COMMIT_FENCING_REJECT;
		}
	}
	else
	{
		/* No such workflow: version 0, and nobody can hold a claim on it. */
		tc->version = 0;
		tc->state_null = true;
		if (tc->fence.kind == PTM_FENCE_ARGS_CLAIM)
			tc->result = PTM_COMMIT_FENCING_REJECT;
	}

	if (tc->result == PTM_COMMIT_CAS_CONFLICT)
		ptm_count(PTM_STORE_CONFLICTS);
}

/*
 * The fenced path, and every commit the plain path does not take: the three
 * steps of the locking order (file header), each of which may answer the
 * call.  The caller is connected to SPI.
 */
static void
commit_in_order(TryCommit *tc)
{
	/* 1. The lease fence: before the action and the version are looked at. */
	if (tc->fence.kind == PTM_FENCE_ARGS_LEASE &&
		ptm_fence(tc->fence.topic, tc->fence.partition_id, tc->fence.epoch, false) != PTM_FENCE_OK)
	{
		explain_refusal(tc, PTM_COMMIT_FENCING_REJECT);
		return;
	}

	/* 2. The action id. */
	if (tc->action_id != NULL && !record_action(tc))
		return;

	/* 3. The version (and the claim fence). */
	if (commit_version(tc))
		return;

	if (tc->recorded)
		forget_action(tc);
	explain_refusal(tc, PTM_COMMIT_CAS_CONFLICT);
}

static void
commit_with_sql(TryCommit *tc)
{
	/* No SET clause on try_commit: pin search_path before any SQL. */
	int			pinned = ptm_spi_connect(true);

	ptm_check_claim_owner(tc->key, &tc->fence);
	commit_in_order(tc);
	ptm_spi_finish(pinned);
}

/* Count the outcome, per key what went wrong, and the time it took. */
static void
count_commit(const TryCommit *tc, TimestampTz started)
{
	ptm_count(tc->result);
	/* per key only what went wrong: the top views rank keys by it */
	if (tc->result != PTM_COMMIT_OK)
		ptm_count_key(PTM_KEY_WORKFLOW, VARDATA_ANY(tc->key), VARSIZE_ANY_EXHDR(tc->key),
					  tc->result);
	ptm_observe(PTM_HIST_COMMIT_LATENCY,
				(double) (GetCurrentTimestamp() - started) / 1000.0);
}

/*
 * ptm.try_commit(workflow_key, expected_version, new_state, action_id,
 *				  fence_topic, fence_partition, fence_epoch)
 *		RETURNS (result, version, state)
 *
 * Checks run in this order: the lease fence, the action id, then (in one
 * statement) the claim fence and the version.  On ok, version is the new
 * version; on duplicate, the version the action produced (state only while
 * the workflow is still at it); otherwise the current version and state, so
 * that a reducer can retry without reading again.
 */
PG_FUNCTION_INFO_V1(ptm_try_commit_0_2);
Datum
ptm_try_commit_0_2(PG_FUNCTION_ARGS)
{
	TryCommit	tc;
	TupleDesc	tupdesc;
	TimestampTz started;
	Datum		values[3];
	bool		nulls[3] = {false};

	get_commit_args(fcinfo, &tc);
	/* Before SPI_connect, in the caller's context: the result row is built there. */
	tupdesc = ptm_result_tupdesc(fcinfo);
	started = GetCurrentTimestamp();

	if (!commit_plain(&tc))
		commit_with_sql(&tc);
	count_commit(&tc, started);

	values[0] = CStringGetTextDatum(commit_result_names[tc.result]);
	values[1] = Int64GetDatum(tc.version);
	values[2] = tc.state;
	nulls[2] = tc.state_null;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * ptm.get_state(workflow_key) RETURNS (version, state, updated_at)
 *
 * One row always: version 0 and NULLs when the workflow does not exist, which
 * is what try_commit expects as expected_version to create it.
 */
PG_FUNCTION_INFO_V1(ptm_get_state_0_2);
Datum
ptm_get_state_0_2(PG_FUNCTION_ARGS)
{
	int			spi;
	text	   *key = ptm_get_name(fcinfo, 0, "workflow_key");
	TupleDesc	tupdesc = ptm_result_tupdesc(fcinfo);
	Datum		values[3] = {Int64GetDatum(0), (Datum) 0, (Datum) 0};
	bool		nulls[3] = {false, true, true};
	Datum		args[1];

	spi = ptm_spi_connect(false);
	args[0] = PointerGetDatum(key);
	if (run_plan(PLAN_READ_STABLE, args) == 1)
	{
		values[0] = Int64GetDatum(result_int8(READ_VERSION, &nulls[0]));
		values[1] = result_jsonb(READ_STATE, &nulls[1]);
		values[2] = result_col(READ_UPDATED_AT, &nulls[2]);
	}
	ptm_spi_finish(spi);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * The workflow table as a claim reaches it without SQL: the same relation
 * as workflow_table, with the claim columns.  The new values can break no
 * constraint: claim_epoch only rises from >= 0.
 */
enum
{
	CL_COL_VERSION,
	CL_COL_WORKER,
	CL_COL_STEP,
	CL_COL_EPOCH,
	CL_COL_EXPIRES
};
static PtmKeyedTable claim_table = {
	.relname = "workflow_state",
	.pkey_name = "idx_workflow_state_workflow_key",
	.nkeys = 1,
	.key_types = {TEXTOID},
	.key_eqfuncs = {F_TEXTEQ},
	.ncolumns = 5,
	.columns = {"version", "claim_worker", "claim_step", "claim_epoch", "claim_expires_at"},
	.column_types = {INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID}
};

/* One claim, as its judge sees it. */
typedef struct ClaimCall
{
	text	   *worker;
	int64		step;
	int64		ttl_ms;
	int64		now_ms;			/* read by the judge, after any wait */
	int64		version;		/* the row's */
	bool		live;			/* a live claim on the current step ... */
	Datum		holder;			/* ... by this worker (copied) */
	int64		epoch;			/* ... at this epoch (or the caller's new one) */
	int64		expires_ms;		/* ... until then */
} ClaimCall;

/* PLAN_CLAIM's WHERE clause and SET, reading the clock as its statement would. */
static bool
judge_claim(PtmKeyedTable *t, TupleTableSlot *row, Datum *values, bool *isnull, void *arg)
{
	ClaimCall  *call = (ClaimCall *) arg;
	bool		null,
				worker_null,
				step_null,
				expires_null;
	Datum		worker = ptm_row_column(t, row, CL_COL_WORKER, &worker_null);
	int64		claim_step = DatumGetInt64(ptm_row_column(t, row, CL_COL_STEP, &step_null));
	int64		expires = DatumGetInt64(ptm_row_column(t, row, CL_COL_EXPIRES, &expires_null));
	bool		mine;

	call->now_ms = ptm_now_ms();
	call->version = DatumGetInt64(ptm_row_column(t, row, CL_COL_VERSION, &null));
	call->epoch = DatumGetInt64(ptm_row_column(t, row, CL_COL_EPOCH, &null));
	call->live = !step_null && claim_step == call->version &&
		!expires_null && expires > call->now_ms;
	mine = !worker_null && ptm_row_text_eq(DatumGetTextPP(worker), call->worker);
	call->holder = call->live && !worker_null ? datumCopy(worker, false, -1) : (Datum) 0;
	call->expires_ms = expires;
	if (call->version != call->step || (call->live && !mine))
		return false;

	/* the caller's own live claim on this step keeps its epoch */
	if (!(mine && !step_null && claim_step == call->step && !expires_null &&
		  expires > call->now_ms))
		call->epoch = bigint_plus_one(call->epoch);
	call->expires_ms = call->now_ms + call->ttl_ms;
	ptm_row_set(t, values, isnull, CL_COL_WORKER, PointerGetDatum(call->worker), false);
	ptm_row_set(t, values, isnull, CL_COL_STEP, Int64GetDatum(call->step), false);
	ptm_row_set(t, values, isnull, CL_COL_EPOCH, Int64GetDatum(call->epoch), false);
	ptm_row_set(t, values, isnull, CL_COL_EXPIRES, Int64GetDatum(call->expires_ms), false);
	return true;
}

/*
 * A claim decided without SQL: the result and the live claim after it into
 * values[3..5] and nulls[3..5], as the SQL loop below fills them.  Returns
 * false when the table needs SQL.  The judge sees the newest version of the
 * row under its lock, so a refusal needs no second look and no retry.
 */
static bool
claim_direct(text *key, int64 step, text *worker, int64 ttl_ms, PtmCounter *result,
			 Datum *values, bool *nulls)
{
	Datum		keys[1] = {PointerGetDatum(key)};
	ClaimCall	call = {0};
	PtmRowOutcome outcome;

	call.worker = worker;
	call.step = step;
	call.ttl_ms = ttl_ms;
	outcome = ptm_row_update(&claim_table, keys, PTM_ROW_WAIT_FOREVER, judge_claim, &call);
	if (outcome == PTM_ROW_USE_SQL)
		return false;
	if (outcome == PTM_ROW_MISSING)
	{
		*result = PTM_CLAIM_OUT_OF_ORDER;
		return true;
	}
	if (outcome == PTM_ROW_UPDATED)
	{
		*result = PTM_CLAIM_CLAIMED;
		values[3] = PointerGetDatum(worker);
		nulls[3] = false;
	}
	else
	{
		/* refused: busy behind another's live claim, unless the step is off */
		*result = step < call.version ? PTM_CLAIM_STALE :
			step > call.version ? PTM_CLAIM_OUT_OF_ORDER : PTM_CLAIM_BUSY;
		if (!call.live)
			return true;
		values[3] = call.holder;
		nulls[3] = call.holder == (Datum) 0;
	}
	values[4] = Int64GetDatum(call.epoch);
	values[5] = TimestampTzGetDatum(ptm_ms_to_timestamptz(call.expires_ms));
	nulls[4] = nulls[5] = false;
	return true;
}

/*
 * A claim with SQL, when the table needs it: the result, and the live claim
 * after it into values[3..5] and nulls[3..5].
 *
 * Try to claim; when refused, look at the row to say why.  If the look finds
 * the step claimable after all (the holder's claim ended between the two
 * statements), claim again.
 */
static PtmCounter
claim_with_sql(text *key, int64 step, text *worker, int64 ttl_ms, Datum *values, bool *nulls)
{
	PtmCounter	result = PTM_CLAIM_BUSY;
	Datum		args[5];
	bool		isnull;
	int			attempt;
	int			pinned;

	/* No SET clause on claim_step: pin search_path before any SQL. */
	pinned = ptm_spi_connect(true);

	for (attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++)
	{
		int64		now_ms = ptm_now_ms();
		int64		version;
		int64		claim_step;
		int64		claim_expires;
		bool		step_null;
		bool		expires_null;

		args[0] = PointerGetDatum(key);
		args[1] = Int64GetDatum(step);
		args[2] = PointerGetDatum(worker);
		args[3] = Int64GetDatum(now_ms);
		args[4] = Int64GetDatum(now_ms + ttl_ms);
		if (run_plan(PLAN_CLAIM, args) == 1)
		{
			result = PTM_CLAIM_CLAIMED;
			values[3] = PointerGetDatum(worker);
			values[4] = Int64GetDatum(result_int8(1, &isnull));
			values[5] = TimestampTzGetDatum(ptm_ms_to_timestamptz(now_ms + ttl_ms));
			nulls[3] = nulls[4] = nulls[5] = false;
			break;
		}

		if (run_plan(PLAN_READ, args) == 0)
		{
			result = PTM_CLAIM_OUT_OF_ORDER;
			break;
		}
		version = result_int8(READ_VERSION, &isnull);
		claim_step = result_int8(READ_CLAIM_STEP, &step_null);
		claim_expires = result_int8(READ_CLAIM_EXPIRES, &expires_null);

		/* Show the live claim on the current step, whoever holds it. */
		if (!step_null && claim_step == version && !expires_null && claim_expires > now_ms)
		{
			Datum		holder = result_col(READ_CLAIM_WORKER, &nulls[3]);

			values[3] = nulls[3] ? (Datum) 0 : SPI_datumTransfer(holder, false, -1);
			values[4] = Int64GetDatum(result_int8(READ_CLAIM_EPOCH, &nulls[4]));
			values[5] = TimestampTzGetDatum(ptm_ms_to_timestamptz(claim_expires));
			nulls[5] = false;
			result = PTM_CLAIM_BUSY;
		}
		else
			result = PTM_CLAIM_CLAIMED; /* claimable after all: try again */

		if (step < version)
			result = PTM_CLAIM_STALE;
		else if (step > version)
			result = PTM_CLAIM_OUT_OF_ORDER;
		if (result != PTM_CLAIM_CLAIMED)
			break;
		nulls[3] = nulls[4] = nulls[5] = true;
	}
	ptm_spi_finish(pinned);

	/* A claim that kept changing under us is, for the caller, busy. */
	if (attempt == CLAIM_ATTEMPTS)
		result = PTM_CLAIM_BUSY;
	return result;
}

/*
 * ptm.claim_step(workflow_key, step, worker_id, ttl)
 *		RETURNS (result, workflow_key, step, worker_id, claim_epoch, expires_at)
 *
 * The next step of a workflow is its current version.  claimed: the caller
 * holds the step (a new epoch, or its own live claim extended with the same
 * epoch); busy: another worker holds a live claim on it; stale: the step is
 * already committed; out_of_order: the step is ahead of the next one (or the
 * workflow does not exist yet).  worker_id, claim_epoch and expires_at
 * describe the live claim on the current step after the call, if any.
 */
PG_FUNCTION_INFO_V1(ptm_claim_step_0_2);
Datum
ptm_claim_step_0_2(PG_FUNCTION_ARGS)
{
	text	   *key;
	int64		step;
	text	   *worker;
	int64		ttl_ms;
	TupleDesc	tupdesc;
	PtmCounter	result = PTM_CLAIM_BUSY;
	Datum		values[6];
	bool		nulls[6] = {false};

	key = ptm_get_name(fcinfo, 0, "workflow_key");
	step = ptm_get_nonnegative_int64(fcinfo, 1, "step", "the first step after creation is 1");
	worker = ptm_get_name(fcinfo, 2, "worker_id");
	ttl_ms = ptm_get_ttl_ms(fcinfo, 3, "ttl");
	ptm_check_agent(worker, "worker_id");
	tupdesc = ptm_result_tupdesc(fcinfo);

	values[1] = PointerGetDatum(key);
	values[2] = Int64GetDatum(step);
	nulls[3] = nulls[4] = nulls[5] = true;

	if (!claim_direct(key, step, worker, ttl_ms, &result, values, nulls))
		result = claim_with_sql(key, step, worker, ttl_ms, values, nulls);

	ptm_count(result);
	if (result != PTM_CLAIM_CLAIMED)
		ptm_count_key(PTM_KEY_WORKFLOW, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), result);
	values[0] = CStringGetTextDatum(result == PTM_CLAIM_CLAIMED ? "claimed" :
									result == PTM_CLAIM_STALE ? "stale" :
									result == PTM_CLAIM_OUT_OF_ORDER ? "out_of_order" :
									"busy");
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
