/*
 * announce_latency: how long after a change of owner an agent LISTENing on
 * ptm_lease_events learns of it.  A listener process and a changer process
 * (one connection each); the changer takes and releases partition 0 of topic
 * "announce_latency" n times (2n changes, a pause between them so that the
 * delay is not a queue), noting the time each call started and returned; the
 * listener notes when each payload arrived.  Prints p50, p90, p99 and max of
 * "arrived - call returned" and "arrived - call started", in ms.
 *
 *   announce_latency [-n cycles] [-m worker|inline] [-p pause_us] "conninfo"
 *
 * Built and run by test/bench/run (group announce_latency); the same clock
 * (CLOCK_REALTIME) on one machine for both processes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <libpq-fe.h>

#define TOPIC "announce_latency"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static PGconn *
connect_or_die(const char *conninfo)
{
	PGconn	   *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "connection failed: %s", PQerrorMessage(c));
		exit(1);
	}
	return c;
}

static PGresult *
exec_or_die(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	return r;
}

/* Listener: print "event epoch arrived_ms" per payload until expected or idle 5 s. */
static void
listen_loop(const char *conninfo, int expected, int ready_fd, FILE *out)
{
	PGconn	   *c = connect_or_die(conninfo);
	int			got = 0;
	double		last = now_ms();

	PQclear(exec_or_die(c, "LISTEN ptm_lease_events"));
	if (write(ready_fd, "r", 1) != 1)
		exit(1);
	close(ready_fd);
	while (got < expected && now_ms() - last < 5000)
	{
		int			sock = PQsocket(c);
		fd_set		in;
		struct timeval tv = {0, 100000};
		PGnotify   *n;

		FD_ZERO(&in);
		FD_SET(sock, &in);
		if (select(sock + 1, &in, NULL, NULL, &tv) < 0)
			exit(1);
		PQconsumeInput(c);
		while ((n = PQnotifies(c)) != NULL)
		{
			double		t = now_ms();
			char		event[32];
			const char *e = strstr(n->extra, "\"lease_epoch\": ");

			if (strstr(n->extra, "\"topic\": \"" TOPIC "\"") && e &&
				sscanf(n->extra, "{\"event\": \"%31[a-z]\"", event) == 1)
			{
				fprintf(out, "%s %lld %.3f\n", event, atoll(e + 15), t);
				got++;
				last = t;
			}
			PQfreemem(n);
		}
	}
	fflush(out);
	PQfinish(c);
}

typedef struct Change
{
	char		event[16];
	long long	epoch;
	double		started;
	double		returned;
	double		arrived;
} Change;

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static void
report(const char *what, double *v, int n)
{
	qsort(v, n, sizeof(double), cmp_double);
	printf("%s: n=%d p50=%.2f p90=%.2f p99=%.2f max=%.2f ms\n", what, n,
		   v[n / 2], v[(int) (n * 0.9)], v[(int) (n * 0.99)], v[n - 1]);
}

int
main(int argc, char **argv)
{
	int			cycles = 200;
	const char *mode = "worker";
	int			pause_us = 5000;
	int			opt;
	int			ready[2];
	int			data[2];
	pid_t		child;
	PGconn	   *c;
	Change	   *ch;
	int			nch = 0;
	int			i;
	char		sql[512];
	char		line[256];
	FILE	   *in;
	double	   *after_return;
	double	   *after_start;
	int			matched = 0;

	while ((opt = getopt(argc, argv, "n:m:p:")) != -1)
	{
		if (opt == 'n')
			cycles = atoi(optarg);
		else if (opt == 'm')
			mode = optarg;
		else if (opt == 'p')
			pause_us = atoi(optarg);
		else
			return 2;
	}
	if (optind >= argc)
	{
		fprintf(stderr, "usage: %s [-n cycles] [-m worker|inline] [-p pause_us] conninfo\n", argv[0]);
		return 2;
	}

	if (pipe(ready) != 0 || pipe(data) != 0)
		return 1;
	child = fork();
	if (child == 0)
	{
		FILE	   *out;

		close(ready[0]);
		close(data[0]);
		out = fdopen(data[1], "w");
		listen_loop(argv[optind], 2 * cycles, ready[1], out);
		fclose(out);
		_exit(0);
	}
	close(ready[1]);
	close(data[1]);
	if (read(ready[0], line, 1) != 1)
		return 1;

	c = connect_or_die(argv[optind]);
	snprintf(sql, sizeof(sql), "SET ptm_lease.notify_owner_changes = %s", mode);
	PQclear(exec_or_die(c, sql));
	ch = calloc(2 * cycles, sizeof(Change));
	for (i = 0; i < cycles; i++)
	{
		PGresult   *r;
		long long	epoch;

		ch[nch].started = now_ms();
		r = exec_or_die(c, "SELECT lease_epoch FROM ptm.acquire_partition_lease('" TOPIC "', 0, 'agent-l', '60 s')");
		ch[nch].returned = now_ms();
		epoch = atoll(PQgetvalue(r, 0, 0));
		PQclear(r);
		strcpy(ch[nch].event, "acquired");
		ch[nch++].epoch = epoch;
		usleep(pause_us);

		snprintf(sql, sizeof(sql),
				 "SELECT result FROM ptm.release_lease('" TOPIC "', 0, 'agent-l', %lld)", epoch);
		ch[nch].started = now_ms();
		PQclear(exec_or_die(c, sql));
		ch[nch].returned = now_ms();
		strcpy(ch[nch].event, "released");
		ch[nch++].epoch = epoch;
		usleep(pause_us);
	}
	PQfinish(c);

	in = fdopen(data[0], "r");
	while (fgets(line, sizeof(line), in))
	{
		char		event[32];
		long long	epoch;
		double		t;

		if (sscanf(line, "%31s %lld %lf", event, &epoch, &t) != 3)
			continue;
		for (i = 0; i < nch; i++)
			if (ch[i].epoch == epoch && strcmp(ch[i].event, event) == 0 && ch[i].arrived == 0)
			{
				ch[i].arrived = t;
				break;
			}
	}
	waitpid(child, NULL, 0);

	after_return = calloc(nch, sizeof(double));
	after_start = calloc(nch, sizeof(double));
	for (i = 0; i < nch; i++)
		if (ch[i].arrived > 0)
		{
			after_return[matched] = ch[i].arrived - ch[i].returned;
			after_start[matched++] = ch[i].arrived - ch[i].started;
		}
	printf("mode %s: %d changes, %d announced\n", mode, nch, matched);
	if (matched == 0)
		return 1;
	report("  arrived - call returned", after_return, matched);
	report("  arrived - call started ", after_start, matched);
	return matched == nch ? 0 : 1;
}
