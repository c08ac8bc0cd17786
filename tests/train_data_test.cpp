// Training data: JSONL parsing errors with line numbers, loss masks for text / prompt+completion /
// chat messages, packing targets, reproducible shuffling and splits, batches, loss/perplexity.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "kandil/bpe_train.h"
#include "kandil/gguf.h"
#include "kandil/model.h"
#include "kandil/synth.h"
#include "kandil/train_data.h"
#include "test_util.h"

namespace kandil {
namespace {

using testing::temp_dir;

const char* kChatMl =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' "
    "}}{% endif %}";

// A small trained byte-level BPE tokenizer (BOS <|bos|> added, EOS <|eos|>).
const Tokenizer& tokenizer() {
  static std::unique_ptr<Tokenizer> tok = [] {
    BpeTrainOptions o;
    o.vocab_size = 400;
    BpeTrainer t(o);
    std::string text;
    for (int i = 0; i < 50; ++i) {
      text += "Question: what is the answer? Answer: the answer is forty two. Hello there, user! ";
    }
    EXPECT_TRUE(t.add_text(text).ok());
    auto m = t.train();
    EXPECT_TRUE(m.ok());
    auto r =
        Tokenizer::from_tokenizer_json_text(bpe_tokenizer_json(*m), bpe_tokenizer_config_json(*m));
    EXPECT_TRUE(r.ok());
    return std::move(*r);
  }();
  return *tok;
}

std::string error_of(std::string_view text) {
  auto r = parse_jsonl(text, "d.jsonl");
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? std::string() : r.error().message;
}

// The text of the target tokens (special tokens as text).
std::string target_text(const TrainExample& ex) {
  std::vector<TokenId> ids;
  for (size_t i = 0; i < ex.tokens.size(); ++i) {
    if (ex.mask[i]) ids.push_back(ex.tokens[i]);
  }
  return tokenizer().decode(ids, true);
}

TEST(TrainData, ParsesTheThreeFormatsAndSkipsEmptyLines) {
  auto r = parse_jsonl(
      "{\"text\": \"hello\"}\n\n   \n{\"prompt\": \"Q\", \"completion\": \"A\", \"id\": 7}\r\n"
      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
      "\"content\": \"yo\"}]}",
      "d.jsonl");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].format, ExampleFormat::text);
  EXPECT_EQ((*r)[0].text, "hello");
  EXPECT_EQ((*r)[1].format, ExampleFormat::prompt_completion);
  EXPECT_EQ((*r)[1].source, "d.jsonl:4");
  EXPECT_EQ((*r)[2].format, ExampleFormat::messages);
  EXPECT_EQ((*r)[2].messages.size(), 2u);
}

TEST(TrainData, BadLinesNameFileLineAndExpectation) {
  EXPECT_EQ(error_of("{\"text\":\"a\"}\n{\"text\": 3}"),
            "d.jsonl:2: field \"text\": expected a string, got a number");
  EXPECT_EQ(error_of("\n\n[1,2]"), "d.jsonl:3: expected a JSON object, got an array");
  EXPECT_NE(error_of("{\"text\": \"a\"").find("d.jsonl:1: expected one JSON object per line"),
            std::string::npos);
  EXPECT_NE(error_of("{\"id\": 1e999, \"text\": \"a\"}").find("d.jsonl:1: expected one JSON "),
            std::string::npos);
  EXPECT_EQ(error_of("{\"prompt\": \"a\"}"), "d.jsonl:1: expected a \"completion\" field");
  EXPECT_EQ(error_of("{\"foo\": 1}"),
            "d.jsonl:1: expected a \"text\", \"prompt\" + \"completion\" or \"messages\" field");
  EXPECT_NE(error_of("{\"text\": \"a\", \"messages\": []}").find("exactly one"), std::string::npos);
  EXPECT_EQ(error_of("{\"messages\": {}}"),
            "d.jsonl:1: field \"messages\": expected an array, got an object");
  EXPECT_EQ(error_of("{\"messages\": [{\"content\": \"x\"}]}"),
            "d.jsonl:1: messages[0]: expected a \"role\" field");
  EXPECT_EQ(error_of("{\"messages\": [{\"role\": \"user\", \"content\": null}]}"),
            "d.jsonl:1: messages[0]: field \"content\": expected a string, got null");
  EXPECT_EQ(error_of("{\"messages\": [\"hi\"]}"),
            "d.jsonl:1: messages[0]: expected an object, got a string");
  EXPECT_NE(error_of("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}")
                .find("at least one \"assistant\""),
            std::string::npos);
  EXPECT_NE(error_of("{\"text\": \"\"}").find("non-empty"), std::string::npos);
  EXPECT_NE(error_of("\"just a string\"").find("got a string"), std::string::npos);
}

TEST(TrainData, ReadsFilesLineByLine) {
  const std::string path = temp_dir() + "/t.jsonl";
  {
    std::ofstream f(path);
    f << "{\"text\": \"one\"}\n{\"text\": \"two\"}\n\n{\"text\": [1]}\n";
  }
  auto r = read_jsonl(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, path + ":4: field \"text\": expected a string, got an array");
  {
    std::ofstream f(path);
    f << "{\"text\": \"one\"}\n{\"text\": \"two\"}";
  }
  auto ok = read_jsonl(path);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].source, path + ":2");
  EXPECT_FALSE(read_jsonl(temp_dir() + "/missing.jsonl").ok());
  {
    std::ofstream f(path);
    f << "\n\n";
  }
  EXPECT_FALSE(read_jsonl(path).ok());
}

TEST(TrainData, TextAndPromptCompletionMasks) {
  const Tokenizer& tok = tokenizer();
  RawExample t;
  t.text = "the answer is forty two.";
  auto e = tokenize_example(t, tok, nullptr);
  ASSERT_TRUE(e.ok()) << e.error().message;
  ASSERT_GE(e->tokens.size(), 3u);
  EXPECT_EQ(e->tokens.front(), tok.bos());
  EXPECT_EQ(e->tokens.back(), tok.eos());
  EXPECT_EQ(e->mask.front(), 0);
  for (size_t i = 1; i < e->mask.size(); ++i) EXPECT_EQ(e->mask[i], 1);
  EXPECT_EQ(tok.decode(e->tokens), t.text);

  RawExample pc;
  pc.format = ExampleFormat::prompt_completion;
  pc.prompt = "Question: what is the answer? Answer:";
  pc.completion = " the answer is forty two.";
  auto p = tokenize_example(pc, tok, nullptr);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(target_text(*p), pc.completion + "<|eos|>");
  EXPECT_EQ(tok.decode(p->tokens), pc.prompt + pc.completion);
  TokenizeOptions no_special;
  no_special.add_bos = no_special.add_eos = false;
  auto q = tokenize_example(pc, tok, nullptr, no_special);
  ASSERT_TRUE(q.ok());
  EXPECT_NE(q->tokens.front(), tok.bos());
  EXPECT_EQ(target_text(*q), pc.completion);
}

TEST(TrainData, ChatMessagesLossOnAssistantTurnsOnly) {
  const Tokenizer& tok = tokenizer();
  auto tpl = ChatTemplate::parse(kChatMl, "chatml");
  ASSERT_TRUE(tpl.ok());
  auto raw = parse_jsonl(
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
      "\"content\": \"Hello there\"}, {\"role\": \"assistant\", \"content\": \"Hello, user!\"}, "
      "{\"role\": \"user\", \"content\": \"what is the answer?\"}, {\"role\": \"assistant\", "
      "\"content\": \"forty two\"}]}",
      "chat.jsonl");
  ASSERT_TRUE(raw.ok());
  auto e = tokenize_example((*raw)[0], tok, &*tpl);
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(target_text(*e), "Hello, user!<|im_end|>\nforty two<|im_end|>\n");
  EXPECT_EQ(e->tokens.front(), tok.bos());  // the template renders none: added
  EXPECT_EQ(tok.decode(e->tokens, true),
            "<|bos|><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello "
            "there<|im_end|>\n<|im_start|>assistant\nHello, user!<|im_end|>\n<|im_start|>user\n"
            "what is the answer?<|im_end|>\n<|im_start|>assistant\nforty two<|im_end|>\n");
  // The special tokens are single tokens.
  EXPECT_EQ(e->tokens[1], 2);
  // No template: a clear error naming the line.
  auto none = tokenize_example((*raw)[0], tok, nullptr);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("chat.jsonl:1: a \"messages\" example needs a chat template"),
            std::string::npos);
  // A template that does not render prefixes consistently (it numbers messages from the end).
  auto odd = ChatTemplate::parse(
      "{% for m in messages %}{{ (messages|length - loop.index0)|string + m['content'] }}"
      "{% endfor %}",
      "odd");
  ASSERT_TRUE(odd.ok());
  auto bad = tokenize_example((*raw)[0], tok, &*odd);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("messages[2]"), std::string::npos);
  auto batch = tokenize_examples(*raw, tok, &*tpl);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->size(), 1u);
}

TEST(TrainData, PackingTargetsAndBoundaries) {
  // Two examples: [10 11 12] (targets 11, 12) and [20 21 22 23] with 20, 21 masked out.
  std::vector<TrainExample> ex = {{{10, 11, 12}, {0, 1, 1}}, {{20, 21, 22, 23}, {0, 0, 1, 1}}};
  auto seqs = pack_examples(ex, 4, /*pad=*/0);
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(seqs[0].tokens, (std::vector<TokenId>{10, 11, 12, 20}));
  EXPECT_EQ(seqs[0].targets, (std::vector<int32_t>{11, 12, -100, -100}));
  EXPECT_EQ(seqs[1].tokens, (std::vector<TokenId>{21, 22, 23, 0}));
  EXPECT_EQ(seqs[1].targets, (std::vector<int32_t>{22, 23, -100, -100}));
  // The next token may live in the next sequence; a sequence without targets is dropped.
  auto s3 = pack_examples(ex, 3);
  ASSERT_EQ(s3.size(), 2u);  // the third, [23 pad pad], has no target and is dropped
  EXPECT_EQ(s3[0].targets, (std::vector<int32_t>{11, 12, -100}));
  EXPECT_EQ(s3[1].tokens, (std::vector<TokenId>{20, 21, 22}));
  EXPECT_EQ(s3[1].targets, (std::vector<int32_t>{-100, 22, 23}));
  std::vector<TrainExample> masked = {{{1, 2}, {0, 0}}, {{3, 4, 5}, {0, 1, 1}}};
  auto s2 = pack_examples(masked, 2, 9);
  ASSERT_EQ(s2.size(), 1u);  // [1 2] has no target
  EXPECT_EQ(s2[0].tokens, (std::vector<TokenId>{3, 4}));
  EXPECT_EQ(s2[0].targets, (std::vector<int32_t>{4, 5}));
  EXPECT_TRUE(pack_examples(ex, 0).empty());
}

TEST(TrainData, SeededShuffleIsPinnedAcrossPlatforms) {
  // mt19937_64 output is fixed by the C++ standard; uniform_below and Fisher-Yates are ours, so
  // these orders must never change.
  EXPECT_EQ(shuffled_order(10, 42), shuffled_order(10, 42));
  const std::vector<size_t> o = shuffled_order(10, 42);
  std::vector<size_t> sorted = o;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(o, shuffled_order(10, 43));
  std::mt19937_64 rng(5489);
  EXPECT_EQ(rng(), 14514284786278117030ull);  // the standard's first value for the default seed
  std::mt19937_64 r2(1);
  std::vector<uint64_t> draws;
  for (int i = 0; i < 5; ++i) draws.push_back(uniform_below(r2, 1000));
  std::mt19937_64 r3(1);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(draws[static_cast<size_t>(i)], r3() % 1000);
  EXPECT_EQ(uniform_below(r2, 1), 0u);
  // Roughly uniform.
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 70000; ++i) ++hist[static_cast<size_t>(uniform_below(r2, 7))];
  for (int h : hist) EXPECT_NEAR(h, 10000, 500);
  std::vector<int> v = {1, 2, 3, 4, 5};
  seeded_shuffle(v, 42);
  std::vector<int> expect;
  for (size_t i : shuffled_order(5, 42)) expect.push_back(static_cast<int>(i) + 1);
  EXPECT_EQ(v, expect);
}

TEST(TrainData, ValidationSplitIsSeededAndDisjoint) {
  std::vector<TrainExample> ex;
  for (int i = 0; i < 20; ++i) ex.push_back({{i}, {1}});
  auto s = split_validation(ex, 0.1, 7);
  ASSERT_EQ(s.valid.size(), 2u);
  ASSERT_EQ(s.train.size(), 18u);
  std::set<int> seen;
  for (const auto& e : s.train) seen.insert(e.tokens[0]);
  for (const auto& e : s.valid) seen.insert(e.tokens[0]);
  EXPECT_EQ(seen.size(), 20u);
  for (size_t i = 1; i < s.train.size(); ++i)
    EXPECT_LT(s.train[i - 1].tokens[0], s.train[i].tokens[0]);
  auto again = split_validation(ex, 0.1, 7);
  EXPECT_EQ(again.valid[0].tokens, s.valid[0].tokens);
  EXPECT_EQ(split_validation(ex, 0.0, 7).valid.size(), 0u);
  EXPECT_EQ(split_validation(ex, 0.001, 7).valid.size(), 1u);
  EXPECT_EQ(split_validation(ex, 1.0, 7).train.size(), 1u);
}

TEST(TrainData, BatchIteratorCoversEveryEpochOnce) {
  std::vector<PackedSequence> seqs;
  for (int i = 0; i < 10; ++i) seqs.push_back({{i, i, i}, {i, -100, i}});
  BatchIterator it(seqs, 4, 3);
  EXPECT_EQ(it.batches_per_epoch(), 2);
  std::vector<std::vector<TokenId>> epochs(2);
  TrainBatch b;
  for (int e = 0; e < 2; ++e) {
    int n = 0;
    while (it.next(b)) {
      ++n;
      EXPECT_EQ(b.B, 4);
      EXPECT_EQ(b.T, 3);
      ASSERT_EQ(b.tokens.size(), 12u);
      ASSERT_EQ(b.targets.size(), 12u);
      for (int r = 0; r < 4; ++r) {
        epochs[static_cast<size_t>(e)].push_back(b.tokens[static_cast<size_t>(r * 3)]);
        EXPECT_EQ(b.targets[static_cast<size_t>(r * 3 + 1)], -100);
      }
    }
    EXPECT_EQ(n, 2);
  }
  EXPECT_EQ(it.epoch(), 2);
  EXPECT_NE(epochs[0], epochs[1]);  // reshuffled
  std::set<TokenId> distinct(epochs[0].begin(), epochs[0].end());
  EXPECT_EQ(distinct.size(), 8u);
  BatchIterator fixed(seqs, 4, 3, false);
  ASSERT_TRUE(fixed.next(b));
  EXPECT_EQ(b.tokens[3], 1);
  BatchIterator small(std::vector<PackedSequence>(seqs.begin(), seqs.begin() + 3), 8, 1);
  ASSERT_TRUE(small.next(b));
  EXPECT_EQ(b.B, 3);
  EXPECT_FALSE(small.next(b));
  EXPECT_TRUE(small.next(b));
  BatchIterator empty({}, 2, 1);
  EXPECT_FALSE(empty.next(b));
  EXPECT_EQ(empty.batches_per_epoch(), 0);
}

TEST(TrainData, LossAndPerplexity) {
  // Uniform logits: loss log V, perplexity V.
  const int32_t V = 16;
  std::vector<float> logits(3 * V, 0.5f);
  const std::vector<int32_t> targets = {3, -100, 15};
  LossStats s;
  ASSERT_TRUE(accumulate_loss(logits.data(), V, targets.data(), 3, s).ok());
  EXPECT_EQ(s.n_targets, 2);
  EXPECT_NEAR(s.mean(), std::log(16.0), 1e-9);
  EXPECT_NEAR(s.perplexity(), 16.0, 1e-6);
  // A confident right answer costs almost nothing.
  std::vector<float> sharp(V, 0.0f);
  sharp[5] = 40.0f;
  const int32_t five = 5;
  LossStats t;
  ASSERT_TRUE(accumulate_loss(sharp.data(), V, &five, 1, t).ok());
  EXPECT_LT(t.mean(), 1e-12);
  const int32_t bad = 16;
  auto r = accumulate_loss(sharp.data(), V, &bad, 1, t);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("outside the vocabulary"), std::string::npos);
  EXPECT_EQ(LossStats{}.mean(), 0.0);
}

TEST(TrainData, EvaluateLossOnASyntheticModel) {
  SynthSpec spec;
  spec.n_layer = 1;
  spec.n_embd = 32;
  spec.n_ff = 64;
  spec.n_head = 2;
  spec.n_head_kv = 1;
  const std::string path = temp_dir() + "/m.gguf";
  ASSERT_TRUE(write_synthetic_model(spec, path).ok());
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok());
  ContextParams p;
  p.n_ctx = 32;
  p.n_threads = 1;
  auto ctx = Context::create(*m, p);
  ASSERT_TRUE(ctx.ok());
  std::vector<TrainExample> ex;
  for (int i = 0; i < 5; ++i)
    ex.push_back({{1, 260 + i, 270 + i, 280, 290 + i, 2}, {0, 1, 1, 1, 1, 1}});
  const auto seqs = pack_examples(ex, 8);
  auto loss = evaluate_loss(**ctx, seqs);
  ASSERT_TRUE(loss.ok()) << loss.error().message;
  EXPECT_EQ(loss->n_targets, 25);
  EXPECT_GT(loss->mean(), 0.0);
  EXPECT_TRUE(std::isfinite(loss->perplexity()));
  // The same sequences give the same loss (the context starts empty for each).
  auto again = evaluate_loss(**ctx, seqs);
  ASSERT_TRUE(again.ok());
  EXPECT_DOUBLE_EQ(again->sum_nll, loss->sum_nll);
  // Only the first token: evaluating sequence by sequence equals the sum of parts.
  auto first = evaluate_loss(**ctx, {seqs[0]});
  auto rest = evaluate_loss(**ctx, std::vector<PackedSequence>(seqs.begin() + 1, seqs.end()));
  ASSERT_TRUE(first.ok() && rest.ok());
  EXPECT_NEAR(first->sum_nll + rest->sum_nll, loss->sum_nll, 1e-9);
}

}  // namespace
}  // namespace kandil

namespace kandil {
namespace {

TEST(TrainData, SentencePieceTokenizerMasksFollowTheText) {
  // The synthetic model's vocabulary is SentencePiece-style (a "▁" dummy prefix): token pieces
  // spell " " + text, and the mask offsets account for that one leading space.
  const std::string path = testing::temp_dir() + "/m.gguf";
  ASSERT_TRUE(write_synthetic_model(SynthSpec{}, path).ok());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok());
  auto tok = Tokenizer::from_gguf(*f);
  ASSERT_TRUE(tok.ok());
  RawExample pc;
  pc.format = ExampleFormat::prompt_completion;
  pc.prompt = "abc ";
  pc.completion = "xyz";
  auto e = tokenize_example(pc, **tok, nullptr);
  ASSERT_TRUE(e.ok()) << e.error().message;
  std::vector<TokenId> prompt_ids, target_ids;
  for (size_t i = 0; i < e->tokens.size(); ++i) {
    (e->mask[i] ? target_ids : prompt_ids).push_back(e->tokens[i]);
  }
  std::string targets;
  for (TokenId id : target_ids) targets += (*tok)->token_to_piece(id);
  std::string prompt;
  for (TokenId id : prompt_ids) prompt += (*tok)->token_to_piece(id);
  EXPECT_NE(targets.find("xyz"), std::string::npos) << targets;
  EXPECT_EQ(targets.find('a'), std::string::npos) << targets;
  EXPECT_NE(prompt.find("abc"), std::string::npos) << prompt;
  EXPECT_EQ(prompt.find('x'), std::string::npos) << prompt;
}

}  // namespace
}  // namespace kandil
