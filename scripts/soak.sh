#!/usr/bin/env bash
# Crash-recovery soak (issue 3): SIGKILL `iotflow run --checkpoint-dir …` at
# random moments, rerun the same command each time, and check that the
# output is exactly that of one uninterrupted run.
#
# usage: scripts/soak.sh [--kills N] [--lines N] [--workers N] [--interval DUR]
#                        [--short-kills PCT] [--seed N] [--dir DIR] [--keep]
#
#   --kills N      kills that must hit a running process (default 50)
#   --lines N      fleet-v1 lines to generate (default 5000000)
#   --workers N    worker threads of every run (default 2)
#   --interval D   --checkpoint-interval of the checkpointed runs (default 200ms)
#   --short-kills P  percentage of kills drawn early instead, 30-300 ms after
#                  the start: during recovery or before the resumed run's first
#                  checkpoint, so crashes come back to back (default 0)
#   --seed N       seed of the kill schedule (default: from the clock; printed)
#   --dir DIR      work directory (default: a new one under $TMPDIR); kept
#   --keep         keep the work directory of a passing soak too
#
# Release binary: `cargo build --release -p iotflow-cli`, then
# $CARGO_TARGET_DIR/release/iotflow. Every output is NDJSON (`--format
# ndjson`) so that the comparison needs only Python 3's standard library.
#
# Like crates/cli/tests/recovery.rs: kill after a delay drawn uniformly
# between 0.3 s and the reference run's duration (--short-kills: between 30
# and 300 ms); a run that finishes before its kill completes the job — its
# output is checked, and the next run starts a fresh job — until N kills
# have landed mid-run; then the last run goes to the end, its output and
# summary are checked, and one more rerun of the completed job must exit 0
# with the same summary and leave the output as is.
#
# Prints kills done, restarts, checkpoints seen and PASS or FAIL; exits 1 on
# a mismatch or a failed run, 2 on bad usage. The work directory (kept on
# FAIL) has schedule.txt (every run: kill delay, exit status, the checkpoint
# it resumed from) and each run's stdout/stderr (logged at info level).
set -euo pipefail

kills_wanted=50
lines=5000000
workers=2
interval=200ms
short=0
seed=""
work=""
keep=0

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --kills) kills_wanted=${2:?--kills N}; shift 2 ;;
        --lines) lines=${2:?--lines N}; shift 2 ;;
        --workers) workers=${2:?--workers N}; shift 2 ;;
        --interval) interval=${2:?--interval DUR}; shift 2 ;;
        --short-kills) short=${2:?--short-kills PCT}; shift 2 ;;
        --seed) seed=${2:?--seed N}; shift 2 ;;
        --dir) work=${2:?--dir DIR}; keep=1; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) usage ;;
        *) echo "soak.sh: unknown argument: $1" >&2; usage ;;
    esac
done
for n in "$kills_wanted" "$lines" "$workers" "$short"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "soak.sh: not a number: $n" >&2; exit 2; }
done
[ -n "$seed" ] || seed=$(( $(date +%s) % 1000000 ))
[[ $seed =~ ^[0-9]+$ ]] || { echo "soak.sh: --seed must be a number" >&2; exit 2; }

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/iotflow-target}"
echo "== building the release binary"
cargo build --release -p iotflow-cli
bin="$CARGO_TARGET_DIR/release/iotflow"
if ! "$bin" run --help | grep -q -- --checkpoint-dir; then
    echo "soak.sh: $bin has no --checkpoint-dir" >&2
    exit 1
fi

if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/iotflow-soak.XXXXXX")
fi
mkdir -p "$work"
pid=""
result=FAIL
kills=0 restarts=0 runs=0 round=0 completed=0
declare -A seen_ckpt=()
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    echo "kills done:        $kills"
    echo "restarts:          $restarts (reruns after a kill)"
    echo "jobs completed:    $completed (a fresh job follows each early completion)"
    echo "checkpoints seen:  ${#seen_ckpt[@]}"
    echo "soak time:         $(( ($(now_ms) - soak_start) / 1000 )) s (after the build)"
    echo "$result"
    if [ "$result" = PASS ] && [ "$keep" = 0 ]; then
        rm -rf "$work"
    else
        echo "work directory kept: $work"
    fi
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
soak_start=$(now_ms)

# compare.py REF OUT REF_SUMMARY OUT_SUMMARY: exit 0 when OUT has exactly
# the rows of REF for every kind (as multisets; rows differing only in float
# bits are counted apart, as a hint), no window key twice, and the summary
# counts match REF's and the rows on disk.
cat > "$work/compare.py" <<'PY'
import collections, json, math, os, sys

KINDS = ("windows", "alerts", "rejects", "late")
COUNTS = ("lines", "valid", "rejected", "rejected_by_reason", "late", "windows", "alerts")
ROWS_OF = {"windows": "windows", "alerts": "alerts", "rejects": "rejected", "late": "late"}
TOL = 1e-12

def lines_of(out, kind):
    d = os.path.join(out, kind)
    rows = []
    if not os.path.isdir(d):
        return rows
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8", errors="surrogateescape") as f:
            data = f.read()
        if data and not data.endswith("\n"):
            problems.append(f"{kind}: {p} does not end with a newline (torn write?)")
        for line in data.splitlines():
            if line:
                rows.append(line)
    return rows

def loose(line):
    obj = json.loads(line)
    key = json.dumps({k: ("~" if isinstance(v, float) else v) for k, v in obj.items()}, sort_keys=True)
    return key, obj

def close(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= TOL * max(abs(a), abs(b))
    return a == b

def summary(path):
    with open(path) as f:
        text = f.read().strip().splitlines()
    return json.loads(text[-1]) if text else {}

problems = []
ref_dir, out_dir, ref_sum, out_sum = sys.argv[1:5]
ref_s, out_s = summary(ref_sum), summary(out_sum)
got_rows = {}
for kind in KINDS:
    want = collections.Counter(lines_of(ref_dir, kind))
    got_list = lines_of(out_dir, kind)
    got_rows[kind] = len(got_list)
    got = collections.Counter(got_list)
    only_want, only_got = want - got, got - want
    tolerated = 0
    pool = collections.defaultdict(list)
    for line, n in only_got.items():
        k, obj = loose(line)
        pool[k].extend([(line, obj)] * n)
    missing = []
    for line, n in only_want.items():
        k, obj = loose(line)
        for _ in range(n):
            cands = pool.get(k, [])
            hit = next((i for i, (_, o) in enumerate(cands)
                        if all(close(obj[f], o.get(f)) for f in obj)), None)
            if hit is None:
                missing.append(line)
            else:
                cands.pop(hit)
                tolerated += 1
    extra = sorted(l for c in pool.values() for l, _ in c)
    if missing or extra or tolerated:
        dups = sum(1 for l in extra if l in want)
        msg = (f"{kind}: {sum(want.values())} reference rows, {len(got_list)} output rows; "
               f"{len(missing)} missing, {len(extra)} extra ({dups} duplicating a reference row), "
               f"{tolerated} differing only in float bits (within {TOL})")
        for l in sorted(missing)[:8]:
            msg += f"\n  - {l}"
        for l in extra[:8]:
            msg += f"\n  + {l}"
        problems.append(msg)
    if kind == "windows":
        seen, dup = set(), []
        for l in got_list:
            i = l.find(',"window_end_ms"')
            k = l[:i] if i > 0 else l
            if k in seen:
                dup.append(l)
            seen.add(k)
        if dup:
            problems.append("windows: duplicate window keys, e.g.\n  " + "\n  ".join(dup[:5]))
for key in COUNTS:
    if key in ref_s and out_s.get(key) != ref_s.get(key):
        problems.append(f"summary {key}: {out_s.get(key)} (reference {ref_s.get(key)})")
if out_s.get("lines") != out_s.get("valid", 0) + out_s.get("rejected", 0):
    problems.append(f"summary: lines != valid + rejected: {out_s}")
if "windowed_readings" in out_s and out_s.get("valid") != out_s["windowed_readings"] + out_s.get("late", 0):
    problems.append(f"summary: valid != windowed_readings + late: {out_s}")
for kind, key in ROWS_OF.items():
    if out_s.get(key) != got_rows[kind]:
        problems.append(f"summary {key} = {out_s.get(key)} but {got_rows[kind]} rows in {kind}/")
if problems:
    print("MISMATCH vs the uninterrupted reference:\n" + "\n".join(problems))
    sys.exit(1)
print("  output == reference: " + ", ".join(f"{k} {got_rows[k]}" for k in KINDS))
PY

input="$work/fleet.ndjson"
echo "== generating $lines fleet-v1 lines"
"$bin" generate --lines "$lines" --seed 7 --out "$input"

common=(-i "$input" -w "$workers" --format ndjson --summary json)
echo "== reference run (no checkpoints)"
t0=$(now_ms)
"$bin" run "${common[@]}" -o "$work/ref" >"$work/ref.stdout" 2>"$work/ref.stderr" || {
    echo "reference run failed:"; tail -20 "$work/ref.stderr"; exit 1; }
ref_ms=$(( $(now_ms) - t0 ))
echo "reference: ${ref_ms} ms: $(tail -1 "$work/ref.stdout")"
max_ms=$(( ref_ms > 600 ? ref_ms : 600 ))

RANDOM=$seed
echo "== soak: seed $seed, $kills_wanted kills ($short % early), $workers workers, checkpoint every $interval"
echo "   replay the schedule: scripts/soak.sh --seed $seed --kills $kills_wanted --lines $lines --workers $workers --interval $interval --short-kills $short"

note_checkpoints() { # $1 = checkpoint dir; records complete ckpt-* dirs
    local d m
    for d in "$1"/ckpt-*; do
        for m in "$d"/MANIFEST*; do
            [ -f "$m" ] && seen_ckpt["$round/${d##*/}"]=1
        done
    done
    return 0
}
recovery_note() { # $1 = a run's stderr: where it resumed from
    sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -o 'restoring from checkpoint checkpoint=[0-9]*\|checkpoint [0-9]* is corrupt' |
        tr '\n' ' ' || true
}
check_round() { # $1 = label, $2 = stdout of the run that completed it
    echo "== checking $1"
    python3 "$work/compare.py" "$work/ref" "$out" "$work/ref.stdout" "$2"
}

max_runs=$(( kills_wanted * 10 + 20 ))
new_round() {
    out="$work/round-$round/out"
    ck="$work/round-$round/ck"
    mkdir -p "$work/round-$round"
}
new_round
while :; do
    runs=$((runs + 1))
    if [ "$runs" -gt "$max_runs" ]; then
        echo "$max_runs runs without $kills_wanted kills mid-run and a completed job"
        exit 1
    fi
    if [ "${killed:-0}" = 1 ]; then restarts=$((restarts + 1)); fi
    killed=0
    log="$work/round-$round/run-$runs"
    "$bin" run "${common[@]}" -o "$out" --checkpoint-dir "$ck" --checkpoint-interval "$interval" --log info \
        >"$log.stdout" 2>"$log.stderr" &
    pid=$!
    if [ "$kills" -ge "$kills_wanted" ]; then
        status=0; wait "$pid" 2>/dev/null || status=$?; pid=""
        note_checkpoints "$ck"
        echo "round $round run $runs: to the end -> exit $status; $(recovery_note "$log.stderr")" >>"$work/schedule.txt"
        if [ "$status" -ne 0 ]; then
            echo "final run $runs exited $status"; tail -20 "$log.stderr"; exit 1
        fi
        completed=$((completed + 1))
        break
    fi
    r=$(( (RANDOM << 15) | RANDOM ))
    if [ $(( RANDOM % 100 )) -lt "$short" ]; then
        delay_ms=$(( 30 + r % 270 ))
    else
        delay_ms=$(( 300 + r % (max_ms - 300 + 1) ))
    fi
    deadline=$(( $(now_ms) + delay_ms ))
    while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
        note_checkpoints "$ck"
        sleep 0.02
    done
    kill -9 "$pid" 2>/dev/null || true
    status=0; wait "$pid" 2>/dev/null || status=$?; pid=""
    note_checkpoints "$ck"
    echo "round $round run $runs: kill at ${delay_ms} ms -> exit $status; $(recovery_note "$log.stderr")" >>"$work/schedule.txt"
    case "$status" in
        137)
            kills=$((kills + 1))
            killed=1
            if [ $((kills % 10)) -eq 0 ] || [ "$kills" -eq "$kills_wanted" ]; then
                echo "  $kills kills, $runs runs, ${#seen_ckpt[@]} checkpoints seen"
            fi
            ;;
        0)
            completed=$((completed + 1))
            echo "  run $runs completed the job before its kill at ${delay_ms} ms"
            check_round "round $round (completed by run $runs after $kills kills in total)" "$log.stdout" || exit 1
            round=$((round + 1))
            new_round
            ;;
        *)
            echo "run $runs exited $status (not killed by us)"; tail -20 "$log.stderr"; exit 1 ;;
    esac
done

grep -il corrupt "$work"/round-*/run-*.stderr >/dev/null 2>&1 &&
    echo "  note: some run logged 'corrupt' (see the run-*.stderr files)"
check_round "the final run $runs after $kills kills" "$log.stdout" || exit 1

runs=$((runs + 1))
again="$work/round-$round/run-$runs"
if ! "$bin" run "${common[@]}" -o "$out" --checkpoint-dir "$ck" --checkpoint-interval "$interval" --log info \
    >"$again.stdout" 2>"$again.stderr"; then
    echo "rerun of the completed job failed"; tail -20 "$again.stderr"; exit 1
fi
check_round "a rerun of the completed job" "$again.stdout" || exit 1
result=PASS
