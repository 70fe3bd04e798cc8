#!/usr/bin/env bash
# FHIR benchmarks, p50 and p99:
#   - latency from the commit of ih.dicom.study.stable to the ImagingStudy
#     accepted by an EMR (a test server on loopback), with its Patient;
#     target p99 under 250 ms;
#   - ImagingStudy search over HTTP with 100,000 studies of 10,000 patients
#     bulk-inserted into the resource table, per kind of query; target p99
#     under 20 ms.
# On SQLite (embedded defaults) and, when IMAGINGHUB_TEST_DATABASE_URL is
# set, on PostgreSQL (with IMAGINGHUB_TEST_NATS_URL / _REDIS_URL if set).
#
# Usage: bash bench/fhir.sh [PUSHES] [QUERIES]   (defaults 300 and 200)
set -euo pipefail
cd "$(dirname "$0")/.."
PUSHES=${1:-300}
QUERIES=${2:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # label benchmark count target-ms [env...]
  local label=$1 bench=$2 count=$3 target=$4; shift 4
  env "$@" go test -count=1 -run '^$' -bench "^${bench}\$" -benchtime="${count}x" -timeout 30m ./fhir >"$work/out" 2>&1 || { cat "$work/out"; exit 1; }
  grep "^${bench}" "$work/out" | while read -r line; do
    name=$(awk '{print $1}' <<<"$line" | sed -e "s/^${bench}\/\{0,1\}//" -e 's/-[0-9]*$//' -e 's/_/ /g')
    p50=$(awk '{for(i=1;i<=NF;i++) if($i=="p50-ms") print $(i-1)}' <<<"$line")
    p99=$(awk '{for(i=1;i<=NF;i++) if($i=="p99-ms") print $(i-1)}' <<<"$line")
    verdict=$(awk -v p="$p99" -v t="$target" 'BEGIN{print (p < t) ? "ok" : "OVER TARGET"}')
    printf '%-12s %-20s p50 %8.2f ms   p99 %8.2f ms   (target p99 < %s ms: %s)\n' "$label" "${name:-}" "$p50" "$p99" "$target" "$verdict"
  done
  grep -m1 "studies loaded" "$work/out" | sed 's/^ *bench_test.go:[0-9]*: /             /' || true
}

backends=("SQLite")
if [ -n "${IMAGINGHUB_TEST_DATABASE_URL:-}" ]; then backends+=("PostgreSQL"); fi

echo "== ih.dicom.study.stable -> ImagingStudy accepted by the EMR, $PUSHES studies"
for b in "${backends[@]}"; do
  if [ "$b" = SQLite ]; then
    run "$b" BenchmarkStableToPush "$PUSHES" 250 IMAGINGHUB_TEST_DATABASE_URL= IMAGINGHUB_TEST_NATS_URL= IMAGINGHUB_TEST_REDIS_URL=
  else
    run "$b" BenchmarkStableToPush "$PUSHES" 250
  fi
done
echo
echo "== ImagingStudy search, 100,000 studies, $QUERIES queries of each kind"
for b in "${backends[@]}"; do
  if [ "$b" = SQLite ]; then
    run "$b" BenchmarkSearch100k "$QUERIES" 20 IMAGINGHUB_TEST_DATABASE_URL= IMAGINGHUB_TEST_NATS_URL= IMAGINGHUB_TEST_REDIS_URL=
  else
    run "$b" BenchmarkSearch100k "$QUERIES" 20
  fi
done
