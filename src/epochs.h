/*-------------------------------------------------------------------------
 *
 * epochs.h
 *	  Lease epochs that are never handed out twice: one era per timeline.
 *	  See epochs.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_EPOCHS_H
#define PTM_EPOCHS_H

/*
 * Before a statement that takes epochs from ptm.lease_epoch_seq: lift the
 * sequence to the floor of the current era if it is below (once per backend
 * and timeline), and return its OID for ptm_epochs_after_raise().  Needs an
 * SPI connection; a primary only.
 */
extern Oid	ptm_epochs_lift_to_era(void);

/*
 * After a statement took epochs from the sequence, before the caller sees
 * them: flush WAL up to the record that covers them, so that a crash can
 * never hand them out again (see epochs.c).
 */
extern void ptm_epochs_after_raise(Oid seq);

/* What ptm_epochs_advance_era() did, for the audit row. */
typedef struct PtmEraChange
{
	uint32		timeline;
	int64		previous_era;
	int64		era;
	int64		floor;
	int64		sequence_was;
} PtmEraChange;

/*
 * Move to the era after every era this database has seen (its timeline, its
 * sequence and its leases) and return its floor; the next epoch is above it.
 * Needs an SPI connection.
 */
extern int64 ptm_epochs_advance_era(Datum reason, bool reason_null, PtmEraChange *change);

#endif							/* PTM_EPOCHS_H */
