#!/usr/bin/env bash
# Fresh Debian 12 -> build kandil (release) -> run it on its default: the model in $KANDIL_MODEL,
# else kandil's own small code model (models/kandil-code-12m-q8_0.gguf, docs/default-model.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target kandil
bin=build/release/kandil
if [[ -n "${KANDIL_MODEL:-}" ]]; then
  printf '%s' "${KANDIL_PROMPT:-Once upon a time}"
  exec "$bin" run -m "$KANDIL_MODEL" -p "${KANDIL_PROMPT:-Once upon a time}" "$@"
fi
if [[ -f models/kandil-code-12m-q8_0.gguf ]]; then
  prompt=${KANDIL_PROMPT:-import os
import sys

def main(}
  printf '%s' "$prompt"
  exec "$bin" run -p "$prompt" -n "${KANDIL_N:-96}" "$@"
fi
cat <<MSG
kandil is built: $bin

No model yet. kandil runs LLaMA-family GGUF files (LLaMA 1/2/3, Mistral, TinyLlama, CodeLlama, ...)
in F32/F16/BF16/Q8_0/Q6_K/Q5_K/Q4_K/Q5_0/Q5_1/Q4_0/Q4_1. Next steps:
  KANDIL_MODEL=/path/to/model.gguf scripts/run.sh     # generate from "Once upon a time"
  $bin run -m model.gguf -p "Hello" -n 64     # any prompt (--json for scripts)
  $bin info model.gguf                        # what is inside a GGUF file
MSG
fixtures="${KANDIL_FIXTURES:-../shared/fixtures}"
if [[ -f "$fixtures/models/stories260K.gguf" ]]; then
  echo
  echo "Found the test fixtures; running the tiny stories260K model as a demo:"
  printf 'Once upon a time'
  "$bin" run -m "$fixtures/models/stories260K.gguf" -p "Once upon a time" -n 48 --temp 0
fi
