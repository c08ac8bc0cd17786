// Pre-tokenization for byte-level BPE: the regex lists llama.cpp uses for each
// tokenizer.ggml.pre name, and a PCRE2-based splitter that applies them the way llama.cpp does
// (each regex splits the pieces left by the previous one; text between matches is a piece too).
// Also the UTF-8 helpers shared by the tokenizers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kandil/result.h"

namespace kandil::tok {

// llama.cpp's settings for one tokenizer.ggml.pre value.
struct PreTokenizerSpec {
  std::vector<std::string> patterns;  // applied in order
  bool ignore_merges = false;         // a piece that is already a token skips the merges (llama3)
  bool add_bos = false;               // default of add_bos_token when the key is absent
  bool no_bos = false;                // the vocab has no BOS token (chatglm)
};

// nullopt for names llama.cpp does not know. "" and "default" give the default GPT-2 style list.
std::optional<PreTokenizerSpec> pre_tokenizer_spec(std::string_view name);

// A list of compiled regexes (PCRE2, UTF + UCP, JIT when available). Thread-safe to use.
class RegexSplitter {
 public:
  // Fails with PCRE2's message when a pattern does not compile.
  static Result<RegexSplitter> compile(const std::vector<std::string>& patterns);

  RegexSplitter();
  RegexSplitter(RegexSplitter&&) noexcept;
  RegexSplitter& operator=(RegexSplitter&&) noexcept;
  ~RegexSplitter();

  // Splits valid UTF-8 text (see to_valid_utf8) into pieces, as (byte offset, byte length).
  void split(std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Byte length of the UTF-8 sequence that starts with `lead`, as llama.cpp counts it: by the
// high nibble only (continuation bytes count 1, 0xF8..0xFF count 4).
inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Decodes text the way llama.cpp's unicode_cpts_from_utf8 does (a byte that does not start a
// complete sequence becomes U+FFFD; overlong forms are accepted) and re-encodes it, so the result
// is valid UTF-8. Surrogates and code points above U+10FFFF also become U+FFFD.
std::string to_valid_utf8(std::string_view text);

}  // namespace kandil::tok
