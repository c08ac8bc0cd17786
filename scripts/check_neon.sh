#!/usr/bin/env bash
# Cross-compiles the AArch64 NEON kernels with the scalar references and a small driver
# (tests/cross/neon_check.cpp), then runs it under qemu-user: the NEON path is built and checked
# on x86 machines too. Skips (exit 0, with a message) where the cross tools are not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
cxx="${CXX_AARCH64:-aarch64-linux-gnu-g++}"
if ! command -v "$cxx" >/dev/null; then
  echo "check_neon: SKIPPED, $cxx not found (apt-get install g++-aarch64-linux-gnu qemu-user-static)"
  exit 0
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$cxx" -std=c++20 -O2 -Wall -Wextra -Werror -static -Iinclude -Isrc \
  src/ops/quant.cpp src/ops/quant_k.cpp src/ops/tensor_type.cpp \
  src/backend/cpu/kernels_neon.cpp tests/cross/neon_check.cpp -o "$out/neon_check"
echo "check_neon: NEON kernels compiled for AArch64"
if command -v qemu-aarch64-static >/dev/null; then
  qemu-aarch64-static "$out/neon_check"
else
  echo "check_neon: run SKIPPED, qemu-aarch64-static not found (compiled only)"
fi
