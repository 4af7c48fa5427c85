#!/usr/bin/python3
"""Checker of the fault-injection suite (docs/faults.md).

Reads the rows the agents wrote (fault.writes_*), their acquisitions
(fault.acquisitions), ptm.lease_audit, the agents' JSON-lines logs and the
driver's fault log, and checks, per partition, in commit order
(pg_xact_commit_timestamp(xmin), then the id taken at INSERT):

  overlap     the writes of two owners never interleave: the writes of one
              epoch form one run, and the runs' epochs rise;
  superseded  no write commits with an epoch below one already raised (by an
              acquisition or force_expire) in an earlier commit;
  epochs      raised epochs strictly rise per partition, and no epoch was
              ever handed out twice (the agents' logs keep the answers of a
              primary lost in a failover);
  acked       every write whose COMMIT returned to its agent is in the
              database, unless it was on a primary lost in a failover;
  takeover    every partition an agent held when it was frozen (SIGSTOP) or
              killed is acquired by another agent within
              TTL + holder_grace + sweep_interval + retry + slack;
  starved     while an agent is frozen inside a fenced transaction, no other
              agent loses a lease because its renewals could not get through;
  end_holder  the worker ends the transactions of frozen agents only.

Prints a summary and exits 1 on any violation.  `checker.py --self-test`
feeds fabricated histories to the same checks and fails unless each
violation is found.
"""
import argparse
import glob
import json
import os
import sys
from collections import defaultdict

TAKEOVER_KINDS = ('sigstop', 'sigstop_in_txn', 'kill9')


def check(writes, raises, audit, events, faults, bound_ms, ttl=2.0):
    """writes: dicts partition, epoch, agent, ts (commit time, s), id;
    raises: epoch-raising commits, dicts partition, epoch, agent, ts, id, what;
    audit: dicts action, agent (previous_agent_id), ts; events: agent log
    entries; faults: driver entries.
    Returns (violations, stats)."""
    v = []
    stats = {'writes': len(writes), 'raises': len(raises), 'takeovers_ms': [],
             'lost_in_failover': 0}
    key = lambda r: (r['ts'], r['id'])

    by_part = defaultdict(list)
    for w in writes:
        by_part[w['partition']].append(('w', w))
    for r in raises:
        by_part[r['partition']].append(('r', r))

    for p, items in sorted(by_part.items()):
        items.sort(key=lambda i: key(i[1]))
        # overlap: epochs of the writes in commit order never go back
        done, cur = set(), None
        for kind, w in items:
            if kind != 'w' or w['epoch'] == cur:
                continue
            if w['epoch'] in done or (cur is not None and w['epoch'] < cur):
                v.append(f"overlap: partition {p}: write id {w['id']} of {w['agent']} at epoch "
                         f"{w['epoch']} commits after writes at epoch {cur}")
            if cur is not None:
                done.add(cur)
            cur = w['epoch']
        # superseded and epochs: walk raises and writes together
        top = None
        for kind, x in items:
            if kind == 'r':
                if top is not None and x['epoch'] <= top['epoch']:
                    v.append(f"epochs: partition {p}: {x['what']} by {x['agent']} raised epoch {x['epoch']} "
                             f"after epoch {top['epoch']} was already raised")
                else:
                    top = x
            elif top is not None and x['epoch'] < top['epoch']:
                v.append(f"superseded: partition {p}: write id {x['id']} of {x['agent']} at epoch {x['epoch']} "
                         f"committed {1000 * (x['ts'] - top['ts']):.1f} ms after epoch {top['epoch']} "
                         f"({top['what']} by {top['agent']}) committed")

    # epochs: every answer 'acquired' any agent ever got names a new epoch
    owner = {}
    for e in events:
        if e['ev'] == 'acquire' and e.get('result') == 'acquired':
            who = (e['agent'], e['partition'])
            if owner.setdefault(e['epoch'], who) != who:
                v.append(f"epochs: epoch {e['epoch']} handed out twice: to {owner[e['epoch']]} and to {who}")

    # acked: a write whose COMMIT returned is in the database, unless a
    # failover lost the primary it was committed on
    # (ids are not enough: the id sequence of a lost primary is handed out
    # again after a failover, its epochs are not)
    in_db = {(w['agent'], w['epoch'], w['id']) for w in writes}
    lossy = [(f['lag_start'], f['t']) for f in faults if f['kind'] == 'failover']
    for e in events:
        if e['ev'] == 'write' and (e['agent'], e['epoch'], e['id']) not in in_db:
            if any(a <= e['t'] <= b for a, b in lossy):
                stats['lost_in_failover'] += 1
            else:
                v.append(f"acked: write id {e['id']} of {e['agent']} (partition {e['partition']}, epoch "
                         f"{e['epoch']}) returned from COMMIT but is not in the database")

    # takeover: partitions held at the fault are acquired by another agent
    # (in the database, or in an agent's log if the database lost it)
    by_agent = defaultdict(list)
    for e in events:
        by_agent[e['agent']].append(e)
    acquired = defaultdict(list)      # partition -> [(time, agent)]
    for r in raises:
        if r['what'] == 'acquire':
            acquired[r['partition']].append((r['ts'], r['agent']))
    for e in events:
        if e['ev'] == 'acquire' and e.get('result') == 'acquired':
            acquired[e['partition']].append((e['t'], e['agent']))
    for f in faults:
        if f['kind'] not in TAKEOVER_KINDS:
            continue
        # what the agent held at the fault: its own log (a new process holds
        # nothing), unless another agent acquired the partition since
        holding = {}
        for e in sorted(by_agent[f['agent']], key=lambda e: e['t']):
            if e['t'] > f['t']:
                break
            if e['ev'] == 'start':
                holding = {}
            elif e['ev'] == 'acquire':
                holding[e['partition']] = e['t']
            elif e['ev'] == 'lose':
                holding.pop(e['partition'], None)
        holding = {p: t for p, t in holding.items()
                   if not any(t < ta <= f['t'] and a != f['agent'] for ta, a in acquired[p])}
        for p in sorted(holding):
            later = [t for t, a in acquired[p] if t > f['t'] and a != f['agent']]
            if not later:
                v.append(f"takeover: partition {p} of {f['agent']} ({f['kind']} at {f['t']:.3f}) "
                         f"was never acquired by another agent")
                continue
            ms = 1000 * (min(later) - f['t'])
            stats['takeovers_ms'].append(ms)
            stats.setdefault('by_kind', defaultdict(list))[f['kind']].append(ms)
            if ms > bound_ms:
                v.append(f"takeover: partition {p} of {f['agent']} ({f['kind']}) took {ms:.0f} ms "
                         f"> bound {bound_ms:.0f} ms")

    # starved: a frozen holder must not stall the others' renewals.  A loss
    # within TTL + 1 s after a fault of the losing agent's own (or a crash or
    # failover) is that fault's doing, not starvation.
    def own_fault(agent, t):
        return any(g.get('agent') in (None, agent) and g['t'] <= t <= g.get('t_end', g['t']) + ttl + 1
                   for g in faults)
    for f in faults:
        if f['kind'] != 'sigstop_in_txn' or 't_end' not in f:
            continue
        for e in events:
            if (e['ev'] == 'lose' and e['agent'] != f['agent'] and e['why'] in ('expired', 'local_expiry')
                    and f['t'] <= e['t'] <= f['t_end'] and not own_fault(e['agent'], e['t'])):
                v.append(f"starved: {e['agent']} lost partition {e['partition']} ({e['why']}) while "
                         f"{f['agent']} was frozen in a fenced transaction")

    # end_holder: the worker ends only the transactions of frozen agents
    for a in audit:
        if a['action'] == 'end_holder' and not any(
                f['kind'] in ('sigstop', 'sigstop_in_txn') and f['agent'] == a['agent']
                and f['t'] <= a['ts'] <= f['t_end'] + 1 for f in faults):
            v.append(f"end_holder: the transaction of {a['agent']} was ended at {a['ts']:.3f}, "
                     f"but {a['agent']} was not frozen then")

    stats['faults'] = defaultdict(int)
    for f in faults:
        stats['faults'][f['kind']] += 1
    stats['end_holder'] = sum(1 for a in audit if a['action'] == 'end_holder')
    stats['busy'] = sum(1 for e in events if e['ev'] == 'busy')
    return v, stats


def pct(xs, q):
    """Nearest-rank percentile."""
    if not xs:
        return float('nan')
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, -(-len(xs) * q // 100) - 1))]


def load_db(dsn, topic):
    import psycopg
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(
            r"SELECT format('fault.%I', tablename) FROM pg_tables "
            r"WHERE schemaname = 'fault' AND tablename LIKE 'writes\_%'")]
        commit_ts = 'extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8'
        writes = []
        for t in tables:
            writes += [dict(id=i, partition=p, agent=a, epoch=e, ts=ts) for i, p, a, e, ts in conn.execute(
                f'SELECT id, partition_id, agent_id, epoch, {commit_ts} FROM {t} WHERE topic = %s', (topic,))]
        raises = [dict(id=i, partition=p, agent=a, epoch=e, ts=ts, what='acquire') for i, p, a, e, ts in conn.execute(
            f'SELECT id, partition_id, agent_id, epoch, {commit_ts} FROM fault.acquisitions WHERE topic = %s', (topic,))]
        audit = []
        for i, action, p, prev, new, ts in conn.execute(
                f'SELECT audit_id, action, partition_id, previous_agent_id, new_epoch, {commit_ts} '
                'FROM ptm.lease_audit WHERE topic = %s', (topic,)):
            audit.append({'action': action, 'agent': prev, 'ts': ts})
            if action.startswith('force') and new is not None:
                raises.append(dict(id=i, partition=p, agent='operator', epoch=new, ts=ts, what=action))
    return writes, raises, audit


def read_jsonl(paths):
    out = []
    for path in paths:
        with open(path) as f:
            out += [json.loads(line) for line in f if line.strip().endswith('}')]
    return out


def self_test():
    """Each fabricated history must produce exactly the violation named."""
    W = lambda i, p, a, e, ts: dict(id=i, partition=p, agent=a, epoch=e, ts=ts)
    R = lambda i, p, a, e, ts: dict(id=i, partition=p, agent=a, epoch=e, ts=ts, what='acquire')
    acq = lambda a, p, e, t: dict(ev='acquire', agent=a, partition=p, epoch=e, t=t, result='acquired')
    good_w = [W(2, 0, 'a', 1, 1.0), W(3, 0, 'a', 1, 2.0), W(5, 0, 'b', 2, 4.0)]
    good_r = [R(1, 0, 'a', 1, 0.5), R(4, 0, 'b', 2, 3.5)]
    good_ev = [acq('a', 0, 1, 0.5), acq('b', 0, 2, 3.5)]
    stop_c = dict(kind='sigstop_in_txn', agent='c', t=1.0, t_end=3.0)
    end_a = [dict(action='end_holder', agent='a', ts=2.0)]
    # name: (writes, raises, audit, events, faults, the violation expected)
    cases = {
        'none': (good_w, good_r, [], good_ev, [], None),
        # without the acquisitions: the writes alone show two owners interleaving
        'overlap': (good_w + [W(6, 0, 'a', 1, 4.5)], [], [], good_ev, [], 'overlap'),
        'superseded': ([W(2, 0, 'a', 1, 1.0), W(3, 0, 'a', 1, 3.6)], good_r, [], good_ev, [], 'superseded'),
        'epochs': (good_w, good_r + [R(7, 0, 'c', 2, 5.0)], [], good_ev, [], 'epochs'),
        'reused': (good_w, good_r, [], good_ev + [acq('c', 1, 2, 6.0)], [], 'epochs'),
        'acked': (good_w, good_r, [], good_ev + [dict(ev='write', agent='a', partition=0, epoch=1, id=99, t=2.0)],
                  [], 'acked'),
        'slow': (good_w, good_r, [], good_ev, [dict(kind='kill9', agent='a', t=1.5)], 'takeover'),
        'never': (good_w, good_r[:1], [], good_ev[:1], [dict(kind='sigstop', agent='a', t=1.5)], 'takeover'),
        # a killed agent started again holds nothing: no takeover expected
        'restarted': (good_w, good_r, [], good_ev + [dict(ev='start', agent='a', t=1.2)],
                      [dict(kind='kill9', agent='a', t=1.5)], None),
        'starved': (good_w, good_r, [], good_ev + [dict(ev='lose', agent='d', partition=3, epoch=9, why='expired',
                                                      t=2.5)], [stop_c], 'starved'),
        'end_holder': (good_w, good_r, end_a, good_ev, [stop_c], 'end_holder'),
        # the end_holder of a frozen agent is no violation (its takeover at 3.5 s is slow)
        'end_frozen': (good_w, good_r, end_a, good_ev, [dict(stop_c, agent='a', kind='sigstop')], 'takeover'),
    }
    ok = True
    for name, (w, r, au, ev, fa, want) in cases.items():
        v, _ = check(w, r, au, ev, fa, bound_ms=1000)
        kinds = {x.split(':')[0] for x in v}
        good = kinds == ({want} if want else set())
        ok &= good
        print(f"{'ok' if good else 'NOT OK'}: self-test {name}: {v or 'no violation'}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--self-test', action='store_true')
    ap.add_argument('--dsn')
    ap.add_argument('--topic', default='faults')
    ap.add_argument('--logs', help='directory of the agents\' *.jsonl logs')
    ap.add_argument('--faults', help='the driver\'s fault log (JSON lines)')
    ap.add_argument('--ttl', type=float, default=2.0)
    ap.add_argument('--holder-grace', type=float, default=1.0)
    ap.add_argument('--sweep-interval', type=float, default=1.0)
    ap.add_argument('--retry', type=float, default=0.25)
    ap.add_argument('--slack', type=float, default=0.5,
                    help='scheduling allowance (s): a second sweep pass, a loaded 2-core machine')
    ap.add_argument('--json', help='write the summary here as JSON')
    a = ap.parse_args()
    if a.self_test:
        sys.exit(0 if self_test() else 1)

    bound = 1000 * (a.ttl + a.holder_grace + a.sweep_interval + a.retry + a.slack)
    writes, raises, audit = load_db(a.dsn, a.topic)
    events = read_jsonl(sorted(glob.glob(os.path.join(a.logs, '*.jsonl'))))
    faults = read_jsonl([a.faults]) if a.faults and os.path.exists(a.faults) else []
    v, s = check(writes, raises, audit, events, faults, bound, a.ttl)
    t = s['takeovers_ms']
    summary = {
        'faults': dict(s['faults']), 'faults_total': sum(s['faults'].values()),
        'writes_checked': s['writes'], 'epoch_raises': s['raises'],
        'acked_writes': sum(1 for e in events if e['ev'] == 'write'),
        'lost_in_failover': s['lost_in_failover'], 'holders_ended': s['end_holder'],
        'busy_answers': s['busy'], 'takeovers': len(t),
        'takeover_p50_ms': round(pct(t, 50)), 'takeover_p99_ms': round(pct(t, 99)) if t else None,
        'takeover_max_ms': round(max(t)) if t else None, 'bound_ms': round(bound),
        'takeover_by_fault': {k: {'n': len(x), 'p50_ms': round(pct(x, 50)), 'p99_ms': round(pct(x, 99))}
                              for k, x in sorted(s.get('by_kind', {}).items())},
        'violations': len(v),
    }
    if not t:
        summary['takeover_p50_ms'] = None
    for x in v[:50]:
        print('VIOLATION ' + x)
    if len(v) > 50:
        print(f'... {len(v) - 50} more')
    print('summary ' + json.dumps(summary))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(summary, f)
    sys.exit(1 if v else 0)


if __name__ == '__main__':
    main()
