#!/usr/bin/env python3
"""One line per (run, design): unpinned baseline, median pinned ratio p1..p10, median of p8..p10,
min pinned ratio, hot table + index MiB after the last pinned round.  ./headline.py results/full1 ..."""
import sys, os, statistics
skip = set(os.environ.get('SKIP', '').split())
print("| run | design | unpinned jobs/s (best of u1,u2) | pinned p1-p10 median ratio | p8-p10 median ratio | worst pinned round | table MiB after p10 | index MiB after p10 | released r1, r2 ratio |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for run in sys.argv[1:]:
    tag = run.rstrip('/').split('/')[-1]
    rows = [l.split() for l in open(run + '/rounds.txt') if l[:2] in ('d0','d1','d2','d3','d4','d5')]
    for d in sorted({r[0] for r in rows}, key=lambda x: [r[0] for r in rows].index(x)):
        rs = [r for r in rows if r[0] == d and r[1] != 'vac2' and f"{tag}:{d}:{r[1]}" not in skip]
        base = max(float(r[4]) for r in rs if r[1] in ('u1', 'u2'))
        p = [r for r in rs if r[1].startswith('p')]
        ratios = [float(r[4]) / base for r in p]
        late = [float(r[4]) / base for r in p if r[1] in ('p8', 'p9', 'p10')]
        rel = [f"{float(r[4]) / base:.2f}" for r in rs if r[1].startswith('r')]
        last = p[-1]
        print(f"| {tag} | {d} | {base:,.0f} | {statistics.median(ratios):.2f} | "
              f"{(statistics.median(late) if late else float('nan')):.2f} | {min(ratios):.2f} ({min(p, key=lambda r: float(r[4]))[1]}) | "
              f"{last[5]} | {last[6]} | {', '.join(rel)} |")
