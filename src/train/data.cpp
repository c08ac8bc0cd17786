// Training data: JSONL parsing and tokenization with loss masks (docs/train-data.md).
#include <fmt/core.h>

#include <fstream>
#include <utility>

#include "kandil/train_data.h"

namespace kandil {

namespace {

constexpr size_t kMaxLineBytes = size_t{256} << 20;

const char* type_name(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return "null";
    case nlohmann::ordered_json::value_t::object:
      return "an object";
    case nlohmann::ordered_json::value_t::array:
      return "an array";
    case nlohmann::ordered_json::value_t::string:
      return "a string";
    case nlohmann::ordered_json::value_t::boolean:
      return "a boolean";
    default:
      return "a number";
  }
}

bool only_space(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

}  // namespace

Result<std::optional<RawExample>> parse_jsonl_line(std::string_view line, const std::string& name,
                                                   int64_t line_no) {
  const std::string where = fmt::format("{}:{}", name, line_no);
  if (only_space(line)) return std::optional<RawExample>{};
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(line.begin(), line.end());
  } catch (const nlohmann::ordered_json::parse_error& e) {
    return Error{fmt::format("{}: expected one JSON object per line (invalid JSON at byte {})",
                             where, e.byte)};
  } catch (const nlohmann::ordered_json::exception&) {
    // out_of_range: a number too large for a double (1e999).
    return Error{where + ": expected one JSON object per line (a number is out of range)"};
  }
  if (!j.is_object()) {
    return Error{fmt::format("{}: expected a JSON object, got {}", where, type_name(j))};
  }
  const bool has_text = j.contains("text"), has_prompt = j.contains("prompt"),
             has_completion = j.contains("completion"), has_messages = j.contains("messages");
  const int kinds = int{has_text} + int{has_prompt || has_completion} + int{has_messages};
  if (kinds == 0) {
    return Error{where +
                 ": expected a \"text\", \"prompt\" + \"completion\" or \"messages\" field"};
  }
  if (kinds > 1) {
    return Error{where +
                 ": expected exactly one of \"text\", \"prompt\" + \"completion\" or "
                 "\"messages\" (the line mixes them)"};
  }
  auto string_field = [&](const char* key, std::string& out) -> Result<void> {
    if (!j.contains(key)) return Error{fmt::format("{}: expected a \"{}\" field", where, key)};
    const auto& v = j[key];
    if (!v.is_string()) {
      return Error{
          fmt::format("{}: field \"{}\": expected a string, got {}", where, key, type_name(v))};
    }
    out = v.get<std::string>();
    return {};
  };
  RawExample ex;
  ex.source = where;
  if (has_text) {
    ex.format = ExampleFormat::text;
    KANDIL_CHECK_OK(string_field("text", ex.text));
    if (ex.text.empty()) return Error{where + ": field \"text\": expected a non-empty string"};
  } else if (has_prompt || has_completion) {
    ex.format = ExampleFormat::prompt_completion;
    KANDIL_CHECK_OK(string_field("prompt", ex.prompt));
    KANDIL_CHECK_OK(string_field("completion", ex.completion));
    if (ex.completion.empty()) {
      return Error{where + ": field \"completion\": expected a non-empty string"};
    }
  } else {
    ex.format = ExampleFormat::messages;
    const auto& m = j["messages"];
    if (!m.is_array()) {
      return Error{
          fmt::format("{}: field \"messages\": expected an array, got {}", where, type_name(m))};
    }
    if (m.empty()) return Error{where + ": field \"messages\": expected at least one message"};
    bool has_assistant = false;
    for (size_t i = 0; i < m.size(); ++i) {
      const auto& msg = m[i];
      const std::string at = fmt::format("{}: messages[{}]", where, i);
      if (!msg.is_object()) {
        return Error{fmt::format("{}: expected an object, got {}", at, type_name(msg))};
      }
      for (const char* key : {"role", "content"}) {
        if (!msg.contains(key)) return Error{fmt::format("{}: expected a \"{}\" field", at, key)};
        if (!msg[key].is_string()) {
          return Error{fmt::format("{}: field \"{}\": expected a string, got {}", at, key,
                                   type_name(msg[key]))};
        }
      }
      if (msg["role"].get_ref<const std::string&>().empty()) {
        return Error{at + ": field \"role\": expected a non-empty string"};
      }
      if (msg["role"] == "assistant") has_assistant = true;
    }
    if (!has_assistant) {
      return Error{where +
                   ": field \"messages\": expected at least one \"assistant\" message (the "
                   "loss is on assistant turns only)"};
    }
    ex.messages = m;
  }
  return std::optional<RawExample>{std::move(ex)};
}

Result<std::vector<RawExample>> parse_jsonl(std::string_view text, const std::string& name) {
  std::vector<RawExample> out;
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    ++line_no;
    auto ex = parse_jsonl_line(text.substr(pos, end - pos), name, line_no);
    if (!ex.ok()) return ex.error();
    if (ex->has_value()) out.push_back(std::move(**ex));
    pos = end + 1;
  }
  return out;
}

Result<std::vector<RawExample>> read_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot open the file"};
  std::vector<RawExample> out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.size() > kMaxLineBytes) {
      return Error{fmt::format("{}:{}: line longer than {} bytes", path, line_no, kMaxLineBytes)};
    }
    auto ex = parse_jsonl_line(line, path, line_no);
    if (!ex.ok()) return ex.error();
    if (ex->has_value()) out.push_back(std::move(**ex));
  }
  if (in.bad()) return Error{fmt::format("{}:{}: read error", path, line_no + 1)};
  if (out.empty()) return Error{path + ": expected at least one example (the file has none)"};
  return out;
}

namespace {

// A rendered text with the byte ranges whose tokens are training targets.
struct Rendered {
  std::string text;
  std::vector<std::pair<size_t, size_t>> spans;  // [begin, end) byte ranges
  bool parse_special = false;
  bool add_eos = false;  // append EOS as a target
};

Result<Rendered> render_messages(const RawExample& ex, const Tokenizer& tok,
                                 const ChatTemplate& chat) {
  const std::string bos = tok.bos() >= 0 ? tok.token_text(tok.bos()) : std::string();
  const std::string eos = tok.eos() >= 0 ? tok.token_text(tok.eos()) : std::string();
  auto render = [&](size_t n, bool gen_prompt) -> Result<std::string> {
    nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
    for (size_t i = 0; i < n; ++i) msgs.push_back(ex.messages[i]);
    nlohmann::ordered_json vars = {{"messages", msgs},
                                   {"add_generation_prompt", gen_prompt},
                                   {"bos_token", bos},
                                   {"eos_token", eos}};
    auto r = chat.render(vars);
    if (!r.ok()) return r.error().with_context(ex.source + ": chat template");
    return r;
  };
  Rendered out;
  out.parse_special = true;
  auto full = render(ex.messages.size(), false);
  if (!full.ok()) return full.error();
  out.text = std::move(*full);
  for (size_t i = 0; i < ex.messages.size(); ++i) {
    if (ex.messages[i]["role"] != "assistant") continue;
    auto before = render(i, true);
    if (!before.ok()) return before.error();
    auto with = render(i + 1, false);
    if (!with.ok()) return with.error();
    const bool prefix_ok = with->compare(0, before->size(), *before) == 0 &&
                           out.text.compare(0, with->size(), *with) == 0;
    if (!prefix_ok || with->size() <= before->size()) {
      return Error{fmt::format(
          "{}: messages[{}]: the chat template does not render the conversation up to this "
          "assistant message as a prefix of the whole conversation, so its tokens cannot be "
          "located",
          ex.source, i)};
    }
    out.spans.emplace_back(before->size(), with->size());
  }
  return out;
}

// Token byte ranges [begin, end) in `text` from the concatenated pieces; nullopt when the pieces
// do not spell the text (a normalizer changed it), except for SentencePiece's one leading space.
std::optional<std::vector<std::pair<size_t, size_t>>> token_ranges(const Tokenizer& tok,
                                                                   const std::vector<TokenId>& ids,
                                                                   const std::string& text) {
  std::string spelled;
  std::vector<std::pair<size_t, size_t>> ranges;
  ranges.reserve(ids.size());
  for (TokenId id : ids) {
    const size_t begin = spelled.size();
    spelled += tok.token_to_piece(id, true);
    ranges.emplace_back(begin, spelled.size());
  }
  size_t shift = 0;
  if (spelled != text) {
    if (spelled.size() == text.size() + 1 && spelled[0] == ' ' &&
        spelled.compare(1, std::string::npos, text) == 0) {
      shift = 1;
    } else {
      return std::nullopt;
    }
  }
  for (auto& [b, e] : ranges) {
    b = b >= shift ? b - shift : 0;
    e = e >= shift ? e - shift : 0;
  }
  return ranges;
}

}  // namespace

Result<TrainExample> tokenize_example(const RawExample& ex, const Tokenizer& tok,
                                      const ChatTemplate* chat, const TokenizeOptions& options) {
  Rendered r;
  switch (ex.format) {
    case ExampleFormat::text:
      r.text = ex.text;
      r.spans.emplace_back(0, r.text.size());
      r.add_eos = true;
      break;
    case ExampleFormat::prompt_completion:
      r.text = ex.prompt + ex.completion;
      r.spans.emplace_back(ex.prompt.size(), r.text.size());
      r.add_eos = true;
      break;
    case ExampleFormat::messages: {
      if (chat == nullptr) {
        return Error{ex.source +
                     ": a \"messages\" example needs a chat template (the model has "
                     "none; give one)"};
      }
      auto m = render_messages(ex, tok, *chat);
      if (!m.ok()) return m.error();
      r = std::move(*m);
      break;
    }
  }
  TrainExample out;
  std::vector<TokenId> ids = tok.encode(r.text, false, r.parse_special);
  auto ranges = token_ranges(tok, ids, r.text);
  std::vector<uint8_t> mask(ids.size(), 0);
  if (ranges) {
    // A token is a target when any of its bytes lies inside a loss span (a token straddling
    // the prompt/completion boundary carries completion text, so it is learned).
    for (size_t t = 0; t < ids.size(); ++t) {
      const auto [tb, te] = (*ranges)[t];
      for (const auto& [b, e] : r.spans) {
        if (tb < e && te > b) mask[t] = 1;
      }
    }
  } else {
    // The tokenizer normalizes the text: tokenize span by span instead (boundaries exact).
    ids.clear();
    size_t pos = 0;
    auto add = [&](size_t b, size_t e, uint8_t m) {
      if (e <= b) return;
      auto part = tok.encode(std::string_view(r.text).substr(b, e - b), false, r.parse_special);
      ids.insert(ids.end(), part.begin(), part.end());
      mask.resize(ids.size(), m);
    };
    mask.clear();
    for (const auto& [b, e] : r.spans) {
      add(pos, b, 0);
      add(b, e, 1);
      pos = e;
    }
    add(pos, r.text.size(), 0);
  }
  const bool want_bos = options.add_bos && tok.add_bos() && tok.bos() >= 0 &&
                        (ids.empty() || ids.front() != tok.bos());
  if (want_bos) {
    out.tokens.push_back(tok.bos());
    out.mask.push_back(0);
  }
  out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
  out.mask.insert(out.mask.end(), mask.begin(), mask.end());
  if (r.add_eos && options.add_eos && tok.eos() >= 0) {
    out.tokens.push_back(tok.eos());
    out.mask.push_back(1);
  }
  bool any = false;
  for (uint8_t m : out.mask) any = any || m != 0;
  if (!any) return Error{ex.source + ": the example has no target tokens after tokenization"};
  return out;
}

Result<std::vector<TrainExample>> tokenize_examples(const std::vector<RawExample>& ex,
                                                    const Tokenizer& tok, const ChatTemplate* chat,
                                                    const TokenizeOptions& options) {
  std::vector<TrainExample> out;
  out.reserve(ex.size());
  for (const RawExample& e : ex) {
    auto t = tokenize_example(e, tok, chat, options);
    if (!t.ok()) return t.error();
    out.push_back(std::move(*t));
  }
  return out;
}

}  // namespace kandil
