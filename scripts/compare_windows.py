#!/usr/bin/env python3
"""Compare iotflow window output with py_fleet.py's CSV.

usage: compare_windows.py REFERENCE.csv OUTPUT_DIR/windows

Keys (device, metric, start, end) and count/min/max must be identical; mean
may differ in the last bits (float sums in another order with >1 worker):
relative tolerance 1e-12.
"""
import csv, glob, math, os, sys

def load_ref(path):
    out = {}
    with open(path) as f:
        for row in csv.reader(f):
            d, m, s, e, c, mn, mx, mean = row[:8]
            out[(d, m, int(s), int(e))] = (int(c), float(mn), float(mx), float(mean))
    return out

def load_ours(d):
    out = {}
    files = sorted(glob.glob(os.path.join(d, "part-*.csv")))
    if not files:
        sys.exit(f"no part-*.csv files in {d}")
    for p in files:
        with open(p) as f:
            r = csv.reader(f)
            next(r)
            for row in r:
                dv, m, s, e, c, mn, mx, mean = row[:8]
                k = (dv, m, int(s), int(e))
                if k in out:
                    sys.exit(f"duplicate window {k}")
                out[k] = (int(c), float(mn), float(mx), float(mean))
    return out

ref, ours = load_ref(sys.argv[1]), load_ours(sys.argv[2])
missing = ref.keys() - ours.keys()
extra = ours.keys() - ref.keys()
bad = [k for k in ref.keys() & ours.keys()
       if ref[k][:3] != ours[k][:3] or not math.isclose(ref[k][3], ours[k][3], rel_tol=1e-12)]
print(f"reference {len(ref)} windows, ours {len(ours)}; missing {len(missing)}, extra {len(extra)}, differing {len(bad)}")
for k in list(missing)[:3] + list(extra)[:3] + bad[:3]:
    print("  ", k, ref.get(k), ours.get(k))
sys.exit(1 if missing or extra or bad else 0)
