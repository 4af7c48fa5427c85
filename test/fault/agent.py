#!/usr/bin/python3
"""A real ptm_lease agent for the fault-injection suite (docs/faults.md).

One process, one connection (direct, or through PgBouncer in transaction
mode): it acquires partitions of a topic, renews each every TTL/3 and writes
fenced rows into its own table fault.writes_<agent>, one transaction per row:

    BEGIN; SELECT ptm.check_fence(topic, p, epoch); INSERT ...; COMMIT;

Every event goes to a JSON-lines log for test/fault/checker.py, with the
client's wall clock ("t", Unix seconds): acquire, lose, write (after COMMIT
returned), write_unknown (COMMIT's outcome unknown), busy, disconnect,
connect, error, pause.

Acquisitions are recorded in fault.acquisitions by the same statement that
calls acquire_partition_lease, so the row's xmin is the transaction that
raised the epoch: the checker orders it against the writes by commit time.

If the file --pause-marker exists, the agent removes it and stops itself
(SIGSTOP) right after an INSERT, before COMMIT: a client frozen inside a
fenced transaction.  Connection losses (server crash, failover,
pg_terminate_backend, PgBouncer) are retried with backoff; the connection
string is re-read from --dsn-file on every reconnect, so the driver can point
the agents at a new primary.
"""
import argparse
import json
import os
import random
import signal
import sys
import time

import psycopg
from psycopg import errors

ap = argparse.ArgumentParser()
ap.add_argument('--agent', required=True)
ap.add_argument('--dsn', help='libpq conninfo (several hosts allowed)')
ap.add_argument('--dsn-file', help='file holding the conninfo, re-read on every reconnect')
ap.add_argument('--pgbouncer', action='store_true', help='connected through PgBouncer (transaction mode): no prepared statements')
ap.add_argument('--topic', default='faults')
ap.add_argument('--partitions', type=int, default=8)
ap.add_argument('--max-partitions', type=int, default=4)
ap.add_argument('--ttl', type=float, default=2.0, help='lease TTL, seconds')
ap.add_argument('--retry', type=float, default=0.25, help='seconds between acquisition rounds')
ap.add_argument('--write-interval', type=float, default=0.05)
ap.add_argument('--log', required=True)
ap.add_argument('--pause-marker')
args = ap.parse_args()

TABLE = 'fault.writes_' + args.agent.replace('-', '_')
logf = open(args.log, 'a', buffering=1)


def log(ev, **kw):
    kw.update(ev=ev, agent=args.agent, t=time.time())
    logf.write(json.dumps(kw) + '\n')


held = {}          # partition -> {'epoch', 'deadline' (monotonic), 'renew_at'}
seq = 0
conn = None
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def lose(p, why):
    h = held.pop(p, None)
    if h:
        log('lose', partition=p, epoch=h['epoch'], why=why)


def conninfo():
    if args.dsn_file:
        with open(args.dsn_file) as f:
            return f.read().strip()
    return args.dsn


def connect():
    """Connect, retrying with backoff (0.1 s doubling to 1 s) until it works."""
    global conn
    delay = 0.1
    while not stop:
        try:
            conn = psycopg.connect(conninfo(), autocommit=True, connect_timeout=3,
                                   application_name=args.agent)
            # PgBouncer in transaction mode cannot keep named prepared statements.
            conn.prepare_threshold = None if args.pgbouncer else 5
            conn.execute(f'CREATE TABLE IF NOT EXISTS {TABLE} (LIKE fault.writes INCLUDING ALL)')
            log('connect')
            return
        except psycopg.Error as e:
            conn = None
            log('connect_failed', error=str(e).strip()[:200])
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def broken():
    return conn is None or conn.closed or conn.broken


def drop_conn(e):
    global conn
    log('disconnect', error=type(e).__name__, msg=str(e).strip()[:200])
    try:
        conn.close()
    except Exception:
        pass
    conn = None


def granted(p, epoch):
    now = time.monotonic()
    held[p] = {'epoch': epoch, 'deadline': now + args.ttl, 'renew_at': now + args.ttl / 3}


def acquire(p):
    r = conn.execute(
        """WITH a AS (SELECT * FROM ptm.acquire_partition_lease(%(t)s, %(p)s, %(a)s, make_interval(secs => %(ttl)s))),
                i AS (INSERT INTO fault.acquisitions (topic, partition_id, agent_id, epoch)
                      SELECT topic, partition_id, agent_id, lease_epoch FROM a WHERE result = 'acquired')
           SELECT result, lease_epoch, agent_id FROM a""",
        {'t': args.topic, 'p': p, 'a': args.agent, 'ttl': args.ttl}).fetchone()
    result, epoch, owner = r
    if result in ('acquired', 'held'):
        # held: we owned it already (e.g. an acquire whose answer was lost)
        granted(p, epoch)
        log('acquire', partition=p, epoch=epoch, result=result)
    elif result == 'busy':
        log('busy', call='acquire', partition=p)
    elif result not in ('conflict', 'limited'):
        log('error', call='acquire', partition=p, result=result)


def renew(p):
    h = held[p]
    t0 = time.monotonic()
    result, = conn.execute(
        'SELECT result FROM ptm.renew_lease(%s, %s, %s, %s, make_interval(secs => %s))',
        (args.topic, p, args.agent, h['epoch'], args.ttl)).fetchone()
    if result == 'renewed':
        h['deadline'] = t0 + args.ttl
        h['renew_at'] = t0 + args.ttl / 3
    elif result == 'busy':
        log('busy', call='renew', partition=p)   # nothing changed: try again next round
    else:                                         # stale_epoch, not_owner, expired
        lose(p, result)


def write(p):
    global seq
    h = held[p]
    seq += 1
    paused = False
    try:
        with conn.transaction():
            conn.execute('SELECT ptm.check_fence(%s, %s, %s)', (args.topic, p, h['epoch']))
            wid, = conn.execute(
                f"""INSERT INTO {TABLE} (topic, partition_id, agent_id, epoch, seq, written_at)
                    VALUES (%s, %s, %s, %s, %s, clock_timestamp()) RETURNING id""",
                (args.topic, p, args.agent, h['epoch'], seq)).fetchone()
            if args.pause_marker and os.path.exists(args.pause_marker):
                os.unlink(args.pause_marker)
                log('pause', partition=p, epoch=h['epoch'], id=wid)
                paused = True
                os.kill(os.getpid(), signal.SIGSTOP)    # frozen inside the fenced transaction
    except errors.LockNotAvailable:               # 55P03: row held by another transaction
        log('busy', call='check_fence', partition=p)
        return
    except psycopg.Error as e:
        if e.sqlstate == 'PTM01':
            lose(p, 'fence')
            return
        if broken() or isinstance(e, psycopg.OperationalError):
            # COMMIT (or the statement) got no answer: it may or may not have committed
            log('write_unknown', partition=p, epoch=h['epoch'], seq=seq, paused=paused)
        raise
    log('write', partition=p, epoch=h['epoch'], seq=seq, id=wid)


def step():
    now = time.monotonic()
    for p in list(held):
        if now >= held[p]['deadline']:
            lose(p, 'local_expiry')     # renewals failed for a whole TTL
    for p in list(held):
        if time.monotonic() >= held[p]['renew_at']:
            renew(p)
    if len(held) < args.max_partitions and time.monotonic() >= step.next_acquire:
        step.next_acquire = time.monotonic() + args.retry
        start = random.randrange(args.partitions)
        for i in range(args.partitions):
            p = (start + i) % args.partitions
            if len(held) >= args.max_partitions:
                break
            if p not in held:
                acquire(p)
    for p in list(held):
        if p in held:
            write(p)


step.next_acquire = 0.0


def main():
    log('start', pid=os.getpid(), pgbouncer=args.pgbouncer)
    while not stop:
        if broken():
            connect()
            continue
        try:
            step()
        except psycopg.Error as e:
            if broken() or isinstance(e, psycopg.OperationalError):
                drop_conn(e)
                time.sleep(0.1)
            else:   # e.g. 25006 on a standby behind PgBouncer: log, back off, go on
                log('error', sqlstate=e.sqlstate, msg=str(e).strip()[:200])
                time.sleep(0.2)
            continue
        time.sleep(args.write_interval)
    # graceful stop: release what we hold so nobody waits for the TTL
    for p, h in list(held.items()):
        try:
            conn.execute('SELECT ptm.release_lease(%s, %s, %s, %s)', (args.topic, p, args.agent, h['epoch']))
            lose(p, 'released')
        except Exception:
            break
    log('exit')


main()
