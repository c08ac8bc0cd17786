#!/usr/bin/env bash
# Step 2 of the default-model recipe (docs/default-model.md): trains kandil's byte-level BPE
# tokenizer on the corpus built by build_corpus.sh.
#   scripts/default_model/train_tokenizer.sh [CORPUS_DIR] [OUT_DIR] [KANDIL_BINARY]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
corpus=${1:-$root/build/default_model/corpus}
out=${2:-$root/build/default_model/tokenizer}
kandil=${3:-$root/build/release/kandil}
shopt -s nullglob
inputs=("$corpus"/*.txt)
if ((${#inputs[@]} == 0)); then
  echo "error: no corpus files in $corpus (run scripts/default_model/build_corpus.sh first)" >&2
  exit 1
fi
mkdir -p "$out"
"$kandil" tokenizer train --input "${inputs[@]}" --vocab-size 8192 \
  --special '<|bos|>,<|eos|>,<|im_start|>,<|im_end|>,<|file|>' --bos '<|bos|>' --eos '<|eos|>' \
  -o "$out/tokenizer.json" --gguf "$out/vocab.gguf"
