// Runtime dispatch of the CPU dot kernels: see kernels.h.
#include "backend/cpu/kernels.h"

#include <array>
#include <cctype>
#include <cstdlib>
#include <string_view>

#include "base/cpu_features.h"
#include "kandil/log.h"

namespace kandil::cpu {
namespace {

// Every TensorType id is below this (enum values are GGUF type ids).
constexpr size_t kMaxTypeId = 40;
constexpr int kNumChoices = 5;

using Table = std::array<DotKernels, kMaxTypeId>;

bool has_avx2(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }
bool has_avx512(const CpuFeatures& f) {
  return has_avx2(f) && f.avx512f && f.avx512bw && f.avx512vl;
}

// The GEMM tile of one type and ISA, from whichever family handles the type.
GemmFn avx512_gemm(TensorType type) {
  if (GemmFn g = detail::gemm_q_avx512(type)) return g;
  if (GemmFn g = detail::gemm_k_avx512(type)) return g;
  return detail::gemm_f_avx512(type);
}
GemmFn avx2_gemm(TensorType type) {
  if (GemmFn g = detail::gemm_q_avx2(type)) return g;
  if (GemmFn g = detail::gemm_k_avx2(type)) return g;
  return detail::gemm_f_avx2(type);
}

// The kernels of one type, picking per function the best implementation allowed by `choice` and
// supported by the CPU.
DotKernels resolve(TensorType type, KernelChoice choice, const CpuFeatures& f) {
  DotKernels k;
  const ops::TypeTraits* t = ops::type_traits(type);
  if (t == nullptr || t->vec_dot == nullptr) return k;
  const ops::TypeTraits* dt = ops::type_traits(t->vec_dot_type);
  if (dt == nullptr || dt->from_float == nullptr) return k;
  k.vec_dot = t->vec_dot;
  k.quantize_activation = dt->from_float;
  k.vec_dot_type = t->vec_dot_type;
  k.isa = "reference";
  k.quantize_isa = "reference";

  const bool allow512 = choice == KernelChoice::Auto || choice == KernelChoice::Avx512;
  const bool allow2 = allow512 || choice == KernelChoice::Avx2;

  bool vec_done = false, quant_done = false;
  if (allow512 && has_avx512(f)) {
    if (const detail::IsaDot d = detail::avx512_dot(type);
        d.vec_dot != nullptr && (!d.needs_vnni || f.avx512vnni)) {
      k.vec_dot = d.vec_dot;
      k.vec_dot_rows = d.vec_dot_rows;
      k.isa = "avx512";
      vec_done = true;
    }
    // The integer tiles need VNNI like the integer dots; some types (Q2_K, Q3_K) have an AVX-512
    // tile but no AVX-512 dot.
    const bool float_type =
        type == TensorType::F32 || type == TensorType::F16 || type == TensorType::BF16;
    if (GemmFn g = avx512_gemm(type); g != nullptr && (float_type || f.avx512vnni)) {
      k.gemm = g;
      k.gemm_isa = "avx512";
    }
    if (ops::FromFloatFn fn = detail::avx512_from_float(t->vec_dot_type); fn != nullptr) {
      k.quantize_activation = fn;
      k.quantize_isa = "avx512";
      quant_done = true;
    }
  }
  if (allow2 && has_avx2(f)) {
    if (const detail::IsaDot d = detail::avx2_dot(type); !vec_done && d.vec_dot != nullptr) {
      k.vec_dot = d.vec_dot;
      k.vec_dot_rows = d.vec_dot_rows;
      k.isa = "avx2";
    }
    if (GemmFn g = avx2_gemm(type); k.gemm == nullptr && g != nullptr) {
      k.gemm = g;
      k.gemm_isa = "avx2";
    }
    if (ops::FromFloatFn fn = detail::avx2_from_float(t->vec_dot_type); !quant_done && fn) {
      k.quantize_activation = fn;
      k.quantize_isa = "avx2";
    }
  }
  if (choice == KernelChoice::Auto || choice == KernelChoice::Neon) {
    // Empty on non-AArch64 builds, so this only ever picks NEON where it is baseline.
    if (const detail::IsaDot d = detail::neon_dot(type); d.vec_dot != nullptr) {
      k.vec_dot = d.vec_dot;
      k.vec_dot_rows = d.vec_dot_rows;
      k.isa = "neon";
    }
  }
  return k;
}

const Table& table(KernelChoice choice) {
  static const std::array<Table, kNumChoices> tables = [] {
    std::array<Table, kNumChoices> all{};
    const CpuFeatures& f = cpu_features();
    for (int c = 0; c < kNumChoices; ++c) {
      for (size_t id = 0; id < kMaxTypeId; ++id) {
        all[static_cast<size_t>(c)][id] =
            resolve(static_cast<TensorType>(id), static_cast<KernelChoice>(c), f);
      }
    }
    return all;
  }();
  return tables[static_cast<size_t>(choice)];
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<KernelChoice> parse_kernel_choice(const char* value) {
  if (value == nullptr || *value == '\0') return KernelChoice::Auto;
  const std::string_view v(value);
  if (iequals(v, "auto") || iequals(v, "best")) return KernelChoice::Auto;
  if (iequals(v, "reference") || iequals(v, "ref") || iequals(v, "scalar")) {
    return KernelChoice::Reference;
  }
  if (iequals(v, "avx2")) return KernelChoice::Avx2;
  if (iequals(v, "avx512")) return KernelChoice::Avx512;
  if (iequals(v, "neon")) return KernelChoice::Neon;
  return std::nullopt;
}

KernelChoice active_kernel_choice() {
  static const KernelChoice choice = [] {
    const char* env = std::getenv("KANDIL_KERNELS");
    const std::optional<KernelChoice> c = parse_kernel_choice(env);
    if (!c) {
      log::warn("KANDIL_KERNELS={} not understood (auto|reference|avx2|avx512|neon); using auto",
                env);
      return KernelChoice::Auto;
    }
    return *c;
  }();
  return choice;
}

const DotKernels& dot_kernels(TensorType weight_type, KernelChoice choice) {
  static const DotKernels none{};
  const auto id = static_cast<size_t>(weight_type);
  if (id >= kMaxTypeId) return none;
  return table(choice)[id];
}

const DotKernels& dot_kernels(TensorType weight_type) {
  return dot_kernels(weight_type, active_kernel_choice());
}

std::vector<KernelInfo> kernel_summary() {
  std::vector<KernelInfo> out;
  const Table& t = table(active_kernel_choice());
  for (size_t id = 0; id < kMaxTypeId; ++id) {
    const DotKernels& k = t[id];
    if (k.vec_dot == nullptr) continue;
    out.push_back({static_cast<TensorType>(id), k.vec_dot_type, k.isa, k.quantize_isa, k.gemm_isa});
  }
  return out;
}

std::string kernel_summary_string() {
  std::string s;
  for (const KernelInfo& k : kernel_summary()) {
    s += tensor_type_name(k.type);
    s += ": vec_dot ";
    s += k.vec_dot_isa;
    s += ", quantize ";
    s += tensor_type_name(k.vec_dot_type);
    s += ' ';
    s += k.quantize_isa;
    s += ", gemm ";
    s += k.gemm_isa;
    s += '\n';
  }
  return s;
}

}  // namespace kandil::cpu
