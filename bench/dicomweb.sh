#!/usr/bin/env bash
# DICOMweb benchmark (PS3.18): QIDO-RS study search, WADO-RS metadata and
# WADO-RS retrieve, against "imaginghub serve" and, beside it, Orthanc with
# its DICOMweb plugin.
#
# 1. Catalog of 100,000 synthetic studies (50,000 patients, three-letter
#    surnames, StudyDates over ten years), bulk-loaded straight into the
#    tables (catalog.BulkLoadSynthetic; no files: QIDO-RS reads only the
#    catalog), on SQLite and, when BENCH_DATABASE_URL or
#    IMAGINGHUB_TEST_DATABASE_URL is set, on a fresh PostgreSQL database
#    (dropped afterwards). Over HTTP, one kept-alive connection:
#      QIDO-RS  /studies?PatientName=<2 or 3 letters>*&limit=100
#      QIDO-RS  /studies?StudyDate=<7 to 90 days>&limit=100
#    each Q times with values drawn from the synthetic archive; every
#    response is checked to hold exactly min(100, matching studies). Then
#    one 1,000-instance study (64x64) stored with "imaginghub dicom store
#    --parallel 4": GET /studies/{uid}/metadata, the first request and
#    p50/p99 of 20 more; and one study of 100 512x512 instances: WADO-RS
#    retrieve of the whole study, MB/s, as stored (transfer-syntax=*) and in
#    the default Explicit VR Little Endian.
# 2. Side by side with Orthanc (Debian packages orthanc, orthanc-dicomweb),
#    when installed: Orthanc cannot be bulk-loaded, so M synthetic studies
#    (default 2,000, one 64x64 CT each, the same patients, dates and UIDs
#    the bulk loader writes for an archive of M studies) are sent with
#    DCMTK storescu to a fresh hub (SQLite) and to Orthanc, then the same
#    1,000- and 100-instance studies; the same requests go to both, and
#    the ratios are Orthanc's time over the hub's (above 1: the hub is
#    faster). Requests alternate between the two, so that both meet the
#    same load on the machine. Orthanc runs with its default configuration
#    plus the plugin, and with bench/nodelay.c preloaded (TCP_NODELAY; see
#    bench/ingest.sh) as storescu is. "default syntax" retrieves are
#    Explicit VR Little Endian from both (PS3.18 §8.7.3.5.2; the files are
#    stored Implicit VR, so both re-encode).
#
# Targets: QIDO-RS p99 under 20 ms; metadata of a 1,000-instance study under
# 150 ms; faster than Orthanc on the same data.
#
# Usage: bash bench/dicomweb.sh [QUERIES] [M_STUDIES]   (default 300 2000)
#   STUDIES=N overrides the 100,000 of part 1.   (needs gcc; dcmtk for part 2)
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-300}
M=${2:-2000}
STUDIES=${STUDIES:-100000}
PG_BASE=${BENCH_DATABASE_URL:-${IMAGINGHUB_TEST_DATABASE_URL:-}}
work=$(mktemp -d)
pids=()
dbs=()
store_times=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for d in "${dbs[@]}"; do "$work/bench" dropdb -url "$PG_BASE" -name "$d" || echo "could not drop database $d"; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/imaginghub" ./cmd/imaginghub
go build -o "$work/bench" ./bench/dicomweb
gcc -shared -fPIC -O2 -o "$work/nodelay.so" bench/nodelay.c -ldl
shim="$work/nodelay.so"
bench="$work/bench"
results="$work/results.jsonl"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { for _ in $(seq 1 400); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done; echo "$1 did not answer"; return 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$1"; }

start_hub() { # data-dir [database-url]
  hub_http=$(free_port); hub_dicom=$(free_port)
  IMAGINGHUB_DATA_DIR="$1" IMAGINGHUB_DATABASE_URL="${2:-}" \
    IMAGINGHUB_HTTP_ADDR=127.0.0.1:$hub_http IMAGINGHUB_DICOM_ADDR=127.0.0.1:$hub_dicom \
    IMAGINGHUB_HL7_ADDR=127.0.0.1:$(free_port) IMAGINGHUB_NATS_LISTEN= IMAGINGHUB_LOG_LEVEL=warn \
    "$work/imaginghub" serve 2>>"$work/hub.log" &
  hub_pid=$!; pids+=("$hub_pid")
  wait_http "127.0.0.1:$hub_http/readyz" || { cat "$work/hub.log"; exit 1; }
  hub_base="http://127.0.0.1:$hub_http/dicomweb"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The studies every part stores: 1,000 small instances for metadata, 100
# CT-sized ones for retrieve.
"$work/imaginghub" dicom synth --instances 1000 --size 64 --seed 1000 "$work/meta" >/dev/null
"$work/imaginghub" dicom synth --instances 100 --size 512 --seed 100 "$work/big" >/dev/null
meta_uid=$("$bench" studyuid -seed 1000)
big_uid=$("$bench" studyuid -seed 100)

# --- 1. the hub over a bulk-loaded catalog
catalog_run() { # label [database-url]
  local label=$1 db=${2:-} section="1. hub over $STUDIES bulk-loaded studies, catalog on $1"
  echo "== $section"
  local dir="$work/hub-$label"
  echo "  $("$bench" load -data-dir "$dir" -database "$db" -studies "$STUDIES")"
  start_hub "$dir" "$db"
  local t="hub ($label)=$hub_base"
  "$bench" qido -target "$t" -studies "$STUDIES" -queries "$Q" -results "$results" -section "$section"
  "$work/imaginghub" dicom store --parallel 4 --quiet "127.0.0.1:$hub_dicom" "$work/meta" | sed 's/^/  /'
  "$bench" metadata -target "$t" -study "$meta_uid" -instances 1000 -results "$results" -section "$section"
  "$work/imaginghub" dicom store --parallel 4 --quiet "127.0.0.1:$hub_dicom" "$work/big" | sed 's/^/  /'
  for ts in '*' ''; do
    "$bench" retrieve -target "$t" -study "$big_uid" -instances 100 -transfer-syntax "$ts" -results "$results" -section "$section"
  done
  stop "$hub_pid"
}

catalog_run SQLite
if [ -n "$PG_BASE" ]; then
  pg_url=$("$bench" createdb -url "$PG_BASE")
  dbs+=("$(basename "${pg_url%%\?*}")")
  catalog_run PostgreSQL "$pg_url"
else
  echo "== PostgreSQL: skipped (set BENCH_DATABASE_URL or IMAGINGHUB_TEST_DATABASE_URL)"
fi

# --- 2. side by side with Orthanc
plugin=${ORTHANC_DICOMWEB_PLUGIN:-}
if [ -z "$plugin" ]; then
  for p in /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/lib/orthanc/libOrthancDicomWeb.so*; do
    [ -f "$p" ] && { plugin=$p; break; }
  done
fi
if ! command -v Orthanc >/dev/null || [ -z "$plugin" ]; then
  echo "== Orthanc with its DICOMweb plugin: not installed (apt-get install orthanc orthanc-dicomweb) — skipped"
elif ! command -v storescu >/dev/null; then
  echo "== Orthanc side by side: needs DCMTK storescu (apt-get install dcmtk) — skipped"
else
  op=$(free_port); oh=$(free_port); mkdir -p "$work/orthanc"
  cat >"$work/orthanc/config.json" <<JSON
{ "Name": "bench", "StorageDirectory": "$work/orthanc/db", "IndexDirectory": "$work/orthanc/db",
  "DicomAet": "ORTHANC", "DicomPort": $op, "HttpPort": $oh, "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false, "DicomCheckCalledAet": false, "StorageCompression": false,
  "Plugins": ["$plugin"], "DicomWeb": { "Enable": true, "Root": "/dicom-web/" } }
JSON
  LD_PRELOAD="$shim" Orthanc "$work/orthanc/config.json" >"$work/orthanc.log" 2>&1 &
  orthanc_pid=$!; pids+=("$orthanc_pid")
  wait_http "127.0.0.1:$oh/system" || { cat "$work/orthanc.log"; exit 1; }
  o_ver=$(curl -s "127.0.0.1:$oh/system" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])')
  p_ver=$(curl -s "127.0.0.1:$oh/plugins/dicom-web" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])')
  orthanc="Orthanc $o_ver + DICOMweb $p_ver"
  orthanc_base="http://127.0.0.1:$oh/dicom-web"
  start_hub "$work/hub-side"
  section="2. side by side: $M studies of one 64x64 CT + a 1000-instance and a 100-instance study, sent by storescu to a fresh hub (SQLite) and to $orthanc"
  echo "== $section"
  echo "  $("$bench" synth -studies "$M" -dir "$work/archive")"
  for target in "hub $hub_dicom IMAGINGHUB" "orthanc $op ORTHANC"; do
    read -r name port aet <<<"$target"
    t0=$(now)
    LD_PRELOAD="$shim" storescu -xi -aec "$aet" 127.0.0.1 "$port" "$work"/archive/*.dcm
    secs=$(since "$t0")
    echo "  storescu of $M studies to $name: $secs s"
    store_times+=("$name $secs s")
  done
  # Each request goes to the hub and then to Orthanc, so that both meet
  # the same load on this shared machine. The hub's answers must be exact;
  # Orthanc's are checked and any wrong ones reported.
  both=(-target "hub (SQLite)=$hub_base" -target "$orthanc=$orthanc_base")
  "$bench" qido "${both[@]}" -studies "$M" -queries "$Q" -results "$results" -section "$section"
  for target in "hub $hub_dicom IMAGINGHUB" "orthanc $op ORTHANC"; do
    read -r name port aet <<<"$target"
    LD_PRELOAD="$shim" storescu -xi -aec "$aet" 127.0.0.1 "$port" "$work"/meta/*.dcm "$work"/big/*.dcm
  done
  "$bench" metadata "${both[@]}" -study "$meta_uid" -instances 1000 -results "$results" -section "$section"
  for ts in '*' ''; do
    "$bench" retrieve "${both[@]}" -study "$big_uid" -instances 100 -transfer-syntax "$ts" -results "$results" -section "$section"
  done
  stop "$hub_pid"
  stop "$orthanc_pid"
fi

echo
echo "== summary (QIDO-RS: $Q requests of each kind over one kept-alive HTTP connection; times include reading the whole body)"
"$bench" report -results "$results"
if [ ${#store_times[@]} -gt 0 ]; then
  printf 'Loading the side-by-side data (storescu, one association, %s single-instance studies):' "$M"
  printf ' %s;' "${store_times[@]}"; echo
  echo "(ingest, not DICOMweb; bench/ingest.sh measures it properly)"
fi
