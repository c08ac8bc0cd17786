#!/usr/bin/env python3
"""Step 3 of the default-model recipe (docs/default-model.md): turns the corpus folder written by
build_corpus.sh into training JSONL, one {"text": ...} example per source file (its
"<|file|> PATH" header line kept), in manifest order.

    scripts/default_model/make_dataset.py [CORPUS_DIR] [OUT_JSONL]
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parents[2]
corpus = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "build/default_model/corpus"
out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else root / "build/default_model/data.jsonl"
files = sorted(corpus.glob("*.txt"))
if not files:
    sys.exit(f"error: no corpus files in {corpus} (run scripts/default_model/build_corpus.sh first)")
n = 0
with open(out, "w", encoding="utf-8") as f:
    for path in files:
        current = None
        # newline="" keeps \r\n inside files as they are.
        for line in open(path, encoding="utf-8", errors="replace", newline=""):
            if line.startswith("<|file|> "):
                if current is not None:
                    f.write(json.dumps({"text": "".join(current).rstrip("\n")}) + "\n")
                    n += 1
                current = [line]
            elif current is not None:
                current.append(line)
        if current is not None:
            f.write(json.dumps({"text": "".join(current).rstrip("\n")}) + "\n")
            n += 1
print(f"wrote {out}: {n} examples from {len(files)} corpus files", file=sys.stderr)
