// libFuzzer target for config.json parsing (HF folders): arbitrary bytes in; when they parse,
// the GGUF metadata is built from them (and the LLaMA 3 factors computed) like a load would.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kandil/gguf.h"
#include "model/hf_internal.h"

namespace {
volatile uint64_t g_sink = 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = kandil::hf::parse_config(text, "fuzz/config.json");
  if (!c.ok()) return 0;
  if (c->head_dim > 4096) return 0;  // keep one input's work small
  kandil::GgufWriter w;
  if (!kandil::hf::write_arch_metadata(*c, w).ok()) return 0;
  const auto bytes = w.serialize();
  auto f = kandil::GgufFile::parse(bytes.data(), bytes.size(), "fuzz.gguf");
  g_sink = bytes.size() + (f.ok() ? f->metadata().size() : 0);
  return 0;
}
