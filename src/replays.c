/*-------------------------------------------------------------------------
 *
 * replays.c
 *	  What it means when a projection event arrives at or below its
 *	  partition's watermark, and what is logged and counted for it.
 *
 * Such an event was applied before (or jumped over as a gap), so it is
 * skipped: the result is duplicate (offset = watermark) or regression (offset
 * below it), whoever sent it.  Two different incidents send such events:
 *
 *	  - a replay: a materializer went back to an older offset (a restart with
 *		a Kafka commit behind the database, a rebalance, auto.offset.reset).
 *		It re-sends its events in order and the watermark does not move until
 *		the replay passes it.  Routine: nothing to repair.
 *	  - a race: a second writer applies the same partition (a zombie consumer,
 *		two consumer groups, workers applying one partition out of order).
 *		The stale stream's events stay below a watermark the other one keeps
 *		moving.
 *
 * The server does not know who sent an event, but the watermark row
 * remembers the last event it skipped (offset s) and the watermark then (sw).
 * The next skipped event, at offset o, watermark w, is judged:
 *
 *	  w = sw and o > s			CONTINUED: the same run goes on
 *	  w > sw and s < o <= sw	RACE: this stream goes on from s, was behind sw
 *								already, and the watermark moved meanwhile
 *	  otherwise					REPLAY: a new run begins
 *
 * One materializer sending its stream in order cannot make a RACE: once it
 * skipped s, it re-sends every offset up to sw, skipping them too (so s = sw
 * when the run ends), before it applies anything; if the watermark moved, it
 * moved it, and a later o <= sw means it went back again: a new run.  So a
 * RACE shows a second writer (or offsets up to sw that vanished from the
 * stream between two reads, e.g. compacted away).  The converse does not
 * hold: two writers in lockstep, each one offering at the watermark what the
 * other just applied, look exactly like a materializer that crashes after
 * every commit; they show as one REPLAY per event.
 *
 * A call is judged by its first skipped event (a batch is one stream) and
 * its other skipped events follow it.  One LOG line when replays begin on a
 * partition, one WARNING when races do, "begin" meaning none in the minute
 * before: a replay of a million events, or a race that goes on for an hour,
 * is one line.  The counts are exact in the watermark row and the counters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "ptm_lease.h"
#include "replays.h"

/* A replay or a race is logged when the partition had none this long. */
#define SKIP_LOG_QUIET_USECS (60 * USECS_PER_SEC)

void
ptm_judge_skips(const PtmSkipMemory *mem, PtmSkips *skips)
{
	skips->replays = 0;
	skips->races = 0;
	if (skips->judged == 0)
		skips->kind = PTM_SKIP_NONE;
	else if (mem->any && skips->first > mem->last_skipped &&
			 skips->watermark == mem->last_skip_wm)
		skips->kind = PTM_SKIP_CONTINUED;
	else if (mem->any && skips->first > mem->last_skipped &&
			 skips->watermark > mem->last_skip_wm && skips->first <= mem->last_skip_wm)
		skips->kind = PTM_SKIP_RACE;
	else
		skips->kind = PTM_SKIP_REPLAY;

	if (skips->kind == PTM_SKIP_REPLAY)
		skips->replays = 1;
	else if (skips->kind == PTM_SKIP_RACE)
		skips->races = skips->judged;
}

/* What a race is, the same in the DETAIL of one event and of a batch. */
#define RACE_DETAIL "The watermark moved since this stream's previous event below it: " \
	"another materializer is applying this partition at the same time. "

/* Whether the last one of a kind, at *at (if seen), was long enough ago. */
static bool
quiet_since(bool seen, TimestampTz at, TimestampTz now)
{
	return !seen || now - at >= SKIP_LOG_QUIET_USECS;
}

void
ptm_report_skips(const char *projection, int32 partition_id,
				 const PtmSkipMemory *mem, const PtmSkips *skips,
				 int events, TimestampTz now)
{
	switch (skips->kind)
	{
		case PTM_SKIP_NONE:
		case PTM_SKIP_CONTINUED:
			break;
		case PTM_SKIP_REPLAY:
			if (quiet_since(mem->replay_seen, mem->last_replay_at, now))
				ereport(LOG,
						(errmsg("replay of projection \"%s\" partition %d from offset " INT64_FORMAT ", at or below its watermark " INT64_FORMAT,
								projection, partition_id, skips->first, skips->watermark),
						 errdetail("A materializer went back to an older offset: events up to the watermark were applied before and are skipped until the stream passes it. Nothing needs repair."),
						 errhint("Replays of this partition are counted in ptm.projection_watermarks.replay_count and logged again after a quiet minute.")));
			break;
		case PTM_SKIP_RACE:
			if (quiet_since(mem->race_seen, mem->last_race_at, now))
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("watermark regression on projection \"%s\" partition %d: offset " INT64_FORMAT " < watermark " INT64_FORMAT,
								projection, partition_id, skips->first, skips->watermark),
						 events <= 1 ?
						 errdetail(RACE_DETAIL "The event was not applied.") :
						 errdetail_plural(RACE_DETAIL INT64_FORMAT " of the %d events of this batch was not applied.",
										  RACE_DETAIL INT64_FORMAT " of the %d events of this batch were not applied.",
										  skips->races, skips->races, events),
						 errhint("Fence the materializers with a partition lease; see \"Replays and races\" in docs/projections.md.")));
			break;
	}
}

void
ptm_count_skips(const PtmSkips *skips)
{
	ptm_count_n(PTM_PROJ_DUPLICATES, skips->duplicates);
	ptm_count_n(PTM_PROJ_WM_REGRESSIONS, skips->regressions);
	ptm_count_n(PTM_PROJ_REPLAYS, skips->replays);
	ptm_count_n(PTM_PROJ_WM_RACES, skips->races);
	/* a replay's events are skipped, not failed; a race's were refused */
	ptm_count_n(PTM_PROJ_FAILED, skips->races);
}
