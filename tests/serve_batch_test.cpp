// kandil serve's scheduler through the HTTP API: concurrent requests batched together give the
// outputs they give alone, prefix reuse is invisible in the output, and per-request adapters
// (mixed in one batch) give the adapter's output.
#include <gtest/gtest.h>

#include <future>

#include "serve_test_util.h"

namespace kandil {
namespace {

using nlohmann::json;
using testing::parse_or_null;
using testing::TestServer;

std::string complete(const TestServer& s, const std::string& prompt, int n,
                     const json& lora = nullptr, bool stream = false) {
  json req = {{"prompt", prompt}, {"max_tokens", n}, {"temperature", 0}, {"ignore_eos", true}};
  if (!lora.is_null()) req["lora"] = lora;
  if (stream) req["stream"] = true;
  auto c = s.client();
  auto r = c->Post("/v1/completions", req.dump(), "application/json");
  if (!r || r->status != 200)
    return "<error " + (r ? std::to_string(r->status) + r->body : "") + ">";
  if (!stream) return parse_or_null(r->body)["choices"][0]["text"].get<std::string>();
  std::string text;
  for (const auto& e : testing::sse_events(r->body)) {
    text += e["choices"][0]["text"].get<std::string>();
  }
  return text;
}

int64_t metric(const TestServer& s, const std::string& name) {
  auto c = s.client();
  auto r = c->Get("/metrics");
  if (!r) return -1;
  const auto pos = r->body.find("\n" + name + " ");
  if (pos == std::string::npos) return -1;
  return std::stoll(r->body.substr(pos + name.size() + 2));
}

TEST(ServeBatch, ConcurrentGreedyEqualsSolo) {
  ServerOptions o;
  o.parallel = 4;
  o.metrics = true;
  TestServer s(o);
  REQUIRE_SERVER(s);
  std::vector<std::string> prompts;
  for (int i = 0; i < 10; ++i) {
    prompts.push_back("prompt number " + std::to_string(i) +
                      std::string(static_cast<size_t>(i * 7), 'z'));
  }
  std::vector<std::string> solo;
  for (const auto& p : prompts) solo.push_back(complete(s, p, 24));
  const int64_t steps_before = metric(s, "kandil_forward_passes_total");
  std::vector<std::future<std::string>> together;
  for (size_t i = 0; i < prompts.size(); ++i) {
    together.push_back(std::async(
        std::launch::async, [&, i] { return complete(s, prompts[i], 24, nullptr, i % 2 == 1); }));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(together[i].get(), solo[i]) << "prompt " << i;
  }
  // Shared passes: 10 requests of 24 tokens took far fewer passes than 10 * 24.
  const int64_t steps = metric(s, "kandil_forward_passes_total") - steps_before;
  EXPECT_LT(steps, 10 * 24);
}

TEST(ServeBatch, PrefixReuseGivesIdenticalOutput) {
  ServerOptions o;
  o.parallel = 2;
  o.metrics = true;
  TestServer s(o);
  REQUIRE_SERVER(s);
  const std::string prompt =
      "a long shared system prompt that many requests start with. " + std::string(100, 'q');
  const std::string first = complete(s, prompt, 16);
  const std::string again = complete(s, prompt, 16);
  EXPECT_EQ(first, again);
  // One token: the slot's cache then holds exactly the prompt, and a longer prompt that starts
  // with it (a conversation's next turn) evaluates only its new tokens.
  complete(s, prompt, 1);
  const int64_t reused_before = metric(s, "kandil_prompt_tokens_reused_total");
  const std::string longer = complete(s, prompt + " and more", 16);
  EXPECT_GT(metric(s, "kandil_prompt_tokens_reused_total") - reused_before, 100);
  // The same continuation computed on a fresh server (no cache) agrees.
  TestServer fresh(o);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(complete(fresh, prompt + " and more", 16), longer);
}

TEST(ServeBatch, PerRequestAdaptersMatchGlobalAdapters) {
  const auto& a = testing::ServeAssets::get();
  if (!a.model || a.adapter_dir.empty()) GTEST_SKIP() << "no synthesized model/adapter";
  ServerOptions with;
  with.lora = {{a.adapter_dir, 1.0f}};
  ServerOptions off;
  off.lora = {{a.adapter_dir, 0.0f}};
  off.parallel = 4;
  TestServer ga(with), gb(off);
  REQUIRE_SERVER(ga);
  ASSERT_TRUE(gb.ok()) << gb.error();
  const std::string p = "adapter test prompt";
  const std::string adapted = complete(ga, p, 16);
  const std::string base = complete(gb, p, 16);
  ASSERT_NE(adapted, base) << "the synthetic adapter should change greedy output";
  EXPECT_EQ(complete(gb, p, 16, json::array({{{"id", 0}, {"scale", 1.0}}})), adapted);
  EXPECT_EQ(complete(ga, p, 16, json::array({{{"id", 0}, {"scale", 0.0}}})), base);

  // Mixed in one batch: adapter and base requests at once, each as alone.
  std::vector<std::future<std::string>> f;
  for (int i = 0; i < 6; ++i) {
    f.push_back(std::async(std::launch::async, [&, i] {
      return i % 2 ? complete(gb, p, 16, json::array({{{"id", 0}, {"scale", 1.0}}}), i > 2)
                   : complete(gb, p, 16, nullptr, i > 2);
    }));
  }
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f[static_cast<size_t>(i)].get(), i % 2 ? adapted : base);

  // Runtime load / list / set global / unload.
  auto c = gb.client();
  auto r = c->Post("/lora-adapters/load", json{{"path", a.adapter_dir}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const int id = parse_or_null(r->body)["id"];
  EXPECT_EQ(id, 1);
  EXPECT_EQ(complete(gb, p, 16, json::array({{{"id", 1}, {"scale", 1.0}}})), adapted);
  r = c->Get("/lora-adapters");
  ASSERT_TRUE(r);
  json list = parse_or_null(r->body);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1]["scale"], 1.0);
  // Global default: only adapter 0 at scale 1 (adapter 1 -> 0).
  r = c->Post("/lora-adapters", json::array({{{"id", 0}, {"scale", 1.0}}}).dump(),
              "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(complete(gb, p, 16), adapted);
  r = c->Delete("/lora-adapters/1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c->Delete("/lora-adapters/1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(
      complete(gb, p, 4, json::array({{{"id", 1}, {"scale", 1.0}}})).rfind("<error 400", 0) == 0);
  r = c->Post("/lora-adapters/load", json{{"path", "/nonexistent/adapter"}}.dump(),
              "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c->Post("/lora-adapters", json::array({{{"id", 9}, {"scale", 1.0}}}).dump(),
              "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

}  // namespace
}  // namespace kandil
