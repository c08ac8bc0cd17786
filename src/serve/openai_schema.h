// OpenAI-compatible request parsing and validation, error JSON and response builders.
// Parsing never throws and never trusts its input: every problem becomes an ApiError (HTTP status
// plus OpenAI's {"error": {"message", "type", "param", "code"}} fields) naming the field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kandil/sampling.h"
#include "kandil/tokenizer.h"

namespace kandil::serve {

enum class Endpoint { chat, completions };

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field ("" -> null)
  std::string code;   // e.g. "context_length_exceeded" ("" -> null)
};
// {"error": {...}} as OpenAI writes it.
nlohmann::json error_json(const ApiError& e);

struct ChatMessage {
  std::string role, content;
};

// A validated generation request (either endpoint).
struct ParsedRequest {
  Endpoint endpoint = Endpoint::chat;
  std::string model;
  std::vector<ChatMessage> messages;   // chat
  std::string prompt;                  // completions: text prompt
  std::vector<TokenId> prompt_tokens;  // completions: a prompt given as token ids
  bool prompt_is_tokens = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int32_t max_tokens = -1;     // -1: until end of text or the context is full
  SamplingParams sampling;
  bool seed_given = false;
  std::vector<std::string> stop;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool ignore_eos = false;                                     // llama.cpp extension
  std::optional<std::vector<std::pair<int32_t, float>>> lora;  // per-request [{id, scale}]
};

// Limits the parser enforces besides the schema.
struct ParseLimits {
  int32_t n_vocab = 0;
  size_t max_stop = 16;
  size_t max_stop_bytes = 256;
  int32_t max_top_logprobs = 20;
  int max_depth = 64;  // JSON nesting
};

// Parses a request body for `endpoint`. Returns false and fills `err` on any problem.
bool parse_request(std::string_view body, Endpoint endpoint, const ParseLimits& limits,
                   ParsedRequest& out, ApiError& err);

// Parses JSON text with a nesting bound (the parser itself never throws); nullopt + err on failure.
std::optional<nlohmann::json> parse_json_body(std::string_view body, int max_depth, ApiError& err);

// Parses [{id, scale}] (POST /lora-adapters and the per-request "lora" field).
bool parse_lora_list(const nlohmann::json& j, const std::string& param,
                     std::vector<std::pair<int32_t, float>>& out, ApiError& err);

// One generated token's log-probabilities (log-softmax of the raw logits).
struct TokenLogprob {
  TokenId id = 0;
  std::string piece;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;  // most probable first
};

// JSON text with invalid UTF-8 replaced (token pieces may split characters).
std::string dump_json(const nlohmann::json& j);

struct ResponseMeta {
  std::string id;
  int64_t created = 0;
  std::string model;
};

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
// Chat: {"content": [{token, logprob, bytes, top_logprobs}]}; completions: the legacy shape.
nlohmann::json chat_logprobs_json(const std::vector<TokenLogprob>& lps);
nlohmann::json completion_logprobs_json(const std::vector<TokenLogprob>& lps, size_t text_offset);

nlohmann::json chat_response(const ResponseMeta& m, const std::string& text,
                             const std::string& finish_reason, const std::vector<TokenLogprob>* lps,
                             int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::json completion_response(const ResponseMeta& m, const std::string& text,
                                   const std::string& finish_reason,
                                   const std::vector<TokenLogprob>* lps, int64_t prompt_tokens,
                                   int64_t completion_tokens);
// One streamed chunk; finish_reason "" -> null; role "" -> no role in the delta.
nlohmann::json chat_chunk(const ResponseMeta& m, const std::string& role, const std::string& text,
                          const std::string& finish_reason, const std::vector<TokenLogprob>* lps);
nlohmann::json completion_chunk(const ResponseMeta& m, const std::string& text,
                                const std::string& finish_reason,
                                const std::vector<TokenLogprob>* lps, size_t text_offset);

}  // namespace kandil::serve
