// Byte-level BPE training: the incremental trainer equals a naive full-rescan trainer, trained
// tokenizers load in kandil (tokenizer.json and GGUF metadata) with identical ids,
// decode(encode(s))
// == s, merges shorten held-out text, training is deterministic, and `kandil tokenizer train`.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "base/utf8.h"
#include "kandil/bpe_train.h"
#include "kandil/gguf.h"
#include "kandil/tokenizer.h"
#include "test_util.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/pretokenize.h"

namespace kandil {
namespace {

using testing::temp_dir;

// Pseudo-English text from a small word list (deterministic).
std::string corpus(uint64_t seed, int n_words) {
  static const char* kWords[] = {
      "the",    "model",  "token",  "train", "data",  "loss",  "value", "function", "return",
      "int",    "float",  "vector", "size",  "std::", "const", "auto",  "if",       "else",
      "for",    "while",  "(x)",    "{",     "}",     "123",   "4567",  "über",     "naïve",
      "日本語", "テスト", "😀",      "don't", "we're", "it's",  "a",     "an",       "of",
      "to",     "in",     "is",     "that",  "layer", "head",  "rope",  "kandil",   "learning"};
  std::mt19937_64 rng(seed);
  std::string s;
  for (int i = 0; i < n_words; ++i) {
    if (rng() % 3 == 0) {  // a made-up word: many distinct pairs to merge
      const int len = 2 + static_cast<int>(rng() % 6);
      for (int k = 0; k < len; ++k) s += "etaoinshrdlucmfw"[rng() % 16];
    } else {
      s += kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))];
    }
    const uint64_t r = rng() % 20;
    s += r == 0 ? "\n" : r == 1 ? ".  " : r == 2 ? "\t" : " ";
  }
  return s;
}

BpeModel train(const std::string& text, int32_t vocab, int64_t min_freq = 2) {
  BpeTrainOptions o;
  o.vocab_size = vocab;
  o.min_frequency = min_freq;
  BpeTrainer t(o);
  EXPECT_TRUE(t.add_text(text).ok());
  auto m = t.train();
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? *m : BpeModel{};
}

std::unique_ptr<Tokenizer> load(const BpeModel& m) {
  auto t = Tokenizer::from_tokenizer_json_text(bpe_tokenizer_json(m), bpe_tokenizer_config_json(m),
                                               "trained");
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return t.ok() ? std::move(*t) : nullptr;
}

// The textbook trainer: recount every pair of every word each step, merge the most frequent
// (ties: smallest (a, b) symbol ids), same pre-tokenizer.
std::vector<std::pair<std::string, std::string>> naive_merges(const std::string& text,
                                                              int64_t n_merges, int64_t min_freq) {
  auto splitter = tok::RegexSplitter::compile(
      {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"});
  EXPECT_TRUE(splitter.ok());
  const std::string valid = tok::to_valid_utf8(text);
  std::vector<std::pair<size_t, size_t>> spans;
  splitter->split(valid, spans);
  std::map<std::string, int64_t> freq;
  for (auto [o, n] : spans) ++freq[valid.substr(o, n)];
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> f;
  for (const auto& [w, c] : freq) {
    words.emplace_back();
    for (char ch : w) words.back().push_back(static_cast<uint8_t>(ch));
    f.push_back(c);
  }
  std::vector<std::string> sym(256);
  for (int b = 0; b < 256; ++b) sym[static_cast<size_t>(b)] = std::string(1, static_cast<char>(b));
  auto text_of = [&](int32_t id) {
    std::string out;
    for (char c : sym[static_cast<size_t>(id)]) {
      utf8::append(out, tok::hf::bytes_to_unicode()[static_cast<uint8_t>(c)]);
    }
    return out;
  };
  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int64_t>(merges.size()) < n_merges) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (size_t w = 0; w < words.size(); ++w) {
      for (size_t i = 0; i + 1 < words[w].size(); ++i)
        counts[{words[w][i], words[w][i + 1]}] += f[w];
    }
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_n = 0;
    for (const auto& [p, n] : counts) {  // ascending (a, b): the first maximum wins ties
      if (n > best_n) best = p, best_n = n;
    }
    if (best_n < min_freq) break;
    merges.emplace_back(text_of(best.first), text_of(best.second));
    const auto id = static_cast<int32_t>(sym.size());
    sym.push_back(sym[static_cast<size_t>(best.first)] + sym[static_cast<size_t>(best.second)]);
    for (auto& w : words) {
      std::vector<int32_t> out;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == best.first && w[i + 1] == best.second) {
          out.push_back(id);
          ++i;
        } else {
          out.push_back(w[i]);
        }
      }
      w = out;
    }
  }
  return merges;
}

TEST(BpeTrain, IncrementalMergesEqualNaiveRescan) {
  const std::string text = corpus(7, 3000) + "aaaaaaa bbbb aaaa abababab";
  for (int64_t min_freq : {2, 1}) {
    const BpeModel m = train(text, 4 + 256 + 300, min_freq);
    const auto ref = naive_merges(text, 300, min_freq);
    ASSERT_EQ(m.merges.size(), ref.size()) << "min_freq " << min_freq;
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_EQ(m.merges[i], ref[i]) << "merge " << i << " min_freq " << min_freq;
    }
  }
}

TEST(BpeTrain, VocabLayoutSpecialsAndDeterminism) {
  const std::string text = corpus(1, 4000);
  const BpeModel a = train(text, 500), b = train(text, 500);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.merges, b.merges);
  ASSERT_EQ(a.tokens.size(), 500u);
  EXPECT_EQ(a.n_special, 4);
  EXPECT_EQ(a.tokens[0], "<|bos|>");
  EXPECT_EQ(a.tokens[3], "<|im_end|>");
  EXPECT_EQ(a.tokens[4 + 'a'], "a");
  EXPECT_EQ(a.tokens[4 + ' '], "\xC4\xA0");  // "Ġ"
  EXPECT_EQ(a.merges.size(), 500u - 260u);
  // Feeding the text in two calls at a piece boundary changes nothing.
  BpeTrainOptions o;
  o.vocab_size = 500;
  BpeTrainer t(o);
  const size_t cut = text.find(' ', text.size() / 2);
  ASSERT_TRUE(t.add_text(text.substr(0, cut)).ok());
  ASSERT_TRUE(t.add_text(text.substr(cut)).ok());
  auto c = t.train();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->merges, a.merges);
  // A different corpus gives different merges.
  EXPECT_NE(train(corpus(2, 4000) + " zzz zzz zzz qqq qqq", 500).merges, a.merges);
}

TEST(BpeTrain, TokenizerJsonLoadsAndRoundTrips) {
  const BpeModel m = train(corpus(3, 6000), 700);
  auto tok = load(m);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->n_vocab(), 700);
  EXPECT_EQ(tok->bos(), 0);
  EXPECT_EQ(tok->eos(), 1);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->token_kind(2), TokenKind::control);
  const auto ids = tok->encode("hello", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(tok->encode("<|im_start|>user", false, true).front(), 2);
  // Random UTF-8: ASCII, controls, whitespace runs, 2/3/4-byte characters, combining marks.
  std::mt19937_64 rng(99);
  const uint32_t kPool[] = {'a',    'Z',    ' ',    ' ',     '\n',     '\t', '\r', '0',
                            '9',    '\'',   '.',    '{',     0x00,     0x7F, 0xE9, 0x301,
                            0x3042, 0x65E5, 0xFFFD, 0x1F600, 0x10FFFF, 0xA0};
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) utf8::append(s, kPool[rng() % (sizeof(kPool) / 4)]);
    EXPECT_EQ(tok->decode(tok->encode(s, false, false)), s) << "iteration " << iter;
    // BOS is a control token: decoding without specials drops it.
    EXPECT_EQ(tok->decode(tok->encode(s, true, false)), s);
  }
  // Invalid UTF-8 decodes to the same text with U+FFFD for the bad bytes, as the tokenizer reads
  // it.
  for (const std::string& s : {std::string("a\xFF"
                                           "b"),
                               std::string("\xC3"), std::string("x\xE6\x97")}) {
    EXPECT_EQ(tok->decode(tok->encode(s, false, false)), tok::to_valid_utf8(s));
  }
}

TEST(BpeTrain, MergesShortenHeldOutText) {
  const BpeModel m = train(corpus(4, 8000), 1000);
  auto tok = load(m);
  ASSERT_TRUE(tok);
  const std::string held_out = corpus(5, 2000);
  const auto ids = tok->encode(held_out, false, false);
  EXPECT_LT(ids.size() * 2, held_out.size()) << "expected at least 2 bytes per token";
  // More merges, fewer tokens.
  auto small = load(train(corpus(4, 8000), 300));
  ASSERT_TRUE(small);
  EXPECT_LT(ids.size(), small->encode(held_out, false, false).size());
  // A byte-only vocabulary (no merges) spends one token per byte.
  const BpeModel bytes_only = train(corpus(4, 100), 260);
  auto tb = load(bytes_only);
  ASSERT_TRUE(tb);
  EXPECT_EQ(tb->encode(held_out, false, false).size(), held_out.size());
}

TEST(BpeTrain, GgufMetadataGivesTheSameIds) {
  const BpeModel m = train(corpus(6, 5000), 600);
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  add_bpe_gguf_metadata(m, w);
  const std::string path = temp_dir() + "/vocab.gguf";
  ASSERT_TRUE(w.write_file(path).ok());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok());
  auto g = Tokenizer::from_gguf(*f);
  ASSERT_TRUE(g.ok()) << g.error().message;
  auto h = load(m);
  ASSERT_TRUE(h);
  EXPECT_EQ((*g)->n_vocab(), h->n_vocab());
  EXPECT_EQ((*g)->bos(), h->bos());
  EXPECT_EQ((*g)->eos(), h->eos());
  for (uint64_t seed : {11u, 12u, 13u}) {
    const std::string s = corpus(seed, 300) + " <|im_end|> 3.14159 x\n\n\n  y";
    EXPECT_EQ((*g)->encode(s, true, true), h->encode(s, true, true)) << seed;
    EXPECT_EQ((*g)->encode(s, false, false), h->encode(s, false, false)) << seed;
  }
}

TEST(BpeTrain, OptionErrors) {
  BpeTrainOptions o;
  o.vocab_size = 100;
  BpeTrainer t(o);
  ASSERT_TRUE(t.add_text("abc").ok());
  auto r = t.train();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("smaller than"), std::string::npos);
  o.vocab_size = 300;
  o.special_tokens = {"<a>", "<a>"};
  auto r2 = BpeTrainer(o).train();
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("twice"), std::string::npos);
  o.special_tokens = {"<a>"};
  o.bos_token = "<b>";
  auto r3 = BpeTrainer(o).train();
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message.find("'<b>'"), std::string::npos);
  BpeTrainer t4;
  auto r4 = t4.add_file(temp_dir() + "/missing.txt");
  ASSERT_FALSE(r4.ok());
  EXPECT_NE(r4.error().message.find("cannot open"), std::string::npos);
}

TEST(BpeTrain, SpecialTextIsNeverMerged) {
  // A special token that is also a piece of the corpus: the merge that would produce it is skipped.
  BpeTrainOptions o;
  o.vocab_size = 300;
  o.special_tokens = {"ab"};
  o.bos_token = o.eos_token = "";
  BpeTrainer t(o);
  ASSERT_TRUE(t.add_text("ab ab ab ab abc abc").ok());
  auto m = t.train();
  ASSERT_TRUE(m.ok());
  for (size_t i = 1; i < m->tokens.size(); ++i) EXPECT_NE(m->tokens[i], "ab");
  EXPECT_TRUE(load(*m));
}

TEST(BpeTrain, CliTrainsAndWritesTokenizerFiles) {
  const std::string dir = temp_dir();
  const std::string in = dir + "/corpus.txt";
  {
    std::ofstream f(in, std::ios::binary);
    f << corpus(8, 5000);
  }
  auto r = testing::run_kandil("tokenizer train --input " + in + " --vocab-size 512 -o " + dir +
                               "/tok/tokenizer.json --gguf " + dir + "/tok/vocab.gguf --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["vocab_size"], 512);
  EXPECT_EQ(j["merges"], 512 - 260);
  auto tok = Tokenizer::from_tokenizer_json(dir + "/tok/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ((*tok)->bos(), 0);
  EXPECT_EQ((*tok)->eos(), 1);
  auto f = GgufFile::open(dir + "/tok/vocab.gguf");
  ASSERT_TRUE(f.ok());
  // Progress goes to stderr in text mode.
  auto r2 = testing::run_kandil("tokenizer train --input " + in + " --vocab-size 400 -o " + dir +
                                "/t2.json");
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_NE(r2.err.find("merges"), std::string::npos);
  EXPECT_NE(r2.out.find("140 merges"), std::string::npos) << r2.out;
  auto bad =
      testing::run_kandil("tokenizer train --input " + dir + "/nope.txt -o " + dir + "/x.json");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("nope.txt"), std::string::npos);
}

}  // namespace
}  // namespace kandil
