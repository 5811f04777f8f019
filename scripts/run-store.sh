#!/usr/bin/env bash
# Starts the whole store in the foreground: catalog, order replicas 1-3, front-end. Ctrl-C stops all.
# Environment: BIN (binaries, default target/release), DATA (default data), RESTOCK_INTERVAL (10),
# TOYSTORE_SECRET (generated and kept in $DATA/.secret when unset), NO_CACHE=1 to turn the cache off.
set -euo pipefail
BIN=${BIN:-target/release}
DATA=${DATA:-data}
mkdir -p "$DATA"
if [ -z "${TOYSTORE_SECRET:-}" ]; then
  if [ ! -s "$DATA/.secret" ]; then
    (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$DATA/.secret")
  fi
  TOYSTORE_SECRET=$(cat "$DATA/.secret")
fi
export TOYSTORE_SECRET

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping the store..." >&2
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait || true
  exit 0
}
trap stop INT TERM EXIT

"$BIN/catalog" --data "$DATA" --restock-interval "${RESTOCK_INTERVAL:-10}" &
pids+=($!); echo "catalog      pid $!" >&2
for id in 1 2 3; do
  "$BIN/order" --id "$id" --data "$DATA" &
  pids+=($!); echo "order $id      pid $!" >&2
done
cache_flag=()
[ -n "${NO_CACHE:-}" ] && cache_flag=(--no-cache)
"$BIN/frontend" "${cache_flag[@]}" &
pids+=($!); echo "frontend     pid $!" >&2
cat >&2 <<MSG
The store is up at http://127.0.0.1:8080. Ctrl-C stops it.
Kill any process to watch the store recover (make watch in another terminal shows it); restart a
replica with the same command, e.g.
  TOYSTORE_SECRET=\$(cat $DATA/.secret) $BIN/order --id 2 --data $DATA
MSG
wait
