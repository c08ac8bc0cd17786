// Optimized CPU dot-product kernels with runtime dispatch.
//
// For every weight type the engine can multiply with, dot_kernels() returns the fastest available
// pair of
//   - vec_dot: weight row (weight type) . activation row (the type's vec_dot_type), and
//   - quantize_activation: float row -> vec_dot_type (F16 for F16 weights, Q8_0 / Q8_1 / Q8_K for
//     the quantized types, plain copy for F32),
// chosen once from the CPU's features (kandil::cpu_features()). Types without a fast kernel fall
// back to the scalar reference traits of ops/quant.h.
//
// Contract of the fast kernels (checked by tests/kernels_test.cpp against the reference):
//   - vec_dot equals the reference up to float rounding (integer sums per block are identical; only
//     the order of the float accumulation differs);
//   - quantize_activation produces exactly the reference's bytes (same rounding), since matching
//     llama.cpp's numerics depends on the quantized activations.
//
// KANDIL_KERNELS=reference (read once, on first use) forces the reference kernels; "avx2" caps the
// choice at AVX2 (useful to compare ISAs on one machine); "auto" or unset picks the best.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kandil/tensor_type.h"
#include "ops/quant.h"

namespace kandil::cpu {

// Dots of one weight row x with `count` activation rows y, y + y_stride, ... (bytes):
// out[j] = vec_dot(n, x, y + j * y_stride), bit for bit, but loading / converting the weight row
// once for several activation rows.
using VecDotRowsFn = void (*)(int64_t n, const void* x, const void* y, size_t y_stride,
                              int64_t count, float* out);

// A tile of a matrix product, for prompt processing: `rows` weight rows w, w + w_stride, ...
// (bytes, weight type) times `cols` activation rows a, a + a_stride, ... (bytes, the vec_dot_type):
//   out[j * out_stride + i] = vec_dot(n, w + i * w_stride, a + j * a_stride)
// for i < rows, j < cols, equal to vec_dot up to the order of the float accumulation (integer
// block sums are the same). Kernels register-tile internally (several weight rows x several
// activation rows per pass over n), so each loaded / unpacked weight block serves several tokens
// and each activation block several rows; any rows >= 1 and cols >= 1 must work.
using GemmFn = void (*)(int64_t n, const void* w, size_t w_stride, int64_t rows, const void* a,
                        size_t a_stride, int64_t cols, float* out, int64_t out_stride);

struct DotKernels {
  ops::VecDotFn vec_dot = nullptr;                 // null: the type cannot be multiplied
  VecDotRowsFn vec_dot_rows = nullptr;             // optional (null: call vec_dot per row)
  GemmFn gemm = nullptr;                           // optional (null: matmul uses the dots)
  ops::FromFloatFn quantize_activation = nullptr;  // float row -> vec_dot_type row
  TensorType vec_dot_type = TensorType::F32;
  const char* isa = "none";           // of vec_dot: "avx512", "avx2", "reference", or "none"
  const char* quantize_isa = "none";  // of quantize_activation
  const char* gemm_isa = "none";      // of gemm
};

// Which implementations dispatch may pick from: the best the CPU supports, or at most the given
// level. A level the CPU lacks falls back to the next lower one it has.
enum class KernelChoice { Auto, Avx512, Avx2, Reference, Neon };

// Parses a KANDIL_KERNELS value ("auto", "reference"/"ref"/"scalar", "avx2", "avx512", "neon";
// case-insensitive). Null or empty means Auto; an unknown value yields nullopt.
std::optional<KernelChoice> parse_kernel_choice(const char* value);

// The choice in effect for dot_kernels(type): KANDIL_KERNELS, read once (unknown values -> Auto,
// with a warning).
KernelChoice active_kernel_choice();

// Kernels for weights of `type` under the active choice. Never null; vec_dot is null for types
// that have no dot product (Q8_1, Q8_K, unsupported ids).
const DotKernels& dot_kernels(TensorType weight_type);

// Kernels for weights of `type` under an explicit choice (tests, benchmarks).
const DotKernels& dot_kernels(TensorType weight_type, KernelChoice choice);

// Per-type summary of the active dispatch, for `kandil info` / benchmarks.
struct KernelInfo {
  TensorType type;
  TensorType vec_dot_type;
  const char* vec_dot_isa;
  const char* quantize_isa;
  const char* gemm_isa;
};
std::vector<KernelInfo> kernel_summary();
// The summary as text, one line per type, e.g. "F16: vec_dot avx512, quantize F16 avx512".
std::string kernel_summary_string();

namespace detail {
// Per-ISA tables (kernels_avx2.cpp / kernels_avx512.cpp; empty on non-x86 builds). Callers must
// check the CPU supports the ISA before calling the returned functions.
struct IsaDot {
  ops::VecDotFn vec_dot = nullptr;  // null where that ISA has no kernel for the type
  VecDotRowsFn vec_dot_rows = nullptr;
  bool needs_vnni = false;  // AVX-512 only: also needs avx512vnni
};
// AVX2 kernels need avx2 + fma + f16c; AVX-512 ones avx512f + avx512bw + avx512vl (+ avx2 level).
IsaDot avx2_dot(TensorType weight_type);
ops::FromFloatFn avx2_from_float(TensorType dot_type);
IsaDot avx512_dot(TensorType weight_type);
ops::FromFloatFn avx512_from_float(TensorType dot_type);
// AArch64 NEON dots (kernels_neon.cpp; empty elsewhere). NEON is baseline on AArch64.
IsaDot neon_dot(TensorType weight_type);

// GEMM tiles per ISA and type family (gemm_*.cpp; null where a family has no kernel for the type
// or on non-x86 builds). The AVX-512 integer ones need avx512vnni like the integer dots.
GemmFn gemm_q_avx512(TensorType weight_type);  // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
GemmFn gemm_q_avx2(TensorType weight_type);
GemmFn gemm_k_avx512(TensorType weight_type);  // K-quants x Q8_K
GemmFn gemm_k_avx2(TensorType weight_type);
GemmFn gemm_f_avx512(TensorType weight_type);  // F32, F16, BF16
GemmFn gemm_f_avx2(TensorType weight_type);
}  // namespace detail

}  // namespace kandil::cpu
