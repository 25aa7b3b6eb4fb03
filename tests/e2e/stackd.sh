#!/usr/bin/env bash
# rift-stackd's command line: exit codes, error messages, clean shutdown.
#   tests/e2e/stackd.sh path/to/rift-stackd
# Configuration errors (exit 2) are checked by anyone; the DPDK parts (exit 3
# for a missing interface, SIGTERM removing both sockets) need root and make
# their own namespace rf-e2e-<pid> (removed on exit).
set -uo pipefail
bin=${1:?usage: $0 path/to/rift-stackd}
tmp=$(mktemp -d /tmp/rf-e2e-stackd.XXXXXX)
ns=rf-e2e-$$
fails=0
cleanup() {
    [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# expect CODE PATTERN -- command...: exit code and a stderr line matching PATTERN
expect() {
    local code=$1 pattern=$2
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [[ $got -ne $code ]] || ! grep -qE -- "$pattern" "$tmp/err"; then
        echo "FAIL: $* -> exit $got (want $code), stderr:" >&2
        sed 's/^/    /' "$tmp/err" >&2
        fails=$((fails + 1))
    else
        echo "ok: exit $code: $*"
    fi
}

expect 2 'missing --config' -- "$bin"
expect 2 'unknown argument --frobnicate' -- "$bin" --frobnicate
expect 2 "$tmp/none.json: cannot open" -- "$bin" --config "$tmp/none.json"
echo '{"ip":"198.18.0.1","iface":"x","socket":"/tmp/a","control":"/tmp/b","polling":"lazy"}' >"$tmp/bad.json"
expect 2 "$tmp/bad.json: polling: expected" -- "$bin" --config "$tmp/bad.json"
echo '{"ip":"198.18.0.1","iface":"x","socket":"/tmp/a","control":"/tmp/b","transport":{"rto_min_us":0}}' >"$tmp/tp.json"
expect 2 'transport.rto_min_us' -- "$bin" --config "$tmp/tp.json"
echo '{"ip": 1' >"$tmp/trunc.json"
expect 2 "$tmp/trunc.json:[0-9]+:[0-9]+: not JSON" -- "$bin" --config "$tmp/trunc.json"
expect 2 '^rift-stackd: iface: missing' -- "$bin" --ip 198.18.0.1 --socket "$tmp/s" --control "$tmp/c"
expect 2 '^rift-stackd: --pmd: expected' -- "$bin" --pmd mlx9
expect 2 '^rift-stackd: --set transport.nope: unknown field' -- "$bin" --set transport.nope=1
# flags override the file
echo '{"ip":"198.18.0.1","iface":"x","socket":"/tmp/a","control":"/tmp/b"}' >"$tmp/o.json"
expect 2 'control: must differ from socket' -- "$bin" --config "$tmp/o.json" --control /tmp/a

if [[ $(id -u) -ne 0 ]]; then
    echo "skip: the DPDK checks need root"
    exit $((fails ? 1 : 0))
fi

ip netns add "$ns" || exit 1
ip -n "$ns" link add rfe$$a type veth peer name rfe$$b || exit 1
ip -n "$ns" link set rfe$$a up && ip -n "$ns" link set rfe$$b up
expect 3 'no-such-if|vdev init failed|af_packet' -- ip netns exec "$ns" "$bin" --ip 198.18.0.1 --iface rf-no-such-if \
    --socket "$tmp/s" --control "$tmp/c"

# Start, answer a ping, stop on SIGTERM: exit 0, both sockets and the EAL run dir gone.
ip netns exec "$ns" "$bin" --ip 198.18.0.1 --iface rfe$$a --socket "$tmp/app.sock" --control "$tmp/ctl.sock" \
    --log "$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q 'rift-stackd: ready' "$tmp/log" 2>/dev/null && break; sleep 0.1; done
if ! grep -q 'rift-stackd: ready' "$tmp/log"; then
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"; code=$?
        if [[ $code -eq 3 ]]; then echo "skip: DPDK cannot start a port here"; exit $((fails ? 1 : 0)); fi
    fi
    echo "FAIL: not ready:" >&2; cat "$tmp/log" >&2; exit 1
fi
reply=$(python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"{\"cmd\":\"ping\"}\n")
print(s.makefile().readline().strip())' "$tmp/ctl.sock")
if [[ $reply == '{"ok":true}' ]]; then echo "ok: ping"; else echo "FAIL: ping -> $reply" >&2; fails=$((fails + 1)); fi
kill -TERM "$pid"
wait "$pid"; code=$?
pid=
if [[ $code -eq 0 && ! -e $tmp/app.sock && ! -e $tmp/ctl.sock ]]; then
    echo "ok: SIGTERM: exit 0, sockets removed"
else
    echo "FAIL: SIGTERM: exit $code, left: $(ls "$tmp")" >&2
    fails=$((fails + 1))
fi
grep -q 'rift-stackd: stopped' "$tmp/log" || { echo "FAIL: no 'stopped' in the log" >&2; fails=$((fails + 1)); }
exit $((fails ? 1 : 0))
