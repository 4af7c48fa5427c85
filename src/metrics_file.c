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
 * lock is taken.
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

#define WRITE(ptr, size) \
	do { if (fwrite((ptr), (size), 1, file) != 1) goto error; } while (0)

/*
 * on_shmem_exit callback of the postmaster: save everything, if this is a
 * clean shutdown (code 0 and pg_control says so).
 */
void
ptm_metrics_save_at_exit(int code, Datum arg)
{
	PtmStatFileHeader header;
	FILE	   *file;
	int			i;
	uint32		magic = PTM_STAT_FILE_MAGIC;
	HASH_SEQ_STATUS seq;
	PtmKeyEntry *entry;

	if (code != 0 || ptm_shared == NULL || ptm_metrics == NULL || ptm_keys == NULL)
		return;

	memset(&header, 0, sizeof(header));
	header.checkpoint = clean_shutdown_checkpoint();
	if (XLogRecPtrIsInvalid(header.checkpoint))
	{
		ereport(LOG,
				(errmsg("ptm_lease counters not saved"),
				 errdetail("pg_control does not show a clean shutdown.")));
		return;
	}
	header.magic = PTM_STAT_FILE_MAGIC;
	header.pg_major = PG_VERSION_NUM / 100;
	header.stats_reset = ptm_shared->stats_reset;
	header.evictions = pg_atomic_read_u64(&ptm_metrics->evictions);
	header.ncounters = PTM_NUM_COUNTERS;
	header.nhistograms = PTM_NUM_HISTOGRAMS;
	header.nkeys = hash_get_num_entries(ptm_keys);

	file = AllocateFile(PTM_STAT_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;
	WRITE(&header, sizeof(header));

	for (i = 0; i < PTM_NUM_COUNTERS; i++)
	{
		uint64		value = pg_atomic_read_u64(&ptm_shared->counters[i]);

		if (!write_string(file, ptm_counter_name(i)))
			goto error;
		WRITE(&value, sizeof(value));
	}

	for (i = 0; i < PTM_NUM_HISTOGRAMS; i++)
	{
		const PtmHistogramInfo *info = &ptm_histogram_info[i];
		PtmHistogramState *state = &ptm_metrics->hist[i];
		uint64		value;
		int			b;

		if (!write_string(file, info->metric))
			goto error;
		WRITE(&info->nbounds, sizeof(info->nbounds));
		WRITE(info->bounds, sizeof(double) * info->nbounds);
		for (b = 0; b <= info->nbounds; b++)
		{
			value = pg_atomic_read_u64(&state->buckets[b]);
			WRITE(&value, sizeof(value));
		}
		value = pg_atomic_read_u64(&state->sum_us);
		WRITE(&value, sizeof(value));
	}

	hash_seq_init(&seq, ptm_keys);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		WRITE(&entry->tag, offsetof(PtmKeyTag, data) + entry->tag.len);
		WRITE(&entry->usage_adjust, sizeof(entry->usage_adjust));
		for (i = 0; i < PTM_NUM_COUNTERS; i++)
		{
			uint64		value = pg_atomic_read_u64(&entry->counts[i]);

			WRITE(&value, sizeof(value));
		}
	}

	/* A trailing magic number tells a complete file from a truncated one. */
	WRITE(&magic, sizeof(magic));

	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(PTM_STAT_FILE ".tmp", PTM_STAT_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", PTM_STAT_FILE ".tmp")));
	if (file)
		FreeFile(file);
	unlink(PTM_STAT_FILE ".tmp");
}

#define READ(ptr, size) \
	do { if (fread((ptr), (size), 1, file) != 1) goto corrupt; } while (0)

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
 * Called by the postmaster when it creates the shared memory: restore the
 * saved counters if they are the latest ones, and remove the file.
 */
void
ptm_metrics_load(void)
{
	PtmStatFileHeader header;
	FILE	   *file;
	XLogRecPtr	checkpoint;
	int		   *slots = NULL;
	uint64	   *counters = NULL;
	uint64		hist[PTM_NUM_HISTOGRAMS][PTM_HIST_MAX_BOUNDS + 2];
	bool		hist_found[PTM_NUM_HISTOGRAMS] = {false};
	SavedKey   *keys = NULL;
	uint32		magic;
	int			i,
				h,
				b;

	file = AllocateFile(PTM_STAT_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", PTM_STAT_FILE)));
		return;
	}

	READ(&header, sizeof(header));
	if (header.magic != PTM_STAT_FILE_MAGIC || header.pg_major != PG_VERSION_NUM / 100)
	{
		ereport(LOG,
				(errmsg("ignoring saved ptm_lease counters in \"%s\"", PTM_STAT_FILE),
				 errdetail("The file was written by another version of ptm_lease or PostgreSQL.")));
		goto done;
	}

	checkpoint = clean_shutdown_checkpoint();
	if (XLogRecPtrIsInvalid(checkpoint))
	{
		ereport(LOG,
				(errmsg("ignoring saved ptm_lease counters in \"%s\"", PTM_STAT_FILE),
				 errdetail("The server did not shut down cleanly, so they may be older than the last ones counted.")));
		goto done;
	}
	if (header.checkpoint != checkpoint)
	{
		ereport(LOG,
				(errmsg("ignoring saved ptm_lease counters in \"%s\"", PTM_STAT_FILE),
				 errdetail("They were saved at the shutdown checkpoint %X/%X, but the last checkpoint is %X/%X, so they are an older snapshot.",
						   LSN_FORMAT_ARGS(header.checkpoint),
						   LSN_FORMAT_ARGS(checkpoint))));
		goto done;
	}
	if (header.ncounters < 0 || header.ncounters > 100000 ||
		header.nhistograms < 0 || header.nhistograms > 1000 ||
		header.nkeys < 0 || header.nkeys > 10000000)
		goto corrupt;

	/* Read everything first: a damaged file must change nothing. */
	slots = palloc(sizeof(int) * (header.ncounters + 1));
	counters = palloc(sizeof(uint64) * (header.ncounters + 1));
	for (i = 0; i < header.ncounters; i++)
	{
		char	   *name = read_string(file);

		if (name == NULL)
			goto corrupt;
		slots[i] = counter_slot(name);
		READ(&counters[i], sizeof(uint64));
	}

	for (i = 0; i < header.nhistograms; i++)
	{
		char	   *name = read_string(file);
		int			nbounds;
		double		bounds[PTM_HIST_MAX_BOUNDS];
		uint64		values[PTM_HIST_MAX_BOUNDS + 2];

		if (name == NULL)
			goto corrupt;
		READ(&nbounds, sizeof(nbounds));
		if (nbounds < 0 || nbounds > PTM_HIST_MAX_BOUNDS)
			goto corrupt;
		if (nbounds > 0)
			READ(bounds, sizeof(double) * nbounds);
		READ(values, sizeof(uint64) * (nbounds + 2));

		/* Restored only into a histogram of the same name and buckets. */
		for (h = 0; h < PTM_NUM_HISTOGRAMS; h++)
		{
			const PtmHistogramInfo *info = &ptm_histogram_info[h];

			if (strcmp(info->metric, name) == 0 && info->nbounds == nbounds &&
				memcmp(info->bounds, bounds, sizeof(double) * nbounds) == 0)
			{
				memcpy(hist[h], values, sizeof(uint64) * (nbounds + 2));
				hist_found[h] = true;
			}
		}
	}

	keys = palloc0(sizeof(SavedKey) * (header.nkeys + 1));
	for (i = 0; i < header.nkeys; i++)
	{
		READ(&keys[i].tag, offsetof(PtmKeyTag, data));
		if (keys[i].tag.len <= 0 || keys[i].tag.len > PTM_KEY_MAXLEN ||
			keys[i].tag.family < 0 || keys[i].tag.family >= PTM_NUM_KEY_FAMILIES)
			goto corrupt;
		READ(keys[i].tag.data, keys[i].tag.len);
		READ(&keys[i].usage_adjust, sizeof(double));
		keys[i].counts = palloc(sizeof(uint64) * (header.ncounters + 1));
		if (header.ncounters > 0)
			READ(keys[i].counts, sizeof(uint64) * header.ncounters);
	}

	READ(&magic, sizeof(magic));
	if (magic != PTM_STAT_FILE_MAGIC || fgetc(file) != EOF)
		goto corrupt;

	/* The file is whole: apply it. */
	ptm_shared->stats_reset = header.stats_reset;
	pg_atomic_write_u64(&ptm_metrics->evictions, header.evictions);
	for (i = 0; i < header.ncounters; i++)
		if (slots[i] >= 0)
			pg_atomic_write_u64(&ptm_shared->counters[slots[i]], counters[i]);
	for (h = 0; h < PTM_NUM_HISTOGRAMS; h++)
	{
		int			nbounds = ptm_histogram_info[h].nbounds;

		if (!hist_found[h])
			continue;
		for (b = 0; b <= nbounds; b++)
			pg_atomic_write_u64(&ptm_metrics->hist[h].buckets[b], hist[h][b]);
		pg_atomic_write_u64(&ptm_metrics->hist[h].sum_us, hist[h][nbounds + 1]);
	}
	for (i = 0; i < header.nkeys; i++)
	{
		PtmKeyEntry *entry = ptm_key_enter(&keys[i].tag);
		int			c;

		if (entry == NULL)
			break;
		entry->usage_adjust = keys[i].usage_adjust;
		for (c = 0; c < header.ncounters; c++)
			if (slots[c] >= 0)
				pg_atomic_write_u64(&entry->counts[slots[c]], keys[i].counts[c]);
	}
	goto done;

corrupt:
	ereport(LOG,
			(errmsg("ignoring saved ptm_lease counters in \"%s\"", PTM_STAT_FILE),
			 errdetail("The file is truncated or damaged.")));

done:
	FreeFile(file);
	unlink(PTM_STAT_FILE);
}
