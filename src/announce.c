/*-------------------------------------------------------------------------
 *
 * announce.c
 *	  Lease events on NOTIFY channel ptm_lease_events, sent by the worker of
 *	  the database instead of the transaction that changed the lease.
 *
 * PostgreSQL serializes the commits of transactions that NOTIFY: each holds
 * the notify queue's cluster-wide lock from PreCommit_Notify to the end of
 * its commit, WAL flush included.  With ptm_lease.notify_owner_changes =
 * worker (the default) a changing transaction does not NOTIFY.  Its
 * payloads wait in backend memory; at pre-commit they are copied into a
 * ring in shared memory ("pending"), at commit marked "committed" and the
 * database's worker is woken by its latch; the worker sends them with
 * NOTIFY in its own transaction, many per commit, and frees the slots.  An
 * abort marks them "done" unsent.
 *
 * Order: payloads enter the ring at pre-commit, which comes after every
 * row lock the transaction waited for, and a transaction that changes a
 * lease row after another one commits does so after that one's pre-commit.
 * So the ring holds each partition's changes in commit order.  The worker
 * sends its database's slots in ring order and stops at the first one still
 * pending, so listeners get them in that order too.
 *
 * Falling back to NOTIFY in the transaction itself, at pre-commit (so the
 * payloads still arrive, and only if it commits): when no worker serves the
 * database (ptm_lease.database leaves it out, it is starting or restarting),
 * without shared_preload_libraries, when a payload is longer than a slot,
 * when the ring is full, and at PREPARE TRANSACTION (which PostgreSQL then
 * refuses for a notifying transaction, as before).
 *
 * Delivery: at most once.  Slots live in shared memory: a server restart
 * loses what the worker had not sent.  A worker that dies is replaced
 * (launcher, 5 s) and the new one sends what its database still has in the
 * ring; slots the dead one had taken but not marked sent are sent again
 * only if its transaction had not committed (see ptm_announce_worker_start).
 * Committed slots of a database whose worker does not come back are dropped
 * after PTM_ANNOUNCE_STALE_MS, so they cannot fill the ring for the others.
 *
 * Locking protocol
 *	  - The ring (head, tail, counters and every slot) is protected by one
 *		LWLock (tranche ptm_lease_announce), taken exclusively for a copy of
 *		a few hundred bytes per slot: twice per announcing transaction
 *		(pre-commit, commit), twice per worker batch.  No I/O under it.
 *	  - The worker's latch is read under the workers' spinlock (launcher.c)
 *		and set after releasing it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "announce.h"
#include "lease_events.h"
#include "ptm_lease.h"
#include "workers.h"

/* Slots in the ring, and the longest payload one holds (with its NUL). */
#define PTM_ANNOUNCE_SLOTS			4096
#define PTM_ANNOUNCE_PAYLOAD		512
/* Most payloads the worker sends in one transaction. */
#define PTM_ANNOUNCE_BATCH			1000
/* Committed slots no worker took for this long are dropped. */
#define PTM_ANNOUNCE_STALE_MS		60000
/*
 * Shortest time between two of the worker's sending transactions: under
 * churn one commit sends what a few ms of changes queued, instead of one
 * transaction per change competing for the CPU with the changes themselves;
 * an isolated change goes out at once.
 */
#define PTM_ANNOUNCE_WINDOW_MS		4

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_PENDING,				/* its transaction is committing */
	SLOT_COMMITTED,				/* to be sent */
	SLOT_CLAIMED,				/* the worker is sending it */
	SLOT_DONE					/* sent, or its transaction aborted */
} SlotState;

typedef struct AnnounceSlot
{
	uint64		seq;			/* position in the ring when it was written */
	Oid			dboid;
	SlotState	state;
	TimestampTz queued_at;
	char		payload[PTM_ANNOUNCE_PAYLOAD];
} AnnounceSlot;

typedef struct AnnounceRing
{
	LWLock	   *lock;
	uint64		head;			/* next seq to write */
	uint64		tail;			/* oldest slot not yet free */
	uint64		queued;			/* payloads that entered the ring */
	uint64		sent;			/* payloads the workers sent */
	uint64		inline_fallbacks;	/* transactions that sent inline instead */
	uint64		dropped;		/* stale slots dropped */
	AnnounceSlot slots[PTM_ANNOUNCE_SLOTS];
} AnnounceRing;

static AnnounceRing *ring = NULL;

/* Settings; see docs/leases.md#events. */
static int	ptm_announce_mode = PTM_ANNOUNCE_WORKER;

/* on / off and their spellings stay accepted: the setting was a bool */
static const struct config_enum_entry announce_modes[] = {
	{"worker", PTM_ANNOUNCE_WORKER, false},
	{"inline", PTM_ANNOUNCE_INLINE, false},
	{"off", PTM_ANNOUNCE_OFF, false},
	{"on", PTM_ANNOUNCE_WORKER, true},
	{"true", PTM_ANNOUNCE_WORKER, true},
	{"yes", PTM_ANNOUNCE_WORKER, true},
	{"1", PTM_ANNOUNCE_WORKER, true},
	{"false", PTM_ANNOUNCE_OFF, true},
	{"no", PTM_ANNOUNCE_OFF, true},
	{"0", PTM_ANNOUNCE_OFF, true},
	{NULL, 0, false}
};

/* A payload of this transaction waiting for its commit. */
typedef struct PendingPayload
{
	struct PendingPayload *next;
	int			nest_level;		/* subtransaction that queued it */
	uint64		seq;			/* its slot, once in the ring */
	char		payload[FLEXIBLE_ARRAY_MEMBER];
} PendingPayload;

/* This transaction's payloads, oldest first, in TopTransactionContext. */
static PendingPayload *pending_head = NULL;
static PendingPayload *pending_tail = NULL;
static bool pending_in_ring = false;
static bool callbacks_registered = false;
/* Set in the worker: it NOTIFYs itself, in its one transaction. */
static bool am_worker = false;
/* The worker: when its last sending transaction began. */
static TimestampTz last_send_at = 0;
/* The latch of the worker found at pre-commit, set at commit. */
static Latch *commit_latch = NULL;

/* Whether acquisitions and releases are announced at all (not "off"). */
bool
ptm_announce_owner_changes(void)
{
	return ptm_announce_mode != PTM_ANNOUNCE_OFF;
}

void
ptm_announce_define_gucs(void)
{
	DefineCustomEnumVariable("ptm_lease.notify_owner_changes",
							 gettext_noop("How acquisitions and releases are announced on ptm_lease_events: "
										  "worker, inline or off."),
							 gettext_noop("worker: the database's worker sends the NOTIFY after the commit, "
										  "so changing transactions do not serialize on the notify queue; "
										  "inline: NOTIFY in the changing transaction; off: not announced. "
										  "on means worker."),
							 &ptm_announce_mode,
							 PTM_ANNOUNCE_WORKER,
							 announce_modes,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */
void
ptm_announce_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(AnnounceRing)));
	RequestNamedLWLockTranche("ptm_lease_announce", 1);
}

void
ptm_announce_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ring = ShmemInitStruct("ptm_lease announcements", sizeof(AnnounceRing), &found);
	if (!found)
	{
		memset(ring, 0, sizeof(AnnounceRing));
		ring->lock = &(GetNamedLWLockTranche("ptm_lease_announce"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Free the slots at the tail that are done, and drop stale ones.  Lock held. */
static void
advance_tail(TimestampTz now)
{
	while (ring->tail < ring->head)
	{
		AnnounceSlot *slot = &ring->slots[ring->tail % PTM_ANNOUNCE_SLOTS];

		if (slot->state == SLOT_COMMITTED && now != 0 &&
			TimestampDifferenceExceeds(slot->queued_at, now, PTM_ANNOUNCE_STALE_MS))
			ring->dropped++;
		else if (slot->state != SLOT_DONE)
			break;
		slot->state = SLOT_FREE;
		ring->tail++;
	}
}

/* ---------------------------------------------------------------------
 * The changing transaction
 * ---------------------------------------------------------------------
 */

/* The latch of the worker serving this database, or NULL. */
static Latch *
worker_latch(void)
{
	Latch	   *latch = NULL;
	PtmDbEntry *e;

	if (ptm_workers == NULL)
		return NULL;
	SpinLockAcquire(&ptm_workers->mutex);
	e = ptm_db_entry(MyDatabaseId);
	if (e != NULL && e->state == PTM_DB_RUNNING && e->pid != 0)
		latch = e->latch;
	SpinLockRelease(&ptm_workers->mutex);
	return latch;
}

/*
 * Whether the worker serving this database may send this transaction's
 * payloads; remembers its latch for the commit.
 */
static bool
worker_path_open(void)
{
	if (ring == NULL || am_worker || ptm_announce_mode == PTM_ANNOUNCE_INLINE)
		return false;
	commit_latch = worker_latch();
	return commit_latch != NULL;
}

static void
notify_pending_inline(void)
{
	PendingPayload *p;

	for (p = pending_head; p != NULL; p = p->next)
		Async_Notify(PTM_NOTIFY_CHANNEL, p->payload);
}

/*
 * Copy every pending payload into the ring, all or none: false when one is
 * longer than a slot or the ring has no room for them all.
 */
static bool
push_pending(void)
{
	PendingPayload *p;
	int			n = 0;
	TimestampTz now = GetCurrentTimestamp();

	for (p = pending_head; p != NULL; p = p->next)
	{
		if (strlen(p->payload) >= PTM_ANNOUNCE_PAYLOAD)
			return false;
		n++;
	}

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	if (ring->head - ring->tail + n > PTM_ANNOUNCE_SLOTS)
		advance_tail(now);
	if (ring->head - ring->tail + n > PTM_ANNOUNCE_SLOTS)
	{
		ring->inline_fallbacks++;
		LWLockRelease(ring->lock);
		return false;
	}
	for (p = pending_head; p != NULL; p = p->next)
	{
		AnnounceSlot *slot = &ring->slots[ring->head % PTM_ANNOUNCE_SLOTS];

		p->seq = ring->head++;
		slot->seq = p->seq;
		slot->dboid = MyDatabaseId;
		slot->state = SLOT_PENDING;
		slot->queued_at = now;
		strlcpy(slot->payload, p->payload, PTM_ANNOUNCE_PAYLOAD);
	}
	ring->queued += n;
	LWLockRelease(ring->lock);
	return true;
}

/* Mark this transaction's slots committed (or done, when it aborted). */
static void
settle_pending(SlotState state)
{
	PendingPayload *p;

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	for (p = pending_head; p != NULL; p = p->next)
	{
		AnnounceSlot *slot = &ring->slots[p->seq % PTM_ANNOUNCE_SLOTS];

		if (slot->seq == p->seq && slot->state == SLOT_PENDING)
			slot->state = state;
	}
	if (state == SLOT_DONE)
		advance_tail(0);
	LWLockRelease(ring->lock);
}

static void
forget_pending(void)
{
	pending_head = pending_tail = NULL;
	pending_in_ring = false;
	commit_latch = NULL;
}

static void
announce_xact_callback(XactEvent event, void *arg)
{
	if (pending_head == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* before PreCommit_Notify: a fallback NOTIFY still goes out */
			if (worker_path_open() && push_pending())
				pending_in_ring = true;
			else
				notify_pending_inline();
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* PostgreSQL refuses to PREPARE a notifying transaction: as before */
			notify_pending_inline();
			forget_pending();
			break;
		case XACT_EVENT_COMMIT:
			if (pending_in_ring)
			{
				settle_pending(SLOT_COMMITTED);
				/* a latch outlives its process: setting it is always safe */
				SetLatch(commit_latch);
			}
			forget_pending();
			break;
		case XACT_EVENT_ABORT:
			if (pending_in_ring)
				settle_pending(SLOT_DONE);
			forget_pending();
			break;
		default:
			break;
	}
}

/* A rolled-back subtransaction takes its payloads with it. */
static void
announce_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	PendingPayload *p;
	PendingPayload *prev = NULL;

	if (pending_head == NULL)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (p = pending_head; p != NULL; p = p->next)
			if (p->nest_level >= level)
				p->nest_level = level - 1;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		for (p = pending_head; p != NULL; p = p->next)
		{
			if (p->nest_level >= level)
			{
				if (prev)
					prev->next = p->next;
				else
					pending_head = p->next;
			}
			else
				prev = p;
		}
		pending_tail = prev;
	}
}

void
ptm_announce(const char *payload)
{
	PendingPayload *p;
	size_t		len = strlen(payload);

	/* inline, as PostgreSQL's NOTIFY: the worker itself, or when asked */
	if (am_worker || ring == NULL || ptm_announce_mode == PTM_ANNOUNCE_INLINE)
	{
		Async_Notify(PTM_NOTIFY_CHANNEL, payload);
		return;
	}
	if (!callbacks_registered)
	{
		RegisterXactCallback(announce_xact_callback, NULL);
		RegisterSubXactCallback(announce_subxact_callback, NULL);
		callbacks_registered = true;
	}
	p = MemoryContextAlloc(TopTransactionContext, offsetof(PendingPayload, payload) + len + 1);
	p->next = NULL;
	p->nest_level = GetCurrentTransactionNestLevel();
	p->seq = 0;
	memcpy(p->payload, payload, len + 1);
	if (pending_tail)
		pending_tail->next = p;
	else
		pending_head = p;
	pending_tail = p;
}

/* ---------------------------------------------------------------------
 * The worker
 * ---------------------------------------------------------------------
 */

/* Put back this database's slots a worker had taken but not sent. */
static void
unclaim(void)
{
	uint64		seq;

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	for (seq = ring->tail; seq < ring->head; seq++)
	{
		AnnounceSlot *slot = &ring->slots[seq % PTM_ANNOUNCE_SLOTS];

		if (slot->dboid == MyDatabaseId && slot->state == SLOT_CLAIMED)
			slot->state = SLOT_COMMITTED;
	}
	LWLockRelease(ring->lock);
}

/*
 * Called once by the worker: its own NOTIFYs go inline, and the slots a
 * previous worker of this database had taken are sent again (it died
 * before marking them sent; had its transaction committed, listeners get
 * them twice, a window of a few instructions).
 */
void
ptm_announce_worker_start(void)
{
	am_worker = true;
	if (ring != NULL)
		unclaim();
}

void
ptm_announce_pass_failed(void)
{
	if (ring != NULL)
		unclaim();
}

/*
 * Send this database's committed payloads, in ring order, stopping at the
 * first one whose transaction is still committing.  Returns how many.  Runs
 * its own transactions: call it outside one.
 */
int
ptm_announce_pass(void)
{
	int			total = 0;
	uint64	   *seqs;
	char	  **payloads;

	if (ring == NULL)
		return 0;
	/* commits meanwhile set the latch, which is then cheap: it is set */
	if (last_send_at != 0)
	{
		long		secs;
		int			usecs;

		TimestampDifference(GetCurrentTimestamp(),
							TimestampTzPlusMilliseconds(last_send_at, PTM_ANNOUNCE_WINDOW_MS),
							&secs, &usecs);
		if (secs > 0 || usecs > 0)
			pg_usleep(secs * 1000000L + usecs);
	}
	seqs = palloc(sizeof(uint64) * PTM_ANNOUNCE_BATCH);
	payloads = palloc(sizeof(char *) * PTM_ANNOUNCE_BATCH);
	for (;;)
	{
		int			n = 0;
		int			i;
		uint64		seq;

		/* take a batch */
		LWLockAcquire(ring->lock, LW_EXCLUSIVE);
		advance_tail(GetCurrentTimestamp());
		for (seq = ring->tail; seq < ring->head && n < PTM_ANNOUNCE_BATCH; seq++)
		{
			AnnounceSlot *slot = &ring->slots[seq % PTM_ANNOUNCE_SLOTS];

			if (slot->dboid != MyDatabaseId)
				continue;
			if (slot->state == SLOT_PENDING)
				break;			/* keep commit order: wait for it */
			if (slot->state != SLOT_COMMITTED)
				continue;
			slot->state = SLOT_CLAIMED;
			seqs[n] = seq;
			payloads[n] = pstrdup(slot->payload);
			n++;
		}
		LWLockRelease(ring->lock);
		if (n == 0)
			break;

		/* send it, one commit for the batch */
		last_send_at = GetCurrentTimestamp();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		for (i = 0; i < n; i++)
			Async_Notify(PTM_NOTIFY_CHANNEL, payloads[i]);
		CommitTransactionCommand();

		/* free the slots */
		LWLockAcquire(ring->lock, LW_EXCLUSIVE);
		for (i = 0; i < n; i++)
		{
			AnnounceSlot *slot = &ring->slots[seqs[i] % PTM_ANNOUNCE_SLOTS];

			if (slot->seq == seqs[i] && slot->state == SLOT_CLAIMED)
				slot->state = SLOT_DONE;
			pfree(payloads[i]);
		}
		ring->sent += n;
		advance_tail(0);
		LWLockRelease(ring->lock);
		total += n;
		if (n < PTM_ANNOUNCE_BATCH)
			break;
	}
	pfree(seqs);
	pfree(payloads);
	return total;
}

/* ---------------------------------------------------------------------
 * Health
 * ---------------------------------------------------------------------
 */
void
ptm_announce_health(struct ReturnSetInfo *rsinfo,
					void (*add_row) (struct ReturnSetInfo *rsinfo, const char *check,
									 const char *status, const char *value,
									 const char *detail))
{
	uint64		queued = 0,
				sent = 0,
				fallbacks = 0,
				dropped = 0,
				backlog = 0;

	if (ring != NULL)
	{
		LWLockAcquire(ring->lock, LW_SHARED);
		queued = ring->queued;
		sent = ring->sent;
		fallbacks = ring->inline_fallbacks;
		dropped = ring->dropped;
		backlog = ring->head - ring->tail;
		LWLockRelease(ring->lock);
	}

	if (ptm_announce_mode == PTM_ANNOUNCE_OFF)
		add_row(rsinfo, "announcements", "ok", "off",
				"ptm_lease.notify_owner_changes = off: acquisitions and releases are not announced; "
				"forced, expired and agents_changed events are, by the worker when one serves this database.");
	else if (ptm_announce_mode == PTM_ANNOUNCE_INLINE)
		add_row(rsinfo, "announcements", "ok", "inline",
				"ptm_lease.notify_owner_changes = inline: each changing transaction sends its NOTIFY, "
				"and PostgreSQL serializes the commits of such transactions.");
	else if (ring == NULL || worker_latch() == NULL)
		add_row(rsinfo, "announcements", "ok", "inline (no worker)",
				"ptm_lease.notify_owner_changes = worker, but no worker serves this database (see the worker row): "
				"changing transactions send their NOTIFY themselves, and PostgreSQL serializes their commits.");
	else
		add_row(rsinfo, "announcements", "ok", "worker",
				psprintf("The worker sends the NOTIFYs after the commit. Since the server started: "
						 UINT64_FORMAT " queued, " UINT64_FORMAT " sent, " UINT64_FORMAT " in the ring now "
						 "(all databases), " UINT64_FORMAT " transactions sent inline because the ring was full, "
						 UINT64_FORMAT " dropped unsent after %d s without a worker.",
						 queued, sent, backlog, fallbacks, dropped, PTM_ANNOUNCE_STALE_MS / 1000));
}
