#!/usr/bin/env bash
# End-to-end: the scenario library (scenarios/*.json) passes on the simulator
# under the default failure detector (quorum), and the gate bites: scenarios
# built to break weaker failure detectors fail (exit 1) with them.
# usage: scenarios.sh RIFT SOURCE_DIR
set -u
rift=$1 src=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$out" || exit 1 # rift run writes runs/ into the working directory
fail=0
say_fail() { echo "FAIL: $*"; fail=1; }
expect() { # expect CODE DESCRIPTION COMMAND...
  local want=$1 what=$2; shift 2
  "$@" >"$out/log" 2>&1; local got=$?
  if [ "$got" != "$want" ]; then say_fail "$what: exit $got, expected $want"; tail -5 "$out/log"
  else echo "ok: $what ($got)"; fi
}
py() { python3 - "$@"; }

# 1. Every file is valid against the schema (when the validator is installed).
if python3 -c 'import jsonschema' 2>/dev/null; then
  py "$src/scenarios" <<'PY' || fail=1
import glob, json, sys, jsonschema
d = sys.argv[1]
v = jsonschema.Draft202012Validator(json.load(open(f"{d}/schema.json")))
bad = 0
for f in sorted(glob.glob(f"{d}/*.json")):
    if f.endswith("/schema.json"):
        continue
    for e in v.iter_errors(json.load(open(f))):
        print(f"FAIL: {f}: {'/'.join(map(str, e.path))}: {e.message}"); bad = 1
print("ok: every scenario matches schema.json" if not bad else "FAIL: schema")
sys.exit(bad)
PY
else
  echo "skip: python3 jsonschema not installed (schema check)"
fi

# 2. The whole library in one `rift run DIR`: exit 0, one passing run per file.
"$rift" run "$src/scenarios" --backend sim --json >"$out/all.out" 2>"$out/all.err"
rc=$?
[ "$rc" = 0 ] || { say_fail "rift run scenarios/: exit $rc"; tail -25 "$out/all.out"; }
py "$out/all.out" "$src/scenarios" <<'PY' || fail=1
import glob, json, sys
summary = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
files = [f for f in glob.glob(sys.argv[2] + "/*.json") if not f.endswith("/schema.json")]
runs = summary["runs"]
bad = [r for r in runs if r.get("exit_code") != 0]
for r in bad:
    failed = [a["name"] for a in r.get("assertions", []) if not a.get("pass")]
    print(f"FAIL: {r.get('name', r.get('file'))}: {r.get('verdict')} {failed}")
if len(runs) != len(files):
    print(f"FAIL: {len(runs)} runs for {len(files)} scenario files"); bad = True
if not bad:
    print(f"ok: {len(runs)} scenarios pass under quorum, summary exit_code {summary['exit_code']}")
sys.exit(1 if bad else 0)
PY

# 3. Compaction stalls while a replica is down and resumes after it is back;
#    the restarted replica of state-transfer really got an image.
py "$out/runs" <<'PY' || fail=1
import glob, json, sys
def run(name):
    d = sorted(glob.glob(f"{sys.argv[1]}/{name}-*"))[-1]
    return json.load(open(d + "/run.json"))
bad = 0
r = run("compaction-stall")
down, up = 3_000_000, 13_000_000
trims = [e["t_us"] for e in r["events"] if e["kind"] == "trim"]
during = [t for t in trims if down + 500_000 < t < up]
after = [t for t in trims if t > up]
peak = r["metrics"]["max_log_entries"]
if during:
    print(f"FAIL: compaction-stall: {len(during)} trims while r2 was down"); bad = 1
if not after:
    print("FAIL: compaction-stall: no trim after r2 came back"); bad = 1
if peak < 2000:
    print(f"FAIL: compaction-stall: the log peaked at {peak} entries: it never stalled"); bad = 1
if not bad:
    print(f"ok: compaction stalled (log peak {peak}) and resumed ({len(after)} trims after the restart)")
s = run("state-transfer")["metrics"]["snapshots_installed"]
if s < 1:
    print("FAIL: state-transfer: no snapshot installed"); bad = 1
else:
    print(f"ok: state-transfer installed {s} snapshot(s)")
sys.exit(bad)
PY

# 4. The gate bites: the same files fail under failure detectors that cannot
#    handle them (and pass under quorum, checked above).
s=$src/scenarios
expect 1 "leader-churning fails under naive" "$rift" run "$s/leader-churning.json" --backend sim --set cluster.paxos.fd=naive --out "$out/g1"
expect 1 "leader-churning fails under mpmc" "$rift" run "$s/leader-churning.json" --backend sim --set cluster.paxos.fd=mpmc --out "$out/g2"
expect 1 "quorum-loss fails under naive" "$rift" run "$s/quorum-loss.json" --backend sim --set cluster.paxos.fd=naive --out "$out/g3"
expect 1 "jepsen-bridge fails under naive" "$rift" run "$s/jepsen-bridge.json" --backend sim --set cluster.paxos.fd=naive --out "$out/g4"
expect 1 "jepsen-majorities-ring fails under mpmc" "$rift" run "$s/jepsen-majorities-ring.json" --backend sim --set cluster.paxos.fd=mpmc --out "$out/g5"
# ...and a failed assertion in a directory run makes the whole run exit 1.
mkdir -p "$out/mixed" && cp "$s/leader-churning.json" "$s/crash-restart.json" "$out/mixed/"
expect 1 "a directory run exits with the worst code" "$rift" run "$out/mixed" --backend sim --set cluster.paxos.fd=naive
exit $fail
