#!/usr/bin/env bash
# Steps 4-5 of the default-model recipe (docs/default-model.md): a randomly initialised model with
# kandil's own tokenizer, trained from scratch with `kandil finetune --full`, then quantized.
# Re-running the script resumes from the last checkpoint in OUT_DIR (a run cut off by the end of a
# session continues the identical curve).
#   scripts/default_model/train_model.sh [OUT_DIR] [KANDIL_BINARY]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out=${1:-$root/build/default_model/run}
kandil=${2:-$root/build/release/kandil}
work=$root/build/default_model
threads=${KANDIL_THREADS:-$(nproc)}
for f in "$work/tokenizer/vocab.gguf" "$work/data.jsonl"; do
  [[ -f "$f" ]] || { echo "error: $f missing (run build_corpus.sh, train_tokenizer.sh, make_dataset.py)" >&2; exit 1; }
done
mkdir -p "$out"
if [[ ! -f "$out/init.gguf" ]]; then
  "$kandil" synth -o "$out/init.gguf" --init train --tokenizer "$work/tokenizer/vocab.gguf" \
    --layers 6 --dim 384 --ffn 1024 --heads 6 --kv-heads 2 --ctx 256 --tied --type f32 \
    --name kandil-code-12m --seed 42
fi
resume=()
[[ -f "$out/train/checkpoint.safetensors" ]] && resume=(--resume)
"$kandil" finetune -m "$out/init.gguf" --data "$work/data.jsonl" --val-fraction 0.005 \
  --full --steps 1300 --batch 16 --ctx 256 --lr 1e-3 --schedule cosine --warmup 100 \
  --weight-decay 0.1 --max-grad-norm 1.0 --seed 42 --checkpoint-every 25 --eval-every 325 \
  -t "$threads" -o "$out/train" "${resume[@]}"
"$kandil" quantize "$out/train/model.gguf" "$out/kandil-code-12m-q8_0.gguf" q8_0
