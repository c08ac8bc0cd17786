// libFuzzer target for tokenizer.json: parses arbitrary bytes as a tokenizer.json document and,
// when it loads, encodes a few fixed texts plus the input's own tail (with and without special
// tokens), decodes the ids and renders every piece, so the sanitizers see the whole pipeline.
//   cmake --preset fuzz && ninja -C build/fuzz fuzz_tokenizer_json
//   build/fuzz/fuzz_tokenizer_json -max_total_time=60 -dict=fuzz/tokenizer_json.dict
//       build/fuzz/corpus-tokenizer_json fuzz/corpus/tokenizer_json
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kandil/tokenizer.h"

namespace {
volatile uint64_t g_sink = 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto tok = kandil::Tokenizer::from_tokenizer_json_text(input, {}, "fuzz.json");
  if (!tok.ok()) return 0;
  const kandil::Tokenizer& t = **tok;
  const std::string_view tail = input.substr(size > 48 ? size - 48 : 0);
  const std::string_view texts[] = {"Hello world! 123 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
                                    " a  b\tc\n", "", "\xff\xfe invalid", tail};
  for (std::string_view text : texts) {
    for (bool special : {false, true}) {
      const std::vector<kandil::TokenId> ids = t.encode(text, special, special);
      const std::string s = t.decode(ids, special);
      g_sink = g_sink + s.size() + ids.size();
    }
  }
  for (kandil::TokenId id = -1; id <= t.n_vocab() && id < 512; ++id) {
    g_sink = g_sink + t.token_to_piece(id, true).size() + (t.is_eog(id) ? 1 : 0);
  }
  g_sink = g_sink + t.decode({-5, 0, t.n_vocab()}, true).size();
  return 0;
}
