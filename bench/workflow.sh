#!/usr/bin/env bash
# Workflow latency benchmark, a whole hub (every component) in process with
# a test PMS and RIS on loopback MLLP listeners:
#   - MPPS COMPLETED (the N-SET) to the DFT^P03 of its charge at the PMS,
#     target p99 under 100 ms;
#   - ih.dicom.study.stable to ih.study.reconciled, seen by one observer
#     on the event stream, target p99 under 50 ms;
# p50 and p99, on SQLite with embedded NATS, then on the PostgreSQL, Redis
# and NATS named by IMAGINGHUB_TEST_DATABASE_URL / _REDIS_URL / _NATS_URL
# when they are set.
#
# Usage: bash bench/workflow.sh [ITERATIONS]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # label [env...]
  local label=$1; shift
  env "$@" go test -count=1 -run '^$' -bench '^Benchmark(MPPSCompletedToDFT|StableToReconciled)$' -benchtime="${N}x" ./workflow >"$work/out" 2>&1 || { cat "$work/out"; exit 1; }
  for b in MPPSCompletedToDFT StableToReconciled; do
    line=$(grep "^Benchmark${b}" "$work/out" || true)
    if [ -z "$line" ]; then echo "$label $b: no result"; continue; fi
    p50=$(awk '{for(i=1;i<=NF;i++) if($i=="p50-ms") print $(i-1)}' <<<"$line")
    p99=$(awk '{for(i=1;i<=NF;i++) if($i=="p99-ms") print $(i-1)}' <<<"$line")
    target=100; [ "$b" = StableToReconciled ] && target=50
    verdict=$(awk -v p="$p99" -v t="$target" 'BEGIN{print (p < t) ? "meets" : "MISSES"}')
    printf '%-34s %-20s p50 %8.2f ms   p99 %8.2f ms   (%s p99 < %d ms)\n' "$label" "$b" "$p50" "$p99" "$verdict" "$target"
  done
}

echo "== workflow latency, $N iterations each"
run "embedded (SQLite, NATS in-process)" IMAGINGHUB_TEST_DATABASE_URL= IMAGINGHUB_TEST_REDIS_URL= IMAGINGHUB_TEST_NATS_URL=
if [ -n "${IMAGINGHUB_TEST_DATABASE_URL:-}${IMAGINGHUB_TEST_NATS_URL:-}" ]; then
  run "external (PostgreSQL, Redis, NATS)"
fi
