#!/usr/bin/env python3
"""Markdown tables from results/<tag>/rounds.txt: per design, one row per round, jobs/s and
ratio to the design's unpinned baseline (the better of u1, u2 in the same run); with several
runs, the median over runs of jobs/s and ratio, sizes from the first run listed.
   ./table.py results/full1 results/full2 ..."""
import sys, os, statistics, collections
runs = sys.argv[1:]
# rounds to leave out, "run:design:round" (e.g. a round whose pin was lost)
skip = set(os.environ.get('SKIP', '').split())
data = collections.OrderedDict()   # design -> round -> list of (rate, ratio, tbl, idx, dead, run)
order = {}
for run in runs:
    rows = [l.split() for l in open(run + '/rounds.txt') if l[:2] in ('d0', 'd1', 'd2', 'd3', 'd4')]
    base = {}
    for r in rows:
        if r[1] in ('u1', 'u2'):
            base[r[0]] = max(base.get(r[0], 0), float(r[4]))
    for r in rows:
        if r[1] == 'vac2' or f"{run.split('/')[-1]}:{r[0]}:{r[1]}" in skip:
            continue
        d, rnd = r[0], r[1]
        rate = float(r[4]); ratio = rate / base[d] if base.get(d) else 0
        data.setdefault(d, collections.OrderedDict()).setdefault(rnd, []).append(
            (rate, ratio, r[5], r[6], r[7], run.split('/')[-1]))
for d, rounds in data.items():
    nruns = max(len(v) for v in rounds.values())
    print(f"\n#### {d}  ({nruns} run(s): {', '.join(sorted({x[5] for v in rounds.values() for x in v}))})\n")
    print("| round | horizon | jobs/s (median) | ratio (median) | per run jobs/s | table MiB | index MiB | dead tuples |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for rnd, v in rounds.items():
        pin = {'u': 'free', 'p': 'pinned', 'r': 'released'}[rnd[0]]
        med = statistics.median([x[0] for x in v]); mr = statistics.median([x[1] for x in v])
        per = ' / '.join(f"{x[0]:,.0f}" for x in v)
        print(f"| {rnd} | {pin} | {med:,.0f} | {mr:.2f} | {per} | {v[0][2]} | {v[0][3]} | {int(v[0][4]):,} |")
