#!/usr/bin/env bash
# Profiles the store's hot paths: starts catalog, three order replicas and the front-end on their own
# ports (with plenty of stock), drives one kind of load at a time with the client, and records the
# services' CPU with `perf record` (software clock, call graphs from DWARF) while it runs.
#
#   scripts/profile.sh [OUT]      default OUT: a new temporary folder, printed at the end
#
# Scenarios: query (cache on, p=0), uncached (--no-cache, p=0), buy (p=1: a query and a purchase per
# iteration, then the order queries of the check). For each: OUT/<scenario>.perf.data and
# OUT/<scenario>.txt (perf report by thread and function), OUT/pids.txt (which process is which, for
# `perf report --pid`), plus the client's summary.
# Environment: BIN (release binaries, default target/release), PORT (first port, default 23700),
# SECS (perf time per scenario, default 8), CLIENTS (default 5), PERF (default perf).
# perf needs perf_event_paranoid <= 1 or root; the CPU's hardware counters are not needed.
set -euo pipefail
BIN=${BIN:-target/release}
PORT=${PORT:-23700}
SECS=${SECS:-8}
CLIENTS=${CLIENTS:-5}
PERF=${PERF:-perf}
OUT=${1:-$(mktemp -d -t toystore-profile-XXXXXX)}
mkdir -p "$OUT"
command -v "$PERF" >/dev/null || { echo "profile.sh: $PERF not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
DATA=$(mktemp -d -t toystore-profile-data-XXXXXX)
export TOYSTORE_SECRET=profile-$$

FE=$PORT; CAT=$((PORT + 1)); INT=$((PORT + 2)); O1=$((PORT + 11))
REPLICAS="1=http://127.0.0.1:$O1,2=http://127.0.0.1:$((O1 + 1)),3=http://127.0.0.1:$((O1 + 2))"

pids=()
fe_pid=
stop() {
  trap - EXIT INT TERM
  [ -n "$fe_pid" ] && kill -KILL "$fe_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DATA"
}
trap stop EXIT
trap 'exit 130' INT TERM

{
  echo "name,price,quantity"
  for t in Tux:25.99 Whale:34.99 Elephant:29.99 Bird:15.99 Fox:22.50 Python:19.99 Lego:49.99 Barbie:24.99 Frisbee:9.99 Marbles:5.49; do
    echo "${t%%:*},${t##*:},1000000000"
  done
} > "$DATA/catalog.csv"

"$BIN/catalog" --listen "127.0.0.1:$CAT" --data "$DATA" --frontend "http://127.0.0.1:$INT" --restock-interval 10 \
  >"$OUT/catalog.log" 2>&1 &
pids+=($!)
for id in 1 2 3; do
  "$BIN/order" --id "$id" --listen "127.0.0.1:$((O1 + id - 1))" --data "$DATA" --catalog "http://127.0.0.1:$CAT" \
    --replicas "$REPLICAS" >"$OUT/order-$id.log" 2>&1 &
  pids+=($!)
done

names=(catalog order-1 order-2 order-3)
for i in "${!pids[@]}"; do echo "${names[$i]}=${pids[$i]}"; done >"$OUT/pids.txt"

start_frontend() {
  [ -n "$fe_pid" ] && { kill -KILL "$fe_pid" 2>/dev/null || true; wait "$fe_pid" 2>/dev/null || true; }
  "$BIN/frontend" --listen "127.0.0.1:$FE" --internal-listen "127.0.0.1:$INT" --catalog "http://127.0.0.1:$CAT" \
    --replicas "$REPLICAS" "$@" >>"$OUT/frontend.log" 2>&1 &
  fe_pid=$!
  echo "frontend${1:+ $1}=$fe_pid" >>"$OUT/pids.txt"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$FE/products/Tux" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "profile.sh: the front-end did not answer" >&2
  exit 1
}

scenario() {
  local name=$1 p=$2
  # Enough iterations to outlast perf; the client is stopped when perf is done.
  "$BIN/client" --frontend "http://127.0.0.1:$FE" --threads "$CLIENTS" --iterations 1000000 --p "$p" \
    --latency-csv "$OUT/$name-latency.csv" >"$OUT/$name-client.txt" 2>&1 &
  local client=$!
  sleep 1
  local all
  all=$(IFS=,; echo "${pids[*]},$fe_pid")
  "$PERF" record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$all" -o "$OUT/$name.perf.data" -- sleep "$SECS" \
    2>"$OUT/$name.perf.log" || true
  kill -TERM "$client" 2>/dev/null || true
  wait "$client" 2>/dev/null || true
  "$PERF" report -i "$OUT/$name.perf.data" --stdio --no-children --sort comm,sym --percent-limit 1.5 -g none \
    >"$OUT/$name.txt" 2>/dev/null || true
  echo "profile.sh: $name: $OUT/$name.txt" >&2
}

start_frontend
scenario query 0
scenario buy 1
start_frontend --no-cache
scenario uncached 0
echo "$OUT"
