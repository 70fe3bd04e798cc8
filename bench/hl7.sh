#!/usr/bin/env bash
# HL7 MLLP benchmark: messages per second acknowledged (AA after the
# JetStream PubAck) on one connection and on 8 in parallel, first with the
# embedded defaults (NATS in-process, SQLite), then against the PostgreSQL
# and NATS named by IMAGINGHUB_TEST_DATABASE_URL / IMAGINGHUB_TEST_NATS_URL
# when they are set.
#
# Each backend is measured in two shapes:
#   - the listener alone (component hl7, what "imaginghub hl7" runs when the
#     bridges run as their own processes or machines) — the acknowledgment
#     path the targets are about, like bench/ingest.sh's "imaginghub ingest";
#     three rounds per connection count, the median reported (runs on a
#     shared machine vary by 10-30 % from one second to the next);
#   - the listener with his-bridge applying every message in the same
#     process, on the same cores; each line says how far the bridge had got,
#     and after the runs the bench waits for it to apply the backlog and
#     reports that rate.
#
# The peer, measured in the same run when Debian's python3-hl7 is installed
# (apt-get install python3-hl7), is that library's asyncio MLLP server
# (bench/hl7peer/peer.py): it parses each message and answers AA, storing
# nothing. The ratios at the end are hub / peer on the same connection count.
#
# Usage: bash bench/hl7.sh [N_MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
bin=/tmp/ihbench-hl7.$$
out=/tmp/ihbench-hl7.$$.out
peer_pid=
cleanup() { [[ -n "$peer_pid" ]] && kill "$peer_pid" 2>/dev/null; rm -f "$bin" "$out"; }
trap cleanup EXIT
go build -o "$bin" ./bench/hl7

# rates FILE: the msg/s of the 1- and 8-connection lines of one run.
rates() { awk '/connection\(s\):/ { for (i = 1; i <= NF; i++) if ($i == "msg/s") print $(i-1) }' "$1" | tr '\n' ' '; }
declare -A result
# Every run starts from a settled disk: the previous run's stream, catalog
# and removed temporary files are written back first, not during it.
settle() { sync; sleep 3; }
run() { # label, then the command
  local label=$1; shift
  settle
  "$@" | tee "$out"
  result[$label]=$(rates "$out")
}

# The Debian package's python, not a user's pyenv or venv one.
py=/usr/bin/python3
if [[ -x $py ]] && $py -c 'import hl7.mllp' 2>/dev/null; then
  port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  $py bench/hl7peer/peer.py "$port" & peer_pid=$!
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  run peer "$bin" -peer "127.0.0.1:$port" -peer-name "python-hl7 $($py -c 'import hl7; print(hl7.__version__)') asyncio MLLP server (parses, answers AA, stores nothing)" -n "$N" -rounds 3 -conns 1,8
  kill "$peer_pid"; wait "$peer_pid" 2>/dev/null || true; peer_pid=
else
  echo "peer: python3-hl7 is not installed (apt-get install python3-hl7), so no ratio is printed"
fi

both() { # label prefix, then the environment
  local p=$1; shift
  run "$p alone" env "$@" "$bin" -n "$N" -rounds 3 -conns 1,8 -bridge=false
  run "$p with his-bridge" env "$@" "$bin" -n "$N" -conns 1,8 -drain 60s
}
both embedded -u IMAGINGHUB_TEST_DATABASE_URL -u IMAGINGHUB_TEST_NATS_URL
labels=("embedded alone" "embedded with his-bridge")
if [[ -n "${IMAGINGHUB_TEST_DATABASE_URL:-}" || -n "${IMAGINGHUB_TEST_NATS_URL:-}" ]]; then
  both external
  labels+=("external alone" "external with his-bridge")
fi

echo "== targets: >= 2000 msg/s on 1 connection, >= 10000 on 8"
if [[ -n "${result[peer]:-}" ]]; then
  read -r p1 p8 <<<"${result[peer]}"
  echo "== hub / python-hl7 peer (same connection count)"
fi
for l in "${labels[@]}"; do
  read -r h1 h8 <<<"${result[$l]}"
  if [[ -n "${result[peer]:-}" ]]; then
    awk -v l="$l" -v h1="$h1" -v h8="$h8" -v p1="$p1" -v p8="$p8" \
      'BEGIN { printf "%-26s 1 conn %6d msg/s (%.2f x peer)   8 conns %6d msg/s (%.2f x peer)\n", l, h1, h1/p1, h8, h8/p8 }'
  else
    printf "%-26s 1 conn %6d msg/s   8 conns %6d msg/s\n" "$l" "$h1" "$h8"
  fi
done
