#!/usr/bin/env bash
# Fresh Debian 12 -> every test suite: release build + tests, the AArch64 NEON kernels
# (cross-compiled, run under qemu-user), ASan/UBSan build + tests with line coverage of src/
# (gcovr), ThreadSanitizer on the LoRA hot-swap concurrency tests, and a short libFuzzer run of
# each fuzz target. Each stage prints the time it started.
# Tests that need ../shared/fixtures (or $KANDIL_FIXTURES) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)
fuzz_seconds="${KANDIL_FUZZ_SECONDS:-30}"
# A test that hangs fails after this many seconds instead of eating the CI budget.
test_timeout="${KANDIL_TEST_TIMEOUT:-900}"

step() { printf '\n=== %s (at %dm%02ds) ===\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

step "release build + tests"
cmake --preset release -DKANDIL_WERROR=ON >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs" --timeout "$test_timeout"

step "NEON kernels (AArch64 cross-compile, checked under qemu-user)"
scripts/check_neon.sh

# One instrumented build serves both the sanitizers and line coverage: a separate -O0 coverage
# build and test run would double the longest stage.
step "asan + ubsan + coverage build + tests"
cmake --preset asan-coverage >/dev/null
find build/asan-coverage -name '*.gcda' -delete 2>/dev/null || true
cmake --build --preset asan-coverage -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --preset asan-coverage -j "$jobs" --timeout "$test_timeout"

step "coverage (gcovr, src/)"
gcovr --root . --filter 'src/' --object-directory build/asan-coverage --print-summary \
  --fail-under-line 80 --gcov-ignore-parse-errors -j "$jobs" -o build/asan-coverage/coverage.txt
echo "coverage report: build/asan-coverage/coverage.txt"

step "thread sanitizer: LoRA hot-swap while other threads generate"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs" --target kandil_lora_tests
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" timeout "$test_timeout" \
  build/tsan/kandil_lora_tests --gtest_filter='LoraConcurrency.*'

step "fuzz (libFuzzer, ${fuzz_seconds}s per target)"
cmake --preset fuzz >/dev/null
fuzz_targets=()
for src in fuzz/fuzz_*.cpp; do fuzz_targets+=("$(basename "$src" .cpp)"); done
cmake --build --preset fuzz -j "$jobs" --target "${fuzz_targets[@]}"
for name in "${fuzz_targets[@]#fuzz_}"; do
  target=build/fuzz/fuzz_$name
  work=$(mktemp -d)  # new inputs go here; the committed seeds stay untouched
  dict=()
  [[ -f "fuzz/$name.dict" ]] && dict=(-dict="fuzz/$name.dict")
  "$target" -max_total_time="$fuzz_seconds" -max_len=4096 -print_final_stats=1 "${dict[@]}" \
    "$work" "fuzz/corpus/$name" >"$work.log" 2>&1 || { tail -n 60 "$work.log"; exit 1; }
  grep -E "stat::number_of_executed_units|Done" "$work.log" | tail -n 2
  rm -rf "$work" "$work.log"
done
step "all passed"
