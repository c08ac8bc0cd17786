// libFuzzer target for the OpenAI request parser of kandil serve: arbitrary bytes as the body of
// /v1/chat/completions and /v1/completions (and of the /lora-adapters list); when a request
// parses, its response builders run on it too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/openai_schema.h"

namespace {
volatile uint64_t g_sink = 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  kandil::serve::ParseLimits limits;
  limits.n_vocab = 32000;
  for (auto ep : {kandil::serve::Endpoint::chat, kandil::serve::Endpoint::completions}) {
    kandil::serve::ParsedRequest r;
    kandil::serve::ApiError err;
    if (!kandil::serve::parse_request(body, ep, limits, r, err)) {
      g_sink = g_sink + kandil::serve::dump_json(kandil::serve::error_json(err)).size();
      continue;
    }
    std::string text;
    for (const auto& m : r.messages) text += m.content;
    text += r.prompt;
    std::vector<kandil::serve::TokenLogprob> lps(1);
    lps[0].piece = text.substr(0, 8);
    lps[0].top = {{text.substr(0, 3), -1.0f}};
    kandil::serve::ResponseMeta meta{"id", 0, r.model};
    g_sink =
        g_sink +
        kandil::serve::dump_json(kandil::serve::chat_response(meta, text, "stop", &lps, 1, 1))
            .size() +
        kandil::serve::dump_json(kandil::serve::completion_chunk(meta, text, "", &lps, 0)).size() +
        r.stop.size() + r.sampling.logit_bias.size();
  }
  kandil::serve::ApiError err;
  if (auto j = kandil::serve::parse_json_body(body, limits.max_depth, err)) {
    std::vector<std::pair<int32_t, float>> list;
    g_sink = g_sink + kandil::serve::parse_lora_list(*j, "body", list, err);
  }
  return 0;
}
