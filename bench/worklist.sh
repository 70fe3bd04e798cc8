#!/usr/bin/env bash
# Modality Worklist benchmark: 20,000 scheduled items (50 stations x 20 days),
# one MWL C-FIND for one Scheduled Station AE Title and today's date (20
# matches), over one association, p50 and p99 of the round trip:
#   - the hub on SQLite (embedded defaults),
#   - the hub on PostgreSQL when IMAGINGHUB_TEST_DATABASE_URL is set,
#   - DCMTK wlmscpfs serving the same items from .wl files, when installed,
# all in this run, with the ratio of the hub to wlmscpfs. Target: p99 under
# 20 ms on both catalogs.
#
# Usage: bash bench/worklist.sh [QUERIES]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # name benchmark count [env...]
  local name=$1 bench=$2 count=$3; shift 3
  env "$@" go test -count=1 -run '^$' -bench "^${bench}\$" -benchtime="${count}x" ./worklist >"$work/$name.out" 2>&1 || { cat "$work/$name.out"; exit 1; }
  local line; line=$(grep "^${bench}" "$work/$name.out" || true)
  if [ -z "$line" ]; then echo "$name: skipped ($(grep -m1 -i skip "$work/$name.out" || echo 'no result'))"; return; fi
  p50=$(awk '{for(i=1;i<=NF;i++) if($i=="p50-ms") print $(i-1)}' <<<"$line")
  p99=$(awk '{for(i=1;i<=NF;i++) if($i=="p99-ms") print $(i-1)}' <<<"$line")
  printf '%-28s p50 %9.2f ms   p99 %9.2f ms\n' "$name" "$p50" "$p99"
  echo "$p50 $p99" >"$work/$name.res"
}

echo "== MWL C-FIND, 20000 items, one station and today, $N queries"
run "hub (SQLite)" BenchmarkMWLFind "$N" IMAGINGHUB_TEST_DATABASE_URL=
if [ -n "${IMAGINGHUB_TEST_DATABASE_URL:-}" ]; then
  run "hub (PostgreSQL)" BenchmarkMWLFind "$N"
fi
if command -v wlmscpfs >/dev/null; then
  # wlmscpfs reads every file on each query: a few queries suffice.
  run "DCMTK wlmscpfs (.wl files)" BenchmarkWlmscpfs 10
else
  echo "DCMTK wlmscpfs: not installed (apt-get install dcmtk)"
fi
if [ -f "$work/DCMTK wlmscpfs (.wl files).res" ]; then
  read -r w50 w99 <"$work/DCMTK wlmscpfs (.wl files).res"
  for f in "$work"/hub*.res; do
    [ -f "$f" ] || continue
    read -r h50 h99 <"$f"
    python3 -c "import sys; n,h50,h99,w50,w99=sys.argv[1],*map(float,sys.argv[2:]); print(f'{n}: p50 {w50/h50:.0f}x, p99 {w99/h99:.0f}x faster than wlmscpfs')" \
      "$(basename "$f" .res)" "$h50" "$h99" "$w50" "$w99"
  done
fi
