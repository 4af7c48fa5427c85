/*-------------------------------------------------------------------------
 *
 * metrics_file.c
 *	  Keeping the counters across a clean restart.
 *
 * Prometheus' rate() reads a counter that goes down as a reset and counts
 * its whole new value as an increase, so counters must either continue
 * exactly where they stopped or start again from zero, never from an older
 * value.  Hence:
 *	  - The postmaster saves everything when it exits cleanly, after the
 *		shutdown checkpoint, to pg_stat/ptm_lease.stat (written as .tmp, then
 *		durable_rename), with a magic number, the server's major version and
 *		the LSN of that shutdown checkpoint.
 *	  - At the next start the file is loaded only if pg_control says the
 *		server shut down cleanly and its last checkpoint is the one recorded
 *		in the file: a file from an earlier shutdown (copied back, restored
 *		with an old backup) is an older snapshot and is ignored.  The file is
 *		removed once read, so after a crash there is nothing to load.
 *	  - Whenever nothing is loaded, every series starts from zero and
 *		stats_reset is the start time.
 * Counters and histograms are recorded by name, so a version that adds
 * counters (slot numbers move) still restores the others.
 *
 * Both run in the postmaster with no backend alive (see metrics.c), so no
 * lock is taken.  Each reads or writes the file in steps, one per part of
 * it: header, counters, histograms, keys, trailing magic number.  A step
 * that fails returns false, and the caller reports the file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xlogdefs.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"

#include "metrics_int.h"

#define PTM_STAT_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/ptm_lease.stat"
#define PTM_STAT_FILE_MAGIC 0x50544D01	/* "PTM", format 1 */
#define PTM_STAT_NAME_MAX	1024	/* sanity bound on names read back */

typedef struct PtmStatFileHeader
{
	uint32		magic;
	uint32		pg_major;		/* PG_VERSION_NUM / 100 */
	XLogRecPtr	checkpoint;		/* the shutdown checkpoint the file follows */
	TimestampTz stats_reset;
	uint64		evictions;
	int32		ncounters;
	int32		nhistograms;
	int32		nkeys;
} PtmStatFileHeader;

/* A saved key entry, with its counts by slot of the file's counter table. */
typedef struct SavedKey
{
	PtmKeyTag	tag;
	double		usage_adjust;
	uint64	   *counts;			/* ncounters values, indexed like the file */
} SavedKey;

/* A whole file as read back: nothing is applied until all of it is read. */
typedef struct SavedStats
{
	PtmStatFileHeader header;
	int		   *slots;			/* this version's slot of each saved counter,
								 * or -1 */
	uint64	   *counters;		/* ncounters values, indexed like the file */
	uint64		hist[PTM_NUM_HISTOGRAMS][PTM_HIST_MAX_BOUNDS + 2];	/* buckets,
																	 * sum */
	bool		hist_found[PTM_NUM_HISTOGRAMS];
	SavedKey   *keys;			/* nkeys entries */
} SavedStats;

/*
 * The last checkpoint from pg_control if the server is shut down cleanly
 * (primary or standby), else InvalidXLogRecPtr.
 */
static XLogRecPtr
clean_shutdown_checkpoint(void)
{
	ControlFileData *control;
	bool		crc_ok;
	XLogRecPtr	result = InvalidXLogRecPtr;

	control = get_controlfile(DataDir, &crc_ok);
	if (crc_ok && (control->state == DB_SHUTDOWNED ||
				   control->state == DB_SHUTDOWNED_IN_RECOVERY))
		result = control->checkPoint;
	pfree(control);
	return result;
}

static bool
write_string(FILE *file, const char *s)
{
	int32		len = strlen(s);

	return fwrite(&len, sizeof(len), 1, file) == 1 &&
		fwrite(s, 1, len, file) == (size_t) len;
}

static char *
read_string(FILE *file)
{
	int32		len;
	char	   *s;

	if (fread(&len, sizeof(len), 1, file) != 1 || len < 0 || len > PTM_STAT_NAME_MAX)
		return NULL;
	s = palloc(len + 1);
	if (fread(s, 1, len, file) != (size_t) len)
		return NULL;
	s[len] = '\0';
	return s;
}

/* Saving */

static bool
write_header(FILE *file, XLogRecPtr checkpoint)
{
	PtmStatFileHeader header;

	memset(&header, 0, sizeof(header));
	header.magic = PTM_STAT_FILE_MAGIC;
	header.pg_major = PG_VERSION_NUM / 100;
	header.checkpoint = checkpoint;
	header.stats_reset = ptm_shared->stats_reset;
	header.evictions = pg_atomic_read_u64(&ptm_metrics->evictions);
	header.ncounters = PTM_NUM_COUNTERS;
	header.nhistograms = PTM_NUM_HISTOGRAMS;
	header.nkeys = hash_get_num_entries(ptm_keys);
	return fwrite(&header, sizeof(header), 1, file) == 1;
}

/* Each counter as its name and value. */
static bool
write_counters(FILE *file)
{
	int			i;

	for (i = 0; i < PTM_NUM_COUNTERS; i++)
	{
		uint64		value = pg_atomic_read_u64(&ptm_shared->counters[i]);

		if (!write_string(file, ptm_counter_name(i)))
			return false;
		if (fwrite(&value, sizeof(value), 1, file) != 1)
			return false;
	}
	return true;
}

/* Each histogram as its name, its bounds, its buckets and its sum. */
static bool
write_histograms(FILE *file)
{
	int			i;

	for (i = 0; i < PTM_NUM_HISTOGRAMS; i++)
	{
		const PtmHistogramInfo *info = &ptm_histogram_info[i];
		PtmHistogramState *state = &ptm_metrics->hist[i];
		uint64		value;
		int			b;

		if (!write_string(file, info->metric))
			return false;
		if (fwrite(&info->nbounds, sizeof(info->nbounds), 1, file) != 1)
			return false;
		if (fwrite(info->bounds, sizeof(double) * info->nbounds, 1, file) != 1)
			return false;
		for (b = 0; b <= info->nbounds; b++)
		{
			value = pg_atomic_read_u64(&state->buckets[b]);
			if (fwrite(&value, sizeof(value), 1, file) != 1)
				return false;
		}
		value = pg_atomic_read_u64(&state->sum_us);
		if (fwrite(&value, sizeof(value), 1, file) != 1)
			return false;
	}
	return true;
}

/* One key entry as its tag (the bytes in use), usage and counts. */
static bool
write_key(FILE *file, PtmKeyEntry *entry)
{
	int			i;

	if (fwrite(&entry->tag, offsetof(PtmKeyTag, data) + entry->tag.len, 1, file) != 1)
		return false;
	if (fwrite(&entry->usage_adjust, sizeof(entry->usage_adjust), 1, file) != 1)
		return false;
	for (i = 0; i < PTM_NUM_COUNTERS; i++)
	{
		uint64		value = pg_atomic_read_u64(&entry->counts[i]);

		if (fwrite(&value, sizeof(value), 1, file) != 1)
			return false;
	}
	return true;
}

static bool
write_keys(FILE *file)
{
	HASH_SEQ_STATUS seq;
	PtmKeyEntry *entry;

	hash_seq_init(&seq, ptm_keys);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (!write_key(file, entry))
		{
			hash_seq_term(&seq);
			return false;
		}
	}
	return true;
}

/*
 * on_shmem_exit callback of the postmaster: save everything, if this is a
 * clean shutdown (code 0 and pg_control says so).
 */
void
ptm_metrics_save_at_exit(int code, Datum arg)
{
	XLogRecPtr	checkpoint;
	FILE	   *file;
	uint32		magic = PTM_STAT_FILE_MAGIC;

	if (code != 0 || ptm_shared == NULL || ptm_metrics == NULL || ptm_keys == NULL)
		return;

	checkpoint = clean_shutdown_checkpoint();
	if (XLogRecPtrIsInvalid(checkpoint))
	{
		ereport(LOG,
				(errmsg("ptm_lease counters not saved"),
				 errdetail("pg_control does not show a clean shutdown.")));
		return;
	}

	file = AllocateFile(PTM_STAT_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto write_error;
	if (!write_header(file, checkpoint) || !write_counters(file) ||
		!write_histograms(file) || !write_keys(file))
		goto write_error;
	/* A trailing magic number tells a complete file from a truncated one. */
	if (fwrite(&magic, sizeof(magic), 1, file) != 1)
		goto write_error;
	if (FreeFile(file))
	{
		file = NULL;
		goto write_error;
	}
	(void) durable_rename(PTM_STAT_FILE ".tmp", PTM_STAT_FILE, LOG);
	return;

write_error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", PTM_STAT_FILE ".tmp")));
	if (file)
		FreeFile(file);
	unlink(PTM_STAT_FILE ".tmp");
}

/* Loading */

/* Slot of the counter with this saved name, or -1 if this version has none. */
static int
counter_slot(const char *name)
{
	int			i;

	for (i = 0; i < PTM_NUM_COUNTERS; i++)
		if (strcmp(ptm_counter_name(i), name) == 0)
			return i;
	return -1;
}

/*
 * Whether a well-read header describes the latest counters: written by this
 * format and major version, at the shutdown checkpoint pg_control shows as
 * the last one.  Logs why not.
 */
static bool
header_is_current(const PtmStatFileHeader *header)
{
	XLogRecPtr	checkpoint;

	if (header->magic != PTM_STAT_FILE_MAGIC || header->pg_major != PG_VERSION_NUM / 100)
	{
		ereport(LOG,
				(errmsg("ignoring saved ptm_lease counters in \"%s\"", PTM_STAT_FILE),
				 errdetail("The file was written by another version of ptm_lease or PostgreSQL.")));
		return false;
	}

	checkpoint = clean_shutdown_checkpoint();
	if (XLogRecPtrIsInvalid(checkpoint))
	{
		ereport(LOG,
				(errmsg("ignoring saved ptm_lease counters in \"%s\"", PTM_STAT_FILE),
				 errdetail("The server did not shut down cleanly, so they may be older than the last ones counted.")));
		return false;
	}
	if (header->checkpoint != checkpoint)
	{
		ereport(LOG,
				(errmsg("ignoring saved ptm_lease counters in \"%s\"", PTM_STAT_FILE),
				 errdetail("They were saved at the shutdown checkpoint %X/%X, but the last checkpoint is %X/%X, so they are an older snapshot.",
						   LSN_FORMAT_ARGS(header->checkpoint),
						   LSN_FORMAT_ARGS(checkpoint))));
		return false;
	}
	return true;
}

/* Counts no sane file exceeds: a damaged header must not size allocations. */
static bool
header_is_sane(const PtmStatFileHeader *header)
{
	return header->ncounters >= 0 && header->ncounters <= 100000 &&
		header->nhistograms >= 0 && header->nhistograms <= 1000 &&
		header->nkeys >= 0 && header->nkeys <= 10000000;
}

/* Each counter's name and value, and the slot this version has for it. */
static bool
read_counters(FILE *file, SavedStats *saved)
{
	int			n = saved->header.ncounters;
	int			i;

	saved->slots = palloc(sizeof(int) * (n + 1));
	saved->counters = palloc(sizeof(uint64) * (n + 1));
	for (i = 0; i < n; i++)
	{
		char	   *name = read_string(file);

		if (name == NULL)
			return false;
		saved->slots[i] = counter_slot(name);
		if (fread(&saved->counters[i], sizeof(uint64), 1, file) != 1)
			return false;
	}
	return true;
}

/*
 * Each histogram, kept only for a histogram of this version with the same
 * name and buckets.
 */
static bool
read_histograms(FILE *file, SavedStats *saved)
{
	int			i,
				h;

	for (i = 0; i < saved->header.nhistograms; i++)
	{
		char	   *name = read_string(file);
		int			nbounds;
		double		bounds[PTM_HIST_MAX_BOUNDS];
		uint64		values[PTM_HIST_MAX_BOUNDS + 2];

		if (name == NULL)
			return false;
		if (fread(&nbounds, sizeof(nbounds), 1, file) != 1)
			return false;
		if (nbounds < 0 || nbounds > PTM_HIST_MAX_BOUNDS)
			return false;
		if (nbounds > 0 && fread(bounds, sizeof(double) * nbounds, 1, file) != 1)
			return false;
		if (fread(values, sizeof(uint64) * (nbounds + 2), 1, file) != 1)
			return false;

		for (h = 0; h < PTM_NUM_HISTOGRAMS; h++)
		{
			const PtmHistogramInfo *info = &ptm_histogram_info[h];

			if (strcmp(info->metric, name) == 0 && info->nbounds == nbounds &&
				memcmp(info->bounds, bounds, sizeof(double) * nbounds) == 0)
			{
				memcpy(saved->hist[h], values, sizeof(uint64) * (nbounds + 2));
				saved->hist_found[h] = true;
			}
		}
	}
	return true;
}

/* One key entry: its tag (checked), usage and counts by the file's slots. */
static bool
read_key(FILE *file, int ncounters, SavedKey *key)
{
	if (fread(&key->tag, offsetof(PtmKeyTag, data), 1, file) != 1)
		return false;
	if (key->tag.len <= 0 || key->tag.len > PTM_KEY_MAXLEN ||
		key->tag.family < 0 || key->tag.family >= PTM_NUM_KEY_FAMILIES)
		return false;
	if (fread(key->tag.data, key->tag.len, 1, file) != 1)
		return false;
	if (fread(&key->usage_adjust, sizeof(double), 1, file) != 1)
		return false;
	key->counts = palloc(sizeof(uint64) * (ncounters + 1));
	if (ncounters > 0 && fread(key->counts, sizeof(uint64) * ncounters, 1, file) != 1)
		return false;
	return true;
}

static bool
read_keys(FILE *file, SavedStats *saved)
{
	int			i;

	saved->keys = palloc0(sizeof(SavedKey) * (saved->header.nkeys + 1));
	for (i = 0; i < saved->header.nkeys; i++)
		if (!read_key(file, saved->header.ncounters, &saved->keys[i]))
			return false;
	return true;
}

/* The trailing magic number, and nothing after it. */
static bool
read_trailer(FILE *file)
{
	uint32		magic;

	if (fread(&magic, sizeof(magic), 1, file) != 1)
		return false;
	return magic == PTM_STAT_FILE_MAGIC && fgetc(file) == EOF;
}

/* Write a whole file's values into shared memory. */
static void
apply_saved(const SavedStats *saved)
{
	int			ncounters = saved->header.ncounters;
	int			i,
				h,
				b;

	ptm_shared->stats_reset = saved->header.stats_reset;
	pg_atomic_write_u64(&ptm_metrics->evictions, saved->header.evictions);
	for (i = 0; i < ncounters; i++)
		if (saved->slots[i] >= 0)
			pg_atomic_write_u64(&ptm_shared->counters[saved->slots[i]], saved->counters[i]);

	for (h = 0; h < PTM_NUM_HISTOGRAMS; h++)
	{
		int			nbounds = ptm_histogram_info[h].nbounds;

		if (!saved->hist_found[h])
			continue;
		for (b = 0; b <= nbounds; b++)
			pg_atomic_write_u64(&ptm_metrics->hist[h].buckets[b], saved->hist[h][b]);
		pg_atomic_write_u64(&ptm_metrics->hist[h].sum_us, saved->hist[h][nbounds + 1]);
	}

	for (i = 0; i < saved->header.nkeys; i++)
	{
		const SavedKey *key = &saved->keys[i];
		PtmKeyEntry *entry = ptm_key_enter(&key->tag);
		int			c;

		if (entry == NULL)
			break;				/* out of shared memory: keep what fits */
		entry->usage_adjust = key->usage_adjust;
		for (c = 0; c < ncounters; c++)
			if (saved->slots[c] >= 0)
				pg_atomic_write_u64(&entry->counts[saved->slots[c]], key->counts[c]);
	}
}

/*
 * Read the open file whole, then apply it if it holds the latest counters.
 * A damaged file changes nothing.
 */
static void
load_saved(FILE *file)
{
	SavedStats	saved;

	memset(&saved, 0, sizeof(saved));
	if (fread(&saved.header, sizeof(saved.header), 1, file) != 1)
		goto read_error;
	if (!header_is_current(&saved.header))
		return;
	if (!header_is_sane(&saved.header))
		goto read_error;
	if (!read_counters(file, &saved) || !read_histograms(file, &saved) ||
		!read_keys(file, &saved) || !read_trailer(file))
		goto read_error;
	apply_saved(&saved);
	return;

read_error:
	ereport(LOG,
			(errmsg("ignoring saved ptm_lease counters in \"%s\"", PTM_STAT_FILE),
			 errdetail("The file is truncated or damaged.")));
}

/*
 * Called by the postmaster when it creates the shared memory: restore the
 * saved counters if they are the latest ones, and remove the file.
 */
void
ptm_metrics_load(void)
{
	FILE	   *file;

	file = AllocateFile(PTM_STAT_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", PTM_STAT_FILE)));
		return;
	}
	load_saved(file);
	FreeFile(file);
	unlink(PTM_STAT_FILE);
}
