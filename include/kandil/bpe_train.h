// Byte-level BPE tokenizer training (GPT-2 style): text is split by the GPT-2 pre-tokenizer
// regex, each piece's bytes become the 256 base symbols, and the most frequent adjacent pair is
// merged until the vocabulary reaches its target size. The result is written as a Hugging Face
// tokenizer.json (+ tokenizer_config.json) and as GGUF tokenizer.ggml.* metadata (model gpt2,
// pre gpt-2). See docs/bpe-train.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/result.h"

namespace kandil {

struct BpeTrainOptions {
  int32_t vocab_size = 8192;  // specials + 256 bytes + merges
  // Special (control) tokens, ids 0..n-1 in this order. bos_token / eos_token name two of them
  // (empty: none); the BOS is prepended by the post-processor when add_bos is set.
  std::vector<std::string> special_tokens = {"<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"};
  std::string bos_token = "<|bos|>", eos_token = "<|eos|>";
  bool add_bos = true;
  int64_t min_frequency = 2;  // pairs seen fewer times are never merged
  // Called every `progress_every` merges and at the end: (merges done, merges wanted).
  std::function<void(int64_t, int64_t)> progress;
  int64_t progress_every = 1000;
};

// A trained tokenizer. Token texts are in the byte-level alphabet (GPT-2's bytes_to_unicode:
// "Ġ" is a space byte); ids: specials, then the 256 bytes in byte order, then one per merge.
struct BpeModel {
  std::vector<std::string> tokens;
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  int32_t n_special = 0;
  std::string bos_token, eos_token;
  bool add_bos = false;
  // Corpus statistics: pre-tokenized pieces, distinct pieces, bytes.
  int64_t n_pieces = 0, n_distinct = 0, n_bytes = 0;
};

// Incremental trainer: feed text (any bytes; invalid UTF-8 is replaced by U+FFFD as the
// tokenizer does) in as many calls as wanted, then train().
class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainOptions options = {});
  ~BpeTrainer();
  BpeTrainer(BpeTrainer&&) noexcept;
  BpeTrainer& operator=(BpeTrainer&&) noexcept;

  Result<void> add_text(std::string_view text);
  Result<void> add_file(const std::string& path);
  Result<BpeModel> train() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The tokenizer.json text (BPE model, ByteLevel pre-tokenizer and decoder, TemplateProcessing
// with the BOS when add_bos, specials as added_tokens) and tokenizer_config.json text.
std::string bpe_tokenizer_json(const BpeModel& m);
std::string bpe_tokenizer_config_json(const BpeModel& m);
// Writes tokenizer.json at `path` and tokenizer_config.json beside it (atomic writes).
Result<void> write_bpe_tokenizer(const BpeModel& m, const std::string& path);
// tokenizer.ggml.* keys (model gpt2, pre gpt-2, tokens, token_type, merges, bos/eos ids,
// add_bos_token) into a GGUF being written.
void add_bpe_gguf_metadata(const BpeModel& m, GgufWriter& w);

}  // namespace kandil
