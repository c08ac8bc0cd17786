#!/usr/bin/env bash
# CTest entry of the openai-client tests: installs the official `openai` npm package (pinned in
# package-lock.json), starts `kandil serve` on a free loopback port with a synthesized model and
# adapter, waits for /health, runs test.mjs and stops the server with SIGTERM (it must exit 0).
#   tests/js/serve/run.sh KANDIL_BINARY
# Exit 77 (skip) where node/npm or the registry are unavailable.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
kandil=${1:?usage: run.sh KANDIL_BINARY}
status=0
cache=$("$root/tests/js/npm_install.sh" serve) || status=$?
if ((status != 0)); then exit "$status"; fi
work=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
"$kandil" synth -o "$work/m.gguf" --ctx 1024 --lora-out "$work/adapter" >/dev/null
"$kandil" serve -m "$work/m.gguf" --port 0 --parallel 16 -c 512 -t 2 --api-key sk-kandil-test \
  --lora "$work/adapter:0" --alias kandil 2>"$work/serve.log" &
pid=$!
port=""
for _ in $(seq 1 300); do  # up to 30 s for the model to load and the port to appear
  port=$(sed -n 's/.*on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/serve.log" | head -1)
  [[ -n "$port" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$port" ]] || { echo "kandil serve did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
rc=0
timeout 600 node "$here/test.mjs" --modules "$cache/node_modules" --url "http://127.0.0.1:$port" \
  --key sk-kandil-test || rc=$?
kill -TERM "$pid"
serve_rc=0
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid" || serve_rc=$?
pid=""
if ((serve_rc != 0)); then
  echo "kandil serve exited with $serve_rc after SIGTERM" >&2
  cat "$work/serve.log" >&2
  rc=1
fi
exit "$rc"
