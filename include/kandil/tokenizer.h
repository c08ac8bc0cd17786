// Tokenizers built from GGUF metadata (tokenizer.ggml.*):
//   llama -> SentencePiece BPE with scores and byte fallback
//   gpt2  -> byte-level BPE with merges and the pre-tokenizer named by tokenizer.ggml.pre
// Later: bert (WordPiece), tokenizer.json.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/result.h"

namespace kandil {

using TokenId = int32_t;

enum class TokenizerKind { spm, bpe };

// Token attributes as in tokenizer.ggml.token_type.
enum class TokenKind : uint8_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Reads tokenizer.ggml.* from a GGUF file (model or vocab-only file).
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& file);

  // add_special: prepend BOS / append EOS as the vocab's add_bos/add_eos flags say.
  // parse_special: text matching a control/user-defined token's text becomes that token.
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;

  // The bytes this token stands for ("▁" -> " ", "<0x0A>" -> "\n", byte-level BPE -> raw bytes).
  // Control tokens render as "" unless `special` is true, then as their text.
  virtual std::string token_to_piece(TokenId id, bool special = false) const = 0;

  // Concatenated pieces (special tokens rendered as text when `special`).
  std::string decode(const std::vector<TokenId>& ids, bool special = false) const;

  virtual TokenizerKind kind() const = 0;
  int32_t n_vocab() const { return static_cast<int32_t>(texts_.size()); }
  const std::string& token_text(TokenId id) const { return texts_[static_cast<size_t>(id)]; }
  TokenKind token_kind(TokenId id) const { return kinds_[static_cast<size_t>(id)]; }
  bool valid(TokenId id) const { return id >= 0 && id < n_vocab(); }

  TokenId bos() const { return bos_; }  // -1 when the vocab has none
  TokenId eos() const { return eos_; }
  TokenId unk() const { return unk_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // End-of-generation: EOS, EOT, EOM and similar control tokens.
  bool is_eog(TokenId id) const;
  const std::string& pre() const { return pre_; }  // tokenizer.ggml.pre ("default" if absent)

 protected:
  std::vector<std::string> texts_;
  std::vector<float> scores_;
  std::vector<TokenKind> kinds_;
  std::vector<TokenId> eog_ids_;
  TokenId bos_ = -1, eos_ = -1, unk_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::string pre_ = "default";
};

// Streaming detokenizer: returns text only once it forms complete UTF-8 characters, holding back
// the bytes of a character split across tokens.
class StreamDecoder {
 public:
  // special: render control tokens as their text (token_to_piece's `special`).
  explicit StreamDecoder(const Tokenizer& tokenizer, bool special = false)
      : tokenizer_(tokenizer), special_(special) {}
  // Appends the token's piece; returns the text that is now complete.
  std::string push(TokenId id);
  // Whatever is held back (possibly an invalid UTF-8 fragment) at the end of generation.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  bool special_ = false;
  std::string pending_;
};

}  // namespace kandil
