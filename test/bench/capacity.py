#!/usr/bin/python3
"""Capacity of one node: how many live leases it keeps alive (test/bench/capacity).

One step: N leases held by agents of --per-agent leases each (a topic per
agent, taken with ptm.ensure_partitions and ptm.acquire_partition_leases),
renewed in bulk (ptm.renew_leases, --batch leases per call) every TTL/3,
each batch at its own phase of the period so that the calls are spread evenly,
by --threads connections.  Meanwhile the worker sweeps, and the agents stop
renewing --expire-pct % of their leases per minute: each renewal leaves out
its share of them at random.  Those leases expire; the sweeper marks them
expired and announces it (NOTIFY ptm_lease_events), and one TTL/3 after their
expiry (a standby that polls) the agent takes each back with
ptm.acquire_partition_lease, so the number of leases held stays N.

A renewal asks only for the leases it did not renew
(... FROM ptm.renew_leases(...) WHERE result <> 'renewed'), as an agent that
acts on failures would.

Measured over the window after --warmup seconds, for --measure seconds:
  - each bulk renewal: the call's latency, and due -> done (how late the
    renewal completed after its planned time: the driver's queueing included);
  - leases lost (renewals answered 'expired', 'not_owner' or 'stale_epoch');
    'busy' answers (a row held past lock_wait_timeout: the lease is live, the
    next round renews it) and calls that failed (55P03) are counted apart;
  - the intended expiries: leases left out, their 'expired' announcements and
    the delay from expiry to announcement, the takeovers and their results;
  - how far behind the sweeper is: the age of the oldest lease due for its
    look (min(sweep_at) of the owned leases, sampled every second; with a
    sweeper that keeps up it stays about one sweep_interval), and the
    'sweep_backlog' row of ptm.health() at the end;
  - CPU: the server's processes (postmaster and children, from /proc), this
    driver, and the whole machine (/proc/stat), in cores.

Prints one JSON line with the results (appended to --out as well).
"""
import argparse
import heapq
import json
import os
import random
import select
import sys
import threading
import time

import psycopg

ap = argparse.ArgumentParser()
ap.add_argument('--dbname', default='ptm_capacity')
ap.add_argument('--leases', type=int, required=True)
ap.add_argument('--per-agent', type=int, default=5000, help='leases per agent (one topic each)')
ap.add_argument('--batch', type=int, default=500, help='leases per renew_leases call')
ap.add_argument('--ttl', type=float, default=30.0, help='lease TTL, seconds')
ap.add_argument('--period', type=float, help='seconds between renewals of a lease (TTL/3)')
ap.add_argument('--threads', type=int, default=8, help='connections renewing')
ap.add_argument('--takeover-threads', type=int, default=4, help='connections taking expired leases back')
ap.add_argument('--warmup', type=float, default=60.0)
ap.add_argument('--measure', type=float, default=120.0)
ap.add_argument('--expire-pct', type=float, default=1.0, help='%% of leases left to expire per minute')
ap.add_argument('--out', help='append the JSON line to this file')
args = ap.parse_args()
if args.per_agent % args.batch:
    sys.exit('--per-agent must be a multiple of --batch')
period = args.period or args.ttl / 3
ttl_sql = '%g s' % args.ttl


def connect():
    return psycopg.connect(dbname=args.dbname, autocommit=True,
                           application_name='ptm_capacity')


def array(values):
    """A PostgreSQL array literal of names or numbers (no quoting needed)."""
    return '{' + ','.join(str(v) for v in values) + '}'


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


# ---------------------------------------------------------------------------
# CPU: the server's processes, this driver, the machine
# ---------------------------------------------------------------------------
TICK = os.sysconf('SC_CLK_TCK')


def proc_times(pid, children=False):
    """utime + stime (+ cutime + cstime) of a process, in seconds."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    # fields[0] is the state (field 3); utime is field 14, cstime field 17
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / TICK


def server_cpu(postmaster):
    """The postmaster, its reaped children (backends that ended) and its live children."""
    total = proc_times(postmaster, children=True)
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            if ppid == postmaster:
                total += proc_times(int(d))
        except (OSError, ValueError, IndexError):
            pass                        # ended meanwhile: its time is in the postmaster's
    return total


def machine_cpu():
    """(busy, total) jiffies of all CPUs; iowait counts as idle."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def driver_cpu():
    t = os.times()
    return t.user + t.system


class CpuWindow:
    def __init__(self, postmaster):
        self.postmaster = postmaster
        self.start = self.sample()

    def sample(self):
        srv = None
        if self.postmaster:
            try:
                srv = server_cpu(self.postmaster)
            except OSError:
                srv = None
        return time.time(), srv, driver_cpu(), machine_cpu()

    def result(self):
        (t0, s0, d0, (b0, a0)), (t1, s1, d1, (b1, a1)) = self.start, self.sample()
        wall = t1 - t0
        ncpu = os.cpu_count()
        return {
            'server_cores': round((s1 - s0) / wall, 2) if s0 is not None and s1 is not None else None,
            'driver_cores': round((d1 - d0) / wall, 2),
            'machine_busy_pct': round(100.0 * (b1 - b0) / (a1 - a0), 1) if a1 > a0 else None,
            'cores': ncpu,
        }


# ---------------------------------------------------------------------------
# Setup: a topic per agent, its leases taken in one bulk call
# ---------------------------------------------------------------------------
class Batch:
    """One renew_leases call's worth of an agent's leases."""

    def __init__(self, agent, topic, leases):
        self.agent = agent
        self.topic = topic
        self.leases = leases            # [(partition, epoch)]
        self.added = []                 # taken back by a takeover (other threads append)
        self.lock = threading.Lock()    # one renewal of a batch at a time
        self.last_done = time.time()    # end of the last renewal (or the acquisition)
        self.encode()

    def encode(self):
        self.params = (self.agent, array([self.topic] * len(self.leases)),
                       array(p for p, _ in self.leases), array(e for _, e in self.leases), ttl_sql)


def setup_agent(conn, a, n):
    agent, topic = 'agent-%d' % a, 'cap-%d' % a
    conn.execute('SELECT ptm.ensure_partitions(%s, %s)', (topic, n))
    # a long TTL here: spread() sets each lease's expiry to its renewal phase
    rows = conn.execute("SELECT partition_id, lease_epoch FROM ptm.acquire_partition_leases(%s, %s, %s, '1 h')"
                        " WHERE result = 'acquired' ORDER BY partition_id",
                        (topic, agent, n)).fetchall()
    if len(rows) != n:
        sys.exit('agent %s took %d of %d leases' % (agent, len(rows), n))
    return [Batch(agent, topic, rows[i:i + args.batch]) for i in range(0, n, args.batch)]


def acquire_all():
    sizes = []
    left = args.leases
    while left > 0:
        sizes.append(min(args.per_agent, left))
        left -= sizes[-1]
    batches = [None] * len(sizes)
    todo = list(range(len(sizes)))
    lock = threading.Lock()

    def work():
        with connect() as conn:
            while True:
                with lock:
                    if not todo:
                        return
                    a = todo.pop()
                batches[a] = setup_agent(conn, a, sizes[a])

    threads = [threading.Thread(target=work) for _ in range(min(4, len(sizes)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(b is None for b in batches):
        sys.exit('setup failed')
    return [b for agent in batches for b in agent], len(sizes)


def spread(conn, nbatches):
    """Start in the steady state: each lease expires TTL after its batch's
    last (virtual) renewal, one period before its first one, and its sweep_at
    (the sweeper's lower bound of the expiry) lies anywhere between now and
    then, as the sweeper's reschedules leave it.  One UPDATE past the DML
    guard (a statement trigger, off in replica mode; superuser), as
    test/bench/sweep.sql does.  Returns t0, when the first batch is due."""
    margin = 20 + args.leases / 25000.0       # for this UPDATE and the VACUUM
    now = conn.execute('SELECT extract(epoch FROM clock_timestamp())::float8').fetchone()[0]
    t0 = now + margin
    with conn.transaction():
        conn.execute('SET LOCAL session_replication_role = replica')
        conn.execute(
            "UPDATE ptm.partition_leases SET lease_expires_at = e, sweep_at = (%(now)s * 1000"
            "       + random() * (e - %(now)s * 1000))::bigint"
            "  FROM (SELECT topic AS t, partition_id AS p,"
            "               ((%(t0)s + ((substr(topic, 5)::int * %(bpa)s + partition_id / %(batch)s)"
            "                 * %(period)s / %(m)s) - %(period)s + %(ttl)s) * 1000)::bigint AS e"
            "          FROM ptm.partition_leases WHERE topic LIKE 'cap-%%') x"
            " WHERE topic = x.t AND partition_id = x.p",
            {'now': now, 't0': t0, 'bpa': args.per_agent // args.batch, 'batch': args.batch,
             'period': period, 'm': nbatches, 'ttl': args.ttl})
    conn.execute('VACUUM ANALYZE ptm.partition_leases')
    return t0


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------
t_setup = time.time()
with connect() as c:
    pid = c.execute('SELECT pg_backend_pid()').fetchone()[0]
    settings = dict(c.execute(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name IN"
        " ('shared_buffers', 'synchronous_commit', 'fsync', 'max_wal_size', 'checkpoint_timeout',"
        "  'ptm_lease.sweep_interval', 'ptm_lease.sweep_batch_size', 'ptm_lease.notify_owner_changes',"
        "  'ptm_lease.database')").fetchall())
    try:                                # while the backend lives: its parent
        with open('/proc/%d/stat' % pid) as f:
            postmaster = int(f.read().rsplit(')', 1)[1].split()[1])
    except OSError:
        postmaster = None               # a server on another machine: no server CPU
batches, agents = acquire_all()
with connect() as c:
    t0 = spread(c, len(batches))
setup_s = time.time() - t_setup
late_start = max(0.0, time.time() - t0)   # the UPDATE took longer than its margin
for j, b in enumerate(batches):
    b.last_done = t0 + j * period / len(batches) - period
t_measure = t0 + args.warmup
t_end = t_measure + args.measure
M = len(batches)
lock = threading.Lock()
seq = 0
takeovers = []                          # heap of (due, topic, partition, batch index)
drop_owed = 0.0
drop_per_lease = args.expire_pct / 100.0 * period / 60.0   # per lease and renewal
st = {'calls': 0, 'lat': [], 'due_done': [], 'lost': 0, 'lost_examples': [], 'busy': 0,
      'call_errors': 0, 'call_error_examples': [],
      'dropped': 0, 'takeovers': 0, 'takeover_failures': 0, 'takeover_examples': [],
      'expired_events': 0, 'sweep_lag': [], 'oldest_due': [], 'errors': []}
cpu = {}


def record(key, value, measuring):
    if measuring:
        with lock:
            st[key].append(value)


def taker():
    """Takes back the leases left to expire, once due: other agents' work, on
    connections of their own, so that it does not delay the renewals."""
    try:
        with connect() as conn:
            while time.time() < t_end:
                with lock:
                    item = heapq.heappop(takeovers) if takeovers and takeovers[0][0] <= time.time() else None
                if item is None:
                    time.sleep(0.05)
                else:
                    take_back(conn, *item[1:])
    except Exception as e:
        with lock:
            st['errors'].append('taker: ' + repr(e))


def take_back(conn, topic, part, j):
    r = conn.execute('SELECT result, lease_epoch FROM ptm.acquire_partition_lease(%s, %s, %s, %s)',
                     (topic, part, batches[j].agent, ttl_sql)).fetchone()
    with lock:
        if r[0] == 'acquired':
            st['takeovers'] += 1
            batches[j].added.append((part, r[1]))
        else:
            # not expired yet, or busy: count it, try again a second later
            st['takeover_failures'] += 1
            if len(st['takeover_examples']) < 5:
                st['takeover_examples'].append('%s-%d: %s' % (topic, part, r[0]))
            heapq.heappush(takeovers, (time.time() + 1, topic, part, j))


def renew(conn, j, due):
    with batches[j].lock:
        renew_batch(conn, batches[j], j, due)


def renew_batch(conn, b, j, due):
    """Renew batch b, leaving out its share of the leases that are to expire."""
    global drop_owed
    measuring = due >= t_measure
    with lock:
        drop_owed += drop_per_lease * len(b.leases)
        k = min(int(drop_owed), len(b.leases))
        drop_owed -= k
        added, b.added = b.added, []
        if k:
            st['dropped'] += k
    changed = bool(added or k)
    b.leases.extend(added)
    for _ in range(k):
        part, _epoch = b.leases.pop(random.randrange(len(b.leases)))
        # it expires at most TTL after the end of its last renewal; a standby
        # polling every TTL/3 takes it over within TTL/3 after that
        with lock:
            heapq.heappush(takeovers, (b.last_done + args.ttl + period, b.topic, part, j))
    if changed:
        b.encode()
    if not b.leases:
        return
    start = time.time()
    try:
        rows = conn.execute("SELECT partition_id, result FROM ptm.renew_leases(%s, %s::text[], %s::int[],"
                            " %s::bigint[], %s::interval) WHERE result <> 'renewed'", b.params,
                            prepare=True).fetchall()
    except psycopg.errors.LockNotAvailable as e:
        # 55P03: a row locked in the narrow race lock_wait_timeout bounds
        # (docs/leases.md#frozen-holders); nothing renewed, the next round
        # tries again, as an agent would
        with lock:
            st['call_errors'] += 1
            if len(st['call_error_examples']) < 3:
                st['call_error_examples'].append(str(e).strip())
        return
    done = time.time()
    b.last_done = done
    with lock:
        st['calls'] += 1
        if measuring:
            st['lat'].append(done - start)
            st['due_done'].append(done - due)
        for p, res in rows:
            # busy: its row was held past lock_wait_timeout, the lease is
            # still live and the next round renews it; anything else is lost
            if res == 'busy':
                st['busy'] += 1
            else:
                st['lost'] += 1
                if len(st['lost_examples']) < 5:
                    st['lost_examples'].append('%s-%d: %s' % (b.topic, p, res))


def renewer():
    global seq
    try:
        with connect() as conn:
            while True:
                with lock:
                    s = seq
                    seq += 1
                due = t0 + s * period / M
                if due >= t_end:
                    return
                wait = due - time.time()
                if wait > 0:
                    time.sleep(wait)
                renew(conn, s % M, due)
    except Exception as e:              # reported, and the step does not hold
        with lock:
            st['errors'].append(repr(e))


def listener(stop):
    """'expired' announcements of our topics, and the age of the oldest due lease."""
    try:
        with connect() as conn, connect() as sampler:
            conn.execute('LISTEN ptm_lease_events')
            next_sample = time.time()
            while not stop.is_set():
                now = time.time()
                if now >= next_sample:
                    next_sample += 1.0
                    age = sampler.execute(
                        'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint - min(sweep_at)'
                        '  FROM ptm.partition_leases WHERE agent_id IS NOT NULL').fetchone()[0]
                    record('oldest_due', max(0, age or 0) / 1000.0, now >= t_measure)
                select.select([conn.fileno()], [], [], max(0.0, min(0.2, next_sample - time.time())))
                conn.pgconn.consume_input()
                while True:
                    n = conn.pgconn.notifies()
                    if n is None:
                        break
                    ev = json.loads(n.extra.decode())
                    if ev.get('event') == 'expired' and ev.get('topic', '').startswith('cap-'):
                        now_ms = time.time() * 1000
                        with lock:
                            st['expired_events'] += 1
                        record('sweep_lag', (now_ms - ev['expired_at_ms']) / 1000.0, now_ms >= t_measure * 1000)
    except Exception as e:
        with lock:
            st['errors'].append('listener: ' + repr(e))


stop = threading.Event()
lt = threading.Thread(target=listener, args=(stop,))
lt.start()
threads = [threading.Thread(target=renewer) for _ in range(args.threads)]
threads += [threading.Thread(target=taker) for _ in range(args.takeover_threads)]
for t in threads:
    t.start()
time.sleep(max(0.0, t_measure - time.time()))
window = CpuWindow(postmaster)
time.sleep(max(0.0, t_end - time.time()))
cpu = window.result()
for t in threads:
    t.join()
stop.set()
lt.join()

with connect() as c:
    now_ms = c.execute('SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint').fetchone()[0]
    held_live = c.execute('SELECT count(*) FROM ptm.partition_leases WHERE agent_id IS NOT NULL'
                          ' AND lease_expires_at > %s', (now_ms,)).fetchone()[0]
    due_end = c.execute('SELECT count(*) FROM ptm.partition_leases WHERE agent_id IS NOT NULL'
                        ' AND sweep_at <= %s', (now_ms,)).fetchone()[0]
    health = c.execute("SELECT status, value FROM ptm.health() WHERE \"check\" = 'sweep_backlog'").fetchone()
    worker = c.execute("SELECT value FROM ptm.health() WHERE \"check\" = 'worker'").fetchone()
    sweep_interval_s = c.execute("SELECT extract(epoch FROM current_setting('ptm_lease.sweep_interval')::interval)"
                                 "::float8").fetchone()[0]

ms = lambda v: None if v is None else round(v * 1000, 1)
s1 = lambda v: None if v is None else round(v, 1)
held = sum(len(b.leases) + len(b.added) for b in batches)
res = {
    'leases': args.leases, 'agents': agents, 'per_agent': args.per_agent, 'batch': args.batch,
    'ttl_s': args.ttl,
    'period_s': period, 'threads': args.threads, 'takeover_threads': args.takeover_threads, 'warmup_s': args.warmup,
    'measure_s': args.measure, 'expire_pct_per_min': args.expire_pct,
    'setup_s': round(setup_s, 1), 'late_start_s': round(late_start, 1),
    'calls': st['calls'], 'calls_measured': len(st['lat']),
    'calls_per_s': round(len(st['lat']) / args.measure, 1),
    'renew_p50_ms': ms(percentile(st['lat'], 0.50)), 'renew_p99_ms': ms(percentile(st['lat'], 0.99)),
    'renew_max_ms': ms(max(st['lat'], default=None)),
    'due_done_p99_ms': ms(percentile(st['due_done'], 0.99)),
    'due_done_max_ms': ms(max(st['due_done'], default=None)),
    'lost': st['lost'], 'lost_examples': st['lost_examples'], 'busy': st['busy'],
    'call_errors': st['call_errors'], 'call_error_examples': st['call_error_examples'],
    'held_by_agents': held, 'live_in_table': held_live,
    'dropped': st['dropped'], 'takeovers': st['takeovers'],
    'takeover_retries': st['takeover_failures'], 'takeover_examples': st['takeover_examples'],
    'expired_events': st['expired_events'],
    'sweep_lag_p50_s': s1(percentile(st['sweep_lag'], 0.50)),
    'sweep_lag_p99_s': s1(percentile(st['sweep_lag'], 0.99)),
    'oldest_due_max_s': s1(max(st['oldest_due'], default=None)),
    'oldest_due_end_s': s1(st['oldest_due'][-1] if st['oldest_due'] else None),
    'due_at_end': due_end, 'sweep_interval_s': sweep_interval_s,
    'sweep_backlog': health[0] if health else None, 'worker': worker[0] if worker else None,
    'errors': st['errors'][:5], 'settings': settings,
}
res.update(cpu)
# The goal: every lease kept (nothing lost, every renewal done within TTL/10
# of its due time at p99), CPU to spare (the server's processes use under
# 3/4 of the cores; the driver stands for agents on other machines), and a
# sweeper that keeps up: no owned lease waits for its look longer than
# ptm.health()'s sweep_backlog threshold, max(60 s, 10 sweep_intervals),
# since an expired lease waits in the same queue.
res['kept_alive'] = res['lost'] == 0 and not res['errors'] and res['calls_measured'] > 0
res['p99_ok'] = res['due_done_p99_ms'] is not None and res['due_done_p99_ms'] < args.ttl * 100
res['cpu_ok'] = res['server_cores'] is not None and res['server_cores'] < 0.75 * res['cores']
res['sweeper_ok'] = res['sweep_backlog'] == 'ok' and res['oldest_due_max_s'] is not None \
    and res['oldest_due_max_s'] <= max(60, 10 * res['sweep_interval_s'])
res['holds'] = res['kept_alive'] and res['p99_ok'] and res['cpu_ok'] and res['sweeper_ok']
line = json.dumps(res)
print(line)
if args.out:
    with open(args.out, 'a') as f:
        f.write(line + '\n')
