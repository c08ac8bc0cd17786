// kandil serve over loopback with httplib's client: every endpoint, OpenAI error JSON and
// statuses, SSE framing, limits, auth, disconnects and shutdown.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "serve_test_util.h"

namespace kandil {
namespace {

using nlohmann::json;
using testing::parse_or_null;
using testing::sse_events;
using testing::TestServer;

json post(httplib::Client& c, const std::string& path, const json& body, int* status = nullptr) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  if (!r) {
    if (status) *status = -1;
    return nullptr;
  }
  if (status) *status = r->status;
  return parse_or_null(r->body);
}

json greedy_completion(const std::string& prompt, int n) {
  return {{"prompt", prompt}, {"max_tokens", n}, {"temperature", 0}, {"ignore_eos", true}};
}

TEST(ServeApi, HealthModelsTokenize) {
  TestServer s;
  REQUIRE_SERVER(s);
  auto c = s.client();
  auto h = c->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(parse_or_null(h->body)["status"], "ok");
  auto m = c->Get("/v1/models");
  ASSERT_TRUE(m);
  json mj = parse_or_null(m->body);
  EXPECT_EQ(mj["object"], "list");
  ASSERT_EQ(mj["data"].size(), 1u);
  EXPECT_EQ(mj["data"][0]["id"], "model.gguf");
  EXPECT_EQ(mj["data"][0]["meta"]["n_ctx"], 256);

  int st = 0;
  json t = post(*c, "/tokenize", {{"content", "hello world"}}, &st);
  EXPECT_EQ(st, 200);
  ASSERT_TRUE(t["tokens"].is_array());
  EXPECT_FALSE(t["tokens"].empty());
  json d = post(*c, "/detokenize", {{"tokens", t["tokens"]}}, &st);
  EXPECT_EQ(st, 200);
  // SentencePiece vocabularies decode the dummy-prefix space of the first word.
  const std::string back = d["content"];
  EXPECT_TRUE(back == "hello world" || back == " hello world") << back;
  json tp = post(*c, "/tokenize", {{"content", "hi"}, {"with_pieces", true}}, &st);
  EXPECT_TRUE(tp["tokens"][0].contains("piece"));
  post(*c, "/detokenize", {{"tokens", {1, 99999}}}, &st);
  EXPECT_EQ(st, 400);
  post(*c, "/tokenize", {{"content", 5}}, &st);
  EXPECT_EQ(st, 400);
}

TEST(ServeApi, ChatAndCompletionNonStreaming) {
  TestServer s;
  REQUIRE_SERVER(s);
  auto c = s.client();
  int st = 0;
  json chat = post(*c, "/v1/chat/completions",
                   {{"model", "anything"},
                    {"messages", {{{"role", "user"}, {"content", "Say hi"}}}},
                    {"max_tokens", 6},
                    {"temperature", 0},
                    {"ignore_eos", true}},
                   &st);
  ASSERT_EQ(st, 200) << chat.dump();
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(chat["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(chat["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chat["usage"]["completion_tokens"], 6);
  EXPECT_GT(chat["usage"]["prompt_tokens"].get<int>(), 3);
  EXPECT_EQ(chat["usage"]["total_tokens"].get<int>(),
            chat["usage"]["prompt_tokens"].get<int>() + 6);
  EXPECT_EQ(chat["model"], "model.gguf");

  json a = post(*c, "/v1/completions", greedy_completion("Once upon a time", 12), &st);
  ASSERT_EQ(st, 200) << a.dump();
  EXPECT_EQ(a["object"], "text_completion");
  json b = post(*c, "/v1/completions", greedy_completion("Once upon a time", 12), &st);
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);  // greedy: deterministic
  // Seeded sampling is reproducible too.
  json seeded = {{"prompt", "abc"},
                 {"max_tokens", 10},
                 {"temperature", 1.0},
                 {"seed", 42},
                 {"ignore_eos", true}};
  json s1 = post(*c, "/v1/completions", seeded, &st);
  json s2 = post(*c, "/v1/completions", seeded, &st);
  EXPECT_EQ(s1["choices"][0]["text"], s2["choices"][0]["text"]);
  // A prompt given as token ids.
  json ids = post(*c, "/tokenize", {{"content", "Once upon a time"}, {"add_special", true}}, &st);
  json by_ids = greedy_completion("", 12);
  by_ids["prompt"] = ids["tokens"];
  json t = post(*c, "/v1/completions", by_ids, &st);
  ASSERT_EQ(st, 200) << t.dump();
  EXPECT_EQ(t["choices"][0]["text"], a["choices"][0]["text"]);
}

TEST(ServeApi, StreamingFramingMatchesNonStreaming) {
  TestServer s;
  REQUIRE_SERVER(s);
  auto c = s.client();
  int st = 0;
  json req = greedy_completion("The quick brown fox", 16);
  json whole = post(*c, "/v1/completions", req, &st);
  ASSERT_EQ(st, 200);
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto r = c->Post("/v1/completions", req.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  bool done = false;
  auto events = sse_events(r->body, &done);
  EXPECT_TRUE(done) << "the stream must end with data: [DONE]";
  std::string text;
  std::string finish;
  json usage;
  for (const auto& e : events) {
    ASSERT_FALSE(e.is_discarded());
    if (e.contains("usage")) {
      usage = e["usage"];
      continue;
    }
    text += e["choices"][0]["text"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, whole["choices"][0]["text"]);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 16);

  json chat = {{"messages",
                {{{"role", "system"}, {"content", "Be brief."}},
                 {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Hi"}}}}}}},
               {"max_tokens", 5},
               {"temperature", 0},
               {"stream", true},
               {"ignore_eos", true}};
  r = c->Post("/v1/chat/completions", chat.dump(), "application/json");
  ASSERT_TRUE(r);
  events = sse_events(r->body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length");
}

TEST(ServeApi, StopStringsAndLogprobs) {
  TestServer s;
  REQUIRE_SERVER(s);
  auto c = s.client();
  int st = 0;
  json base = post(*c, "/v1/completions", greedy_completion("Hello", 24), &st);
  ASSERT_EQ(st, 200);
  const std::string text = base["choices"][0]["text"];
  ASSERT_GE(text.size(), 6u);
  // One whole UTF-8 character from the middle as the stop string.
  size_t at = text.size() / 2;
  while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
  size_t end = at + 1;
  while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
  const std::string stop = text.substr(at, end - at);
  json req = greedy_completion("Hello", 24);
  req["stop"] = stop;
  json cut = post(*c, "/v1/completions", req, &st);
  ASSERT_EQ(st, 200);
  EXPECT_EQ(cut["choices"][0]["text"], text.substr(0, text.find(stop)));
  EXPECT_EQ(cut["choices"][0]["finish_reason"], "stop");

  json chat = {{"messages", {{{"role", "user"}, {"content", "x"}}}},
               {"max_tokens", 5},
               {"temperature", 0},
               {"ignore_eos", true},
               {"logprobs", true},
               {"top_logprobs", 3}};
  json r = post(*c, "/v1/chat/completions", chat, &st);
  ASSERT_EQ(st, 200) << r.dump();
  const json& content = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 5u);
  for (const auto& t : content) {
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    // Greedy: the chosen token is the most probable one.
    EXPECT_DOUBLE_EQ(t["logprob"].get<double>(), t["top_logprobs"][0]["logprob"].get<double>());
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(),
              t["top_logprobs"][1]["logprob"].get<double>());
  }
  json comp = greedy_completion("x", 4);
  comp["logprobs"] = 2;
  json lr = post(*c, "/v1/completions", comp, &st);
  ASSERT_EQ(st, 200);
  EXPECT_EQ(lr["choices"][0]["logprobs"]["tokens"].size(), 4u);
  EXPECT_EQ(lr["choices"][0]["logprobs"]["top_logprobs"][0].size(), 2u);
  // logit_bias: +100 forces a token, -100 bans it.
  json pieces = post(*c, "/tokenize", {{"content", "hello world"}, {"with_pieces", true}}, &st);
  ASSERT_GE(pieces["tokens"].size(), 2u);
  const int forced = pieces["tokens"][1]["id"];
  const std::string forced_piece = pieces["tokens"][1]["piece"];
  json biased = greedy_completion("Hello", 1);
  biased["logprobs"] = 0;
  biased["logit_bias"] = {{std::to_string(forced), 100}};
  json f = post(*c, "/v1/completions", biased, &st);
  ASSERT_EQ(st, 200) << f.dump();
  EXPECT_EQ(f["choices"][0]["logprobs"]["tokens"][0], forced_piece);
  biased["logit_bias"] = {{std::to_string(forced), -100}};
  biased["prompt"] = "Hello" + forced_piece + forced_piece + forced_piece;
  for (int i = 0; i < 3; ++i) {
    json b = post(*c, "/v1/completions", biased, &st);
    ASSERT_EQ(st, 200);
    EXPECT_NE(b["choices"][0]["logprobs"]["tokens"][0], forced_piece);
  }
}

TEST(ServeApi, ErrorsAreOpenAIJson) {
  TestServer s;
  REQUIRE_SERVER(s);
  auto c = s.client();
  auto expect_error = [&](const std::string& path, const std::string& body, int status,
                          const std::string& param) {
    auto r = c->Post(path.c_str(), body, "application/json");
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, status) << body << " -> " << r->body;
    json j = parse_or_null(r->body);
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    if (!param.empty()) {
      EXPECT_EQ(j["error"]["param"], param) << r->body;
    }
  };
  expect_error("/v1/chat/completions", "{not json", 400, "");
  expect_error("/v1/chat/completions", "[1,2]", 400, "");
  expect_error("/v1/chat/completions", R"({"messages": "hi"})", 400, "messages");
  expect_error("/v1/chat/completions", R"({"messages": []})", 400, "messages");
  expect_error("/v1/chat/completions",
               R"({"model": 7, "messages": [{"role":"user","content":"x"}]})", 400, "model");
  expect_error("/v1/chat/completions", R"({"messages": [{"role":"wizard","content":"x"}]})", 400,
               "messages[0].role");
  expect_error("/v1/completions", R"({"prompt": "x", "max_tokens": "ten"})", 400, "max_tokens");
  expect_error("/v1/completions", R"({"prompt": "x", "temperature": 9})", 400, "temperature");
  expect_error("/v1/completions", R"({"prompt": "x", "n": 3})", 400, "n");
  expect_error("/v1/completions", R"({"prompt": "x", "stream": "yes"})", 400, "stream");
  expect_error("/v1/completions", R"({"prompt": "x", "logit_bias": {"abc": 1}})", 400,
               "logit_bias");
  expect_error("/v1/completions", R"({"prompt": "x", "lora": [{"id": 5, "scale": 1}]})", 400,
               "lora");
  expect_error("/v1/completions", R"({"prompt": [1, 2, 100000]})", 400, "prompt");
  expect_error("/v1/completions", std::string(200, '[') + std::string(200, ']'), 400, "");
  // Too long for the context: OpenAI's code.
  auto r =
      c->Post("/v1/completions", R"({"prompt": "x", "max_tokens": 100000})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(parse_or_null(r->body)["error"]["code"], "context_length_exceeded");
  auto nf = c->Get("/v1/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_TRUE(parse_or_null(nf->body).contains("error"));
  auto met = c->Get("/metrics");  // off unless --metrics
  ASSERT_TRUE(met);
  EXPECT_EQ(met->status, 404);
  // Still serving after all that.
  int st = 0;
  post(*c, "/v1/completions", greedy_completion("ok", 2), &st);
  EXPECT_EQ(st, 200);
}

TEST(ServeApi, BodyLimitAndApiKey) {
  ServerOptions o;
  o.api_key = "sk-test-123";
  o.max_body_bytes = 4096;
  TestServer s(o);
  REQUIRE_SERVER(s);
  auto c = s.client();
  auto h = c->Get("/health");  // /health needs no key
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto r = c->Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(parse_or_null(r->body)["error"]["type"], "authentication_error");
  r = c->Get("/v1/models", {{"Authorization", "Bearer sk-test-124"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  httplib::Headers auth = {{"Authorization", "Bearer sk-test-123"}};
  r = c->Get("/v1/models", auth);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const std::string big = json{{"prompt", std::string(10000, 'a')}}.dump();
  r = c->Post("/v1/completions", auth, big, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  auto c2 = s.client();
  r = c2->Post("/v1/completions", auth, greedy_completion("hi", 2).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// Opens a raw connection, sends a streaming request, reads until some data arrived, then closes.
bool stream_and_hang_up(int port, const std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return false;
  }
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
      "application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  bool ok = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
  std::string got;
  char buf[512];
  while (ok && got.find("data: ") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return got.find("data: ") != std::string::npos;
}

TEST(ServeApi, DisconnectMidStreamFreesTheSlot) {
  ServerOptions o;
  o.parallel = 1;
  o.metrics = true;
  TestServer s(o);
  REQUIRE_SERVER(s);
  json long_req = greedy_completion("tell me everything", 200);
  long_req["stream"] = true;
  ASSERT_TRUE(stream_and_hang_up(s.port(), long_req.dump()));
  // The only slot must come free long before 200 tokens would have been generated... bounded.
  auto c = s.client();
  int st = 0;
  json r = post(*c, "/v1/completions", greedy_completion("after", 4), &st);
  EXPECT_EQ(st, 200) << r.dump();
  auto m = c->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("kandil_requests_total{endpoint=\"/v1/completions\",status=\"200\"}"),
            std::string::npos);
  EXPECT_NE(m->body.find("kandil_generated_tokens_total"), std::string::npos);
  EXPECT_NE(m->body.find("kandil_kv_cache_used_ratio"), std::string::npos);
  // The slot is free again (bounded wait).
  bool idle = false;
  for (int i = 0; i < 500 && !idle; ++i) {
    auto h = c->Get("/health");
    idle = h && parse_or_null(h->body)["slots_processing"] == 0;
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(idle);
}

TEST(ServeApi, FullQueueGets429WithRetryAfter) {
  ServerOptions o;
  o.parallel = 1;
  o.max_queue = 1;
  TestServer s(o);
  REQUIRE_SERVER(s);
  // Bursts of 12 simultaneous requests against room for 2 (one slot + one queued): some must be
  // turned away, the rest served. Bounded: at most 10 bursts.
  bool saw_429 = false;
  for (int round = 0; round < 10 && !saw_429; ++round) {
    std::vector<std::thread> ts;
    std::vector<int> status(12, 0);
    std::vector<std::string> retry(12);
    for (size_t i = 0; i < status.size(); ++i) {
      ts.emplace_back([&, i] {
        auto c = s.client();
        auto r =
            c->Post("/v1/completions", greedy_completion("burst", 100).dump(), "application/json");
        if (!r) return;
        status[i] = r->status;
        retry[i] = r->get_header_value("Retry-After");
      });
    }
    for (auto& t : ts) t.join();
    for (size_t i = 0; i < status.size(); ++i) {
      EXPECT_TRUE(status[i] == 200 || status[i] == 429) << status[i];
      if (status[i] == 429) {
        saw_429 = true;
        EXPECT_EQ(retry[i], "1");
      }
    }
  }
  EXPECT_TRUE(saw_429);
}

TEST(ServeApi, ShutdownFinishesInFlightRequests) {
  TestServer s;
  REQUIRE_SERVER(s);
  int st = 0;
  json result;
  std::thread client([&] {
    auto c = s.client();
    result = post(*c, "/v1/completions", greedy_completion("bye", 40), &st);
  });
  // Wait (bounded) until the request is running.
  for (int i = 0; i < 500; ++i) {
    auto c = s.client();
    auto h = c->Get("/health");
    if (h && parse_or_null(h->body)["slots_processing"] == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(s.stop());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  client.join();
  EXPECT_EQ(st, 200);
  EXPECT_EQ(result["usage"]["completion_tokens"], 40);
}

}  // namespace
}  // namespace kandil
