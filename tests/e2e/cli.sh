#!/usr/bin/env bash
# End-to-end: `rift run --backend sim` and `rift check` give the exit codes of DESIGN.md.
set -u
rift=$1 src=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
expect() { # expect CODE DESCRIPTION COMMAND...
  local want=$1 what=$2; shift 2
  "$@" >"$out/log" 2>&1; local got=$?
  if [ "$got" != "$want" ]; then echo "FAIL: $what: exit $got, expected $want"; tail -5 "$out/log"; fail=1
  else echo "ok: $what ($got)"; fi
}
expect 0 "chained passes under quorum" "$rift" run "$src/scenarios/chained.json" --backend sim --out "$out/a"
for f in run.json history.jsonl junit.xml; do [ -s "$out/a/$f" ] || { echo "FAIL: missing $f"; fail=1; }; done
expect 1 "chained fails under naive (the gate bites)" "$rift" run "$src/scenarios/chained.json" --set cluster.paxos.fd=naive --backend sim --out "$out/b"
expect 0 "leader isolation" "$rift" run "$src/scenarios/leader-isolation.json" --backend sim --out "$out/c"
expect 0 "crash and restart" "$rift" run "$src/scenarios/crash-restart.json" --backend sim --out "$out/d"
expect 2 "bad --set path" "$rift" run "$src/scenarios/chained.json" --set clster.x=1 --out "$out/e"
expect 2 "missing scenario" "$rift" run "$out/nope.json"
expect 2 "bad backend" "$rift" run "$src/scenarios/chained.json" --backend quantum
expect 0 "linearizable history" "$rift" check "$src/tests/data/histories/ok_all_ops.jsonl"
expect 1 "stale read" "$rift" check "$src/tests/data/histories/stale_read.jsonl"
expect 2 "malformed history" "$rift" check "$src/tests/data/histories/bad_type.jsonl"
# Same seed, same run.json (apart from wall-clock fields).
"$rift" run "$src/scenarios/chained.json" --backend sim --out "$out/r1" >/dev/null 2>&1
"$rift" run "$src/scenarios/chained.json" --backend sim --out "$out/r2" >/dev/null 2>&1
strip() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [r.pop(k,None) for k in ("started_at","wall_s")]; r["checks"]["linearizable"].pop("elapsed_s",None); print(json.dumps(r,sort_keys=True))' "$1"; }
if [ "$(strip "$out/r1/run.json")" != "$(strip "$out/r2/run.json")" ]; then echo "FAIL: same seed, different run.json"; fail=1; else echo "ok: deterministic run.json"; fi
exit $fail
