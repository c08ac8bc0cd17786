// Providers behind one interface: OpenAI-compatible and Anthropic against loopback servers that
// speak their streaming formats, retries, timeouts and errors; the built-in engine on a model
// file; context fitting and the chat session (persisted and audited turns).
#include <chrono>
#include <thread>

#include "kandil/lora.h"
#include "kandil/model.h"
#include "kandil/synth.h"
#include "loopback_http.h"
#include "platform/audit/audit.h"
#include "platform/chat/repl.h"
#include "platform/chat/session.h"
#include "platform/providers/http.h"
#include "platform/providers/provider.h"
#include "platform/sessions/store.h"
#include "test_util.h"

namespace kandil::platform {
namespace {

using kandil::testing::Conn;
using kandil::testing::HttpRequestSeen;
using kandil::testing::LoopbackServer;
using kandil::testing::temp_dir;
using Clock = std::chrono::steady_clock;

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string openai_chunk(const std::string& text) {
  return nlohmann::json{
      {"object", "chat.completion.chunk"},
      {"choices", {{{"index", 0}, {"delta", {{"content", text}}}, {"finish_reason", nullptr}}}}}
      .dump();
}

// Streams "Hello", ", ", "world" (the last after a pause), then finish_reason and usage.
void openai_stream(const HttpRequestSeen&, Conn& c) {
  c.start(200, "text/event-stream");
  c.sse("", openai_chunk("Hello"));
  c.sse("", openai_chunk(", "));
  pause_ms(300);
  c.sse("", openai_chunk("world"));
  c.sse("", R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})");
  c.sse("",
        R"({"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}})");
  c.sse("", "[DONE]");
}

ProviderSettings remote(const std::string& provider, const std::string& url) {
  ProviderSettings s;
  s.provider = provider;
  s.base_url = url;
  s.model = "test-model";
  s.api_key = "sk-test-123";
  s.retries = 3;
  s.backoff_ms = 10;
  s.timeout_s = 10;
  s.connect_timeout_s = 2;
  return s;
}

const std::vector<Message> kConversation = {{"system", "be brief"}, {"user", "hi"}};

TEST(PlatformSse, ParsesEventsFromAnyChunking) {
  const std::string stream =
      ": comment\r\nevent: a\r\ndata: one\r\n\r\ndata: two\ndata: lines\n\nevent: b\ndata:x\n\n";
  for (size_t step : {size_t{1}, size_t{3}, stream.size()}) {
    SseParser p;
    std::vector<SseParser::Event> got;
    for (size_t i = 0; i < stream.size(); i += step) {
      p.feed(std::string_view(stream).substr(i, step), [&](const SseParser::Event& e) {
        got.push_back(e);
        return true;
      });
    }
    ASSERT_EQ(got.size(), 3u) << step;
    EXPECT_EQ(got[0].event, "a");
    EXPECT_EQ(got[0].data, "one");
    EXPECT_EQ(got[1].event, "");
    EXPECT_EQ(got[1].data, "two\nlines");
    EXPECT_EQ(got[2].event, "b");
    EXPECT_EQ(got[2].data, "x");
  }
  SseParser p;
  int n = 0;
  EXPECT_FALSE(p.feed("data: 1\n\ndata: 2\n\n", [&](const SseParser::Event&) { return ++n < 1; }));
  EXPECT_EQ(n, 1);
}

TEST(PlatformOpenAi, StreamsTextBeforeTheAnswerEnds) {
  LoopbackServer server(openai_stream);
  auto p = make_openai_provider(remote("openai", server.url() + "/v1/"));
  std::vector<std::string> pieces;
  std::vector<double> at;
  const auto t0 = Clock::now();
  auto u = p->chat(kConversation, ChatOptions{}, [&](std::string_view s) {
    pieces.emplace_back(s);
    at.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    return true;
  });
  ASSERT_TRUE(u.ok()) << u.error().message;
  ASSERT_EQ(pieces, (std::vector<std::string>{"Hello", ", ", "world"}));
  EXPECT_LT(at[0] + 200, at[2]);  // the first text arrived while the server was still writing
  EXPECT_EQ(u->prompt_tokens, 11);
  EXPECT_EQ(u->completion_tokens, 3);
  EXPECT_FALSE(u->estimated);
  EXPECT_EQ(u->stop_reason, "stop");
  EXPECT_GT(u->ttft_ms, 0);
  EXPECT_GE(u->total_ms, u->ttft_ms + 200);
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].path, "/v1/chat/completions");
  EXPECT_EQ(seen[0].header("Authorization"), "Bearer sk-test-123");
  auto body = nlohmann::json::parse(seen[0].body);
  EXPECT_EQ(body["model"], "test-model");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["messages"][0]["role"], "system");
  EXPECT_EQ(body["messages"][1]["content"], "hi");
}

TEST(PlatformOpenAi, RetriesTwoFailuresThenSucceeds) {
  std::atomic<int> calls{0};
  LoopbackServer server([&](const HttpRequestSeen& r, Conn& c) {
    int n = calls++;
    if (n == 0) {
      c.respond(503, "application/json", R"({"error":{"message":"busy"}})");
    } else if (n == 1) {
      c.respond(429, "application/json", R"({"error":{"message":"slow down"}})",
                "Retry-After: 0\r\n");
    } else {
      openai_stream(r, c);
    }
  });
  auto p = make_openai_provider(remote("openai", server.url()));
  std::string text;
  auto u = p->chat(kConversation, {}, [&](std::string_view s) {
    text += s;
    return true;
  });
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(text, "Hello, world");
  EXPECT_EQ(calls.load(), 3);
}

TEST(PlatformOpenAi, GivesUpAfterBoundedRetries) {
  LoopbackServer server([](const HttpRequestSeen&, Conn& c) {
    c.respond(500, "application/json", R"({"error":{"message":"kaputt"}})");
  });
  auto s = remote("openai", server.url());
  s.retries = 2;
  auto u = make_openai_provider(s)->chat(kConversation, {}, {});
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(server.requests(), 3);
  EXPECT_NE(u.error().message.find("HTTP 500 after 3 attempts"), std::string::npos)
      << u.error().message;
  EXPECT_NE(u.error().message.find("kaputt"), std::string::npos);
}

TEST(PlatformOpenAi, ClearErrorsFor401UnknownModelAndUnreachableHost) {
  LoopbackServer server([](const HttpRequestSeen& r, Conn& c) {
    auto body = nlohmann::json::parse(r.body);
    if (r.header("Authorization") != "Bearer sk-test-123") {
      c.respond(401, "application/json", R"({"error":{"message":"Incorrect API key provided"}})");
    } else if (body["model"] != "test-model") {
      c.respond(
          404, "application/json",
          R"({"error":{"message":"The model `nope` does not exist","code":"model_not_found"}})");
    }
  });
  auto s = remote("openai", server.url());
  s.api_key = "sk-wrong-999";
  auto u = make_openai_provider(s)->chat(kConversation, {}, {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("authentication failed (HTTP 401)"), std::string::npos)
      << u.error().message;
  EXPECT_NE(u.error().message.find("Incorrect API key"), std::string::npos);
  EXPECT_EQ(u.error().message.find("sk-wrong-999"), std::string::npos);
  EXPECT_EQ(server.requests(), 1);  // 401 is not retried

  s = remote("openai", server.url());
  s.model = "nope";
  u = make_openai_provider(s)->chat(kConversation, {}, {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("unknown model 'nope'"), std::string::npos) << u.error().message;

  int dead_port;
  {
    LoopbackServer gone([](const HttpRequestSeen&, Conn&) {});
    dead_port = gone.port();
  }
  u = make_openai_provider(remote("openai", "http://127.0.0.1:" + std::to_string(dead_port)))
          ->chat(kConversation, {}, {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("cannot connect"), std::string::npos) << u.error().message;
  EXPECT_NE(u.error().message.find(std::to_string(dead_port)), std::string::npos);
}

TEST(PlatformOpenAi, TimesOutOnASilentServer) {
  LoopbackServer server([](const HttpRequestSeen&, Conn&) { pause_ms(2500); });
  auto s = remote("openai", server.url());
  s.timeout_s = 1;
  const auto t0 = Clock::now();
  auto u = make_openai_provider(s)->chat(kConversation, {}, {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("timed out"), std::string::npos) << u.error().message;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 2.4);
}

TEST(PlatformOpenAi, CancelStopsTheStreamAndErrorEventsFail) {
  LoopbackServer server(openai_stream);
  auto p = make_openai_provider(remote("openai", server.url()));
  std::string text;
  auto u = p->chat(kConversation, {}, [&](std::string_view s) {
    text += s;
    return false;
  });
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(text, "Hello");
  EXPECT_EQ(u->stop_reason, "cancelled");

  std::atomic<bool> cancel{true};
  ChatOptions o;
  o.cancel = &cancel;
  u = p->chat(kConversation, o, {});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->stop_reason, "cancelled");

  LoopbackServer bad([](const HttpRequestSeen&, Conn& c) {
    c.start(200, "text/event-stream");
    c.sse("", openai_chunk("par"));
    c.sse("", R"({"error":{"message":"model crashed"}})");
  });
  u = make_openai_provider(remote("openai", bad.url()))->chat(kConversation, {}, {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("model crashed"), std::string::npos);

  LoopbackServer plain([](const HttpRequestSeen&, Conn& c) {
    c.start(200, "text/event-stream");
    c.sse("", openai_chunk("no usage here"));
    c.sse("", "[DONE]");
  });
  u = make_openai_provider(remote("openai", plain.url()))->chat(kConversation, {}, {});
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->estimated);
  EXPECT_EQ(u->prompt_tokens, estimate_tokens(kConversation));
}

// The Messages API event stream as documented: message_start, content_block_start, ping,
// content_block_delta (text_delta) ..., content_block_stop, message_delta (stop_reason, usage),
// message_stop.
void anthropic_stream(const HttpRequestSeen&, Conn& c) {
  c.start(200, "text/event-stream");
  c.sse(
      "message_start",
      R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"test-model","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}})");
  c.sse("content_block_start",
        R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  c.sse("ping", R"({"type": "ping"})");
  c.sse("content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})");
  pause_ms(250);
  c.sse(
      "content_block_delta",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}})");
  c.sse("content_block_stop", R"({"type":"content_block_stop","index":0})");
  c.sse(
      "message_delta",
      R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}})");
  c.sse("message_stop", R"({"type":"message_stop"})");
}

TEST(PlatformAnthropic, StreamsMessagesApiEvents) {
  LoopbackServer server(anthropic_stream);
  auto p = make_anthropic_provider(remote("anthropic", server.url()));
  std::vector<std::string> pieces;
  auto u = p->chat({{"system", "be brief"}, {"user", "hi"}, {"assistant", "yo"}, {"user", "again"}},
                   {}, [&](std::string_view s) {
                     pieces.emplace_back(s);
                     return true;
                   });
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(pieces, (std::vector<std::string>{"Hi", " there"}));
  EXPECT_EQ(u->prompt_tokens, 12);
  EXPECT_EQ(u->completion_tokens, 4);
  EXPECT_EQ(u->stop_reason, "end_turn");
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/v1/messages");
  EXPECT_EQ(seen[0].header("x-api-key"), "sk-test-123");
  EXPECT_EQ(seen[0].header("anthropic-version"), "2023-06-01");
  auto body = nlohmann::json::parse(seen[0].body);
  EXPECT_EQ(body["system"], "be brief");  // top-level, not a message
  ASSERT_EQ(body["messages"].size(), 3u);
  EXPECT_EQ(body["messages"][0]["role"], "user");
  EXPECT_EQ(body["max_tokens"], 512);
  EXPECT_EQ(body["stream"], true);
}

TEST(PlatformAnthropic, ErrorsInStreamAndStatus) {
  LoopbackServer overloaded([](const HttpRequestSeen&, Conn& c) {
    c.start(200, "text/event-stream");
    c.sse("error",
          R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  });
  auto u =
      make_anthropic_provider(remote("anthropic", overloaded.url()))->chat(kConversation, {}, {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("overloaded_error: Overloaded"), std::string::npos)
      << u.error().message;

  LoopbackServer denied([](const HttpRequestSeen&, Conn& c) {
    c.respond(
        401, "application/json",
        R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})");
  });
  u = make_anthropic_provider(remote("anthropic", denied.url()))->chat(kConversation, {}, {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("authentication failed"), std::string::npos);
  EXPECT_NE(u.error().message.find("invalid x-api-key"), std::string::npos);
}

// ---- context fitting and the chat session ------------------------------------------------

// Answers with the number of messages it saw; 1 token per 4 bytes; a small window.
class FakeProvider : public Provider {
 public:
  explicit FakeProvider(int64_t window) : window_(window) {}
  Result<Usage> chat(const std::vector<Message>& m, const ChatOptions&,
                     const TokenFn& on) override {
    seen = m;
    const std::string answer = "saw " + std::to_string(m.size());
    if (on) on(answer);
    Usage u;
    u.prompt_tokens = count_tokens(m);
    u.completion_tokens = 2;
    u.stop_reason = "stop";
    return u;
  }
  std::string name() const override { return "fake"; }
  std::string model() const override { return "fake-1"; }
  int64_t context_window() const override { return window_; }
  int64_t count_tokens(const std::vector<Message>& m) const override { return estimate_tokens(m); }
  std::vector<Message> seen;

 private:
  int64_t window_;
};

TEST(PlatformChat, FitContextDropsOldestTurnsKeepsSystem) {
  FakeProvider p(40);
  const std::string para(60, 'x');  // 16 tokens per message
  std::vector<Message> m = {{"system", "s"}, {"user", para},      {"assistant", para},
                            {"user", para},  {"assistant", para}, {"user", "last"}};
  auto dropped = fit_context(m, p, 10);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 4u);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].role, "system");
  EXPECT_EQ(m[1].content, "last");
  std::vector<Message> huge = {{"system", "s"}, {"user", std::string(400, 'y')}};
  auto r = fit_context(huge, p, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("does not fit the context window of 40"), std::string::npos);
}

TEST(PlatformChat, TurnsArePersistedAuditedAndReloaded) {
  const std::string dir = temp_dir();
  auto store = SessionStore::open(dir + "/kandil.db");
  ASSERT_TRUE(store.ok());
  AuditLog audit(dir + "/audit");
  auto owned = std::make_unique<FakeProvider>(100000);
  FakeProvider* fake = owned.get();
  ChatSession chat(std::move(owned), store->get(), &audit, ChatOptions{});
  chat.reset("sys prompt");
  std::string streamed;
  auto t1 = chat.turn("first", [&](std::string_view s) {
    streamed += s;
    return true;
  });
  ASSERT_TRUE(t1.ok()) << t1.error().message;
  EXPECT_EQ(t1->answer, "saw 2");
  EXPECT_EQ(streamed, "saw 2");
  auto t2 = chat.turn("second", {});
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(t2->answer, "saw 4");
  EXPECT_EQ(fake->seen.back().content, "second");
  EXPECT_EQ(chat.totals().turns, 2);
  auto id = chat.save("named");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, chat.id());

  auto s = (*store)->load("named");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->info.system, "sys prompt");
  ASSERT_EQ(s->messages.size(), 4u);
  EXPECT_EQ(s->messages[3].content, "saw 4");
  EXPECT_EQ(s->info.completion_tokens, 4);

  ChatSession other(std::make_unique<FakeProvider>(100000), store->get(), nullptr, ChatOptions{});
  other.reset("");
  ASSERT_TRUE(other.load("named").ok());
  EXPECT_EQ(other.messages().size(), 5u);  // system + 4
  auto t3 = other.turn("third", {});
  ASSERT_TRUE(t3.ok());
  EXPECT_EQ(t3->answer, "saw 6");
  EXPECT_EQ((*store)->load("named")->messages.size(), 6u);
  EXPECT_FALSE(other.load("missing").ok());

  auto entries = audit.read();
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[1].event, "chat_turn");
  EXPECT_EQ((*entries)[1].data["user"], "second");
  EXPECT_EQ((*entries)[1].data["session"], *id);
  EXPECT_TRUE(audit.verify()->ok);

  // A small window: the oldest turn is dropped, the stored session follows.
  ChatSession small(std::make_unique<FakeProvider>(20), store->get(), nullptr, ChatOptions{});
  ChatOptions& o = small.options();
  o.max_tokens = 4;
  small.reset("");
  ASSERT_TRUE(small.turn(std::string(30, 'a'), {}).ok());
  auto t = small.turn(std::string(30, 'b'), {});
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->dropped, 2u);
  auto stored = (*store)->load(small.id());
  ASSERT_EQ(stored->messages.size(), 2u);
  EXPECT_EQ(stored->messages[0].content, std::string(30, 'b'));

  small.set_system("now with system");
  EXPECT_EQ(small.messages()[0].role, "system");
  EXPECT_EQ((*store)->load(small.id())->info.system, "now with system");
  small.set_system("");
  EXPECT_NE(small.messages()[0].role, "system");
}

TEST(PlatformChat, SlashCommandsAndMultiLineInput) {
  auto c = parse_slash("  /load  my session ");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->name, "load");
  EXPECT_EQ(c->arg, "my session");
  EXPECT_EQ(parse_slash("/tokens")->arg, "");
  EXPECT_FALSE(parse_slash("hello /load"));
  EXPECT_FALSE(parse_slash("/"));
  EXPECT_FALSE(parse_slash("// comment"));

  MultiLine ml;
  EXPECT_TRUE(ml.add("one line"));
  EXPECT_EQ(ml.take(), "one line");
  EXPECT_FALSE(ml.add("first \\"));
  EXPECT_TRUE(ml.pending());
  EXPECT_TRUE(ml.add("second"));
  EXPECT_EQ(ml.take(), "first \nsecond");
  EXPECT_FALSE(ml.add("\"\"\""));
  EXPECT_FALSE(ml.add("a"));
  EXPECT_FALSE(ml.add("  b"));
  EXPECT_TRUE(ml.add("\"\"\""));
  EXPECT_FALSE(ml.pending());
  EXPECT_EQ(ml.take(), "a\n  b");

  const std::string dir = temp_dir();
  auto store = SessionStore::open(dir + "/kandil.db");
  ASSERT_TRUE(store.ok());
  ChatSession chat(std::make_unique<FakeProvider>(1000), store->get(), nullptr, ChatOptions{});
  chat.reset("");
  ReplOptions ro;
  ro.store = store->get();
  auto run = [&](const std::string& line) {
    char* buf = nullptr;
    size_t len = 0;
    std::FILE* out = open_memstream(&buf, &len);
    bool more = run_slash(chat, *parse_slash(line), ro, out);
    std::fclose(out);
    std::string text(buf, len);
    std::free(buf);
    return std::make_pair(more, text);
  };
  EXPECT_NE(run("/help").second.find("/sessions"), std::string::npos);
  EXPECT_NE(run("/sessions").second.find("no saved sessions"), std::string::npos);
  EXPECT_NE(run("/system").second.find("(none)"), std::string::npos);
  EXPECT_NE(run("/system be kind").second.find("set"), std::string::npos);
  EXPECT_NE(run("/system").second.find("be kind"), std::string::npos);
  ASSERT_TRUE(chat.turn("hello", {}).ok());
  EXPECT_NE(run("/tokens").second.find("over 1 turns"), std::string::npos);
  EXPECT_NE(run("/save first").second.find("as 'first'"), std::string::npos);
  EXPECT_NE(run("/sessions").second.find("first"), std::string::npos);
  EXPECT_NE(run("/reset").second.find("new conversation"), std::string::npos);
  EXPECT_EQ(chat.messages().size(), 1u);  // the system prompt stays
  EXPECT_NE(run("/load").second.find("usage"), std::string::npos);
  EXPECT_NE(run("/load nope").second.find("error"), std::string::npos);
  auto loaded = run("/load first");
  EXPECT_NE(loaded.second.find("assistant: saw 2"), std::string::npos) << loaded.second;
  EXPECT_NE(run("/model").second.find("fake-1"), std::string::npos);
  EXPECT_NE(run("/model other").second.find("not possible"), std::string::npos);
  ro.switch_model = [](const std::string& name) -> Result<std::unique_ptr<Provider>> {
    if (name == "bad") return Error{"no such model"};
    return std::unique_ptr<Provider>(std::make_unique<FakeProvider>(500));
  };
  EXPECT_NE(run("/model bad").second.find("no such model"), std::string::npos);
  EXPECT_NE(run("/model good").second.find("now using"), std::string::npos);
  EXPECT_EQ(chat.provider().context_window(), 500);
  EXPECT_NE(run("/lora x:0.5").second.find("apply to the built-in engine"), std::string::npos);
  EXPECT_NE(run("/lora").second.find("no LoRA adapters active"), std::string::npos);
  EXPECT_NE(run("/lora off").second.find("off"), std::string::npos);
  EXPECT_NE(run("/what").second.find("unknown command"), std::string::npos);
  EXPECT_FALSE(run("/exit").first);
  EXPECT_TRUE(run("/help").first);
}

// ---- the built-in engine -------------------------------------------------------------------

TEST(PlatformEngine, LoraAdaptersChangeTheAnswerAndComeOff) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/m.gguf";
  ASSERT_TRUE(write_synthetic_model(SynthSpec{}, path).ok());
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.error().message;
  LoraSynthSpec spec;
  spec.b_stddev = 1.0f;  // a strong adapter: the greedy answer must change
  ASSERT_TRUE(write_synthetic_peft_adapter((*model)->config(), spec, dir + "/adapter").ok());
  ProviderSettings s;
  s.model = path;
  s.ctx = 256;
  s.threads = 1;
  auto p = make_engine_provider(s);
  ASSERT_TRUE(p.ok()) << p.error().message;
  ChatOptions o;
  o.max_tokens = 8;
  o.temperature = 0;
  auto answer = [&] {
    std::string text;
    auto u = (*p)->chat(kConversation, o, [&](std::string_view t) {
      text += t;
      return true;
    });
    EXPECT_TRUE(u.ok());
    return text;
  };
  const std::string base = answer();
  EXPECT_FALSE((*p)->apply_lora(dir + "/missing", 1.0f).ok());
  ASSERT_TRUE((*p)->apply_lora(dir + "/adapter", 4.0f).ok());
  ASSERT_EQ((*p)->active_lora().size(), 1u);
  EXPECT_NE((*p)->active_lora()[0].find("scale 4"), std::string::npos);
  const std::string adapted = answer();
  EXPECT_NE(adapted, base);
  ASSERT_TRUE((*p)->apply_lora(dir + "/adapter", 0.0f).ok());  // rescale, not a second copy
  EXPECT_EQ((*p)->active_lora().size(), 1u);
  EXPECT_EQ(answer(), base);  // scale 0 is the base model exactly
  ASSERT_TRUE((*p)->apply_lora(dir + "/adapter", 4.0f).ok());
  EXPECT_EQ(answer(), adapted);
  (*p)->clear_lora();
  EXPECT_TRUE((*p)->active_lora().empty());
  EXPECT_EQ(answer(), base);
}

TEST(PlatformEngine, ChatsWithASynthModelUsingTheFallbackFormat) {
  const std::string path = temp_dir() + "/m.gguf";
  ASSERT_TRUE(write_synthetic_model(SynthSpec{}, path).ok());
  ProviderSettings s;
  s.model = path;
  s.ctx = 256;
  s.threads = 1;
  auto p = make_engine_provider(s);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ((*p)->name(), "builtin");
  EXPECT_EQ((*p)->context_window(), 256);
  ChatOptions o;
  o.max_tokens = 8;
  o.temperature = 0;
  std::string a, b;
  auto u = (*p)->chat(kConversation, o, [&](std::string_view t) {
    a += t;
    return true;
  });
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->prompt_tokens, (*p)->count_tokens(kConversation));
  EXPECT_GT(u->completion_tokens, 0);
  EXPECT_LE(u->completion_tokens, 8);
  EXPECT_GT(u->ttft_ms, 0);
  ASSERT_TRUE((*p)->chat(kConversation, o,
                         [&](std::string_view t) {
                           b += t;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(a, b);  // greedy: the same prompt gives the same answer (the context is reset)
  EXPECT_EQ(fallback_prompt(kConversation), "System: be brief\n\nUser: hi\n\nAssistant:");

  int calls = 0;
  u = (*p)->chat(kConversation, o, [&](std::string_view) { return ++calls < 1; });
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->stop_reason, "cancelled");

  std::vector<Message> huge = {{"user", std::string(4000, 'z')}};
  EXPECT_FALSE((*p)->chat(huge, o, {}).ok());
  s.model = temp_dir() + "/missing.gguf";
  EXPECT_FALSE(make_engine_provider(s).ok());
  s.model = "";
  EXPECT_FALSE(make_engine_provider(s).ok());
}

TEST(PlatformEngine, ChatsWithStories260K) {
  KANDIL_REQUIRE_FIXTURE("models/stories260K.gguf");
  ProviderSettings s;
  s.model = kandil::testing::fixture("models/stories260K.gguf");
  s.threads = 1;
  auto p = make_engine_provider(s);
  ASSERT_TRUE(p.ok()) << p.error().message;
  ChatOptions o;
  o.max_tokens = 16;
  o.temperature = 0;
  std::string text;
  auto u = (*p)->chat({{"user", "Once upon a time"}}, o, [&](std::string_view t) {
    text += t;
    return true;
  });
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_FALSE(text.empty());
  EXPECT_GT(u->completion_tokens, 0);
}

}  // namespace
}  // namespace kandil::platform
