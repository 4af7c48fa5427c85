#!/usr/bin/env python3
# The dependency graph of src/*.c by symbols (nm of each built .o: what one
# defines and another uses), and its circles; exit 1 when there is one.
# Usage: module_graph.py [DIR] [-v]  (-v prints every edge)
import subprocess, glob, os, sys, collections
os.chdir(sys.argv[1] if len(sys.argv) > 1 else '.')
defs = {}; uses = collections.defaultdict(set)
for c in sorted(glob.glob('src/*.c')):
    o = c[:-2] + '.o'
    name = os.path.basename(c)[:-2]
    for line in subprocess.run(['nm', o], capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in 'TDBRC':
            defs[parts[2]] = name
        elif len(parts) == 2 and parts[0] == 'U':
            uses[name].add(parts[1])
graph = collections.defaultdict(set)
why = {}
for f, syms in uses.items():
    for s in syms:
        g = defs.get(s)
        if g and g != f:
            graph[f].add(g); why.setdefault((f, g), s)
# Tarjan SCC
idx = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in graph[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in list(uses): 
    if v not in idx: sc(v)
for comp in sccs:
    print('circle:', ' '.join(comp))
    for a in comp:
        for b in sorted(graph[a] & set(comp)):
            print('   %s -> %s (%s)' % (a, b, why[(a, b)]))
if '-v' in sys.argv:
    for f in sorted(graph): print(f, '->', ' '.join(sorted(graph[f])))
sys.exit(1 if sccs else 0)
