/*-------------------------------------------------------------------------
 *
 * epochs.c
 *	  Epochs (fencing tokens) that are never handed out twice, not even by a
 *	  standby promoted after it lost WAL.
 *
 * Epochs come from one sequence, ptm.lease_epoch_seq.  A crash cannot take
 * one back: a sequence WAL-logs 32 values ahead, and before an epoch is
 * handed out the WAL up to the sequence page's LSN (the record that covers
 * the epoch) is flushed (ptm_epochs_after_raise).  With synchronous_commit
 * off that costs one flush per 32 epochs, not one per transaction, and the
 * caller never sees an epoch a crash could hand out again (a lost
 * acquisition is fine: its agent's fence then fails).  An asynchronous
 * standby, though, may be promoted without the last epochs of the old
 * primary, and a point-in-time recovery ends before them: their sequence
 * would count the same values again.  Both start a new timeline, so epochs are split into eras:
 *
 *	  era   = (timeline - 1) + era_offset		era_offset: max of ptm.epoch_eras
 *	  floor = era * 10^15
 *
 * and before the first epoch of a call is taken the sequence is lifted to the
 * floor of the current era, once per backend and timeline.  A cluster that
 * never failed over stays in era 0 with epochs 1, 2, 3...; after a promotion
 * the first epoch is 1000000000000001, above anything the old timeline could
 * count to (10^15 epochs).  A restore from a logical dump keeps the
 * timeline's count, so ptm.advance_epoch_era() moves to the next era by hand.
 *
 * Locking: lifting the sequence (and advance_epoch_era) holds ptm.epoch_eras
 * in SHARE ROW EXCLUSIVE mode from the second read of the sequence to its
 * setval, so two backends never both lift it (a setval after another
 * backend's nextval would hand that value out again).  setval is not
 * transactional, so the lock is let go right after it: a lifting call in a
 * transaction that stays open does not hold up the others.  Only a call that
 * finds the sequence below the floor takes it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "epochs.h"
#include "spi_util.h"

/* epochs one era holds; 9223 eras fit a bigint */
#define PTM_EPOCH_ERA_SIZE	INT64CONST(1000000000000000)
#define PTM_EPOCH_MAX_ERA	(PG_INT64_MAX / PTM_EPOCH_ERA_SIZE - 1)

/* this backend lifted (or found) the sequence to its era on this timeline */
static TimeLineID lifted_on_timeline = 0;
static Oid	lifted_sequence = InvalidOid;

static PtmPlan plan_offset = {
	.sql = "SELECT (SELECT coalesce(max(era_offset), 0) FROM ptm.epoch_eras)::bigint, last_value"
	" FROM ptm.lease_epoch_seq",
	.expect = SPI_OK_SELECT
};

static PtmPlan plan_setval = {
	.sql = "SELECT pg_catalog.setval('ptm.lease_epoch_seq', $1, true)",
	.nargs = 1, .argtypes = (const Oid[]) {INT8OID},
	.expect = SPI_OK_SELECT
};

/* $1 offset, $2 reason */
static PtmPlan plan_insert_era = {
	.sql = "INSERT INTO ptm.epoch_eras (era_offset, changed_at, reason)"
	" VALUES ($1, pg_catalog.clock_timestamp(), $2)",
	.nargs = 2, .argtypes = (const Oid[]) {INT4OID, TEXTOID},
	.expect = SPI_OK_INSERT
};

static PtmPlan plan_max_epoch = {
	.sql = "SELECT coalesce(max(greatest(lease_epoch, previous_epoch)), 0)::bigint"
	" FROM ptm.partition_leases",
	.expect = SPI_OK_SELECT
};

/* The timeline new WAL is written on (this is a primary). */
static TimeLineID
current_timeline(void)
{
#if PG_VERSION_NUM >= 150000
	return GetWALInsertionTimeLine();
#else
	(void) RecoveryInProgress();	/* sets ThisTimeLineID in a backend */
	return ThisTimeLineID;
#endif
}

/* The floor of an era, refusing an era past what a bigint holds. */
static int64
era_floor(int64 era)
{
	if (era > PTM_EPOCH_MAX_ERA)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lease epoch era " INT64_FORMAT " is past the last one (" INT64_FORMAT ")",
						era, (int64) PTM_EPOCH_MAX_ERA),
				 errdetail("Each era is a timeline of the cluster (or an advance_epoch_era() call); an era holds 10^15 epochs.")));
	return era * PTM_EPOCH_ERA_SIZE;
}

/* The era offset and the sequence's last value, read as they are now. */
static void
read_era_state(int64 *offset, int64 *last_value)
{
	bool		isnull;

	ptm_plan_run(&plan_offset, NULL, NULL);
	*offset = DatumGetInt64(ptm_spi_value(0, 1, &isnull));
	*last_value = DatumGetInt64(ptm_spi_value(0, 2, &isnull));
}

static void
set_sequence(int64 value)
{
	Datum		arg = Int64GetDatum(value);

	ptm_plan_run(&plan_setval, &arg, NULL);
}

/* ptm.epoch_eras, or InvalidOid in a database still at 0.1.0 */
static Oid
eras_table(void)
{
	return get_relname_relid("epoch_eras", get_namespace_oid("ptm", false));
}

Oid
ptm_epochs_lift_to_era(void)
{
	TimeLineID	tli = current_timeline();
	Oid			seq = get_relname_relid("lease_epoch_seq", get_namespace_oid("ptm", false));
	Oid			eras;
	int64		offset;
	int64		last_value;
	int64		floor;

	if (tli == lifted_on_timeline && seq == lifted_sequence)
		return seq;
	/* a database still at 0.1.0 has no eras until ALTER EXTENSION UPDATE */
	eras = eras_table();
	if (!OidIsValid(eras))
		return seq;

	read_era_state(&offset, &last_value);
	floor = era_floor((int64) tli - 1 + offset);
	if (last_value < floor)
	{
		/* one backend at a time, and read again under the lock */
		LockRelationOid(eras, ShareRowExclusiveLock);
		read_era_state(&offset, &last_value);
		floor = era_floor((int64) tli - 1 + offset);
		if (last_value < floor)
		{
			set_sequence(floor);
			ereport(LOG,
					(errmsg("ptm_lease: lease epochs continue at " INT64_FORMAT " on timeline %u (era " INT64_FORMAT ")",
							floor + 1, tli, floor / PTM_EPOCH_ERA_SIZE),
					 errdetail("The sequence stood at " INT64_FORMAT "; epochs of an earlier timeline that this one never saw cannot be handed out again.",
							   last_value)));
		}
		UnlockRelationOid(eras, ShareRowExclusiveLock);
	}
	lifted_on_timeline = tli;
	lifted_sequence = seq;
	return seq;
}

void
ptm_epochs_after_raise(Oid seq)
{
	Relation	seqrel;
	Buffer		buf;
	XLogRecPtr	lsn;

	if (!OidIsValid(seq))
		return;
	seqrel = relation_open(seq, AccessShareLock);
	buf = ReadBuffer(seqrel, 0);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	lsn = PageGetLSN(BufferGetPage(buf));
	UnlockReleaseBuffer(buf);
	relation_close(seqrel, AccessShareLock);

	/* at once when it is on disk already: 31 epochs of 32 */
	XLogFlush(lsn);
}

int64
ptm_epochs_advance_era(Datum reason, bool reason_null, PtmEraChange *change)
{
	TimeLineID	tli = current_timeline();
	Oid			eras = eras_table();
	Oid			seq = get_relname_relid("lease_epoch_seq", get_namespace_oid("ptm", false));
	int64		offset;
	int64		max_epoch;
	bool		isnull;
	Datum		args[2];
	char		nulls[2] = {' ', reason_null ? 'n' : ' '};

	LockRelationOid(eras, ShareRowExclusiveLock);
	read_era_state(&offset, &change->sequence_was);
	ptm_plan_run(&plan_max_epoch, NULL, NULL);
	max_epoch = DatumGetInt64(ptm_spi_value(0, 1, &isnull));

	/* past the timeline's era and past the era of every epoch in sight */
	change->timeline = tli;
	change->previous_era = Max((int64) tli - 1 + offset,
							   Max(change->sequence_was, max_epoch) / PTM_EPOCH_ERA_SIZE);
	change->era = change->previous_era + 1;
	change->floor = era_floor(change->era);

	args[0] = Int32GetDatum((int32) (change->era - ((int64) tli - 1)));
	args[1] = reason;
	ptm_plan_run(&plan_insert_era, args, nulls);
	set_sequence(change->floor);
	UnlockRelationOid(eras, ShareRowExclusiveLock);
	lifted_on_timeline = tli;
	lifted_sequence = seq;

	ptm_epochs_after_raise(seq);
	ereport(LOG,
			(errmsg("ptm_lease: lease epochs advanced to era " INT64_FORMAT ": the next epoch is above " INT64_FORMAT,
					change->era, change->floor)));
	return change->floor;
}
