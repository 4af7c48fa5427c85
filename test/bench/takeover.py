#!/usr/bin/python3
"""Takeover latency (test/bench/capacity): from a holder's death to another
agent holding its partition.

A holder is a psql session (a real client process, started anew for each
takeover) that takes a partition with a TTL of --ttl seconds and renews it
every TTL/3 (\\watch).  A standby agent (a thread here, with its own
connections) wants the same partition.  The holder dies at a random moment of
its renewal cycle, in one of three ways (scenarios):

  kill           SIGKILL: the client is gone, its session ends, the lease
                 stays until it expires
  stop           SIGSTOP: the client is frozen between two renewals (its
                 session stays open and idle); the lease expires
  stop_in_fence  SIGSTOP inside a fenced transaction (after check_fence,
                 before COMMIT): the row stays locked past the expiry until the
                 worker ends the holder (ptm_lease.holder_grace after the
                 expiry; docs/leases.md#frozen-holders)

and the standby learns of it in one of four ways (strategies):

  poll         acquire_partition_lease every TTL/3 until 'acquired'
  listen       LISTEN ptm_lease_events, acquire on an 'expired', 'released'
               or 'forced' event of the partition (the sweeper sends
               'expired' when it marks the lease)
  listen_poll  both: wait for an event at most TTL/3, then acquire
  deadline     acquire; on 'conflict' sleep until the expiry that the answer
               names (measured on the database clock: expires_at -
               clock_timestamp(), so no agent's clock matters), at most TTL/3,
               and acquire again

For each (scenario, strategy) cell, --takeovers takeovers, --pairs at a time
(one partition each).  Times: death (the signal), the expiry of the holder's
lease (from its row), and the standby's acquire returning 'acquired'.  One
JSON line per cell: latency from death and after expiry, p50 / p99 / max, in
ms; failures (no takeover within 10 TTL).
"""
import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time

import psycopg

ap = argparse.ArgumentParser()
ap.add_argument('--dbname', default='ptm_capacity')
ap.add_argument('--ttl', type=float, default=2.0)
ap.add_argument('--takeovers', type=int, default=50, help='per cell')
ap.add_argument('--pairs', type=int, default=10, help='holder/standby pairs at a time')
ap.add_argument('--scenarios', default='kill,stop,stop_in_fence')
ap.add_argument('--strategies', default='poll,listen,listen_poll,deadline')
ap.add_argument('--psql', default='psql')
ap.add_argument('--out', help='append the JSON lines to this file')
args = ap.parse_args()
TTL = args.ttl
TTL_SQL = '%g s' % TTL

# The holder: take the lease, say so in application_name's row (the driver
# watches the table), renew every TTL/3.  In the fence variant: no renewals;
# after a random delay, a fenced transaction left open (the client then
# "freezes": psql waits on a shell command, its session idle in transaction).
HOLDER = r"""
\set ON_ERROR_STOP 1
SELECT lease_epoch AS epoch FROM ptm.acquire_partition_lease(:'topic', :p, :'agent', :'ttl')
 WHERE result = 'acquired' \gset
SELECT result FROM ptm.renew_lease(:'topic', :p, :'agent', :epoch, :'ttl') \watch :interval
"""
HOLDER_FENCE = r"""
\set ON_ERROR_STOP 1
SELECT lease_epoch AS epoch FROM ptm.acquire_partition_lease(:'topic', :p, :'agent', :'ttl')
 WHERE result = 'acquired' \gset
SELECT pg_sleep(:delay);
BEGIN;
SELECT ptm.check_fence(:'topic', :p, :epoch);
\! sleep 3600
"""


def connect():
    return psycopg.connect(dbname=args.dbname, autocommit=True, application_name='ptm_takeover')


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(len(v) * q))] * 1000, 1)


ACQUIRE = ("SELECT result, lease_epoch,"
           "       extract(epoch FROM expires_at - clock_timestamp())::float8"
           "  FROM ptm.acquire_partition_lease(%s, %s, %s, %s)")


class Standby:
    """One standby agent for one partition, with its strategy."""

    def __init__(self, topic, part, strategy):
        self.topic, self.part, self.strategy = topic, part, strategy
        self.agent = 'standby-%s-%d' % (topic, part)
        self.conn = connect()
        self.listen = None
        if strategy in ('listen', 'listen_poll'):
            self.listen = connect()
            self.listen.execute('LISTEN ptm_lease_events')

    def acquire(self):
        return self.conn.execute(ACQUIRE, (self.topic, self.part, self.agent, TTL_SQL)).fetchone()

    def event(self, timeout):
        """True when an event says the partition may be free, False on timeout."""
        end = time.time() + timeout
        while True:
            self.listen.pgconn.consume_input()
            while True:
                n = self.listen.pgconn.notifies()
                if n is None:
                    break
                ev = json.loads(n.extra.decode())
                if (ev.get('topic') == self.topic and ev.get('partition_id') == self.part
                        and ev.get('event') in ('expired', 'released', 'forced')):
                    return True
            left = end - time.time()
            if left <= 0:
                return False
            select.select([self.listen.fileno()], [], [], left)

    def drain(self):
        if self.listen:
            self.listen.pgconn.consume_input()
            while self.listen.pgconn.notifies() is not None:
                pass

    def take(self, give_up):
        """Until 'acquired' (returns its time and epoch) or give_up (None)."""
        while time.time() < give_up:
            r = self.acquire()
            if r[0] == 'acquired':
                return time.time(), r[1]
            if r[0] == 'busy':
                continue                # it waited lock_wait_timeout already
            if self.strategy == 'poll':
                time.sleep(TTL / 3)
            elif self.strategy == 'listen':
                self.event(give_up - time.time())
            elif self.strategy == 'listen_poll':
                self.event(TTL / 3)
            else:                       # deadline: until the expiry the answer names
                left = r[2] if r[2] is not None else TTL / 3
                time.sleep(min(max(left, 0) + 0.001, TTL / 3))
        return None

    def release(self, epoch):
        self.conn.execute('SELECT ptm.release_lease(%s, %s, %s, %s)', (self.topic, self.part, self.agent, epoch))

    def close(self):
        self.conn.close()
        if self.listen:
            self.listen.close()


def holder_row(conn, topic, part):
    return conn.execute('SELECT agent_id, lease_epoch, lease_expires_at FROM ptm.partition_leases'
                        ' WHERE topic = %s AND partition_id = %s', (topic, part)).fetchone()


def one_takeover(watch, standby, scenario, topic, part):
    """Start a holder, let the standby begin, make the holder die at a random
    moment of its renewal cycle; returns the times (Unix seconds)."""
    holder_agent = 'holder-%s-%d' % (topic, part)
    fence = scenario == 'stop_in_fence'
    delay = TTL / 3 + random.uniform(0, TTL / 3)
    cmd = [args.psql, '-X', '-q', '-At', '-d', args.dbname, '-v', 'topic=' + topic, '-v', 'p=%d' % part,
           '-v', 'agent=' + holder_agent, '-v', 'ttl=' + TTL_SQL, '-v', 'interval=%g' % (TTL / 3),
           '-v', 'delay=%g' % delay]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ, PGAPPNAME=holder_agent))
    proc.stdin.write((HOLDER_FENCE if fence else HOLDER).encode())
    proc.stdin.close()
    death = {}

    def die():
        """The signal, then the expiry the holder left (no renewal after it)."""
        death['t'] = time.time()
        os.kill(proc.pid, signal.SIGKILL if scenario == 'kill' else signal.SIGSTOP)
        time.sleep(0.05)                # a renewal the signal interrupted has committed
        row = holder_row(watch, topic, part)
        if row and row[0] == holder_agent:
            death['expiry'] = row[2] / 1000.0

    try:
        start = time.time()
        while True:                     # until the holder holds the lease
            row = holder_row(watch, topic, part)
            if row and row[0] == holder_agent:
                break
            if time.time() - start > 5 or proc.poll() is not None:
                return {'error': 'holder did not take the lease'}
            time.sleep(0.005)
        standby.drain()
        if fence:                       # it dies once its fenced transaction is open
            time.sleep(delay)
            while watch.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                                " AND state = 'idle in transaction'", (holder_agent,)).fetchone() is None:
                if time.time() - start > 5 + delay:
                    return {'error': 'holder never opened its fenced transaction'}
                time.sleep(0.01)
            killer = threading.Thread(target=die)
        else:
            killer = threading.Timer(delay, die)
        killer.start()
        # the standby's polls at a phase of their own, not the holder's
        time.sleep(random.uniform(0, TTL / 3))
        got = standby.take(time.time() + delay + 10 * TTL)
        killer.join()
        if got is None:
            return {'error': 'no takeover within 10 TTL'}
        standby.release(got[1])
        if 'expiry' not in death:
            return {'error': 'the holder had lost the lease before it died'}
        return {'death': death['t'], 'expiry': death['expiry'], 'taken': got[0]}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def cell(scenario, strategy):
    topic = 'takeover-%s-%s' % (scenario, strategy)
    with connect() as c:
        c.execute('SELECT ptm.ensure_partitions(%s, %s)', (topic, args.pairs))
    results = []
    lock = threading.Lock()
    todo = [args.takeovers]

    def pair(part):
        with connect() as watch:
            standby = Standby(topic, part, strategy)
            try:
                while True:
                    with lock:
                        if todo[0] == 0:
                            return
                        todo[0] -= 1
                    r = one_takeover(watch, standby, scenario, topic, part)
                    with lock:
                        results.append(r)
            finally:
                standby.close()

    threads = [threading.Thread(target=pair, args=(p,)) for p in range(min(args.pairs, args.takeovers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if 'error' not in r]
    from_death = [r['taken'] - r['death'] for r in ok]
    after_expiry = [r['taken'] - r['expiry'] for r in ok]
    return {
        'scenario': scenario, 'strategy': strategy, 'ttl_s': TTL, 'pairs': args.pairs, 'takeovers': len(ok),
        'failures': len(results) - len(ok),
        'errors': sorted(set(r['error'] for r in results if 'error' in r))[:3],
        'from_death_p50_ms': pct(from_death, 0.5), 'from_death_p99_ms': pct(from_death, 0.99),
        'from_death_max_ms': pct(from_death, 1.0),
        'after_expiry_min_ms': round(min(after_expiry) * 1000, 1) if ok else None,
        'after_expiry_p50_ms': pct(after_expiry, 0.5), 'after_expiry_p99_ms': pct(after_expiry, 0.99),
        'after_expiry_max_ms': pct(after_expiry, 1.0),
    }


with connect() as c:
    settings = dict(c.execute(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name IN"
        " ('ptm_lease.sweep_interval', 'ptm_lease.holder_grace', 'ptm_lease.lock_wait_timeout',"
        "  'ptm_lease.notify_owner_changes')").fetchall())
for scenario in args.scenarios.split(','):
    for strategy in args.strategies.split(','):
        res = cell(scenario, strategy)
        res['settings'] = settings
        line = json.dumps(res)
        print(line, flush=True)
        if args.out:
            with open(args.out, 'a') as f:
                f.write(line + '\n')
