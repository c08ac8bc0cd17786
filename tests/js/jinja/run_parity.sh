#!/usr/bin/env bash
# CTest entry of the chat-template parity test: installs @huggingface/jinja (pinned in
# package-lock.json) into the npm cache, then compares `kandil template` with it on every
# template in tests/data/templates and message set in tests/data/template_messages.
#   tests/js/jinja/run_parity.sh KANDIL_BINARY [parity.mjs options...]
# Exit 77 (skip) where node/npm or the registry are unavailable.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
kandil=${1:?usage: run_parity.sh KANDIL_BINARY}
shift
status=0
cache=$("$root/tests/js/npm_install.sh" jinja) || status=$?
if ((status != 0)); then exit "$status"; fi
exec node "$here/parity.mjs" --kandil "$kandil" --modules "$cache/node_modules" \
  --templates "$root/tests/data/templates" --messages "$root/tests/data/template_messages" "$@"
