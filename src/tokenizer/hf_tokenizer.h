// Hugging Face tokenizer.json: the pipeline components (normalizers, pre-tokenizers, models,
// post-processors, decoders) as plain data, parsed by hf_json.cpp and run by hf_*.cpp. The
// semantics follow @huggingface/transformers (tokenizers.js), which the parity test compares
// against; see docs/tokenizers.md.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kandil/result.h"
#include "kandil/tokenizer.h"

namespace kandil::tok::hf {

using Pieces = std::vector<std::string>;

// A compiled PCRE2 regex (UTF + UCP), shared between copies.
class Regex {
 public:
  static Result<Regex> compile(std::string_view pattern);
  // Every match, left to right, as (offset, length); empty matches are reported too.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A "pattern": {"String": "..."} (literal) or {"Regex": "..."}.
struct Pattern {
  std::string literal;
  bool is_regex = false;
  Regex regex;
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  std::string replace_all(std::string_view text, std::string_view content) const;
};

struct Normalizer {
  enum class Type {
    nfc,
    nfd,
    nfkc,
    nfkd,
    lowercase,
    strip_accents,
    replace,
    prepend,
    strip,
    bert,
    precompiled,
    sequence
  } type = Type::sequence;
  Pattern pattern;                                                        // replace
  std::string content;                                                    // replace / prepend
  bool left = false, right = false;                                       // strip
  bool clean_text = true, handle_chinese_chars = true, lowercase = true;  // bert
  int strip_accents = -1;  // bert: -1 = null (follows lowercase), 0 = false, 1 = true
  std::vector<Normalizer> children;
  std::string apply(std::string text) const;
};

struct PreTokenizer {
  enum class Type {
    byte_level,
    split,
    metaspace,
    bert,
    whitespace,
    whitespace_split,
    digits,
    punctuation,
    replace,
    fixed_length,
    sequence
  } type = Type::sequence;
  bool add_prefix_space = false, use_regex = true;  // byte_level
  Pattern pattern;                                  // split / replace
  bool invert = false, removed = false;             // split
  std::string replacement = "\xe2\x96\x81";         // metaspace
  std::string prepend_scheme = "always";            // metaspace: always / first / never
  std::string content;                              // replace
  bool individual_digits = false;                   // digits
  size_t length = 5;                                // fixed_length
  std::vector<PreTokenizer> children;
  // Splits each piece; `section` is the index of the text section (after added-token splitting).
  void apply(Pieces& pieces, size_t section) const;
};

// The token model. Its output is token strings, mapped to ids afterwards (as tokenizers.js does).
struct Model {
  enum class Type { bpe, wordpiece, unigram } type = Type::bpe;
  std::unordered_map<std::string, TokenId> vocab;
  std::string unk_token;  // "" when none
  bool has_unk = false;
  bool fuse_unk = false;
  // BPE. Symbols: every vocab string and every merge part / result, interned (merges work on
  // strings, as in tokenizers.js, so a merge result need not be in the vocab).
  std::unordered_map<std::string, int32_t> symbols;
  std::vector<std::string> symbol_text;
  std::unordered_map<uint64_t, std::pair<uint32_t, int32_t>> merges;  // (left, right) -> rank, sym
  int32_t intern(const std::string& s);
  bool byte_fallback = false, ignore_merges = false;
  std::string continuing_subword_suffix, end_of_word_suffix;
  // WordPiece
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
  // Unigram
  std::vector<double> scores;       // by id
  std::vector<std::string> pieces;  // by id
  size_t max_piece_chars = 0;
  double unk_score = 0;

  void encode(const Pieces& words, Pieces& out) const;

  // BPE results of recent words (the same word recurs a lot in text).
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, Pieces> cache;

 private:
  void bpe(const std::string& word, Pieces& out) const;
  void wordpiece(const std::string& word, Pieces& out) const;
  void unigram(const std::string& word, Pieces& out) const;
};

struct PostProcessor {
  enum class Type {
    template_processing,
    bert,
    roberta,
    byte_level,
    sequence
  } type = Type::sequence;
  // template_processing: the "single" template, as token strings ("" = the sequence).
  std::vector<std::pair<bool, std::string>> single;  // (is special token, token string)
  std::string cls, sep;                              // bert / roberta
  std::vector<PostProcessor> children;
  void apply(Pieces& tokens, bool add_special) const;
};

struct Decoder {
  enum class Type {
    byte_level,
    word_piece,
    metaspace,
    bpe,
    replace,
    fuse,
    strip,
    byte_fallback,
    ctc,
    sequence
  } type = Type::sequence;
  std::string prefix = "##";                                    // word_piece
  bool cleanup = false;                                         // word_piece / ctc
  std::string replacement = "\xe2\x96\x81";                     // metaspace
  std::string suffix;                                           // bpe
  Pattern pattern;                                              // replace
  std::string content;                                          // replace / strip
  size_t start = 0, stop = 0;                                   // strip
  std::string pad_token = "<pad>", word_delimiter_token = "|";  // ctc
  std::vector<Decoder> children;
  // added: token strings that are added tokens (the byte-level decoder passes them through).
  void apply(Pieces& tokens, const std::unordered_map<std::string, TokenId>& added) const;
  bool contains(Type t) const;
};

struct AddedToken {
  std::string content;
  TokenId id = -1;
  bool single_word = false, lstrip = false, rstrip = false, special = false, normalized = false;
};

// Everything tokenizer.json (and tokenizer_config.json) define.
struct Spec {
  std::string name;  // for error messages
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  Model model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  std::vector<AddedToken> added;
  // tokenizer_config.json
  std::string bos_token, eos_token;
  bool clean_up_tokenization_spaces = true;
  bool remove_space = false, do_lowercase_and_remove_accent = false;
  std::vector<TokenId> extra_eog;  // generation_config.json / config.json eos_token_id
};

// Parses tokenizer.json (and optionally tokenizer_config.json) text. Errors name `name` and the
// JSON path of the offending value.
Result<std::unique_ptr<Spec>> parse(std::string_view tokenizer_json, std::string_view config_json,
                                    const std::string& name);

// The GPT-2 byte <-> printable character mapping (code points).
const std::vector<uint32_t>& bytes_to_unicode();
// -1 for code points that do not stand for a byte.
int unicode_to_byte(uint32_t cp);

// tokenizers.js clean_up_tokenization (" ." -> "." and friends).
std::string clean_up_tokenization(std::string text);

std::unique_ptr<Tokenizer> make_hf_tokenizer(std::unique_ptr<Spec> spec);

}  // namespace kandil::tok::hf
