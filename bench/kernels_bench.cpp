// Microbenchmarks of the CPU kernels (Google Benchmark), reporting bytes/s for memory-bound kernels
// and FLOP/s for compute-bound ones:
//   - BM_VecDot/<type>:   one weight matrix x one activation row (decode), weight bytes / s;
//   - BM_Matmul/<type>/T: a 1024 x 2816-shaped layer over T tokens (prompt processing), FLOP/s;
//   - BM_Quantize/<type>: activation conversion to the type's dot type, input bytes / s;
//   - BM_AttentionDecode/<cache>/{reference,simd}: attention of one decode step at 4096 positions.
// Run: build/release/kandil_microbench [--benchmark_filter=...]; KANDIL_KERNELS picks the ISA.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"
#include "base/thread_pool.h"
#include "kandil/tensor_type.h"
#include "ops/quant.h"

namespace {

using kandil::TensorType;

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// A random n_out x n_in weight matrix of `type` (quantized by the reference).
struct Matrix {
  std::vector<uint8_t> bytes;
  kandil::cpu::Weight w;
};

Matrix make_matrix(TensorType type, int64_t n_in, int64_t n_out) {
  Matrix m;
  const size_t row = kandil::tensor_row_bytes(type, n_in);
  m.bytes.resize(row * static_cast<size_t>(n_out));
  const kandil::ops::TypeTraits* t = kandil::ops::type_traits(type);
  const std::vector<float> src = random_values(n_in, 42);
  for (int64_t r = 0; r < n_out; ++r) {
    // Rows differ by a rotation so no two are identical, without n_out random draws of n_in.
    std::vector<float> x(src.begin() + r % n_in, src.end());
    x.insert(x.end(), src.begin(), src.begin() + r % n_in);
    t->from_float(x.data(), m.bytes.data() + row * static_cast<size_t>(r), n_in);
  }
  m.w = {type, n_in, n_out, m.bytes.data(), row};
  return m;
}

int threads_from_env() {
  const char* v = std::getenv("KANDIL_BENCH_THREADS");
  return v != nullptr ? std::max(1, std::atoi(v)) : 1;
}

// Decode-shaped: y = W x for one token, threads from KANDIL_BENCH_THREADS (default 1).
void BM_Matvec(benchmark::State& state, TensorType type) {
  const int64_t n_in = 2048, n_out = 5632;
  Matrix m = make_matrix(type, n_in, n_out);
  kandil::ThreadPool pool(threads_from_env());
  const std::vector<float> x = random_values(n_in, 7);
  std::vector<float> y(static_cast<size_t>(n_out));
  std::vector<uint8_t> scratch;
  for (auto _ : state) {
    kandil::cpu::matmul(pool, m.w, x.data(), 1, y.data(), scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(m.bytes.size()));
  state.SetLabel(kandil::cpu::dot_kernels(type).isa);
}

// Prompt-shaped: Y = W X for `tokens` tokens; FLOP/s counts 2 per multiply-add.
void BM_Matmul(benchmark::State& state, TensorType type) {
  const int64_t n_in = 1024, n_out = 2816, tokens = state.range(0);
  Matrix m = make_matrix(type, n_in, n_out);
  kandil::ThreadPool pool(threads_from_env());
  const std::vector<float> x = random_values(n_in * tokens, 7);
  std::vector<float> y(static_cast<size_t>(n_out * tokens));
  std::vector<uint8_t> scratch;
  for (auto _ : state) {
    kandil::cpu::matmul(pool, m.w, x.data(), tokens, y.data(), scratch);
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * static_cast<double>(n_in * n_out * tokens);
  state.counters["FLOP/s"] = benchmark::Counter(flops * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
  const kandil::cpu::DotKernels& k = kandil::cpu::dot_kernels(type);
  state.SetLabel(std::string("gemm ") + k.gemm_isa + ", dot " + k.isa);
}

void BM_Quantize(benchmark::State& state, TensorType type) {
  const int64_t n = 4096;
  const kandil::cpu::DotKernels& k = kandil::cpu::dot_kernels(type);
  const std::vector<float> x = random_values(n, 3);
  std::vector<uint8_t> out(kandil::tensor_row_bytes(k.vec_dot_type, n));
  for (auto _ : state) {
    k.quantize_activation(x.data(), out.data(), n);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * n *
                          static_cast<int64_t>(sizeof(float)));
  state.SetLabel(std::string(kandil::tensor_type_name(k.vec_dot_type)) + " " + k.quantize_isa);
}

// Attention of one decode step at `ctx` cached positions (16 query heads / 4 KV heads of 64, the
// 250M shape), with the SIMD kernel (auto) or the scalar reference, one thread; bytes/s counts the
// K and V rows read.
void BM_AttentionDecode(benchmark::State& state, TensorType kv_type, bool reference) {
  const int32_t ctx = static_cast<int32_t>(state.range(0));
  const kandil::cpu::AttentionShape shape{16, 4, 64, kv_type};
  const int64_t kv_dim = int64_t{shape.n_head_kv} * shape.head_dim;
  const size_t row = kandil::cpu::kv_row_bytes(kv_type, kv_dim);
  std::vector<uint8_t> k(row * static_cast<size_t>(ctx)), v(k.size());
  for (int32_t j = 0; j < ctx; ++j) {
    const std::vector<float> kr = random_values(kv_dim, 100u + static_cast<uint32_t>(j));
    const std::vector<float> vr = random_values(kv_dim, 900000u + static_cast<uint32_t>(j));
    kandil::cpu::kv_store_row(kv_type, kr.data(), k.data() + row * static_cast<size_t>(j), kv_dim);
    kandil::cpu::kv_store_row(kv_type, vr.data(), v.data() + row * static_cast<size_t>(j), kv_dim);
  }
  const std::vector<float> q = random_values(int64_t{shape.n_head} * shape.head_dim, 5);
  std::vector<float> out(q.size());
  kandil::ThreadPool pool(1);
  kandil::cpu::AttentionScratch scratch(shape, 1);
  kandil::cpu::AttentionArgs args;
  args.q = q.data();
  args.q_stride = static_cast<int64_t>(q.size());
  args.n_tokens = 1;
  args.pos0 = ctx - 1;
  args.k = k.data();
  args.v = v.data();
  args.row_bytes = row;
  args.out = out.data();
  args.out_stride = static_cast<int64_t>(out.size());
  args.scale = 0.125f;
  const kandil::cpu::KernelChoice choice =
      reference ? kandil::cpu::KernelChoice::Reference : kandil::cpu::KernelChoice::Auto;
  for (auto _ : state) {
    kandil::cpu::attention(pool, args, scratch, choice);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(2 * k.size()));
  state.SetLabel(kandil::cpu::attention_isa(shape, choice));
}

const TensorType kTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0,
                             TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
                             TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

int register_all() {
  for (TensorType t : kTypes) {
    const std::string name(kandil::tensor_type_name(t));
    benchmark::RegisterBenchmark(("BM_Matvec/" + name).c_str(), BM_Matvec, t)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_Matmul/" + name).c_str(), BM_Matmul, t)
        ->Arg(16)
        ->Arg(128)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  for (TensorType t : {TensorType::F16, TensorType::Q8_0, TensorType::Q4_1, TensorType::Q4_K}) {
    benchmark::RegisterBenchmark(
        ("BM_Quantize/" + std::string(kandil::tensor_type_name(t))).c_str(), BM_Quantize, t);
  }
  for (TensorType t : {TensorType::F16, TensorType::F32, TensorType::Q8_0}) {
    const std::string name(kandil::tensor_type_name(t));
    for (bool ref : {true, false}) {
      benchmark::RegisterBenchmark(
          ("BM_AttentionDecode/" + name + (ref ? "/reference" : "/simd")).c_str(),
          BM_AttentionDecode, t, ref)
          ->Arg(4096)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
