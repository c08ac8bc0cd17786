// kandil's own OpenAI-compatible chat provider (kandil chat --provider openai) against a live
// in-process `kandil serve`: the two ends of the OpenAI protocol in this repository agree.
#include <gtest/gtest.h>

#include "platform/providers/provider.h"
#include "serve_test_util.h"

namespace kandil {
namespace {

TEST(ServeProvider, OpenAiProviderStreamsFromKandilServe) {
  if (!testing::ServeAssets::get().model) GTEST_SKIP() << "no synthesized model";
  ServerOptions o;
  o.api_key = "sk-serve-provider";
  testing::TestServer s(o);
  ASSERT_TRUE(s.ok()) << s.error();
  platform::ProviderSettings ps;
  ps.provider = "openai";
  ps.base_url = "http://127.0.0.1:" + std::to_string(s.port()) + "/v1/";
  ps.model = "model.gguf";
  ps.api_key = o.api_key;
  ps.retries = 0;
  ps.timeout_s = 30;
  ps.connect_timeout_s = 5;
  auto p = platform::make_openai_provider(ps);
  platform::ChatOptions co;
  co.max_tokens = 12;
  co.temperature = 0;
  const std::vector<platform::Message> conv = {{"system", "Be brief."}, {"user", "hi"}};
  std::string streamed;
  int pieces = 0;
  auto u = p->chat(conv, co, [&](std::string_view t) {
    streamed += t;
    ++pieces;
    return true;
  });
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_GT(pieces, 0);
  EXPECT_GT(u->prompt_tokens, 0);
  EXPECT_GE(u->completion_tokens, 1);
  EXPECT_LE(u->completion_tokens, 12);
  EXPECT_TRUE(u->stop_reason == "length" || u->stop_reason == "stop") << u->stop_reason;
  // The same request twice (greedy) streams the same text.
  std::string again;
  auto u2 = p->chat(conv, co, [&](std::string_view t) {
    again += t;
    return true;
  });
  ASSERT_TRUE(u2.ok()) << u2.error().message;
  EXPECT_EQ(again, streamed);
  // A wrong key is an error, not a hang.
  ps.api_key = "wrong";
  auto bad = platform::make_openai_provider(ps)->chat(conv, co, {});
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace kandil
