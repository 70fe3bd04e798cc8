#!/usr/bin/env bash
# Ingest benchmark: 500 synthetic CT instances (512x512, 16-bit, Implicit VR
# LE) sent with DCMTK storescu over one association to
#   - the hub (imaginghub serve, embedded defaults: SQLite, embedded NATS),
#   - DCMTK storescp (writes files, indexes nothing),
#   - Orthanc (Debian package "orthanc"), when installed,
# in the same run, then 4 storescu processes in parallel against the hub
# and against storescp --fork (one process per association), and one 1 GiB
# multi-frame instance with the hub's peak RSS.
#
# Fairness: Debian's DCMTK and Orthanc leave Nagle's algorithm on, which
# stalls every C-STORE response ~40 ms on loopback. bench/nodelay.c, built
# here and LD_PRELOADed into storescu, storescp and Orthanc, sets
# TCP_NODELAY on their sockets; the hub sets it itself.
#
# storescp writes files and answers without making them durable; the hub
# answers Success only once the file and its catalog rows survive a power
# loss. To show what that alone costs on the machine at hand, storescp also
# runs with bench/syncclose.c preloaded ("storescp+fsync"): each file it
# writes is fsynced, and then its directory, before storescp answers — the
# same storescp, made durable. The ratios print against both.
#
# Each round also measures what making one instance durable costs on this
# filesystem (bench/durable: a direct write into a preallocated file and a
# device flush: what a receiver that answers only once the instance is
# durable waits for, per instance, on one association). "storescp + a
# durable write" is storescp's time per instance plus that write, as a
# ratio of storescp's throughput: what a receiver doing storescp's work and
# then making the instance durable would reach; the hub only gets above it
# by overlapping the two.
#
# The hub runs as "imaginghub ingest" (the DICOM listener, catalog, outbox
# relay: what a scale-out DICOM node runs); HUB_COMMAND=serve measures it
# with every other component consuming the events beside it.
#
# Usage: [ROUNDS=5] bash bench/ingest.sh [N_INSTANCES]   (needs dcmtk; gcc)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
# On an ext4 without journal, creating a file skips, one by one, the
# inodes deleted in the last 60 s (300 s while their inode table block is
# dirty), which after a large rm costs every file-creating peer CPU. So
# nothing is deleted until the end, and a run started within a minute of
# the previous one's clean-up waits that minute out.
cleaned=${TMPDIR:-/tmp}/ihbench-ingest.cleaned
if [[ -f $cleaned ]]; then
  wait_s=$(( $(cat "$cleaned") + 61 - $(date +%s) ))
  if (( wait_s > 0 )); then echo "waiting ${wait_s}s for the previous run's deleted inodes to age"; sleep "$wait_s"; fi
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  rm -rf "$work"; sync; date +%s > "$cleaned"
}
trap cleanup EXIT

for t in storescu storescp; do command -v $t >/dev/null || { echo "needs DCMTK ($t): apt-get install dcmtk"; exit 1; }; done
gcc -shared -fPIC -O2 -o "$work/nodelay.so" bench/nodelay.c -ldl
gcc -shared -fPIC -O2 -o "$work/syncclose.so" bench/syncclose.c -ldl
export LD_PRELOAD_SHIM="$work/nodelay.so"
go build -o "$work/imaginghub" ./cmd/imaginghub
go build -o "$work/durable" ./bench/durable

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 200); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open"; exit 1; }
now() { date +%s.%N; }
# Every run starts from a settled disk: no dirty page cache (the files just
# generated, or written by the previous peer without fsync, would otherwise
# be flushed during the next run and slow whoever fsyncs in it).
settle() { sync; sleep 6; }
rate() { python3 -c "import sys; n,s,b=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'{n/s:8.1f} inst/s {b/1e6/s:8.1f} MB/s ({s:.2f} s)')" "$@"; }

"$work/imaginghub" dicom synth --instances "$N" --seed 42 "$work/ct" >/dev/null
bytes=$(du -cb "$work"/ct/*.dcm | tail -1 | cut -f1)
files=("$work"/ct/*.dcm)
echo "== $N instances, $((bytes/1024/1024)) MiB, storescu $(storescu --version | head -1 | awk '{print $2}')"

send() { # port aet files...
  local port=$1 aet=$2; shift 2
  LD_PRELOAD="$LD_PRELOAD_SHIM" storescu -xi -aec "$aet" 127.0.0.1 "$port" "$@"
}

start_hub() {
  local dir=$1
  hub_http=$(free_port); hub_dicom=$(free_port)
  IMAGINGHUB_DATA_DIR="$dir" IMAGINGHUB_HTTP_ADDR=127.0.0.1:$hub_http IMAGINGHUB_DICOM_ADDR=127.0.0.1:$hub_dicom \
    IMAGINGHUB_HL7_ADDR=127.0.0.1:$(free_port) IMAGINGHUB_NATS_LISTEN= IMAGINGHUB_LOG_LEVEL=warn \
    "$work/imaginghub" ${HUB_COMMAND:-ingest} 2>>"$work/hub.log" &
  hub_pid=$!; pids+=($hub_pid)
  for _ in $(seq 1 200); do curl -sf "127.0.0.1:$hub_http/readyz" >/dev/null && return 0; sleep 0.05; done
  echo "hub did not become ready"; cat "$work/hub.log"; exit 1
}

# Each round measures every peer once, on fresh directories (nothing is
# deleted until the end, so no peer pays for another's deletions); the
# ratios are those of the medians over the rounds, because runs on a shared
# machine vary by 10-30 % from one minute to the next.
ROUNDS=${ROUNDS:-5}
secs() { python3 -c "print($2-$1)"; }

hub1() { # round
  start_hub "$work/hub1.$1"
  settle; local t0 t1; t0=$(now); send "$hub_dicom" IMAGINGHUB "${files[@]}" >&2; t1=$(now)
  kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
  secs "$t0" "$t1"
}

scp1() { # round [durable]
  local p t0 t1 dir="$work/scp${2:-}.$1" preload=$LD_PRELOAD_SHIM; p=$(free_port); mkdir -p "$dir"
  [[ -n ${2:-} ]] && preload+=" $work/syncclose.so"
  LD_PRELOAD="$preload" storescp -aet STORESCP -od "$dir" "$p" & pids+=($!); local scp_pid=$!
  wait_port "$p" >&2
  settle; t0=$(now); send "$p" STORESCP "${files[@]}" >&2; t1=$(now)
  kill "$scp_pid" 2>/dev/null || true; wait "$scp_pid" 2>/dev/null || true
  secs "$t0" "$t1"
}

orthanc1() { # round
  local p hp t0 t1 dir="$work/orthanc.$1"; p=$(free_port); hp=$(free_port); mkdir -p "$dir"
  cat > "$dir/config.json" <<JSON
{ "Name": "bench", "StorageDirectory": "$dir/db", "IndexDirectory": "$dir/db",
  "DicomAet": "ORTHANC", "DicomPort": $p, "HttpPort": $hp, "RemoteAccessAllowed": false,
  "DicomCheckCalledAet": false, "Plugins": [], "StorageCompression": false }
JSON
  LD_PRELOAD="$LD_PRELOAD_SHIM" Orthanc "$dir/config.json" >"$dir.log" 2>&1 & pids+=($!); local orthanc_pid=$!
  wait_port "$p" >&2
  settle; t0=$(now); send "$p" ORTHANC "${files[@]}" >&2; t1=$(now)
  kill "$orthanc_pid" 2>/dev/null || true; wait "$orthanc_pid" 2>/dev/null || true
  secs "$t0" "$t1"
}

send4() { # port aet: 4 storescu processes at once, N/4 files each
  local senders=()
  for k in 0 1 2 3; do
    local part=(); for ((i=k; i<N; i+=4)); do part+=("${files[$i]}"); done
    send "$1" "$2" "${part[@]}" >&2 & senders+=($!)
  done
  wait "${senders[@]}" 2>/dev/null || true
}

# storescp with --fork takes the four associations in four processes: what
# the machine allows four senders and a receiver that only writes files.
scp4() { # round
  local p t0 t1 dir="$work/scp4.$1"; p=$(free_port); mkdir -p "$dir"
  LD_PRELOAD="$LD_PRELOAD_SHIM" storescp --fork -aet STORESCP -od "$dir" "$p" & pids+=($!); local scp_pid=$!
  wait_port "$p" >&2
  settle; t0=$(now); send4 "$p" STORESCP; t1=$(now)
  pkill -P "$scp_pid" 2>/dev/null || true; kill "$scp_pid" 2>/dev/null || true; wait "$scp_pid" 2>/dev/null || true
  secs "$t0" "$t1"
}

hub4() { # round: 4 storescu processes, N/4 files each
  start_hub "$work/hub4.$1"
  settle; local t0 t1; t0=$(now); send4 "$hub_dicom" IMAGINGHUB; t1=$(now)
  kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
  secs "$t0" "$t1"
}

have_orthanc=false
command -v Orthanc >/dev/null && have_orthanc=true || echo "Orthanc: not installed (apt-get install orthanc) — skipped"
declare -a T_hub T_scp T_sync T_orth T_hub4 T_scp4 D_ms
for ((r=1; r<=ROUNDS; r++)); do
  echo "-- round $r of $ROUNDS"
  # The runs whose ratios are printed follow each other closely: the
  # machine's speed drifts over minutes, and Orthanc's run is the longest.
  T_hub+=("$(hub1 "$r")");  echo "hub        1 assoc: $(rate "$N" "${T_hub[-1]}" "$bytes")"
  T_scp+=("$(scp1 "$r")");  echo "storescp   1 assoc: $(rate "$N" "${T_scp[-1]}" "$bytes")"
  mkdir -p "$work/durable.$r"; settle; dw=$("$work/durable" -size $((bytes / N)) "$work/durable.$r")
  D_ms+=("${dw#durable_ms=}"); echo "one instance made durable: ${D_ms[-1]} ms"
  T_hub4+=("$(hub4 "$r")"); echo "hub        4 assoc: $(rate "$N" "${T_hub4[-1]}" "$bytes")"
  T_scp4+=("$(scp4 "$r")"); echo "storescp   4 assoc: $(rate "$N" "${T_scp4[-1]}" "$bytes")"
  T_sync+=("$(scp1 "$r" durable)"); echo "storescp+fsync    : $(rate "$N" "${T_sync[-1]}" "$bytes")"
  if $have_orthanc; then
    T_orth+=("$(orthanc1 "$r")"); echo "Orthanc    1 assoc: $(rate "$N" "${T_orth[-1]}" "$bytes")"
  fi
done

echo "== medians of $ROUNDS rounds; ratios of the medians (higher is better for the hub)"
python3 - "$N" "${T_hub[*]}" "${T_scp[*]}" "${T_sync[*]}" "${T_orth[*]:-}" "${T_hub4[*]}" "${T_scp4[*]}" "${D_ms[*]}" <<'PY'
import statistics, sys
n = float(sys.argv[1])
hub, scp, sync, orth, hub4, scp4, dms = ([float(x) for x in a.split()] for a in sys.argv[2:9])
med = lambda ts: n / statistics.median(ts)
for name, ts in (("hub 1 assoc", hub), ("storescp", scp), ("storescp+fsync", sync), ("Orthanc", orth), ("hub 4 assoc", hub4), ("storescp 4 assoc", scp4)):
    if ts:
        print(f"{name:16s} {med(ts):7.1f} inst/s  (rounds: {', '.join(f'{n/t:.0f}' for t in ts)})")
print(f"hub / storescp throughput:     {med(hub)/med(scp):5.2f}  (target >= 0.70)")
print(f"  round by round:              {', '.join(f'{s/h:.2f}' for h, s in zip(hub, scp))}")
print(f"  storescp+fsync / storescp:   {med(sync)/med(scp):5.2f}  (what durability alone costs here)")
print(f"  hub / storescp+fsync:        {med(hub)/med(sync):5.2f}")
t, d = 1000 / med(scp), statistics.median(dms)
print(f"  one instance made durable:   {d:.2f} ms; storescp {t:.2f} ms per instance")
print(f"  storescp + a durable write:  {t/(t+d):5.2f}  (of storescp: its work and one durable write per instance, one after the other)")
if orth:
    print(f"hub / Orthanc throughput:      {med(hub)/med(orth):5.2f}  (target >= 2.00)")
print(f"hub 4 assoc / 1 assoc:         {med(hub4)/med(hub):5.2f}  (target >= 1.60)")
print(f"  round by round:              {', '.join(f'{h/h4:.2f}' for h, h4 in zip(hub, hub4))}")
print(f"  storescp 4 assoc / 1 assoc:  {med(scp4)/med(scp):5.2f}  (storescp --fork: four processes, files only)")
print(f"  hub 4 assoc / storescp 4:    {med(hub4)/med(scp4):5.2f}")
PY

# --- one 1 GiB multi-frame instance: peak RSS of the hub
"$work/imaginghub" dicom synth --instances 1 --frames 2048 --size 512 --seed 7 "$work/big" >/dev/null
start_hub "$work/hubbig"
settle; t0=$(now); send "$hub_dicom" IMAGINGHUB "$work"/big/*.dcm; t1=$(now)
rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$hub_pid/status)
big=$(du -b "$work"/big/*.dcm | cut -f1)
echo "1 GiB instance: $(rate 1 "$(python3 -c "print($t1-$t0)")" "$big")  hub peak RSS $((rss_kb/1024)) MiB (target < 100 MiB)"
kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
