#!/usr/bin/env bash
# Fresh Debian 12 -> every test suite: release build + tests, the AArch64 NEON kernels
# (cross-compiled, run under qemu-user), ASan/UBSan build + tests, ThreadSanitizer on the LoRA
# hot-swap concurrency tests,
# a short libFuzzer run of each fuzz target, and line coverage of src/ (gcovr).
# Tests that need ../shared/fixtures (or $KANDIL_FIXTURES) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)
fuzz_seconds="${KANDIL_FUZZ_SECONDS:-30}"

step() { printf '\n=== %s ===\n' "$*"; }

step "release build + tests"
cmake --preset release -DKANDIL_WERROR=ON >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"

step "NEON kernels (AArch64 cross-compile, checked under qemu-user)"
scripts/check_neon.sh

step "asan + ubsan build + tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -j "$jobs"

step "thread sanitizer: LoRA hot-swap while other threads generate"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs" --target kandil_tests
ctest --preset tsan -R 'LoraConcurrency'

step "fuzz (libFuzzer, ${fuzz_seconds}s per target)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs"
for target in build/fuzz/fuzz_*; do
  [[ -x "$target" && -f "$target" ]] || continue
  name=${target##*/fuzz_}
  work=$(mktemp -d)  # new inputs go here; the committed seeds stay untouched
  dict=()
  [[ -f "fuzz/$name.dict" ]] && dict=(-dict="fuzz/$name.dict")
  "$target" -max_total_time="$fuzz_seconds" -max_len=4096 -print_final_stats=1 "${dict[@]}" \
    "$work" "fuzz/corpus/$name" >"$work.log" 2>&1 || { tail -n 60 "$work.log"; exit 1; }
  grep -E "stat::number_of_executed_units|Done" "$work.log" | tail -n 2
  rm -rf "$work" "$work.log"
done

step "coverage (gcovr, src/)"
cmake --preset coverage >/dev/null
cmake --build --preset coverage -j "$jobs"
# The quantize-vs-llama.cpp fixture comparisons re-quantize a 20M-parameter model with the
# iterative K-quant search: minutes at -O0. They ran in the release and ASan stages above.
ctest --preset coverage -j "$jobs" -E 'QuantizeFixture' >/dev/null
gcovr --root . --filter 'src/' --object-directory build/coverage --print-summary --fail-under-line 80 \
  --gcov-ignore-parse-errors \
  -o build/coverage/coverage.txt
echo "coverage report: build/coverage/coverage.txt"
