// libFuzzer target for the safetensors header parser: arbitrary bytes in; when they parse, every
// tensor's bytes are read so the sanitizers see any offset the validation let through.
#include <cstddef>
#include <cstdint>

#include "kandil/safetensors.h"

namespace {
volatile uint64_t g_sink = 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = kandil::SafetensorsFile::parse(data, size, "fuzz.safetensors");
  if (!f.ok()) return 0;
  uint64_t h = 0;
  for (const auto& t : f->tensors()) {
    for (uint64_t i = 0; i < t.nbytes; ++i) h = h * 131 + t.data[i];
    h += static_cast<uint64_t>(t.n_elements());
  }
  for (const auto& [k, v] : f->metadata()) h += k.size() + v.size();
  g_sink = h;
  return 0;
}
