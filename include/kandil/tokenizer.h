// Tokenizers built from GGUF metadata (tokenizer.ggml.*):
//   llama -> SentencePiece BPE with scores and byte fallback
//   gpt2  -> byte-level BPE with merges and the pre-tokenizer named by tokenizer.ggml.pre
//   bert  -> WordPiece (llama.cpp's WPM semantics)
// and from Hugging Face tokenizer.json files (BPE, WordPiece, Unigram with their normalizers,
// pre-tokenizers, post-processors and decoders), with the semantics of @huggingface/transformers.
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

// spm / bpe / wordpiece: from GGUF; hf_*: from a Hugging Face tokenizer.json.
enum class TokenizerKind { spm, bpe, wordpiece, hf_bpe, hf_wordpiece, hf_unigram };

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
  // A Hugging Face tokenizer.json; a tokenizer_config.json in the same folder is read too
  // (bos/eos tokens, clean_up_tokenization_spaces).
  static Result<std::unique_ptr<Tokenizer>> from_tokenizer_json(const std::string& path);
  // The same from JSON text (config_json may be empty); `name` prefixes error messages.
  static Result<std::unique_ptr<Tokenizer>> from_tokenizer_json_text(
      std::string_view tokenizer_json, std::string_view config_json = {},
      const std::string& name = "tokenizer.json");
  // A Hugging Face model folder: tokenizer.json, tokenizer_config.json, and the eos_token_id of
  // generation_config.json / config.json as extra end-of-generation ids.
  static Result<std::unique_ptr<Tokenizer>> from_hf_dir(const std::string& dir);

  // add_special: prepend BOS / append EOS as the vocab's add_bos/add_eos flags say (tokenizer.json:
  // the post-processor's special tokens).
  // parse_special: text matching a control/user-defined token's text becomes that token.
  // (tokenizer.json: true = split on every added token, as transformers.js always does; false =
  // only on non-special added tokens, special-token text is plain text.)
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;

  // The bytes this token stands for ("▁" -> " ", "<0x0A>" -> "\n", byte-level BPE -> raw bytes).
  // Control tokens render as "" unless `special` is true, then as their text.
  virtual std::string token_to_piece(TokenId id, bool special = false) const = 0;

  // Concatenated pieces (special tokens rendered as text when `special`). tokenizer.json: the
  // decoder chain, as transformers.js decode (skip_special_tokens = !special).
  virtual std::string decode(const std::vector<TokenId>& ids, bool special = false) const;

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
