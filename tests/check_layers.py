#!/usr/bin/env python3
"""The library's files as layers: A -> B when A's object uses a symbol B's
object defines (nm), as ../shared/tools/src-circles.py computes it. Fails
when there is a circle, or when a file calls a file that src/README.md lists
in a higher layer (an arrow running back up), or when a library file is not
listed. usage: check_layers.py OBJDIR src/README.md"""
import os, re, subprocess, sys

objdir, readme = sys.argv[1], sys.argv[2]
defs, uses = {}, {}
for root, _, files in os.walk(objdir):
    for f in files:
        if not f.endswith('.o'):
            continue
        name = f[:-2]   # "region.c"
        uses[name] = set()
        out = subprocess.run(['nm', os.path.join(root, f)], capture_output=True,
                             text=True, check=True).stdout
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in 'TDBRVW' and p[1].isupper():
                defs[p[2]] = name
            elif len(p) == 2 and p[0] == 'U':
                uses[name].add(p[1])
if not uses:
    sys.exit('no objects under ' + objdir)
graph = {f: {defs[s] for s in u if s in defs and defs[s] != f} for f, u in uses.items()}

# layer of each file: "| N | a.c, b.c | ..." rows of the README's table
layer = {}
for line in open(readme):
    m = re.match(r'\|\s*(\d+)\s*\|([^|]*)\|', line)
    if m:
        for f in re.findall(r'[\w]+\.c', m.group(2)):
            layer[f] = int(m.group(1))
bad = []
for f in sorted(graph):
    if f not in layer:
        bad.append(f'{f}: not in the layer table of {readme}')
        continue
    for g in sorted(graph[f]):
        if g in layer and layer[g] > layer[f]:
            bad.append(f'{f} (layer {layer[f]}) calls up into {g} (layer {layer[g]})')
# circles (Tarjan)
idx, low, st, on, comps, n = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in graph[v]:
        if w not in idx:
            sc(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v:
                break
        if len(c) > 1:
            comps.append(c)
for v in graph:
    if v not in idx:
        sc(v)
for c in comps:
    bad.append('circle: ' + ' '.join(sorted(c)))
print(f'{len(graph)} files, {sum(len(v) for v in graph.values())} edges, '
      f'{len(comps)} circles, {len(bad)} problems')
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
