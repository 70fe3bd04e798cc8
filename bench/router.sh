#!/usr/bin/env bash
# Router benchmark: the router's forwarding throughput to DCMTK storescp, as
# a ratio of sending the same files straight to storescp, in the same run.
#
#   direct:  storescu -> storescp; time until storescu is done (every
#            C-STORE-RSP comes after storescp has written the file).
#   router forwarding (the headline): the destination is paused while the
#            N instances arrive at the hub, then resumed; time from the
#            resume until storescp holds all N files. This is what the
#            router itself achieves: queued jobs fetched from JetStream,
#            checked against and recorded in the delivery ledger,
#            acknowledged, and the stored files sent over a kept-open
#            association to the same single storescp.
#
# Also printed, for context and not the router's rate:
#   live:    storescu -> hub (ingest) -> router -> storescp; time from the
#            first store into the hub until storescp holds all N files. It
#            is bounded by ingest, which makes every instance durable
#            (fsync) before it answers.
#   ingest alone: the same stores into the hub with the destination paused.
#   the hub's own SCU (imaginghub dicom store) straight to storescp: the
#            ceiling of the router's sending code.
#
# N synthetic CT instances (512x512, 16-bit, Implicit VR LE), one
# association each way, SQLite and embedded NATS. Both storescu and
# storescp run with bench/nodelay.c preloaded (TCP_NODELAY), as in
# bench/ingest.sh: Debian's DCMTK leaves Nagle's algorithm on, which would
# stall every response ~40 ms on loopback. The ratio is direct time over
# hub time; 1.0 means forwarding adds nothing to a plain transfer.
#
# Usage: bash bench/router.sh [N_INSTANCES] [ROUNDS]   (needs dcmtk; gcc)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
ROUNDS=${2:-3}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for t in storescu storescp; do command -v $t >/dev/null || { echo "needs DCMTK ($t): apt-get install dcmtk"; exit 1; }; done
gcc -shared -fPIC -O2 -o "$work/nodelay.so" bench/nodelay.c -ldl
shim="$work/nodelay.so"
go build -o "$work/imaginghub" ./cmd/imaginghub
go build -o "$work/routerhub" ./bench/router

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 200); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open"; exit 1; }
now() { date +%s.%N; }
# wait_files DIR N: until DIR holds N files.
wait_files() { python3 - "$1" "$2" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 600
while len(os.listdir(d)) < n:
    if time.time() > deadline:
        sys.exit(f"only {len(os.listdir(d))} of {n} files arrived")
    time.sleep(0.002)
PY
}

"$work/imaginghub" dicom synth --instances "$N" --seed 42 "$work/ct" >/dev/null
bytes=$(du -cb "$work"/ct/*.dcm | tail -1 | cut -f1)
files=("$work"/ct/*.dcm)
echo "== $N instances, $((bytes/1024/1024)) MiB, storescu $(storescu --version | head -1 | awk '{print $2}'), $ROUNDS rounds"

start_scp() { # dir -> sets scp_port scp_pid
  mkdir -p "$1"; scp_port=$(free_port)
  LD_PRELOAD="$shim" storescp -aet STORESCP -od "$1" "$scp_port" & scp_pid=$!; pids+=($scp_pid)
  wait_port "$scp_port"
}

start_hub() { # data_dir scp_port -> sets hub_http hub_dicom hub_pid
  hub_http=$(free_port); hub_dicom=$(free_port)
  cat > "$1.yaml" <<YAML
router:
  destinations:
    - name: storescp
      ae: STORESCP
      addr: 127.0.0.1:$2
  rules:
    - name: everything
      on: [ih.dicom.instance.stored]
      forward: [storescp]
YAML
  IMAGINGHUB_DATA_DIR="$1" IMAGINGHUB_HTTP_ADDR=127.0.0.1:$hub_http IMAGINGHUB_DICOM_ADDR=127.0.0.1:$hub_dicom \
    IMAGINGHUB_HL7_ADDR=127.0.0.1:$(free_port) IMAGINGHUB_NATS_LISTEN= \
    "$work/routerhub" -config "$1.yaml" 2>>"$work/hub.log" & hub_pid=$!; pids+=($hub_pid)
  for _ in $(seq 1 200); do curl -sf "127.0.0.1:$hub_http/readyz" >/dev/null && return 0; sleep 0.05; done
  echo "hub did not become ready"; cat "$work/hub.log"; exit 1
}

live=(); drain=(); alone=(); goscu=()
for round in $(seq 1 "$ROUNDS"); do
  # --- direct
  start_scp "$work/direct$round"
  t0=$(now); LD_PRELOAD="$shim" storescu -xi -aec STORESCP 127.0.0.1 "$scp_port" "${files[@]}"; t1=$(now)
  wait_files "$work/direct$round" "$N"
  direct_s=$(python3 -c "print($t1-$t0)")
  kill "$scp_pid"; wait "$scp_pid" 2>/dev/null || true

  # --- direct with the hub's own DICOM SCU (imaginghub dicom store), the
  # code the router sends with: the ceiling of the router's rate
  start_scp "$work/directgo$round"
  t0=$(now); "$work/imaginghub" dicom store --aec STORESCP "127.0.0.1:$scp_port" "$work/ct" >/dev/null 2>&1; t1=$(now)
  wait_files "$work/directgo$round" "$N"
  scu_s=$(python3 -c "print($t1-$t0)")
  kill "$scp_pid"; wait "$scp_pid" 2>/dev/null || true

  # --- through the hub, live: forwarding while instances arrive
  start_scp "$work/fwd$round"
  start_hub "$work/hub$round" "$scp_port"
  t0=$(now)
  LD_PRELOAD="$shim" storescu -xi -aec IMAGINGHUB 127.0.0.1 "$hub_dicom" "${files[@]}"; t1=$(now)
  wait_files "$work/fwd$round" "$N"; t2=$(now)
  hub_s=$(python3 -c "print($t2-$t0)")
  ingest_s=$(python3 -c "print($t1-$t0)")
  kill "$hub_pid" "$scp_pid"; wait "$hub_pid" "$scp_pid" 2>/dev/null || true

  # --- through the hub, backlog: the destination paused while the
  # instances arrive, then resumed; time to drain the queue (the router's
  # own forwarding rate, without ingest competing for the CPU and disk)
  start_scp "$work/drain$round"
  start_hub "$work/hubd$round" "$scp_port"
  curl -sf -X POST "127.0.0.1:$hub_http/api/router/destinations/storescp/pause" >/dev/null
  t0=$(now); LD_PRELOAD="$shim" storescu -xi -aec IMAGINGHUB 127.0.0.1 "$hub_dicom" "${files[@]}"; t1=$(now)
  paused_s=$(python3 -c "print($t1-$t0)")
  sleep 1
  t0=$(now)
  curl -sf -X POST "127.0.0.1:$hub_http/api/router/destinations/storescp/resume" >/dev/null
  wait_files "$work/drain$round" "$N"; t1=$(now)
  drain_s=$(python3 -c "print($t1-$t0)")
  kill "$hub_pid" "$scp_pid"; wait "$hub_pid" "$scp_pid" 2>/dev/null || true

  python3 -c "
n,b=$N,$bytes
d,h,i,q,p,g=$direct_s,$hub_s,$ingest_s,$drain_s,$paused_s,$scu_s
r=lambda s: f'{n/s:6.1f} inst/s {b/1e6/s:6.1f} MB/s ({s:.2f} s)'
print(f'round $round: direct {r(d)}')
print(f'         hub SCU direct (imaginghub dicom store) {r(g)}: ratio {d/g:.2f}')
print(f'         live via hub {r(h)}, ingest done at {i:.2f} s: ratio {d/h:.2f}')
print(f'         ingest alone (destination paused) {r(p)}: ratio {d/p:.2f}')
print(f'         router forwarding (backlog drain) {r(q)}: ratio {d/q:.2f}')"
  live+=("$(python3 -c "print($direct_s/$hub_s)")"); drain+=("$(python3 -c "print($direct_s/$drain_s)")")
  alone+=("$(python3 -c "print($direct_s/$paused_s)")"); goscu+=("$(python3 -c "print($direct_s/$scu_s)")")
done
python3 - "${live[*]}" "${drain[*]}" "${alone[*]}" "${goscu[*]}" <<'PY'
import statistics, sys
goscu = [float(x) for x in sys.argv[4].split()]
live = [float(x) for x in sys.argv[1].split()]
drain = [float(x) for x in sys.argv[2].split()]
alone = [float(x) for x in sys.argv[3].split()]
print(f"router forwarding throughput, ratio to direct storescu->storescp on the same files,")
print(f"median of {len(drain)} rounds (target >= 0.8):")
print(f"  router forwarding (backlog drain to storescp):             {statistics.median(drain):.2f}")
print("for context, not the router's rate:")
print(f"  live (first store into the hub -> last file at storescp): {statistics.median(live):.2f}")
print(f"  ingest into the hub without forwarding:                    {statistics.median(alone):.2f}")
print(f"  the hub's SCU straight to storescp:                        {statistics.median(goscu):.2f}")
print("The live ratio cannot exceed the ingest one: the hub makes every instance")
print("durable (fsync) before answering, storescp does not.")
PY
