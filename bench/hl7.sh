#!/usr/bin/env bash
# HL7 MLLP benchmark: messages per second acknowledged (AA after the
# JetStream PubAck) on one connection and on 8 in parallel, first with the
# embedded defaults (NATS in-process, SQLite), then against the PostgreSQL
# and NATS named by IMAGINGHUB_TEST_DATABASE_URL / IMAGINGHUB_TEST_NATS_URL
# when they are set. his-bridge consumes behind the listener in every run;
# each line says how far it had got, and after the runs the bench waits for
# it to apply the backlog and reports that rate.
#
# Usage: bash bench/hl7.sh [N_MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
go build -o /tmp/ihbench-hl7.$$ ./bench/hl7
trap 'rm -f /tmp/ihbench-hl7.$$' EXIT
env -u IMAGINGHUB_TEST_DATABASE_URL -u IMAGINGHUB_TEST_NATS_URL /tmp/ihbench-hl7.$$ -n "$N" -conns 1,8 -drain 60s
if [[ -n "${IMAGINGHUB_TEST_DATABASE_URL:-}" || -n "${IMAGINGHUB_TEST_NATS_URL:-}" ]]; then
  /tmp/ihbench-hl7.$$ -n "$N" -conns 1,8 -drain 60s
fi
