#!/usr/bin/python3
"""Differential test: the C fast path (src/row_access.c) against the SQL path.

Two databases of one cluster, A and B, get the same scenario: the extension
created afresh and the same DBA change applied to its tables.  Three
sessions per database run ONE seeded random sequence of lease and commit
calls in lockstep: step i runs on A's session k, then on B's session k.  A's
sessions run with ptm_lease.direct_row_access = on (renew_lease,
release_lease, the first read and the take of acquire_partition_lease, a
plain try_commit, the UPDATE of a fenced or deduplicated try_commit,
claim_step and the lease fence go through C), B's with it off (every call
runs its SQL).  Each step's outcome
must be the same in both: the result row without its time-dependent fields
(or the error's SQLSTATE and primary message), the transaction status, and
what the step left behind: the rows held locked (pgrowlocks) and the TOAST
chunks the tables reference.  At the end of the scenario so must the
tables' contents (timestamps and expiry milliseconds compared by NULL-ness
only), the scenario's side tables, the epoch sequence, the TOAST chunk
counts after VACUUM and, where the scenario has a logical slot, the decoded
changes.

    diff.py CONNINFO_A CONNINFO_B SEED STEPS [SCENARIO]

prints one line per scenario, "ok NAME: ..." or "FAIL NAME: ...", the first
difference with the history of steps before it, and exits 1 if any scenario
failed (2: the harness could not run, e.g. the setting does not exist).

    diff.py --list

prints the scenario names, one a line.

    diff.py ... --self-test outcome|table

runs both databases with the setting on (so the paths cannot differ), then
corrupts one outcome of database B (or adds one row to B's tables) on
purpose: the harness must then report that difference and exit non-zero.

The sessions never wait for each other: ptm_lease.lock_wait_timeout = 0
makes a lease call answer busy at once for a row another session holds, and
lock_timeout = 50ms makes a try_commit behind a held row fail with 55P03.
"""
import argparse
import datetime
import json
import random
import re
import sys
import time
import zlib
from dataclasses import dataclass, field

import psycopg
from psycopg import sql as pgsql

TOPICS = ('t0', 't1')
PARTITIONS = (0, 1, 2)
AGENTS = ('a0', 'a1', 'a2')
WORKFLOWS = ('w0', 'w1', 'w2', 'w3')
SESSIONS = 3
# (ttl, weight): nothing expires by time during a run; in the check
# scenario a TTL over 60 s breaks the DBA's cap (23514)
TTLS = (('30 s', 35), ('45 s', 30), ('50 s', 15), ('90 s', 10), ('2 min', 10))
# ... but for an acquisition now and then, which expires at once: the step
# sleeps past it in each database (run_step), so that the lease's renewals,
# releases, sweep and takeover meet an expired lease in both
EXPIRING_TTL = '1 ms'
EXPIRING_SLEEP_S = 0.005
# Unix-ms columns that hold a time: compared by NULL-ness only
MS_COLUMNS = {'lease_expires_at', 'sweep_at', 'claim_expires_at'}
TIME_TYPES = {'timestamp with time zone', 'timestamp without time zone', 'date'}
SLOT_PREFIX = 'ptm_diff_'


# --- scenarios: the DBA's change, applied identically to both databases ----

DBA_LOG = [
    "CREATE TABLE public.dba_log (id bigserial PRIMARY KEY, tbl text, kind text, key text)",
    """CREATE FUNCTION public.dba_log_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO public.dba_log (tbl, kind, key) VALUES (TG_TABLE_NAME, 'stmt', NULL);
         RETURN NULL;
       END $$""",
    """CREATE FUNCTION public.dba_log_row() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE r jsonb := pg_catalog.to_jsonb(NEW);
       BEGIN
         INSERT INTO public.dba_log (tbl, kind, key)
         VALUES (TG_TABLE_NAME, 'row',
                 coalesce(r->>'workflow_key', (r->>'topic') || '/' || (r->>'partition_id')));
         RETURN NULL;
       END $$""",
]


# compared as one sequence per database, ordered by id; the id values
# themselves are left out (a sequence value taken by a statement that failed
# is nothing the two paths must agree on)
DBA_LOG_TABLE = ('public.dba_log', 'id', ('id',))


def stmt_triggers():
    return [f"CREATE TRIGGER dba_log_stmt AFTER UPDATE ON ptm.{t} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION public.dba_log_stmt()"
            for t in ('partition_leases', 'workflow_state')]


def row_triggers():
    return [f"CREATE TRIGGER dba_log_row AFTER UPDATE ON ptm.{t} "
            f"FOR EACH ROW EXECUTE FUNCTION public.dba_log_row()"
            for t in ('partition_leases', 'workflow_state')]


PAD = "repeat('p', 200000)"   # ~200 kB, stored out of line, uncompressed (EXTERNAL)


def dropped_column():
    sql = []
    for t in ('partition_leases', 'workflow_state'):
        sql += [f"ALTER TABLE ptm.{t} ADD COLUMN pad text",
                f"ALTER TABLE ptm.{t} ALTER COLUMN pad SET STORAGE EXTERNAL"]
    # the guard trigger ptm._refuse_direct_dml refuses hand-written UPDATEs;
    # as the isolation specs do, a superuser passes it in replica mode
    sql += ["SET session_replication_role = replica"]
    sql += [f"UPDATE ptm.{t} SET pad = {PAD}" for t in ('partition_leases', 'workflow_state')]
    sql += ["RESET session_replication_role"]
    sql += [f"ALTER TABLE ptm.{t} DROP COLUMN pad" for t in ('partition_leases', 'workflow_state')]
    return sql


@dataclass
class Scenario:
    name: str
    ddl: list
    side_tables: list = field(default_factory=list)   # (table, ORDER BY, columns left out)
    prefill: bool = False      # every partition acquired, every workflow created before the DDL
    slot: bool = False         # a logical slot (test_decoding) right after the DDL
    min_server: int = 0


SCENARIOS = [
    Scenario('stock', []),
    Scenario('check', [
        "ALTER TABLE ptm.partition_leases ADD CONSTRAINT ttl_cap CHECK "
        "(lease_expires_at <= (extract(epoch FROM renewed_at)*1000)::bigint + 60000) NOT VALID",
        # refuses every release of partition 2 (a release writes state, sweep_at, ended_at)
        "ALTER TABLE ptm.partition_leases ADD CONSTRAINT keep_p2 CHECK "
        "(state <> 'released' OR partition_id <> 2)",
        "ALTER TABLE ptm.workflow_state ADD CONSTRAINT has_n CHECK (state ? 'n')",
    ]),
    Scenario('triggers', DBA_LOG + stmt_triggers() + row_triggers(),
             side_tables=[DBA_LOG_TABLE]),
    Scenario('stmt_trigger_only', DBA_LOG + stmt_triggers(),
             side_tables=[DBA_LOG_TABLE]),
    Scenario('publication_no_identity', [
        "CREATE PUBLICATION pub_diff FOR TABLE ptm.workflow_state, ptm.partition_leases",
        "ALTER TABLE ptm.workflow_state REPLICA IDENTITY NOTHING",
    ]),
    # every update of a lease refused (55000), even one whose WHERE clause
    # matches no row; new leases are inserted
    Scenario('publication_no_identity_leases', [
        "CREATE PUBLICATION pub_diff FOR TABLE ptm.partition_leases",
        "ALTER TABLE ptm.partition_leases REPLICA IDENTITY NOTHING",
    ]),
    Scenario('publication_row_filter', [
        "CREATE PUBLICATION pub_diff FOR TABLE ptm.workflow_state WHERE (version > 0)",
    ], min_server=150000),
    Scenario('publication_ok', [
        "CREATE PUBLICATION pub_diff FOR TABLE ptm.workflow_state, ptm.partition_leases",
    ], slot=True),
    Scenario('dropped_column', dropped_column(), prefill=True),
    Scenario('added_column_default', [
        "ALTER TABLE ptm.partition_leases ADD COLUMN note text DEFAULT 'n'",
        "ALTER TABLE ptm.workflow_state ADD COLUMN seq bigint DEFAULT 7",
    ]),
    Scenario('changed_type', [
        "ALTER TABLE ptm.workflow_state ALTER COLUMN state TYPE json USING state::json",
    ]),
    Scenario('changed_type_numeric', [
        "ALTER TABLE ptm.workflow_state ALTER COLUMN version TYPE numeric",
    ]),
    Scenario('row_security', [
        "ALTER TABLE ptm.partition_leases ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE ptm.workflow_state ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY diff_all ON ptm.partition_leases USING (true) WITH CHECK (true)",
        "CREATE POLICY diff_all ON ptm.workflow_state USING (true) WITH CHECK (true)",
    ]),
]

CLEANUP = [
    "DROP EXTENSION IF EXISTS ptm_lease CASCADE",
    "DROP PUBLICATION IF EXISTS pub_diff",
    "DROP TABLE IF EXISTS public.dba_log",
    "DROP FUNCTION IF EXISTS public.dba_log_stmt(), public.dba_log_row()",
]

# The tables compared at the end: (table, ORDER BY, columns left out).
PTM_TABLES = [
    ('ptm.partition_leases', 'topic, partition_id', ()),
    ('ptm.workflow_state', 'workflow_key', ()),
    ('ptm.lease_audit', 'audit_id', ()),
    ('ptm.action_dedup_log', 'workflow_key, action_id', ()),
]
TOAST_TABLES = ('ptm.partition_leases', 'ptm.workflow_state')
# Row locks compared after every step (pgrowlocks): (table, key expression);
# the key is NULL for a row the admin's snapshot does not see.
LOCK_STRENGTH = ('Key Share', 'Share', 'No Key Update', 'Update')
LOCKED_TABLES = [
    ('ptm.partition_leases', "t.topic || '/' || t.partition_id"),
    ('ptm.workflow_state', 't.workflow_key'),
]


class HarnessError(Exception):
    """The harness itself cannot run (not a difference between the paths)."""


# --- steps ------------------------------------------------------------------

@dataclass
class Step:
    i: int
    session: int
    kind: str
    text: str                  # what is printed: the call with its arguments
    sql: str = ''
    params: tuple = ()
    args: dict = field(default_factory=dict)   # for the model


def call(i, session, kind, fn, sql_args, params, **args):
    """A step calling ptm.fn; sql_args is the argument list with %s placeholders."""
    shown = ', '.join(repr(shorten(p)) for p in params)
    return Step(i, session, kind, f"{fn}({shown})",
                f"SELECT * FROM ptm.{fn}({sql_args})", tuple(params), args)


def tx_step(i, session, kind):
    return Step(i, session, kind, kind.upper(), kind.upper())


class Model:
    """What the clients know, learnt from database A's outcomes: owners,
    the epochs each agent got, workflow versions, open transactions."""

    def __init__(self):
        self.owner = {}          # (topic, partition) -> agent or None
        self.latest = {}         # (topic, partition) -> last epoch seen
        self.epoch = {}          # (agent, topic, partition) -> epoch that agent got
        self.version = {}        # workflow -> last version seen
        self.in_tx = [False] * SESSIONS

    def learn(self, step, outcome):
        # an error inside a transaction was rolled back (INERROR, then idle)
        self.in_tx[step.session] = outcome.get('tx') == 'INTRANS'
        for row in outcome.get('rows') or ():
            self.learn_row(step, row)

    def learn_row(self, step, row):
        if 'lease_epoch' in row and row.get('topic') is not None:
            key = (row['topic'], row['partition_id'])
            if row['lease_epoch'] is not None:
                self.latest[key] = row['lease_epoch']
            self.owner[key] = row['agent_id']
            if row['agent_id'] is not None and row['result'] in ('acquired', 'held', 'renewed'):
                self.epoch[(row['agent_id'],) + key] = row['lease_epoch']
        if step.kind in ('try_commit', 'try_commit_action', 'try_commit_fenced'):
            if row.get('result') in ('ok', 'cas_conflict') and row.get('version') is not None:
                self.version[step.args['workflow']] = row['version']
        if step.kind == 'get_state' and row.get('version') is not None:
            self.version[step.args['workflow']] = row['version']


class Generator:
    """One seeded random sequence of steps; arguments drawn from the model."""

    OPS = (('acquire', 12), ('renew', 16), ('release', 6), ('force_expire', 4),
           ('check_fence', 8), ('try_commit', 18), ('try_commit_action', 4),
           ('try_commit_fenced', 4), ('get_state', 4), ('claim_step', 8),
           ('ensure_partitions', 1), ('sweep', 2))

    def __init__(self, rng, model):
        self.rng = rng
        self.m = model

    def pick(self, weighted):
        items, weights = zip(*weighted)
        return self.rng.choices(items, weights)[0]

    def next(self, i):
        s = self.rng.randrange(SESSIONS)
        if self.m.in_tx[s]:
            kind = self.pick((('commit', 14), ('rollback', 5)) + self.OPS)
        else:
            kind = self.pick((('begin', 12),) + self.OPS)
        if kind in ('begin', 'commit', 'rollback'):
            return tx_step(i, s, kind)
        return getattr(self, 'gen_' + kind)(i, s)

    # arguments
    def partition(self):
        return self.rng.choice(TOPICS), self.rng.choice(PARTITIONS)

    def ttl(self):
        return self.pick(TTLS)

    def off_by_one(self, value):
        """A wrong value; now and then 0, which the argument checks refuse."""
        if self.rng.random() < 0.1:
            return 0
        return max(1, value + self.rng.choice((-1, 1)))

    def agent_epoch(self, agent, topic, part):
        """Usually the last epoch this agent got for the partition,
        sometimes the latest one anyone saw, sometimes a wrong one."""
        mine = self.m.epoch.get((agent, topic, part))
        latest = self.m.latest.get((topic, part), 1)
        r = self.rng.random()
        if mine is not None and r < 0.75:
            return mine
        if r < 0.9:
            return latest
        return self.off_by_one(mine if mine is not None else latest)

    def fence_epoch(self, topic, part):
        latest = self.m.latest.get((topic, part), 1)
        return latest if self.rng.random() < 0.8 else self.off_by_one(latest)

    def owner_or_any(self, topic, part):
        owner = self.m.owner.get((topic, part))
        return owner if owner is not None and self.rng.random() < 0.7 else self.rng.choice(AGENTS)

    def expected_version(self, wf):
        known = self.m.version.get(wf, 0)
        r = self.rng.random()
        if r < 0.8:
            return known
        if r < 0.9:
            return 0
        return self.off_by_one(known)

    def new_state(self, i):
        r = self.rng.random()
        if r < 0.08:
            return {'m': 1}                       # no key "n": the check scenario refuses it
        if r < 0.13:                              # large: stored in the TOAST table
            return {'n': i, 'blob': '%x' % self.rng.getrandbits(4 * 6000)}
        return {'n': i, 'step': i}

    # the calls
    def gen_acquire(self, i, s):
        t, p = self.partition()
        expiring = self.rng.random() < 0.12
        return call(i, s, 'acquire', 'acquire_partition_lease', '%s::text, %s::int, %s::text, %s::interval',
                    (t, p, self.rng.choice(AGENTS), EXPIRING_TTL if expiring else self.ttl()),
                    expiring=expiring)

    def gen_ensure_partitions(self, i, s):
        """Free rows (state 'free', never owned): their first acquisition
        is a take of the existing row, not an insert."""
        return call(i, s, 'ensure_partitions', 'ensure_partitions', '%s::text, %s::int',
                    (self.rng.choice(TOPICS), len(PARTITIONS)))

    def gen_sweep(self, i, s):
        """The worker's sweep by hand: expired leases marked expired, freed."""
        return call(i, s, 'sweep', 'sweep_expired_leases', '', ())

    def gen_renew(self, i, s):
        t, p = self.partition()
        a = self.owner_or_any(t, p)
        return call(i, s, 'renew', 'renew_lease', '%s::text, %s::int, %s::text, %s::bigint, %s::interval',
                    (t, p, a, self.agent_epoch(a, t, p), self.ttl()))

    def gen_release(self, i, s):
        t, p = self.partition()
        a = self.owner_or_any(t, p)
        return call(i, s, 'release', 'release_lease', '%s::text, %s::int, %s::text, %s::bigint',
                    (t, p, a, self.agent_epoch(a, t, p)))

    def gen_force_expire(self, i, s):
        t, p = self.partition()
        r = self.rng.random()
        if r < 0.6:
            return call(i, s, 'force_expire', 'force_expire', '%s::text, %s::int, %s::text',
                        (t, p, f'diff step {i}'))
        if r < 0.8:
            return call(i, s, 'force_expire', 'force_expire', '%s::text, %s::int, %s::text, agent_id => %s::text',
                        (t, p, f'diff step {i}', self.owner_or_any(t, p)))
        return call(i, s, 'force_expire', 'force_expire', '%s::text, %s::int, %s::text, lease_epoch => %s::bigint',
                    (t, p, f'diff step {i}', self.fence_epoch(t, p)))

    def gen_check_fence(self, i, s):
        t, p = self.partition()
        return call(i, s, 'check_fence', 'check_fence', '%s::text, %s::int, %s::bigint',
                    (t, p, self.fence_epoch(t, p)))

    def commit_args(self, i):
        wf = self.rng.choice(WORKFLOWS)
        return wf, self.expected_version(wf), json.dumps(self.new_state(i))

    def gen_try_commit(self, i, s):
        wf, v, st = self.commit_args(i)
        return call(i, s, 'try_commit', 'try_commit', '%s::text, %s::bigint, %s::jsonb',
                    (wf, v, st), workflow=wf)

    def gen_try_commit_action(self, i, s):
        wf, v, st = self.commit_args(i)
        action = f'act-{self.rng.randrange(5)}'
        return call(i, s, 'try_commit_action', 'try_commit',
                    '%s::text, %s::bigint, %s::jsonb, action_id => %s::text',
                    (wf, v, st, action), workflow=wf)

    def gen_try_commit_fenced(self, i, s):
        wf, v, st = self.commit_args(i)
        t, p = self.partition()
        return call(i, s, 'try_commit_fenced', 'try_commit',
                    '%s::text, %s::bigint, %s::jsonb, fence_topic => %s::text, '
                    'fence_partition => %s::int, fence_epoch => %s::bigint',
                    (wf, v, st, t, p, self.fence_epoch(t, p)), workflow=wf)

    def gen_claim_step(self, i, s):
        """Usually the workflow's current step, sometimes one off; one of
        the agents as worker, so that claims collide and are extended."""
        wf = self.rng.choice(WORKFLOWS)
        known = self.m.version.get(wf, 0)
        step = known if self.rng.random() < 0.8 else max(0, known + self.rng.choice((-1, 1)))
        return call(i, s, 'claim_step', 'claim_step', '%s::text, %s::bigint, %s::text, %s::interval',
                    (wf, step, self.rng.choice(AGENTS), self.ttl()), workflow=wf)

    def gen_get_state(self, i, s):
        wf = self.rng.choice(WORKFLOWS)
        return call(i, s, 'get_state', 'get_state', '%s::text', (wf,), workflow=wf)


def prefill_steps():
    """Every partition acquired (2 min) and every workflow created: rows for
    the dropped_column scenario to pad before the DDL."""
    steps = []
    for t in TOPICS:
        for p in PARTITIONS:
            steps.append(call(-len(steps) - 1, 0, 'acquire', 'acquire_partition_lease',
                              '%s::text, %s::int, %s::text, %s::interval',
                              (t, p, AGENTS[(p + TOPICS.index(t)) % len(AGENTS)], '2 min')))
    for wf in WORKFLOWS:
        steps.append(call(-len(steps) - 1, 0, 'try_commit', 'try_commit', '%s::text, %s::bigint, %s::jsonb',
                          (wf, 0, json.dumps({'n': 0})), workflow=wf))
    return steps


# --- execution ----------------------------------------------------------------

def normalize(value):
    """A value as compared: times only by NULL-ness."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return '<time>'
    return value


class Session:
    def __init__(self, conninfo, direct, n):
        self.conn = psycopg.connect(conninfo, autocommit=True, application_name=f'ptm-diff-{n}')
        self.direct = direct
        for name, value in (('ptm_lease.direct_row_access', 'on' if direct else 'off'),
                            ('ptm_lease.lock_wait_timeout', '0'),
                            ('lock_timeout', '50ms')):
            try:
                self.conn.execute(f"SET {name} = '{value}'")
                shown = self.conn.execute(f"SHOW {name}").fetchone()[0]
            except psycopg.Error as e:
                raise HarnessError(f"SET {name} = {value} failed: {e.sqlstate} {e}")
            if shown != value:
                raise HarnessError(f"SET {name} = {value} did not take: SHOW says {shown}")

    def run(self, step):
        """The step's outcome: rows (as dicts) or the error, and the
        transaction status after it.  An error inside a transaction rolls it
        back (also part of the outcome)."""
        out = {}
        try:
            cur = self.conn.execute(step.sql, step.params)
            if cur.description is not None:
                names = [c.name for c in cur.description]
                out['rows'] = [{n: normalize(v) for n, v in zip(names, row)} for row in cur.fetchall()]
        except psycopg.Error as e:
            out['error'] = [e.sqlstate, (e.diag.message_primary if e.diag else None) or str(e).strip()]
        status = self.conn.info.transaction_status
        out['tx'] = status.name
        if self.conn.closed or self.conn.broken:
            out['tx'] = 'UNKNOWN'
        elif status == psycopg.pq.TransactionStatus.INERROR:
            self.conn.execute("ROLLBACK")
            out['rolled_back'] = True
        return out

    def close(self):
        try:
            self.conn.close()
        except psycopg.Error:
            pass


def shorten(value):
    """Long strings (large states) abbreviated for printing."""
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:24]}...<{len(value)} chars, crc {zlib.crc32(value.encode()):08x}>"
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shorten(v) for v in value]
    return value


def show(outcome):
    if outcome is None:
        return '(not run)'
    parts = []
    if 'error' in outcome:
        parts.append('ERROR %s %s' % tuple(outcome['error']))
    for row in outcome.get('rows') or ():
        parts.append(json.dumps(shorten(row), default=str, sort_keys=True))
    if outcome.get('rows') == []:
        parts.append('(no rows)')
    parts.append('[%s%s]' % (outcome.get('tx', '?'), ', rolled back' if outcome.get('rolled_back') else ''))
    if any(outcome.get('toast') or ()):
        parts.append('toast chunks: ' + '/'.join(map(str, outcome['toast'])))
    if outcome.get('locks'):
        parts.append('locks: ' + ', '.join(f"{t} {k} {m}" for t, k, m in outcome['locks']))
    return ' '.join(parts)


def canon(outcome):
    return json.dumps(outcome, default=str, sort_keys=True)


class Difference(Exception):
    pass


def difference_report(what, history, step=None, outcomes=()):
    """What differs, then every step before it (one line each)."""
    lines = [f"first difference at {what}"]
    if step is not None:
        lines.append(f"  step {step.i} session {step.session}: {step.text}")
        for db, outcome in outcomes:
            name = f"{db.label} (direct {'on' if db.direct else 'off'}):"
            lines.append(f"    {name:16s} {show(outcome)}")
    lines.append(f"  history ({len(history)} steps before it, outcomes of A = B):")
    for st, out in history:
        lines.append(f"    {st.i:4d} s{st.session} {st.text} -> {show(out)}")
    return '\n'.join(lines)


# --- the tables at the end -----------------------------------------------------

def table_query(conn, table, order_by, left_out=()):
    """SELECT of every column: times and expiry ms by NULL-ness, the rest as
    text (so a changed type compares by its text); for partition_leases also
    the live TTL in seconds (expiry minus the last acquire or renewal)."""
    cols = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,)).fetchall()
    exprs = []
    for name, typ in cols:
        if name in left_out:
            continue
        q = pgsql.Identifier(name).as_string(conn)
        if typ in TIME_TYPES or name in MS_COLUMNS:
            exprs.append(f"({q} IS NULL) AS {q}")
        else:
            exprs.append(f"{q}::text AS {q}")
    if table == 'ptm.partition_leases':
        exprs.append("CASE WHEN agent_id IS NOT NULL THEN round((lease_expires_at - "
                     "extract(epoch FROM greatest(acquired_at, renewed_at)) * 1000) / 1000.0) END AS ttl_s")
    return f"SELECT {', '.join(exprs)} FROM {table} ORDER BY {order_by}"


def read_table(conn, table, order_by, left_out=()):
    cur = conn.execute(table_query(conn, table, order_by, left_out))
    names = [c.name for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def toast_table(conn, table):
    return conn.execute("SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = %s::regclass",
                        (table,)).fetchone()[0]


def toast_chunks(conn, table):
    return conn.execute(f"SELECT count(*) FROM {toast_table(conn, table)}").fetchone()[0]


def slot_name(conn):
    return SLOT_PREFIX + conn.info.dbname


TS_VALUE = re.compile(r"(\w+)\[(timestamp with time zone|timestamp without time zone)\]:('[^']*'|null)")
MS_VALUE = re.compile(r"\b(%s)\[bigint\]:(-?\d+)" % '|'.join(sorted(MS_COLUMNS)))


def decoded_changes(conn):
    rows = conn.execute("SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL)",
                        (slot_name(conn),)).fetchall()
    out = []
    for (data,) in rows:
        if not data.startswith('table '):
            continue
        data = TS_VALUE.sub(lambda m: f"{m.group(1)}[{m.group(2)}]:" + ('null' if m.group(3) == 'null' else '<time>'), data)
        data = MS_VALUE.sub(lambda m: f"{m.group(1)}[bigint]:<ms>", data)
        out.append(data)
    return out


def same_entry(x, y):
    """Equal, but for a lease's ttl_s within 2 s: a renewal that keeps a later
    expiry (it never moves it earlier) leaves expiry minus renewal time to
    depend on when each database ran the call, which a rounding can tip."""
    if isinstance(x, dict) and isinstance(y, dict) and 'ttl_s' in x and 'ttl_s' in y:
        tx, ty = x['ttl_s'], y['ttl_s']
        if (tx is None) != (ty is None) or (tx is not None and abs(tx - ty) > 2):
            return False
        return {k: v for k, v in x.items() if k != 'ttl_s'} == {k: v for k, v in y.items() if k != 'ttl_s'}
    return x == y


def compare_lists(what, a, b):
    """Raise Difference naming the first differing entry of two lists."""
    for n, (x, y) in enumerate(zip(a, b)):
        if not same_entry(x, y):
            raise Difference(f"{what}: entry {n} differs\n    A: {x}\n    B: {y}")
    if len(a) != len(b):
        extra = (a[len(b)] if len(a) > len(b) else b[len(a)])
        raise Difference(f"{what}: A has {len(a)} entries, B {len(b)}; first extra: {extra}")


# --- one scenario ----------------------------------------------------------------

class Database:
    def __init__(self, label, conninfo, direct):
        self.label = label
        self.conninfo = conninfo
        self.direct = direct
        self.admin = None
        self.sessions = []

    def connect_admin(self):
        deadline = time.time() + 60          # a crash in an earlier scenario: wait for recovery
        while True:
            try:
                self.admin = psycopg.connect(self.conninfo, autocommit=True, application_name='ptm-diff-admin')
                return
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def setup(self):
        """Leftovers of earlier scenarios dropped, the extension created afresh."""
        a = self.admin
        for sql in CLEANUP:
            a.execute(sql)
        a.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                  "WHERE slot_name = %s", (slot_name(a),))
        a.execute("CREATE EXTENSION ptm_lease")
        a.execute("CREATE EXTENSION IF NOT EXISTS pgrowlocks")

    def open_sessions(self):
        self.sessions = [Session(self.conninfo, self.direct, k) for k in range(SESSIONS)]
        self.prepare_state_query()

    def prepare_state_query(self):
        """One query for what a step leaves behind (see left_behind); made
        again after the DDL, which may have rewritten a table and its TOAST
        table."""
        parts = [f"SELECT '{table}', {key}, r.modes FROM pgrowlocks('{table}') r "
                 f"LEFT JOIN {table} t ON t.ctid = r.locked_row" for table, key in LOCKED_TABLES]
        parts += [f"SELECT 'toast', '{table}', ARRAY[count(*)::text] FROM {toast_table(self.admin, table)}"
                  for table in TOAST_TABLES]
        self.state_query = '\nUNION ALL '.join(parts)

    def left_behind(self):
        """What the last step left: the rows held locked (pgrowlocks) as
        [table, key, strongest lock], sorted, and the TOAST chunks of each
        table the admin's snapshot sees.  A call that leaves a row locked,
        or an out-of-line value referenced, in one path and not in the
        other shows here at once, not steps later as a busy or only in the
        counts at the end.  A row lock and an update of the same strength
        count alike ("For No Key Update" = "No Key Update").  Who holds a
        lock is left out: one taken in a subtransaction (a bounded lock
        wait takes it in one) has no pid pgrowlocks or pg_locks could name."""
        locks, toast = {}, {}
        for table, key, modes in self.admin.execute(self.state_query):
            if table == 'toast':
                toast[key] = int(modes[0])
                continue
            strength = max(LOCK_STRENGTH.index(m.removeprefix('For ')) for m in modes)
            name = (table.split('.')[1], key)
            locks[name] = max(locks.get(name, -1), strength)
        return (sorted(([t, k, LOCK_STRENGTH[m]] for (t, k), m in locks.items()), key=str),
                [toast[t] for t in TOAST_TABLES])

    def close_sessions(self):
        for s in self.sessions:
            s.close()
        self.sessions = []

    def close(self):
        self.close_sessions()
        if self.admin is not None:
            self.admin.close()
            self.admin = None


def apply_ddl(dbs, scenario):
    for db in dbs:
        for sql in scenario.ddl:
            try:
                db.admin.execute(sql)
            except psycopg.Error as e:
                raise HarnessError(f"DDL failed in {db.label}: {sql.strip()}: {e.sqlstate} {e}")
    for db in dbs:
        db.prepare_state_query()
    if scenario.slot:
        for db in dbs:
            db.admin.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')",
                             (slot_name(db.admin),))


def run_step(db, step):
    """The step's outcome in one database, with what it left behind: the row
    locks held, and the TOAST chunks the admin's snapshot sees (a new row
    version that keeps, or drops, a reference to an old out-of-line value
    shows at once, not only in the count after VACUUM at the end)."""
    outcome = db.sessions[step.session].run(step)
    if step.args.get('expiring'):
        time.sleep(EXPIRING_SLEEP_S)
    if outcome['tx'] != 'UNKNOWN':
        outcome['locks'], outcome['toast'] = db.left_behind()
    return outcome


def count_outcome(counts, step, outcome):
    """How many outcomes were compared, and of which kind (for --verbose)."""
    counts['outcomes'] += 1
    if 'error' in outcome:
        what = 'ERROR ' + ' '.join(map(str, outcome['error']))
    else:
        what = str((outcome.get('rows') or [{}])[0].get('result', 'ok'))
    key = f"{step.kind}: {what}"
    counts['tally'][key] = counts['tally'].get(key, 0) + 1


def run_lockstep(a, b, steps, model, history, counts, self_test=None, corrupt_at=None):
    """Each step on A's session, then on B's; compare; learn from A."""
    for step in steps:
        oa = run_step(a, step)
        # a crash of A's backend resets B's sessions too: do not run B then
        ob = run_step(b, step) if oa['tx'] != 'UNKNOWN' else None
        if self_test == 'outcome' and step.i == corrupt_at:
            ob = dict(ob, rows=[{'result': 'corrupted on purpose by --self-test'}])
        count_outcome(counts, step, oa)
        lost = [db.label for db, o in ((a, oa), (b, ob)) if o is not None and o['tx'] == 'UNKNOWN']
        if lost:
            raise Difference(difference_report(
                f"step {step.i}: the server connection of {' and '.join(lost)} was lost (a crash?)",
                history, step, ((a, oa), (b, ob))))
        if canon(oa) != canon(ob):
            raise Difference(difference_report(f"step {step.i}", history, step, ((a, oa), (b, ob))))
        model.learn(step, oa)
        history.append((step, oa))


def end_transactions(a, b, model, history, counts, i):
    """COMMIT every open transaction, in both, compared like any step."""
    steps = [tx_step(i + k, k, 'commit') for k in range(SESSIONS) if model.in_tx[k]]
    run_lockstep(a, b, steps, model, history, counts)


def compare_tables(a, b, scenario, history, counts, self_test=None):
    for db in (a, b):
        db.close_sessions()
        if self_test == 'table' and db is b:
            db.admin.execute("SELECT ptm.try_commit('self-test', 0, '{\"n\": 0}')")
        for t in TOAST_TABLES:
            db.admin.execute(f"VACUUM {t}")
    try:
        for table, order_by, left_out in PTM_TABLES + scenario.side_tables:
            ra = read_table(a.admin, table, order_by, left_out)
            rb = read_table(b.admin, table, order_by, left_out)
            compare_lists(f"table {table}", ra, rb)
            counts['rows'] += len(ra)
        seq = "SELECT last_value, is_called FROM ptm.lease_epoch_seq"
        compare_lists("ptm.lease_epoch_seq", [a.admin.execute(seq).fetchone()], [b.admin.execute(seq).fetchone()])
        for t in TOAST_TABLES:
            compare_lists(f"TOAST chunks of {t} after VACUUM", [toast_chunks(a.admin, t)], [toast_chunks(b.admin, t)])
        if scenario.slot:
            ca, cb = decoded_changes(a.admin), decoded_changes(b.admin)
            compare_lists("decoded changes (test_decoding)", ca, cb)
            counts['rows'] += len(ca)
    except Difference as d:
        raise Difference(difference_report(f"the end of the scenario: {d}", history))


def drop_slots(dbs):
    for db in dbs:
        try:
            if db.admin is None or db.admin.closed:
                db.connect_admin()
            db.admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                             "WHERE slot_name = %s", (slot_name(db.admin),))
        except psycopg.Error:
            pass


def run_scenario(scenario, conn_a, conn_b, seed, nsteps, counts, self_test=None):
    """Returns the ok line; raises Difference or HarnessError."""
    rng = random.Random(f"{seed}:{scenario.name}")
    # a self-test runs both databases on the fast path: then the difference
    # injected is the only one there can be, whatever the code under test does
    a, b = Database('A', conn_a, True), Database('B', conn_b, self_test is not None)
    dbs = (a, b)
    model, history = Model(), []
    try:
        for db in dbs:
            db.connect_admin()
            db.setup()
        for db in dbs:
            db.open_sessions()
        if scenario.prefill:
            run_lockstep(a, b, prefill_steps(), model, history, counts)
        apply_ddl(dbs, scenario)
        gen = Generator(rng, model)
        corrupt_at = nsteps // 2
        for i in range(nsteps):
            run_lockstep(a, b, [gen.next(i)], model, history, counts, self_test, corrupt_at)
        end_transactions(a, b, model, history, counts, nsteps)
        compare_tables(a, b, scenario, history, counts, self_test)
    finally:
        if scenario.slot:
            drop_slots(dbs)
        for db in dbs:
            db.close()
    return f"{nsteps} steps, {counts['outcomes']} outcomes compared, {counts['rows']} rows compared"


def server_version(conninfo):
    with psycopg.connect(conninfo, autocommit=True) as c:
        return c.info.server_version


def check_setting_exists(conninfo):
    with psycopg.connect(conninfo, autocommit=True) as c:
        n = c.execute("SELECT count(*) FROM pg_settings WHERE name = 'ptm_lease.direct_row_access'").fetchone()[0]
        if n == 0:
            # a custom setting is known once the library is loaded
            c.execute("LOAD 'ptm_lease'")
            n = c.execute("SELECT count(*) FROM pg_settings WHERE name = 'ptm_lease.direct_row_access'").fetchone()[0]
        if n == 0:
            raise HarnessError("the setting ptm_lease.direct_row_access does not exist in this build of ptm_lease: "
                               "database B cannot be told to take the SQL path")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('conninfo_a', help='database A: ptm_lease.direct_row_access = on')
    ap.add_argument('conninfo_b', help='database B: ptm_lease.direct_row_access = off')
    ap.add_argument('seed', type=int)
    ap.add_argument('steps', type=int)
    ap.add_argument('scenario', nargs='?', default='all',
                    help='one of: ' + ', '.join(s.name for s in SCENARIOS) + ' (default: all)')
    ap.add_argument('-v', '--verbose', action='store_true',
                    help='after each scenario, how many outcomes of each kind were compared')
    ap.add_argument('--self-test', choices=('outcome', 'table'),
                    help='corrupt one outcome (or one table row) of database B on purpose; '
                         'the run must then fail')
    if argv is None:
        argv = sys.argv[1:]
    if argv == ['--list']:
        print('\n'.join(s.name for s in SCENARIOS))
        return 0
    args = ap.parse_args(argv)

    if args.scenario == 'all':
        scenarios = SCENARIOS
    else:
        scenarios = [s for s in SCENARIOS if s.name == args.scenario]
        if not scenarios:
            ap.error(f"unknown scenario {args.scenario}")
    print(f"# seed {args.seed}, {args.steps} steps per scenario"
          + (f", self-test {args.self_test} (both databases on the fast path)" if args.self_test else ''),
          flush=True)
    try:
        check_setting_exists(args.conninfo_a)
        version = server_version(args.conninfo_a)
    except (HarnessError, psycopg.Error) as e:
        print(f"FAIL harness: {e}", flush=True)
        return 2

    failed = 0
    for sc in scenarios:
        if version < sc.min_server:
            print(f"ok {sc.name}: # SKIP needs server {sc.min_server}, this is {version}", flush=True)
            continue
        t0 = time.time()
        counts = {'outcomes': 0, 'rows': 0, 'tally': {}}
        try:
            line = run_scenario(sc, args.conninfo_a, args.conninfo_b, args.seed, args.steps, counts, args.self_test)
            print(f"ok {sc.name}: {line} ({time.time() - t0:.1f} s)", flush=True)
        except Difference as d:
            failed += 1
            print(f"FAIL {sc.name}: {d}", flush=True)
        except HarnessError as e:
            failed += 1
            print(f"FAIL {sc.name}: harness: {e}", flush=True)
        except psycopg.Error as e:
            failed += 1
            print(f"FAIL {sc.name}: unexpected error outside a step: {type(e).__name__} {e.sqlstate} {e}", flush=True)
        if args.verbose:
            for key, n in sorted(counts['tally'].items()):
                print(f"#   {n:4d}  {key}")
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
