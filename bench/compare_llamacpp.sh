#!/usr/bin/env bash
# Side-by-side speed of kandil and llama.cpp on the same models, threads and machine:
# for every model, `rounds` rounds of (kandil bench, llama-bench) back to back, so both see the same
# machine state (this shared machine drifts by up to 1.7x over minutes). Prints a markdown table
# of mean t/s per engine and the kandil / llama.cpp ratio, and writes every sample as JSON.
#
#   LLAMA_BENCH=/path/to/llama-bench bench/compare_llamacpp.sh MODEL.gguf [MODEL.gguf ...]
#
# Environment: KANDIL (default build/release/kandil), THREADS (2), PP (512), TG (128),
# REPS (repetitions per run, 3), ROUNDS (2), OUT (results JSON, default bench/results/compare.json).
# llama.cpp is not part of this repository: build it yourself and point LLAMA_BENCH at it.
# Needs python3 for the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}"
KANDIL="${KANDIL:-build/release/kandil}"
THREADS="${THREADS:-2}" PP="${PP:-512}" TG="${TG:-128}" REPS="${REPS:-3}" ROUNDS="${ROUNDS:-2}"
OUT="${OUT:-bench/results/compare.json}"
(($# > 0)) || { echo "usage: LLAMA_BENCH=... $0 MODEL.gguf [...]" >&2; exit 2; }
mkdir -p "$(dirname "$OUT")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

i=0
for model in "$@"; do
  for ((r = 0; r < ROUNDS; ++r)); do
    i=$((i + 1))
    echo "[$i] $(basename "$model") round $((r + 1))/$ROUNDS" >&2
    "$KANDIL" bench -m "$model" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" --json \
      >"$work/$i.kandil.json"
    "$LLAMA_BENCH" -m "$model" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json \
      >"$work/$i.llama.json" 2>/dev/null
    echo "$model" >"$work/$i.model"
  done
done

python3 - "$work" "$OUT" "$THREADS" <<'PY'
import glob, json, os, statistics, sys
work, out, threads = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}  # (model, test) -> {"kandil": [t/s...], "llama.cpp": [...]}
for path in sorted(glob.glob(os.path.join(work, "*.model"))):
    i = os.path.basename(path).split(".")[0]
    model = os.path.basename(open(path).read().strip())
    for r in json.load(open(os.path.join(work, f"{i}.kandil.json"))):
        if "samples" in r:
            rows.setdefault((model, r["test"]), {}).setdefault("kandil", []).extend(r["samples"])
    for r in json.load(open(os.path.join(work, f"{i}.llama.json"))):
        test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        rows.setdefault((model, test), {}).setdefault("llama.cpp", []).extend(r["samples_ts"])
print(f"| model | test | kandil t/s | llama.cpp t/s | kandil / llama.cpp |")
print(f"| --- | --- | ---: | ---: | ---: |")
summary = []
for (model, test), s in rows.items():
    k, l = s.get("kandil", []), s.get("llama.cpp", [])
    if not k or not l:
        continue
    km, lm = statistics.mean(k), statistics.mean(l)
    ksd = statistics.stdev(k) if len(k) > 1 else 0.0
    lsd = statistics.stdev(l) if len(l) > 1 else 0.0
    print(f"| {model} | {test} | {km:.1f} ± {ksd:.1f} | {lm:.1f} ± {lsd:.1f} | {km / lm:.2f} |")
    summary.append({"model": model, "test": test, "threads": int(threads), "kandil": k,
                    "llama_cpp": l, "ratio": km / lm})
json.dump(summary, open(out, "w"), indent=1)
print(f"\nsamples: {out}", file=sys.stderr)
PY
