// libFuzzer target for the GGUF LoRA adapter reader: arbitrary bytes are parsed as GGUF and, when
// they parse, read as an adapter (names, shapes, types, alpha); every value read is touched.
//   cmake --preset fuzz && ninja -C build/fuzz fuzz_lora_gguf
//   build/fuzz/fuzz_lora_gguf -max_total_time=60 -dict=fuzz/lora_gguf.dict build/fuzz/corpus-lora
//       fuzz/corpus/lora_gguf
#include <cstddef>
#include <cstdint>

#include "kandil/gguf.h"
#include "lora/adapter_impl.h"

namespace {
volatile float g_sink = 0;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = kandil::GgufFile::parse(data, size, "fuzz.gguf");
  if (!f.ok()) return 0;
  auto a = kandil::lora::read_gguf_adapter(*f);
  if (!a.ok()) return 0;
  float s = a->info.alpha;
  for (const auto& p : a->pairs) {
    for (float v : p.a) s += v;
    for (float v : p.b) s += v;
    s += static_cast<float>(p.rank + p.n_in + p.n_out + p.layer);
  }
  g_sink = s;
  return 0;
}
