// libFuzzer target for the GGUF reader: parses arbitrary bytes and, when they parse, touches every
// value and tensor field so the sanitizers see any pointer or length the reader got wrong.
//   cmake --preset fuzz && ninja -C build/fuzz fuzz_gguf
//   mkdir -p build/fuzz/corpus-gguf
//   UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build/fuzz/fuzz_gguf -max_total_time=60
//       -dict=fuzz/gguf.dict build/fuzz/corpus-gguf fuzz/corpus/gguf
// (new inputs go to the first folder; the seeds in fuzz/corpus/gguf are only read; they are made
// by fuzz/make_gguf_corpus.cpp).
#include <cstddef>
#include <cstdint>
#include <string>

#include "kandil/gguf.h"

namespace {

// Folds bytes into a sink the optimizer cannot drop.
volatile uint64_t g_sink = 0;

void touch(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint64_t h = g_sink;
  for (size_t i = 0; i < n; ++i) h = h * 131 + b[i];
  g_sink = h;
}

void touch_value(const kandil::GgufValue& v) {
  using kandil::GgufValueType;
  touch(v.str.data(), v.str.size());
  if (v.type != GgufValueType::ARRAY) return;
  for (auto s : v.strings) touch(s.data(), s.size());
  for (const auto& a : v.arrays) touch_value(a);
  if (v.elem_type != GgufValueType::STRING && v.elem_type != GgufValueType::ARRAY) {
    for (uint64_t k = 0; k < v.count; ++k) {
      const double f = v.array_f64(k);
      const int64_t i = v.array_i64(k);
      touch(&f, sizeof f);
      touch(&i, sizeof i);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = kandil::GgufFile::parse(data, size, "fuzz.gguf");
  if (!parsed.ok()) {
    // Every error names the input.
    if (parsed.error().message.rfind("fuzz.gguf: ", 0) != 0) __builtin_trap();
    return 0;
  }
  const kandil::GgufFile& f = *parsed;
  if (f.data_offset() > size && !f.tensors().empty()) __builtin_trap();
  for (const auto& kv : f.metadata()) {
    touch(kv.key.data(), kv.key.size());
    const std::string s = kv.value.to_string();
    touch(s.data(), s.size());
    touch_value(kv.value);
    if (f.find(kv.key) == nullptr) __builtin_trap();
    // The typed getters must answer (value or error) for every key.
    (void)f.get_int(kv.key);
    (void)f.get_float(kv.key);
    (void)f.get_bool(kv.key);
    (void)f.get_string(kv.key);
    (void)f.get_array(kv.key, kv.value.elem_type);
  }
  for (const auto& t : f.tensors()) {
    touch(t.name.data(), t.name.size());
    if (t.n_dims < 1 || t.n_dims > 4) __builtin_trap();
    if (t.offset % f.alignment() != 0) __builtin_trap();
    // The tensor's bytes must lie inside the input.
    if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) __builtin_trap();
    // nbytes must be the true size of the shape (computed wide, so a wrapped size is caught).
    const auto info = kandil::tensor_type_info(static_cast<uint32_t>(t.type));
    if (!info) __builtin_trap();
    const __int128 want = static_cast<__int128>(t.ne[0] / info->block_size) * info->block_bytes *
                          t.ne[1] * t.ne[2] * t.ne[3];
    if (t.ne[0] % info->block_size != 0 || want != static_cast<__int128>(t.nbytes))
      __builtin_trap();
    const int64_t n = t.n_elements() + t.n_rows();
    touch(&n, sizeof n);
    if (t.nbytes > 0) {
      touch(t.data, 1);
      touch(t.data + t.nbytes - 1, 1);
    }
    if (f.find_tensor(t.name) != &t) __builtin_trap();
    const std::string_view type_name = kandil::tensor_type_name(t.type);
    touch(type_name.data(), type_name.size());
  }
  return 0;
}
