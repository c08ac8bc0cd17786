#include "serve/openai_schema.h"

#include <cmath>
#include <limits>

namespace kandil::serve {

using nlohmann::json;

namespace {

ApiError bad(std::string param, std::string message) {
  ApiError e;
  e.status = 400;
  e.param = std::move(param);
  e.message = std::move(message);
  return e;
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::discarded:
      return "invalid";
    default:
      return "an integer";
  }
}

// Reads an optional number field within [lo, hi]; null counts as absent.
bool get_number(const json& obj, const char* key, double lo, double hi, std::optional<double>& out,
                ApiError& err) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return true;
  if (!it->is_number()) {
    err = bad(key, std::string("'") + key + "' must be a number, got " + type_name(*it));
    return false;
  }
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) {
    err = bad(key, std::string("'") + key + "' must be between " + json(lo).dump() + " and " +
                       json(hi).dump());
    return false;
  }
  out = v;
  return true;
}

bool get_int(const json& obj, const char* key, int64_t lo, int64_t hi, std::optional<int64_t>& out,
             ApiError& err) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return true;
  if (!it->is_number_integer() && !it->is_number_unsigned()) {
    // 3.0 is an integer to most clients' JSON encoders; accept integral floats.
    if (it->is_number_float()) {
      const double d = it->get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
        const auto v = static_cast<int64_t>(d);
        if (v >= lo && v <= hi) {
          out = v;
          return true;
        }
      }
    }
    err = bad(key, std::string("'") + key + "' must be an integer, got " + type_name(*it));
    return false;
  }
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    err = bad(key, std::string("'") + key + "' must be at most " + std::to_string(hi));
    return false;
  }
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) {
    err = bad(key, std::string("'") + key + "' must be between " + std::to_string(lo) + " and " +
                       std::to_string(hi));
    return false;
  }
  out = v;
  return true;
}

bool get_bool(const json& obj, const char* key, bool& out, ApiError& err) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return true;
  if (!it->is_boolean()) {
    err = bad(key, std::string("'") + key + "' must be a boolean, got " + type_name(*it));
    return false;
  }
  out = it->get<bool>();
  return true;
}

bool parse_messages(const json& j, std::vector<ChatMessage>& out, ApiError& err) {
  if (!j.is_array()) {
    err = bad("messages", std::string("'messages' must be an array, got ") + type_name(j));
    return false;
  }
  if (j.empty()) {
    err = bad("messages", "'messages' must contain at least one message");
    return false;
  }
  for (size_t i = 0; i < j.size(); ++i) {
    const json& m = j[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      err = bad(p, "'" + p + "' must be an object, got " + type_name(m));
      return false;
    }
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      err = bad(p + ".role", "'" + p + ".role' must be a string");
      return false;
    }
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "developer") {
      err = bad(p + ".role", "'" + p +
                                 ".role' must be one of system, developer, user, "
                                 "assistant, tool; got '" +
                                 r + "'");
      return false;
    }
    ChatMessage msg{r == "developer" ? "system" : r, ""};
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      if (r != "assistant") {
        err = bad(p + ".content", "'" + p + ".content' is required");
        return false;
      }
    } else if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (size_t k = 0; k < content->size(); ++k) {
        const json& part = (*content)[k];
        const std::string pp = p + ".content[" + std::to_string(k) + "]";
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
            !part.contains("text") || !part["text"].is_string()) {
          err = bad(pp, "'" + pp +
                            "' must be {\"type\": \"text\", \"text\": string} (only text "
                            "content is supported)");
          return false;
        }
        msg.content += part["text"].get<std::string>();
      }
    } else {
      err = bad(p + ".content", "'" + p +
                                    ".content' must be a string or an array of text parts, "
                                    "got " +
                                    type_name(*content));
      return false;
    }
    out.push_back(std::move(msg));
  }
  return true;
}

bool parse_prompt(const json& j, int32_t n_vocab, ParsedRequest& out, ApiError& err) {
  if (j.is_string()) {
    out.prompt = j.get<std::string>();
    return true;
  }
  if (j.is_array()) {
    if (j.size() == 1 && j[0].is_string()) {
      out.prompt = j[0].get<std::string>();
      return true;
    }
    if (j.empty()) {
      err = bad("prompt", "'prompt' must not be empty");
      return false;
    }
    for (const json& t : j) {
      if (!t.is_number_integer() && !t.is_number_unsigned()) {
        err = bad("prompt", "'prompt' must be a string, [string] or an array of token ids");
        return false;
      }
      const int64_t id = t.get<int64_t>();
      if (id < 0 || id >= n_vocab || (t.is_number_unsigned() && t.get<uint64_t>() >= 1u << 31)) {
        err = bad("prompt", "'prompt' token id " + t.dump() + " is outside 0.." +
                                std::to_string(n_vocab - 1));
        return false;
      }
      out.prompt_tokens.push_back(static_cast<TokenId>(id));
    }
    out.prompt_is_tokens = true;
    return true;
  }
  err = bad("prompt", std::string("'prompt' must be a string, got ") + type_name(j));
  return false;
}

bool parse_stop(const json& j, const ParseLimits& lim, std::vector<std::string>& out,
                ApiError& err) {
  if (j.is_null()) return true;
  auto add = [&](const json& s) {
    if (!s.is_string()) {
      err = bad("stop", "'stop' must be a string or an array of strings");
      return false;
    }
    std::string v = s.get<std::string>();
    if (v.size() > lim.max_stop_bytes) {
      err = bad("stop",
                "a 'stop' string is longer than " + std::to_string(lim.max_stop_bytes) + " bytes");
      return false;
    }
    if (!v.empty()) out.push_back(std::move(v));
    return true;
  };
  if (j.is_string()) return add(j);
  if (!j.is_array()) {
    err = bad("stop", std::string("'stop' must be a string or an array, got ") + type_name(j));
    return false;
  }
  if (j.size() > lim.max_stop) {
    err = bad("stop", "'stop' has more than " + std::to_string(lim.max_stop) + " strings");
    return false;
  }
  for (const json& s : j) {
    if (!add(s)) return false;
  }
  return true;
}

bool parse_logit_bias(const json& j, int32_t n_vocab, SamplingParams& sp, ApiError& err) {
  if (j.is_null()) return true;
  if (!j.is_object()) {
    err = bad("logit_bias", std::string("'logit_bias' must be an object mapping token ids to "
                                        "biases, got ") +
                                type_name(j));
    return false;
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    int64_t id = -1;
    if (!key.empty() && key.size() <= 10 && key.find_first_not_of("0123456789") == key.npos) {
      id = std::stoll(key);
    }
    if (id < 0 || id >= n_vocab) {
      err = bad("logit_bias", "'logit_bias' key '" + key + "' is not a token id in 0.." +
                                  std::to_string(n_vocab - 1));
      return false;
    }
    if (!it.value().is_number() || !std::isfinite(it.value().get<double>()) ||
        std::fabs(it.value().get<double>()) > 100.0) {
      err = bad("logit_bias",
                "'logit_bias' value for token " + key + " must be a number between -100 and 100");
      return false;
    }
    float b = it.value().get<float>();
    if (b <= -100.0f) b = -std::numeric_limits<float>::infinity();  // OpenAI: -100 bans
    sp.logit_bias.emplace_back(static_cast<TokenId>(id), b);
  }
  return true;
}

int depth_of(std::string_view s, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return 0;
}

}  // namespace

json error_json(const ApiError& e) {
  json err = {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return {{"error", err}};
}

std::optional<json> parse_json_body(std::string_view body, int max_depth, ApiError& err) {
  if (depth_of(body, max_depth) > max_depth) {
    err = bad("", "the request body nests deeper than " + std::to_string(max_depth) + " levels");
    return std::nullopt;
  }
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) {
    // Locate the problem for the message: the SAX parser reports the byte position.
    std::string where;
    try {
      json again = json::parse(body.begin(), body.end());
      (void)again;
    } catch (const json::parse_error& e) {
      where = std::string(": ") + e.what();
    } catch (const std::exception&) {
    }
    err = bad("", "the request body is not valid JSON" + where);
    return std::nullopt;
  }
  return j;
}

bool parse_lora_list(const json& j, const std::string& param,
                     std::vector<std::pair<int32_t, float>>& out, ApiError& err) {
  if (!j.is_array()) {
    err = bad(param, "'" + param + "' must be an array of {\"id\": int, \"scale\": number}");
    return false;
  }
  for (size_t i = 0; i < j.size(); ++i) {
    const json& e = j[i];
    const std::string p = param + "[" + std::to_string(i) + "]";
    if (!e.is_object()) {
      err = bad(p, "'" + p + "' must be an object {\"id\": int, \"scale\": number}");
      return false;
    }
    std::optional<int64_t> id;
    std::optional<double> scale;
    if (!get_int(e, "id", 0, 1 << 30, id, err) || !get_number(e, "scale", -100, 100, scale, err)) {
      err.param = p + "." + err.param;
      return false;
    }
    if (!id) {
      err = bad(p + ".id", "'" + p + ".id' is required");
      return false;
    }
    out.emplace_back(static_cast<int32_t>(*id), scale ? static_cast<float>(*scale) : 1.0f);
  }
  return true;
}

bool parse_request(std::string_view body, Endpoint endpoint, const ParseLimits& lim,
                   ParsedRequest& out, ApiError& err) {
  auto parsed = parse_json_body(body, lim.max_depth, err);
  if (!parsed) return false;
  const json& j = *parsed;
  if (!j.is_object()) {
    err = bad("", std::string("the request body must be a JSON object, got ") + type_name(j));
    return false;
  }
  out = ParsedRequest{};
  out.endpoint = endpoint;
  // OpenAI's defaults (not llama.cpp's): temperature 1, top_p 1, no top-k / min-p.
  out.sampling.temperature = 1.0f;
  out.sampling.top_p = 1.0f;
  out.sampling.top_k = 0;
  out.sampling.min_p = 0.0f;
  out.sampling.repeat_last_n = -1;

  if (auto m = j.find("model"); m != j.end() && !m->is_null()) {
    if (!m->is_string()) {
      err = bad("model", std::string("'model' must be a string, got ") + type_name(*m));
      return false;
    }
    out.model = m->get<std::string>();
  }
  if (endpoint == Endpoint::chat) {
    auto m = j.find("messages");
    if (m == j.end()) {
      err = bad("messages", "'messages' is required");
      return false;
    }
    if (!parse_messages(*m, out.messages, err)) return false;
  } else {
    auto p = j.find("prompt");
    if (p == j.end()) {
      err = bad("prompt", "'prompt' is required");
      return false;
    }
    if (!parse_prompt(*p, lim.n_vocab, out, err)) return false;
  }
  if (!get_bool(j, "stream", out.stream, err)) return false;
  if (auto so = j.find("stream_options"); so != j.end() && !so->is_null()) {
    if (!so->is_object()) {
      err = bad("stream_options", "'stream_options' must be an object");
      return false;
    }
    if (!get_bool(*so, "include_usage", out.include_usage, err)) return false;
  }
  std::optional<int64_t> iv;
  std::optional<double> dv;
  const char* max_key = j.contains("max_completion_tokens") && endpoint == Endpoint::chat
                            ? "max_completion_tokens"
                            : "max_tokens";
  if (!get_int(j, max_key, 1, 1 << 30, iv, err)) return false;
  if (iv) out.max_tokens = static_cast<int32_t>(*iv);
  iv.reset();
  if (!get_int(j, "n", 1, 1, iv, err)) {
    err.message = "only 'n': 1 is supported";
    return false;
  }
  if (!get_number(j, "temperature", 0, 2, dv, err)) return false;
  if (dv) out.sampling.temperature = static_cast<float>(*dv);
  dv.reset();
  if (!get_number(j, "top_p", 0, 1, dv, err)) return false;
  if (dv) out.sampling.top_p = *dv <= 0 ? 1e-6f : static_cast<float>(*dv);
  dv.reset();
  if (!get_number(j, "presence_penalty", -2, 2, dv, err)) return false;
  if (dv) out.sampling.presence_penalty = static_cast<float>(*dv);
  dv.reset();
  if (!get_number(j, "frequency_penalty", -2, 2, dv, err)) return false;
  if (dv) out.sampling.frequency_penalty = static_cast<float>(*dv);
  dv.reset();
  // llama.cpp extensions.
  if (!get_int(j, "top_k", 0, 1 << 20, iv, err)) return false;
  if (iv) out.sampling.top_k = static_cast<int32_t>(*iv);
  iv.reset();
  if (!get_number(j, "min_p", 0, 1, dv, err)) return false;
  if (dv) out.sampling.min_p = static_cast<float>(*dv);
  dv.reset();
  if (!get_number(j, "repeat_penalty", 0, 10, dv, err)) return false;
  if (dv) out.sampling.repeat_penalty = static_cast<float>(*dv);
  dv.reset();
  if (!get_bool(j, "ignore_eos", out.ignore_eos, err)) return false;
  if (!get_int(j, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
               iv, err)) {
    return false;
  }
  if (iv) {
    out.sampling.seed = static_cast<uint64_t>(*iv);
    out.seed_given = true;
  }
  iv.reset();
  if (auto s = j.find("stop"); s != j.end() && !parse_stop(*s, lim, out.stop, err)) return false;
  if (auto b = j.find("logit_bias");
      b != j.end() && !parse_logit_bias(*b, lim.n_vocab, out.sampling, err)) {
    return false;
  }
  if (endpoint == Endpoint::chat) {
    if (!get_bool(j, "logprobs", out.logprobs, err)) return false;
    if (!get_int(j, "top_logprobs", 0, lim.max_top_logprobs, iv, err)) return false;
    if (iv) {
      if (!out.logprobs) {
        err = bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        return false;
      }
      out.top_logprobs = static_cast<int32_t>(*iv);
    }
  } else {
    if (!get_int(j, "logprobs", 0, lim.max_top_logprobs, iv, err)) return false;
    if (iv) {
      out.logprobs = true;
      out.top_logprobs = static_cast<int32_t>(*iv);
    }
  }
  if (auto l = j.find("lora"); l != j.end() && !l->is_null()) {
    std::vector<std::pair<int32_t, float>> list;
    if (!parse_lora_list(*l, "lora", list, err)) return false;
    out.lora = std::move(list);
  }
  return true;
}

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {
json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}
json finish_json(const std::string& f) { return f.empty() ? json(nullptr) : json(f); }
}  // namespace

json chat_logprobs_json(const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (const auto& t : lps) {
    json top = json::array();
    for (const auto& [piece, lp] : t.top) {
      top.push_back({{"token", piece}, {"logprob", lp}, {"bytes", bytes_of(piece)}});
    }
    content.push_back({{"token", t.piece},
                       {"logprob", t.logprob},
                       {"bytes", bytes_of(t.piece)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json completion_logprobs_json(const std::vector<TokenLogprob>& lps, size_t text_offset) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(),
       offsets = json::array();
  for (const auto& t : lps) {
    tokens.push_back(t.piece);
    token_lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& [piece, lp] : t.top) top[piece] = lp;
    tops.push_back(top);
    offsets.push_back(text_offset);
    text_offset += t.piece.size();
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_lps},
          {"top_logprobs", tops},
          {"text_offset", offsets}};
}

json chat_response(const ResponseMeta& m, const std::string& text, const std::string& finish,
                   const std::vector<TokenLogprob>* lps, int64_t prompt_tokens,
                   int64_t completion_tokens) {
  json choice = {{"index", 0},
                 {"message", {{"role", "assistant"}, {"content", text}}},
                 {"logprobs", lps ? chat_logprobs_json(*lps) : json(nullptr)},
                 {"finish_reason", finish_json(finish)}};
  return {{"id", m.id},
          {"object", "chat.completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(prompt_tokens, completion_tokens)}};
}

json completion_response(const ResponseMeta& m, const std::string& text, const std::string& finish,
                         const std::vector<TokenLogprob>* lps, int64_t prompt_tokens,
                         int64_t completion_tokens) {
  json choice = {{"index", 0},
                 {"text", text},
                 {"logprobs", lps ? completion_logprobs_json(*lps, 0) : json(nullptr)},
                 {"finish_reason", finish_json(finish)}};
  return {{"id", m.id},
          {"object", "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(prompt_tokens, completion_tokens)}};
}

json chat_chunk(const ResponseMeta& m, const std::string& role, const std::string& text,
                const std::string& finish, const std::vector<TokenLogprob>* lps) {
  json delta = json::object();
  if (!role.empty()) {
    delta["role"] = role;
    delta["content"] = text;
  } else if (finish.empty() || !text.empty()) {
    delta["content"] = text;
  }
  json choice = {{"index", 0},
                 {"delta", delta},
                 {"logprobs", lps && !lps->empty() ? chat_logprobs_json(*lps) : json(nullptr)},
                 {"finish_reason", finish_json(finish)}};
  return {{"id", m.id},
          {"object", "chat.completion.chunk"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({choice})}};
}

json completion_chunk(const ResponseMeta& m, const std::string& text, const std::string& finish,
                      const std::vector<TokenLogprob>* lps, size_t text_offset) {
  json choice = {{"index", 0},
                 {"text", text},
                 {"logprobs", lps && !lps->empty() ? completion_logprobs_json(*lps, text_offset)
                                                   : json(nullptr)},
                 {"finish_reason", finish_json(finish)}};
  return {{"id", m.id},
          {"object", "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({choice})}};
}

}  // namespace kandil::serve
