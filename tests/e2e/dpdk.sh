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
# Nothing of a run may be left: no namespace or interface with its testbed
# prefix (run.json names it), and nothing for `rift clean` to remove.
prefix_of() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(e["prefix"] for e in r["events"] if e.get("kind")=="testbed"))' "$1" 2>/dev/null; }
no_leftovers() { # no_leftovers WHAT RUN_DIR
  local what=$1 p; p=$(prefix_of "$2/run.json")
  if [ -z "$p" ]; then echo "FAIL: $what: run.json names no testbed"; fail=1; return; fi
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -q "^$p-"; then
    echo "FAIL: $what: namespaces of $p left: $(ip netns list | grep "^$p-" | tr '\n' ' ')"; fail=1; fi
  if ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep -q "^$p"; then
    echo "FAIL: $what: interfaces of $p left in the root namespace"; fail=1; fi
  if [ -e "/run/rift/$p.json" ]; then echo "FAIL: $what: state file /run/rift/$p.json left"; fail=1; fi
  local c; c=$("$rift" clean --json 2>/dev/null | tail -1)
  case "$c" in *"$p"*) echo "FAIL: $what: rift clean found $p: $c"; fail=1;;
    *) echo "ok: $what: testbed $p gone";; esac
}
metric() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["metrics"][sys.argv[2]])' "$1" "$2"; }

expect 0 "leader isolation on dpdk" "$rift" run "$src/scenarios/leader-isolation.json" --backend dpdk --out "$out/iso"
no_leftovers "leader isolation" "$out/iso"
[ -s "$out/iso/run.json" ] && [ "$(metric "$out/iso/run.json" leader_changes)" -ge 1 ] \
  && echo "ok: isolating the leader changed the leader" || { echo "FAIL: no leader change recorded"; fail=1; }

expect 0 "chained cut on dpdk" "$rift" run "$src/scenarios/chained.json" --backend dpdk --out "$out/chain"
no_leftovers "chained" "$out/chain"

expect 0 "crash and restart on dpdk" "$rift" run "$src/scenarios/crash-restart.json" --backend dpdk --out "$out/crash"
no_leftovers "crash-restart" "$out/crash"
[ -s "$out/crash/run.json" ] && python3 - "$out/crash/run.json" <<'PY' || { echo "FAIL: crash-restart run.json"; fail=1; }
import json, sys
r = json.load(open(sys.argv[1]))
kinds = {f["kind"] for f in r["faults"]}
assert "crash" in kinds, kinds
assert r["metrics"]["leader_changes"] >= 1
assert any(p.startswith("r1/") for p in r.get("resources", {})), "no CPU/RSS samples"
print("ok: crash recorded, leader changed, resources sampled")
PY

# `rift kv` pokes the live cluster of a running dpdk run.
"$rift" run "$src/scenarios/chained.json" --backend dpdk --out "$out/kv" >"$out/kv.log" 2>&1 &
pid=$!
# the cluster is up once the replicas' configs exist and a client can reach it
for i in $(seq 60); do [ -s "$out/kv/nodes/r1/replica.json" ] && break; sleep 0.5; done
sleep 2
put=$("$rift" kv --run "$out/kv" put rift-kv-key v1 2>&1); get=$("$rift" kv --run "$out/kv" get rift-kv-key 2>&1)
case "$put|$get" in *'"ok":true'*'"value":"v1"'*) echo "ok: rift kv put/get on a live cluster";;
  *) echo "FAIL: rift kv: $put / $get"; fail=1;; esac
kill -INT $pid; wait $pid
no_leftovers "after rift kv" "$out/kv"

# SIGINT mid-run: exit 3 (interrupted), files consistent, testbed gone.
"$rift" run "$src/scenarios/chained.json" --backend dpdk --out "$out/int" >"$out/int.log" 2>&1 &
pid=$!
sleep 8
kill -INT $pid
wait $pid; got=$?
if [ "$got" = 3 ]; then echo "ok: SIGINT mid-run exits 3"; else echo "FAIL: SIGINT mid-run: exit $got"; tail -5 "$out/int.log"; fail=1; fi
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$out/int/run.json" && echo "ok: run.json readable after SIGINT" \
  || { echo "FAIL: run.json after SIGINT"; fail=1; }
no_leftovers "after SIGINT" "$out/int"

# Environment and input errors.
expect 2 "bad scenario on dpdk" "$rift" run "$src/tests/data/scenarios/bad_node.json" --backend dpdk --out "$out/bad"
if command -v setpriv >/dev/null; then
  cp "$src/scenarios/chained.json" "$out/pub.json"; chmod -R a+rwX "$out"
  expect 3 "not root: exit 3" setpriv --reuid=65534 --regid=65534 --clear-groups "$rift" run "$out/pub.json" --backend dpdk --out "$out/nr"
  grep -q -- "--backend sim" "$out/log" && echo "ok: the message suggests --backend sim" || { echo "FAIL: no hint"; fail=1; }
fi
exit $fail
