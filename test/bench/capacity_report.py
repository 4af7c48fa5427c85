#!/usr/bin/python3
"""The capacity and takeover sections of docs/performance.md.

    capacity_report.py DIR                 markdown from DIR/capacity.jsonl,
                                           DIR/takeover.jsonl, DIR/machine.txt
    capacity_report.py --splice SECTION PERFORMANCE_MD
                                           put SECTION (test/bench/capacity.md)
                                           into PERFORMANCE_MD, replacing the
                                           one there (test/bench/report
                                           includes it in a full run)
"""
import json
import os
import re
import sys

BEGIN = '<!-- test/bench/capacity writes this part (test/bench/capacity.md) -->'
END = '<!-- end of test/bench/capacity.md -->'
# where the section goes in a docs/performance.md that has none yet: before
# the profile notes (test/bench/notes.md)
BEFORE = '## What the profiles show'


def splice(section_file, doc_file):
    section = open(section_file).read().rstrip('\n') + '\n'
    doc = open(doc_file).read()
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip('\n')
        doc = head + section + '\n' + tail
    elif BEFORE in doc:
        head, tail = doc.split(BEFORE, 1)
        doc = head + section + '\n' + BEFORE + tail
    else:
        doc = doc.rstrip('\n') + '\n\n' + section
    with open(doc_file, 'w') as f:
        f.write(doc)


def load(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def fmt(v, unit=''):
    if v is None:
        return 'n/a'
    if isinstance(v, float) and v == int(v) and abs(v) >= 100:
        v = int(v)
    return '%s%s' % (v, unit)


def ms_setting(v):
    """A time setting as SHOW prints it ('200ms', '1s', '1min') in ms."""
    m = re.match(r'^(-?[0-9.]+)\s*(ms|s|min|h)?$', v or '0')
    return float(m.group(1)) * {'ms': 1, 's': 1000, 'min': 60000, 'h': 3600000, None: 1}[m.group(2)]


def lost(r):
    extra = []
    if r.get('busy'):
        extra.append('%d busy' % r['busy'])
    if r.get('call_errors'):
        extra.append('%d calls failed' % r['call_errors'])
    return '%d%s' % (r['lost'], ' (%s)' % ', '.join(extra) if extra else '')


def yes(b):
    return 'yes' if b else '**no**'


def render(d):
    caps = load(os.path.join(d, 'capacity.jsonl'))
    tks = load(os.path.join(d, 'takeover.jsonl'))
    m = {}
    if os.path.exists(os.path.join(d, 'machine.txt')):
        for line in open(os.path.join(d, 'machine.txt')):
            k, _, v = line.rstrip('\n').partition('\t')
            m[k] = v
    o = [BEGIN, '']

    o += ['## Capacity of one node', '']
    if caps:
        c0 = caps[0]
        cs = c0['settings']
        o += ['Reproduce with `test/bench/capacity` (about 20 minutes; `PTM_BENCH_SMOKE=1` checks the scripts',
              'in under a minute: `test/t/097_capacity_smoke.pl`). It builds, starts a temporary cluster',
              '(`fsync = on`, `synchronous_commit = %s`, `shared_buffers = %s`, `max_wal_size = %s`,'
              % (cs.get('synchronous_commit'), cs.get('shared_buffers'), cs.get('max_wal_size')),
              'otherwise default settings: `ptm_lease.notify_owner_changes` = %s; the worker sweeps every'
              % cs.get('ptm_lease.notify_owner_changes'),
              '`ptm_lease.sweep_interval` = %s in batches of `sweep_batch_size` = %s, at most 10 a pass)'
              % (cs.get('ptm_lease.sweep_interval'), cs.get('ptm_lease.sweep_batch_size')),
              'and, for each step, a fresh',
              'database. Agents of %s leases each (a topic each) renew them with `ptm.renew_leases`, %s'
              % ('{:,}'.format(c0['per_agent']), c0['batch']),
              'per call, every TTL/3 = %g s (TTL %g s), each call at its own phase so that the calls are'
              % (c0['period_s'], c0['ttl_s']),
              'spread evenly, through %d connections of one Python driver (`test/bench/capacity.py`,'
              % c0['threads'],
              'psycopg 3) on the same machine. Each renewal leaves out its share of %g %% of the leases per'
              % c0['expire_pct_per_min'],
              'minute: those expire, the worker marks them `expired` and announces it, and TTL/3 after',
              'their expiry the agent takes each back with `acquire_partition_lease` (a standby that',
              'polls, on %d more connections), so the count stays N. A step starts in the steady state'
              % c0.get('takeover_threads', 0),
              '(expiries and the sweeper\'s `sweep_at` spread as renewals and sweeps leave them: one',
              '`UPDATE` after the bulk acquisition), warms up for %g s, then is measured for %g s.'
              % (c0['warmup_s'], c0['measure_s']), '']
    if m:
        o += ['| | |', '| --- | --- |',
              '| cores | %s (%s) |' % (m.get('cores'), m.get('cpu')),
              '| server | %s |' % m.get('server'),
              '| load average (1, 5, 15 min) before / after | %s / %s |' % (m.get('load_before'), m.get('load_after')),
              '| run time | %s s, %s |' % (m.get('elapsed_s'), m.get('date')), '']
    if caps:
        o += ['| live leases | sweep interval, batch | renew calls/s (leases/s) | bulk renew p50 / p99 / max ms | due → done p99 ms |'
              ' leases lost | left to expire / announced / taken back | expiry → announced p50 / p99 s |'
              ' sweeper behind, max s | server CPU (cores) | driver CPU | machine busy | holds |',
              '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
        for r in caps:
            why = [label for k, label in (('kept_alive', 'leases lost'), ('p99_ok', 'p99'), ('cpu_ok', 'CPU'),
                                      ('sweeper_ok', 'sweeper behind')) if not r[k]]
            o.append('| %s | %s | %s (%s) | %s / %s / %s | %s | %s | %s / %s / %s | %s / %s | %s | %s | %s | %s %% | %s |' % (
                '{:,}'.format(r['leases']), '%s, %s' % (r['settings'].get('ptm_lease.sweep_interval'),
                                                        r['settings'].get('ptm_lease.sweep_batch_size')),
                fmt(r['calls_per_s']),
                '{:,}'.format(int(r['calls_per_s'] * r['batch'])),
                fmt(r['renew_p50_ms']), fmt(r['renew_p99_ms']), fmt(r['renew_max_ms']),
                fmt(r['due_done_p99_ms']), lost(r), r['dropped'], r['expired_events'], r['takeovers'],
                fmt(r['sweep_lag_p50_s']), fmt(r['sweep_lag_p99_s']), fmt(r['oldest_due_max_s']),
                fmt(r['server_cores']), fmt(r['driver_cores']), fmt(r['machine_busy_pct']),
                'yes' if r['holds'] else '**no** (%s)' % ', '.join(why)))
        o += ['',
              '- **sweep interval, batch**: `ptm_lease.sweep_interval` and `sweep_batch_size` of the step;',
              '  a pass of the sweeper changes at most 10 batches, then it sleeps for the interval.',
              '- **bulk renew**: the latency of one `renew_leases` call of 500 leases, as the agent sees it;',
              '  **due → done**: from the moment the renewal was due to its end (the driver\'s own queueing',
              '  included): a lease is lost only if this exceeds TTL − TTL/3 = 20 s.',
              '- **leases lost**: renewals answered `expired`, `not_owner` or `stale_epoch` (each lease is',
              '  renewed every TTL/3, so a lease that expired or changed hands shows here); in brackets, if',
              '  any: `busy` answers (the row held past `lock_wait_timeout`; the lease is live and the next',
              '  round renews it) and calls that failed.',
              '- **announced**: `expired` events on `ptm_lease_events` for the leases left to expire;',
              '  **expiry → announced**: from the lease\'s expiry to the event at the driver. A lease taken',
              '  back before the sweeper reached it is never announced.',
              '- **sweeper behind**: the age of the oldest owned lease due for the sweeper\'s look',
              '  (`min(sweep_at)`, sampled every second): about one `sweep_interval` when it keeps up.',
              '- **CPU**: cores used over the measured window: the server\'s processes (postmaster and all',
              '  its children, from `/proc`), the driver, and the whole machine (`/proc/stat`; other',
              '  processes included).',
              '- **holds**: no lease lost; due → done p99 under TTL/10 = %g s; CPU to spare: the server'
              % (c0['ttl_s'] / 10),
              '  under 3/4 of the cores (the driver stands for agents on other machines); and a sweeper',
              '  that keeps up: no owned lease waits for its look longer than `ptm.health()`\'s',
              '  `sweep_backlog` threshold, max(60 s, 10 `sweep_interval`s), since an expired lease waits',
              '  in the same queue.', '']
        held = [r['leases'] for r in caps if r['holds']]
        big = max(held) if held else None
        goal = [r for r in caps if r['leases'] >= 1000000 and r['holds']]
        o.append('**Largest step that holds: %s.** The goal (at least 1,000,000 live leases, p99 under'
                 ' TTL/10, CPU to spare) is %s in this run.'
                 % ('{:,} live leases'.format(big) if big else 'none', 'met' if goal else '**not met**'))
        o.append('')
        for r in caps:
            extra = []
            if r['errors']:
                extra.append('errors: ' + '; '.join(r['errors']))
            if r['lost_examples']:
                extra.append('lost: ' + ', '.join(r['lost_examples']))
            if r.get('call_error_examples'):
                extra.append('failed calls: ' + '; '.join(r['call_error_examples']))
            if r.get('late_start_s'):
                extra.append('the setup overran its margin by %s s' % r['late_start_s'])
            if extra:
                o += ['%s leases: %s.' % ('{:,}'.format(r['leases']), '; '.join(extra)), '']

    if tks:
        t0 = tks[0]
        s = t0.get('settings', {})
        ttl_ms = t0['ttl_s'] * 1000
        grace_ms = ms_setting(s.get('ptm_lease.holder_grace'))
        sweep_ms = ms_setting(s.get('ptm_lease.sweep_interval'))
        o += ['## Takeover latency', '',
              'From a holder\'s death to another agent holding its partition (`test/bench/takeover.py`, run by',
              '`test/bench/capacity`). TTL %g s; the holder (a `psql` client) renews every TTL/3 and dies at a'
              % t0['ttl_s'],
              'random moment of its renewal cycle; %s takeovers per row, %s partitions at a time.'
              % (t0['takeovers'] + t0['failures'], t0.get('pairs')),
              'Settings: `sweep_interval` %s, `holder_grace` %s, `lock_wait_timeout` %s,'
              % (s.get('ptm_lease.sweep_interval'), s.get('ptm_lease.holder_grace'),
                 s.get('ptm_lease.lock_wait_timeout')),
              '`notify_owner_changes` %s (defaults).' % s.get('ptm_lease.notify_owner_changes'), '',
              '- **kill**: `SIGKILL` of the client (its session ends, the lease stays until it expires);',
              '  **stop**: `SIGSTOP` between two renewals; **stop in fence**: `SIGSTOP` inside a fenced',
              '  transaction (after `check_fence`, before `COMMIT`), which keeps the row locked past the',
              '  expiry until the worker ends the holder ([leases.md](leases.md#frozen-holders)).',
              '- The standby: **poll** calls `acquire_partition_lease` every TTL/3; **listen** waits on',
              '  `LISTEN ptm_lease_events` for the partition\'s `expired` (the sweeper), `released` or',
              '  `forced` event; **listen + poll** waits for an event at most TTL/3; **deadline** sleeps',
              '  until the expiry that the `conflict` answer names (`expires_at - clock_timestamp()`, on',
              '  the database clock), at most TTL/3, then acquires.',
              '- **from death**: the signal to the standby\'s `acquired`. **after expiry**: from the expiry',
              '  the holder left to `acquired` (never negative: no takeover before the expiry). Of fewer',
              '  than 100 takeovers, the p99 is the largest.',
              '- **bound**: the goal, TTL + 100 ms = %d ms from death at p99. For a holder frozen in a' % (ttl_ms + 100),
              '  fenced transaction, the documented bound instead ([leases.md](leases.md#frozen-holders)):',
              '  its transaction ends within TTL + `holder_grace` + `sweep_interval` = %d ms, and the standby'
              % (ttl_ms + grace_ms + sweep_ms),
              '  holds the lease within that plus its retry interval: none for a standby waiting on the',
              '  row (its `busy` answers retry at once), one `sweep_interval` for one that waits for the',
              '  sweeper\'s `expired` event; plus the same 100 ms.', '',
              '| holder | standby | takeovers | from death p50 / p99 / max ms | after expiry p50 / p99 / max ms | p99 within bound |',
              '| --- | --- | --- | --- | --- | --- |']
        names = {'kill': 'kill', 'stop': 'stop', 'stop_in_fence': 'stop in fence',
                 'listen_poll': 'listen + poll'}
        for r in tks:
            bound = ttl_ms + 100
            if r['scenario'] == 'stop_in_fence':
                bound += grace_ms + sweep_ms + (sweep_ms if r['strategy'] == 'listen' else 0)
            ok = r['failures'] == 0 and r['from_death_p99_ms'] is not None \
                and r['from_death_p99_ms'] <= bound
            o.append('| %s | %s | %s%s | %s / %s / %s | %s / %s / %s | %s |' % (
                names.get(r['scenario'], r['scenario']), names.get(r['strategy'], r['strategy']),
                r['takeovers'], ' (%d failed)' % r['failures'] if r['failures'] else '',
                fmt(r['from_death_p50_ms']), fmt(r['from_death_p99_ms']), fmt(r['from_death_max_ms']),
                fmt(r['after_expiry_p50_ms']), fmt(r['after_expiry_p99_ms']), fmt(r['after_expiry_max_ms']),
                '%s (%d ms)' % (yes(ok), bound)))
        o.append('')
        for r in tks:
            if r['errors']:
                o += ['%s / %s: %s.' % (r['scenario'], r['strategy'], '; '.join(r['errors'])), '']

    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'capacity_notes.md')
    if os.path.exists(notes):
        o += [open(notes).read().rstrip('\n'), '']
    o.append(END)
    return '\n'.join(o) + '\n'


if __name__ == '__main__':
    if sys.argv[1] == '--splice':
        splice(sys.argv[2], sys.argv[3])
    else:
        sys.stdout.write(render(sys.argv[1]))
