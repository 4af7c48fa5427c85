/*-------------------------------------------------------------------------
 *
 * replays.h
 *	  Projection events offered at or below their partition's watermark:
 *	  a replay (routine) or a race between two writers (an incident), told
 *	  apart from what the watermark row remembers of the previous such event.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_REPLAYS_H
#define PTM_REPLAYS_H

#include "datatype/timestamp.h"

/*
 * What a locked watermark row remembers of the events it skipped
 * (ptm.projection_watermarks.last_skipped_offset and the columns after it).
 */
typedef struct PtmSkipMemory
{
	bool		any;			/* an event was skipped since the watermark was created */
	int64		last_skipped;	/* offset of the last skipped event */
	int64		last_skip_wm;	/* the watermark it was skipped at */
	bool		replay_seen;	/* a replay began before, at last_replay_at */
	TimestampTz last_replay_at;
	bool		race_seen;		/* a race was seen before, at last_race_at */
	TimestampTz last_race_at;
} PtmSkipMemory;

typedef enum PtmSkipKind
{
	PTM_SKIP_NONE,				/* nothing was skipped */
	PTM_SKIP_REPLAY,			/* a stream went back below the watermark */
	PTM_SKIP_CONTINUED,			/* that replay goes on */
	PTM_SKIP_RACE				/* another writer moved the watermark meanwhile */
} PtmSkipKind;

/*
 * The events one call skipped because the watermark it found (watermark)
 * was at or above them: one event, or the first events of a sorted batch.
 * A batch's own repeats of an offset it applied are duplicates too, counted
 * in duplicates but not judged: they say nothing about other writers.
 */
typedef struct PtmSkips
{
	int64		duplicates;		/* skipped at the watermark, repeats included */
	int64		regressions;	/* skipped below the watermark */
	int64		judged;			/* skipped at or below the watermark found */
	int64		first;			/* lowest judged offset */
	int64		last;			/* highest judged offset */
	int64		watermark;		/* the watermark found */
	PtmSkipKind kind;			/* what the judged events are, by the first */
	int64		replays;		/* 1 when a replay began */
	int64		races;			/* judged events that raced another writer */
} PtmSkips;

extern void ptm_judge_skips(const PtmSkipMemory *mem, PtmSkips *skips);
extern void ptm_report_skips(const char *projection, int32 partition_id,
							 const PtmSkipMemory *mem, const PtmSkips *skips,
							 int events, TimestampTz now);
extern void ptm_count_skips(const PtmSkips *skips);

#endif							/* PTM_REPLAYS_H */
