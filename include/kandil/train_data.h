// Training data for fine-tuning and pre-training: JSONL examples as users have them, tokenized
// with a loss mask, packed into fixed-length sequences, split, shuffled reproducibly and served
// in batches. See docs/train-data.md for the exact rules.
//
//   auto raw = read_jsonl("train.jsonl");                 // file:line errors
//   auto ex = tokenize_examples(*raw, tok, &tpl, {});     // tokens + loss mask
//   auto split = split_validation(std::move(*ex), 0.05, 42);
//   auto seqs = pack_examples(split.train, 256);
//   BatchIterator it(std::move(seqs), 8, 42);
//   TrainBatch b; while (it.next(b)) { ... }
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/chat_template.h"
#include "kandil/result.h"
#include "kandil/tokenizer.h"
#include "kandil/train.h"

namespace kandil {

class Context;

// The target value that means "no loss at this position".
inline constexpr int32_t kIgnoreTarget = TrainBatch::kIgnoreTarget;

// One JSONL line: {"text"}, {"prompt","completion"} or {"messages":[{"role","content"},...]}.
enum class ExampleFormat { text, prompt_completion, messages };

struct RawExample {
  ExampleFormat format = ExampleFormat::text;
  std::string text;                 // text
  std::string prompt, completion;   // prompt_completion
  nlohmann::ordered_json messages;  // messages: an array of {"role", "content", ...} objects
  std::string source;               // "file:line", for error messages
};

// Parses one line. Empty (whitespace-only) lines give nullopt. Errors read
// "<name>:<line>: expected ..." (name is usually the file path).
Result<std::optional<RawExample>> parse_jsonl_line(std::string_view line, const std::string& name,
                                                   int64_t line_no);
// Every example of a JSONL text / file (the file is read line by line, never whole).
Result<std::vector<RawExample>> parse_jsonl(std::string_view text, const std::string& name);
Result<std::vector<RawExample>> read_jsonl(const std::string& path);

// A tokenized example. mask[i] != 0: token i is a training target (the loss of predicting it
// from tokens 0..i-1 counts). tokens.size() == mask.size().
struct TrainExample {
  std::vector<TokenId> tokens;
  std::vector<uint8_t> mask;
};

struct TokenizeOptions {
  // BOS before each example when the tokenizer wants one (Tokenizer::add_bos) and the rendered
  // text does not already start with it; EOS after text / completion examples (a target: the
  // model learns to stop). Chat examples end as the template renders them.
  bool add_bos = true;
  bool add_eos = true;
};

// Tokenizes one example. `chat` renders messages (required for that format only); bos/eos token
// texts are passed to it as bos_token / eos_token. Loss: text = every token, prompt/completion =
// completion tokens (and EOS), messages = the tokens of each assistant turn as the template
// renders it (content and end-of-turn marker), found by rendering the conversation up to each
// assistant message with and without it (docs/train-data.md).
Result<TrainExample> tokenize_example(const RawExample& ex, const Tokenizer& tok,
                                      const ChatTemplate* chat,
                                      const TokenizeOptions& options = {});
Result<std::vector<TrainExample>> tokenize_examples(const std::vector<RawExample>& ex,
                                                    const Tokenizer& tok, const ChatTemplate* chat,
                                                    const TokenizeOptions& options = {});

// A packed sequence of ctx tokens and its ctx targets (next token or kIgnoreTarget).
struct PackedSequence {
  std::vector<TokenId> tokens;
  std::vector<int32_t> targets;
};

// Concatenates the examples (in order) into one stream and cuts it into sequences of ctx
// tokens. targets[t] is the stream's next token when that token belongs to the same example
// and is a target (mask), else kIgnoreTarget: no loss across example boundaries. The next token
// may be the first one of the following sequence. The last sequence is padded with `pad`
// (targets kIgnoreTarget). Sequences without any target are dropped.
std::vector<PackedSequence> pack_examples(const std::vector<TrainExample>& examples, int32_t ctx,
                                          TokenId pad = 0);

// Reproducible randomness: an integer uniform in [0, n) from a 64-bit Mersenne Twister by
// rejection of the top partial range (documented so results match on every platform).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);
// Fisher-Yates: for i = n-1 down to 1, swap element i with element uniform_below(rng, i + 1).
std::vector<size_t> shuffled_order(size_t n, uint64_t seed);
template <class T>
void seeded_shuffle(std::vector<T>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(rng, i));
    std::swap(v[i - 1], v[j]);
  }
}

struct DataSplit {
  std::vector<TrainExample> train, valid;
};
// Seeded split: ceil(fraction * n) examples (at least 1 when fraction > 0 and n > 1, never all)
// go to validation, chosen by shuffled_order(n, seed); both parts keep their file order.
DataSplit split_validation(std::vector<TrainExample> examples, double fraction, uint64_t seed);

// Batches are TrainBatch (kandil/train.h): B sequences of T tokens, row-major [B][T].

// Serves batches of B sequences. Each epoch visits the sequences in the order
// shuffled_order(n, seed + epoch) (shuffle = false: file order); the last, partial batch of an
// epoch is dropped unless it is the only one (then B is smaller).
class BatchIterator {
 public:
  BatchIterator(std::vector<PackedSequence> sequences, int32_t batch_size, uint64_t seed,
                bool shuffle = true);
  // Fills `batch` with the next batch; false at the end of the epoch (the next call starts the
  // next epoch).
  bool next(TrainBatch& batch);
  int64_t epoch() const { return epoch_; }
  int64_t batches_per_epoch() const;
  size_t n_sequences() const { return sequences_.size(); }

 private:
  void start_epoch();
  std::vector<PackedSequence> sequences_;
  int32_t batch_size_ = 1;
  uint64_t seed_ = 0;
  bool shuffle_ = true;
  int64_t epoch_ = 0;
  std::vector<size_t> order_;
  size_t pos_ = 0;
};

// Mean negative log-likelihood (nats per target token) and perplexity = exp(mean).
struct LossStats {
  double sum_nll = 0.0;
  int64_t n_targets = 0;
  double mean() const { return n_targets > 0 ? sum_nll / static_cast<double>(n_targets) : 0.0; }
  double perplexity() const;
};
// Adds -log softmax(logits[t])[targets[t]] for every t with a target (logits: n rows of n_vocab).
// Fails on a target outside the vocabulary.
Result<void> accumulate_loss(const float* logits, int32_t n_vocab, const int32_t* targets,
                             int32_t n, LossStats& stats);
// Validation loss of a model: each sequence decoded from an empty context (all logits).
Result<LossStats> evaluate_loss(Context& ctx, const std::vector<PackedSequence>& sequences);

}  // namespace kandil
