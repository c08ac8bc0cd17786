#!/usr/bin/env bash
# kandil serve throughput on loopback: aggregate generated tokens/s and TTFT p50/p99 for 1, 4, 8
# and 16 concurrent streams on a --parallel 16 server, and a lone stream on --parallel 16 vs 1.
#   bench/serve_bench.sh KANDIL_BINARY MODEL.gguf [THREADS=2] [TOKENS=64]
# Prints one JSON line per run (see bench/serve_bench.mjs). Needs node >= 18.
set -euo pipefail
kandil=${1:?usage: serve_bench.sh KANDIL_BINARY MODEL.gguf [THREADS] [TOKENS]}
model=${2:?model}
threads=${3:-2}
tokens=${4:-64}
here="$(cd "$(dirname "$0")" && pwd)"
log=$(mktemp)
pid=""
stop_server() {
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    local rc=0
    wait "$pid" || rc=$?
    echo "{\"server_exit_code_after_sigterm\": $rc}"
    pid=""
  fi
}
trap 'stop_server; rm -f "$log"' EXIT
start_server() {  # $1: --parallel
  : >"$log"
  "$kandil" serve -m "$model" --port 0 --parallel "$1" -c 1024 -t "$threads" 2>"$log" &
  pid=$!
  for _ in $(seq 1 600); do
    port=$(sed -n 's/.*on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    [[ -n "$port" ]] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "server did not start" >&2
  exit 1
}
bench() {  # $1: streams, $2: label
  echo -n "{\"server\": \"$2\", \"result\": "
  node "$here/serve_bench.mjs" --url "http://127.0.0.1:$port" --streams "$1" --tokens "$tokens"
  echo -n "}"
  echo
}
start_server 1
node "$here/serve_bench.mjs" --url "http://127.0.0.1:$port" --streams 1 --tokens 8 >/dev/null  # warm-up
bench 1 "parallel=1"
stop_server
start_server 16
node "$here/serve_bench.mjs" --url "http://127.0.0.1:$port" --streams 1 --tokens 8 >/dev/null
for n in 1 4 8 16; do bench "$n" "parallel=16"; done
stop_server
