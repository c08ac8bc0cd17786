// Internals shared by the SentencePiece (spm.cpp) and byte-level BPE (bpe.cpp) tokenizers:
// the vocabulary as read from GGUF, text-to-id lookup, splitting on special-token text, and the
// piece cache behind token_to_piece.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/result.h"
#include "kandil/tokenizer.h"
#include "tokenizer/pretokenize.h"

namespace kandil::tok {

// Extra per-token flags (llama.cpp LLAMA_TOKEN_ATTR_LSTRIP / RSTRIP): when the token's text is
// split out of the input, whitespace on that side of it is dropped.
enum : uint8_t { kStripLeft = 1, kStripRight = 2 };

// Everything from_gguf reads, after validation.
struct VocabData {
  std::string file;  // for error messages
  std::vector<std::string> texts;
  std::vector<float> scores;
  std::vector<TokenKind> kinds;  // already overridden where llama.cpp forces "control"
  std::vector<uint8_t> strip;    // kStripLeft / kStripRight
  std::vector<TokenId> eog_ids;
  TokenId bos = -1, eos = -1, unk = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false;
  std::string pre = "default";
};

// One piece of the input after special-token splitting: a token id, or a range of the text.
struct Fragment {
  TokenId token;  // -1 for text
  size_t offset, length;
};

class VocabTokenizer : public Tokenizer {
 public:
  std::vector<TokenId> encode(std::string_view text, bool add_special,
                              bool parse_special) const final;
  std::string token_to_piece(TokenId id, bool special) const final;

  // Id of the token with exactly this text, -1 if none.
  TokenId find(std::string_view text) const {
    auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
  }

  // Splits text on the texts of special tokens (control and unknown ones only when
  // parse_special; user-defined ones always), longest token text first, as llama.cpp does.
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

 protected:
  explicit VocabTokenizer(VocabData&& data);

  // Appends the ids of one plain-text fragment. `after_special`: the fragment starts the input or
  // follows a special token (SentencePiece then adds the space prefix).
  virtual void encode_text(std::string_view text, bool after_special,
                           std::vector<TokenId>& out) const = 0;

  // Fills pieces_ (token_to_piece with special = true); derived constructors call it once their
  // own tables are ready.
  void build_pieces();
  // The bytes of a normal / byte token.
  virtual std::string normal_piece(TokenId id) const = 0;
  virtual std::string byte_piece(TokenId id) const = 0;

  std::string file_;
  bool add_space_prefix_ = false;
  size_t max_token_len_ = 0;  // longest token text, in bytes

 private:
  // Which special tokens occur in a text, found in one pass (a trie of their texts), so that
  // splitting costs O(text) per special token that is actually present, not per special token.
  class SpecialTrie {
   public:
    void insert(std::string_view text, uint32_t value);
    // Sets present[value] for every inserted text that occurs in `text`.
    void find_all(std::string_view text, std::vector<char>& present) const;

   private:
    struct Node {
      std::vector<std::pair<unsigned char, uint32_t>> children;
      std::vector<uint32_t> values;
    };
    uint32_t child(uint32_t node, unsigned char c) const;  // 0: none (the root is never a child)
    std::vector<Node> nodes_ = std::vector<Node>(1);
  };

  std::unordered_map<std::string_view, TokenId> ids_;  // views into texts_
  std::vector<TokenId> specials_;                      // longest text first
  SpecialTrie special_trie_;                           // values: index into specials_
  std::vector<uint8_t> strip_;
  std::vector<std::string> pieces_;
};

std::unique_ptr<Tokenizer> make_spm_tokenizer(VocabData&& data);
// WordPiece ("bert" vocabs, llama.cpp's WPM semantics).
std::unique_ptr<Tokenizer> make_wpm_tokenizer(VocabData&& data);
// merges: tokenizer.ggml.merges ("left right" strings, by rank).
Result<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(VocabData&& data,
                                                      const std::vector<std::string_view>& merges,
                                                      const PreTokenizerSpec& spec);

}  // namespace kandil::tok
