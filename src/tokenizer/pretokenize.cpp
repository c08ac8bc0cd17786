#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/core.h>

#include "base/utf8.h"

namespace kandil::tok {
namespace {

// ---- regex lists (llama.cpp llm_tokenizer_bpe, build c392e50) -------------------------------

// GPT-2. llama.cpp leaves out the final "|\s+" of the original; unmatched text becomes a piece
// anyway, so the split is the same.
constexpr const char* kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";

// LLaMA 3. The original "(?i:'s|...)" is spelled out as llama.cpp does: PCRE2's caseless mode would
// also match "'ſ" (U+017F), which llama.cpp does not.
constexpr const char* kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Qwen 2: as LLaMA 3 but single digits.
constexpr const char* kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

constexpr const char* kBloom =
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{0964}\\x{06d4}\\x{060c})]+";

// Mistral Tekken. llama.cpp writes \p{Lu}-ish as "((?=[\p{L}])([^a-z]))" (a letter that is not
// a-z) and \p{Ll}-ish as "((?=[\p{L}])([^A-Z]))"; here the same sets are the classes [^\P{L}a-z]
// and [^\P{L}A-Z], which match identically but need no backtracking frame per character.
constexpr const char* kTekken =
    "[^\\r\\n\\p{L}\\p{N}]?[^\\P{L}a-z]*[^\\P{L}A-Z]+|"
    "[^\\r\\n\\p{L}\\p{N}]?[^\\P{L}a-z]+[^\\P{L}A-Z]*|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Han / CJK ranges used by the DeepSeek lists. Non-ASCII characters in the patterns are written
// as \x{...}: editors and tools may NFC-normalize literal ones (U+212A KELVIN SIGN -> K, ...).
constexpr const char* kDeepseekCjk = "[\\x{4e00}-\\x{9fa5}\\x{0800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+";

PreTokenizerSpec spec(std::vector<std::string> patterns) {
  PreTokenizerSpec s;
  s.patterns = std::move(patterns);
  return s;
}

bool is_any(std::string_view name, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names) {
    if (name == n) return true;
  }
  return false;
}

// ---- regex rewriting ------------------------------------------------------------------------

// llama.cpp's \s is the Unicode White_Space set (its own tables; PCRE2's UCP \s also contains
// U+180E). \s and \S are therefore replaced by this explicit class.
constexpr std::string_view kWhiteSpace =
    "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}";

Result<std::string> expand_whitespace(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      if (e == 's' || e == 'S') {
        if (in_class) {
          if (e == 'S') return make_error("\\S inside a character class is not supported");
          out += kWhiteSpace;
        } else {
          out += e == 's' ? "[" : "[^";
          out += kWhiteSpace;
          out += ']';
        }
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // "[^" and a ']' right after the opening are part of the class, not its end.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

// ---- per-thread match resources -------------------------------------------------------------

struct MatchResources {
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  pcre2_match_data* data = nullptr;

  MatchResources() {
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (context && jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
    data = pcre2_match_data_create(1, nullptr);
  }
  ~MatchResources() {
    pcre2_match_data_free(data);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
  }
  MatchResources(const MatchResources&) = delete;
  MatchResources& operator=(const MatchResources&) = delete;
};

MatchResources& match_resources() {
  thread_local MatchResources resources;
  return resources;
}

}  // namespace

std::optional<PreTokenizerSpec> pre_tokenizer_spec(std::string_view name) {
  if (name.empty() || name == "default") {
    return spec({"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"});
  }
  if (is_any(name, {"llama3", "llama-v3", "llama-bpe", "falcon3"})) {
    PreTokenizerSpec s = spec({kLlama3});
    s.ignore_merges = true;
    s.add_bos = true;
    return s;
  }
  if (is_any(name, {"dbrx", "smaug-bpe"})) return spec({kLlama3});
  if (name == "chatglm-bpe") {
    PreTokenizerSpec s = spec({kLlama3});
    s.no_bos = true;
    return s;
  }
  if (name == "deepseek-llm") {
    return spec({
        "[\r\n]",
        "\\s?[A-Za-z\\x{00B5}\\x{00C0}-\\x{00D6}\\x{00D8}-\\x{00F6}\\x{00F8}-\\x{01BA}"
        "\\x{01BC}-\\x{01BF}\\x{01C4}-\\x{0293}\\x{0295}-\\x{02AF}\\x{0370}-\\x{0373}"
        "\\x{0376}-\\x{0377}\\x{037B}-\\x{037D}\\x{037F}\\x{0386}\\x{0388}-\\x{038A}\\x{038C}"
        "\\x{038E}-\\x{03A1}\\x{03A3}-\\x{03F5}\\x{03F7}-\\x{0481}\\x{048A}-\\x{052F}"
        "\\x{0531}-\\x{0556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
        "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
        "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
        "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
        "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
        "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
        "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}"
        "\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}"
        "\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}-\\x{2184}\\x{2C00}-\\x{2C7B}"
        "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}-\\x{2CF3}\\x{A640}-\\x{A66D}"
        "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
        "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
        "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}"
        "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
        "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+",
        "\\s+$",
        kDeepseekCjk,
        "\\p{N}+",
    });
  }
  if (name == "deepseek-v3") {
    return spec({
        "\\p{N}{1,3}",
        "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|"
        "[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
        " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    });
  }
  if (name == "deepseek-coder") {
    return spec({"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}"});
  }
  if (name == "falcon") {
    return spec({"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"});
  }
  if (is_any(name,
             {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"})) {
    return spec({"\\p{N}", kGpt2});
  }
  if (is_any(name, {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es",
                    "jina-v2-de", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais"})) {
    return spec({kGpt2});
  }
  if (is_any(name, {"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"})) return spec({kQwen2});
  if (is_any(name, {"poro-chat", "bloom", "gpt3-finnish"})) return spec({kBloom});
  if (name == "viking") return spec({kBloom, "\\p{N}"});
  if (name == "tekken") {
    PreTokenizerSpec s = spec({kTekken});
    s.ignore_merges = true;
    s.add_bos = true;
    return s;
  }
  if (name == "chameleon") {
    PreTokenizerSpec s = spec({
        "<sentinel:[0-9]+>",
        "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
        "([\\t\\n]|    |  )",
        "\\p{N}",
        "[\\p{P}!-/:-@\\[-`{-~]",
        kGpt2,
    });
    s.add_bos = true;
    return s;
  }
  return std::nullopt;
}

// ---- RegexSplitter ----------------------------------------------------------------------------

struct RegexSplitter::Impl {
  std::vector<pcre2_code*> codes;
  ~Impl() {
    for (pcre2_code* c : codes) pcre2_code_free(c);
  }
};

RegexSplitter::RegexSplitter() : impl_(std::make_unique<Impl>()) {}
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;
RegexSplitter& RegexSplitter::operator=(RegexSplitter&&) noexcept = default;
RegexSplitter::~RegexSplitter() = default;

Result<RegexSplitter> RegexSplitter::compile(const std::vector<std::string>& patterns) {
  RegexSplitter splitter;
  for (const std::string& pattern : patterns) {
    auto expanded = expand_whitespace(pattern);
    if (!expanded.ok()) return expanded.error().with_context("regex '" + pattern + "'");
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(expanded->data()), expanded->size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_AUTO_CAPTURE,
                      &error_code, &error_offset, nullptr);
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      return make_error(fmt::format("regex '{}': {} at offset {}", pattern,
                                    reinterpret_cast<const char*>(message), error_offset));
    }
    splitter.impl_->codes.push_back(code);
    // Without JIT (unsupported platform) pcre2_match interprets the pattern instead.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  return splitter;
}

void RegexSplitter::split(std::string_view text,
                          std::vector<std::pair<size_t, size_t>>& pieces) const {
  pieces.clear();
  if (text.empty()) return;
  pieces.emplace_back(0, text.size());
  MatchResources& res = match_resources();
  std::vector<std::pair<size_t, size_t>> next;
  for (pcre2_code* code : impl_->codes) {
    next.clear();
    next.reserve(pieces.size() * 2);
    for (const auto& [offset, length] : pieces) {
      // Each piece is matched on its own: lookarounds and $ see its ends as the text's ends.
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + offset);
      size_t pos = 0;   // where the next search starts
      size_t done = 0;  // end of what has been emitted
      while (pos < length) {
        int rc = pcre2_match(code, subject, length, pos, PCRE2_NO_UTF_CHECK, res.data, res.context);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
          // JIT stack exhausted or similar: retry with the interpreter (heap-based frames).
          rc = pcre2_match(code, subject, length, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, res.data,
                           res.context);
        }
        if (rc < 0) break;  // no further match (or a resource limit): the rest is one piece
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(res.data);
        const size_t start = ov[0], end = ov[1];
        if (end <= start) {  // empty match: step over one character
          pos = start + utf8_len(static_cast<uint8_t>(text[offset + start]));
          continue;
        }
        if (start > done) next.emplace_back(offset + done, start - done);
        next.emplace_back(offset + start, end - start);
        done = pos = end;
      }
      if (done < length) next.emplace_back(offset + done, length - done);
    }
    pieces.swap(next);
  }
}

// ---- UTF-8 ----------------------------------------------------------------------------------

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  auto cont = [&](size_t k) { return k < n && (static_cast<uint8_t>(s[k]) & 0xc0) == 0x80; };
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(s[k])); };
  while (i < n) {
    const uint32_t c = byte(i);
    uint32_t cp = 0xfffd;
    size_t len = 1;
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if ((c & 0x40) == 0) {
      // stray continuation byte
    } else if ((c & 0x20) == 0) {
      if (cont(i + 1)) {
        cp = ((c & 0x1f) << 6) | (byte(i + 1) & 0x3f);
        len = 2;
      }
    } else if ((c & 0x10) == 0) {
      if (cont(i + 1) && cont(i + 2)) {
        cp = ((c & 0x0f) << 12) | ((byte(i + 1) & 0x3f) << 6) | (byte(i + 2) & 0x3f);
        len = 3;
      }
    } else if ((c & 0x08) == 0) {
      if (cont(i + 1) && cont(i + 2) && cont(i + 3)) {
        cp = ((c & 0x07) << 18) | ((byte(i + 1) & 0x3f) << 12) | ((byte(i + 2) & 0x3f) << 6) |
             (byte(i + 3) & 0x3f);
        len = 4;
      }
    }
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) cp = 0xfffd;
    utf8::append(out, cp);
    i += len;
  }
  return out;
}

}  // namespace kandil::tok
