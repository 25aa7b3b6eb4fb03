#!/usr/bin/env bash
# End-to-end on the real backend (DPDK in network namespaces; CI runs as root):
# leader isolation, a chained cut and a crash/restart each reach their expected
# verdict, the testbed is gone after every run (also after SIGINT mid-run), and
# a missing environment or bad input gives its exit code.
set -u
rift=$1 src=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
if [ "$(id -u)" != 0 ]; then echo "skip: the dpdk backend needs root"; exit 0; fi
expect() { # expect CODE DESCRIPTION COMMAND...
  local want=$1 what=$2; shift 2
  "$@" >"$out/log" 2>&1; local got=$?
  if [ "$got" != "$want" ]; then echo "FAIL: $what: exit $got, expected $want"; tail -15 "$out/log"; fail=1
  else echo "ok: $what ($got)"; fi
}
# Nothing of rift's may be left: no namespace, no interface, nothing for `rift clean`.
# (Namespaces of other runs that are alive right now are not ours to judge: compare with before.)
before_ns=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^rf' | sort)
no_leftovers() {
  local what=$1
  local ns; ns=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^rf' | sort)
  if [ "$ns" != "$before_ns" ]; then echo "FAIL: $what: namespaces left: $ns"; fail=1; fi
  if ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep -q '^rf'; then
    echo "FAIL: $what: interfaces left in the root namespace"; fail=1; fi
  local c; c=$("$rift" clean --json 2>/dev/null | tail -1)
  case "$c" in *'"removed":[]'*|*'"removed": []'*) echo "ok: $what: nothing left";;
    *) echo "FAIL: $what: rift clean found leftovers: $c"; fail=1;; esac
}
metric() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["metrics"][sys.argv[2]])' "$1" "$2"; }

expect 0 "leader isolation on dpdk" "$rift" run "$src/scenarios/leader-isolation.json" --backend dpdk --out "$out/iso"
no_leftovers "leader isolation"
[ -s "$out/iso/run.json" ] && [ "$(metric "$out/iso/run.json" leader_changes)" -ge 1 ] \
  && echo "ok: isolating the leader changed the leader" || { echo "FAIL: no leader change recorded"; fail=1; }

expect 0 "chained cut on dpdk" "$rift" run "$src/scenarios/chained.json" --backend dpdk --out "$out/chain"
no_leftovers "chained"

expect 0 "crash and restart on dpdk" "$rift" run "$src/scenarios/crash-restart.json" --backend dpdk --out "$out/crash"
no_leftovers "crash-restart"
[ -s "$out/crash/run.json" ] && python3 - "$out/crash/run.json" <<'PY' || { echo "FAIL: crash-restart run.json"; fail=1; }
import json, sys
r = json.load(open(sys.argv[1]))
kinds = {f["kind"] for f in r["faults"]}
assert "crash" in kinds, kinds
assert r["metrics"]["leader_changes"] >= 1
assert any(p.startswith("r1/") for p in r.get("resources", {})), "no CPU/RSS samples"
print("ok: crash recorded, leader changed, resources sampled")
PY

# SIGINT mid-run: exit 3 (interrupted), files consistent, testbed gone.
"$rift" run "$src/scenarios/chained.json" --backend dpdk --out "$out/int" >"$out/int.log" 2>&1 &
pid=$!
sleep 8
kill -INT $pid
wait $pid; got=$?
if [ "$got" = 3 ]; then echo "ok: SIGINT mid-run exits 3"; else echo "FAIL: SIGINT mid-run: exit $got"; tail -5 "$out/int.log"; fail=1; fi
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$out/int/run.json" && echo "ok: run.json readable after SIGINT" \
  || { echo "FAIL: run.json after SIGINT"; fail=1; }
no_leftovers "after SIGINT"

# Environment and input errors.
expect 2 "bad scenario on dpdk" "$rift" run "$src/tests/data/scenarios/bad_node.json" --backend dpdk --out "$out/bad"
if command -v setpriv >/dev/null; then
  cp "$src/scenarios/chained.json" "$out/pub.json"; chmod -R a+rwX "$out"
  expect 3 "not root: exit 3" setpriv --reuid=65534 --regid=65534 --clear-groups "$rift" run "$out/pub.json" --backend dpdk --out "$out/nr"
  grep -q -- "--backend sim" "$out/log" && echo "ok: the message suggests --backend sim" || { echo "FAIL: no hint"; fail=1; }
fi
exit $fail
