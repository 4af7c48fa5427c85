#!/usr/bin/python3
"""Agents that call ptm_lease through a connection pooler (test/t/114_pooler_clients.pl).

The connection comes from a connect(dsn) function read from --connect (the
test takes it from docs/poolers.md, or writes psycopg's defaults): the client
runs what a reader of the docs would. --clients connections take turns, one
call each, in one process, so their transactions share the pooler's server
connections. Each client, in turn:

    acquire_partition_lease, renew_lease,
    BEGIN; check_fence; INSERT INTO pooled_writes ...; COMMIT;   (a fenced write)
    get_state, try_commit                                         (a reducer step)

and again, until --calls ptm function calls have been made. The last line of
stdout is one JSON object: {"calls": n, "backends": [server pids the fenced
writes ran on], "error": null} or, at the first error, the call that failed
with the error's class, SQLSTATE and message; the exit status is 1 then.
"""
import argparse
import json
import sys

import psycopg

ap = argparse.ArgumentParser()
ap.add_argument('--connect', required=True, help='Python file defining connect(dsn)')
ap.add_argument('--dsn', required=True)
ap.add_argument('--clients', type=int, default=3)
ap.add_argument('--calls', type=int, default=120)
ap.add_argument('--topic', default='pooled')
args = ap.parse_args()

ns = {}
with open(args.connect) as f:
    exec(compile(f.read(), args.connect, 'exec'), ns)
conns = [ns['connect'](args.dsn) for _ in range(args.clients)]

calls = 0
backends = set()
epochs = {}


def call(conn, sql, params):
    """One ptm function call; its first row."""
    global calls
    calls += 1
    return conn.execute(sql, params).fetchone()


def turn(k, conn):
    agent = f'pool-agent-{k}'
    row = call(conn, 'SELECT result, lease_epoch FROM ptm.acquire_partition_lease(%s, %s, %s, %s)',
               (args.topic, k, agent, '30 s'))
    assert row[0] in ('acquired', 'held'), row
    epochs[k] = row[1]
    row = call(conn, 'SELECT result FROM ptm.renew_lease(%s, %s, %s, %s, %s)',
               (args.topic, k, agent, epochs[k], '30 s'))
    assert row[0] == 'renewed', row
    with conn.transaction():
        call(conn, 'SELECT ptm.check_fence(%s, %s, %s)', (args.topic, k, epochs[k]))
        row = conn.execute('INSERT INTO pooled_writes (partition_id, epoch, backend) '
                           'VALUES (%s, %s, pg_backend_pid()) RETURNING backend', (k, epochs[k])).fetchone()
        backends.add(row[0])
    key = f'pool-wf-{k}'
    version, state = call(conn, 'SELECT version, state FROM ptm.get_state(%s)', (key,))
    state = dict(state or {}, n=(state or {}).get('n', 0) + 1)
    row = call(conn, 'SELECT result FROM ptm.try_commit(%s, %s, %s)', (key, version, json.dumps(state)))
    assert row[0] == 'ok', row


error = None
try:
    while calls < args.calls:
        for k, conn in enumerate(conns):
            turn(k, conn)
except psycopg.Error as e:
    error = {'call': calls, 'class': type(e).__name__, 'sqlstate': e.sqlstate,
             'message': str(e).strip().splitlines()[0]}
print(json.dumps({'calls': calls if error is None else calls - 1, 'backends': sorted(backends),
                  'error': error}))
sys.exit(1 if error else 0)
