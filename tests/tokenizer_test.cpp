// Tokenizer tests: llama.cpp's tokenizer vectors (fixtures/vocab), prompt ids of the fixture
// models, special tokens, decoding, streaming, bad metadata, and small in-memory vocabs that need
// no fixtures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/tokenizer.h"
#include "test_util.h"
#include "tokenizer/pretokenize.h"

namespace kandil {
namespace {

using ::kandil::testing::fixture;
using ::kandil::testing::read_file;

// ---- helpers ------------------------------------------------------------------------------------

struct LoadedTokenizer {
  std::unique_ptr<Tokenizer> tokenizer;
  std::string error;
};

// Fixture tokenizers are loaded once per test binary.
const LoadedTokenizer& load_fixture(const std::string& relative) {
  static std::map<std::string, LoadedTokenizer> cache;
  auto it = cache.find(relative);
  if (it != cache.end()) return it->second;
  LoadedTokenizer loaded;
  auto file = GgufFile::open(fixture(relative));
  if (!file.ok()) {
    loaded.error = file.error().message;
  } else {
    auto tok = Tokenizer::from_gguf(*file);
    if (tok.ok()) {
      loaded.tokenizer = std::move(*tok);
    } else {
      loaded.error = tok.error().message;
    }
  }
  return cache.emplace(relative, std::move(loaded)).first->second;
}

// A fixture that is present but fails to load fails the test (and gets a 3-token stand-in, so
// the test goes on without crashing).
const Tokenizer& fixture_tokenizer(const std::string& relative) {
  const LoadedTokenizer& t = load_fixture(relative);
  if (t.tokenizer) return *t.tokenizer;
  ADD_FAILURE() << relative << ": " << t.error;
  static const std::unique_ptr<Tokenizer> stand_in = [] {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
    std::vector<uint8_t> bytes = w.serialize();
    auto file = GgufFile::parse(bytes.data(), bytes.size(), "stand-in.gguf");
    auto tok = Tokenizer::from_gguf(*file);
    return std::move(*tok);
  }();
  return *stand_in;
}

// Builds a tokenizer from a GGUF made in memory (the tokenizer keeps no reference to the file).
Result<std::unique_ptr<Tokenizer>> from_writer(const GgufWriter& w,
                                               const std::string& name = "mem.gguf") {
  std::vector<uint8_t> bytes = w.serialize();
  auto file = GgufFile::parse(bytes.data(), bytes.size(), name);
  if (!file.ok()) return file.error();
  return Tokenizer::from_gguf(*file);
}

struct VocabCase {
  std::string text;
  std::vector<TokenId> ids;
};

std::vector<VocabCase> read_vectors(const std::string& vocab) {
  const std::string inp = read_file(fixture(vocab + ".inp"));
  const std::string out = read_file(fixture(vocab + ".out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<VocabCase> cases;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t end = inp.find(sep, pos);
    if (end == std::string::npos) break;
    cases.push_back({inp.substr(pos, end - pos), {}});
    pos = end + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    if (i >= cases.size()) break;
    std::istringstream ids(line);
    for (long id; ids >> id;) cases[i].ids.push_back(static_cast<TokenId>(id));
  }
  return cases;
}

std::string format_ids(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

// Skips unless all four tokenizer-vector vocabs are present.
#define REQUIRE_VOCAB_FIXTURES()                                    \
  do {                                                              \
    KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-llama-spm.gguf");      \
    KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-phi-3.gguf");          \
    KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-gpt-2.gguf");          \
    KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-deepseek-coder.gguf"); \
  } while (0)

// ---- llama.cpp tokenizer vectors ----------------------------------------------------------------

class VocabVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabVectors, MatchLlamaCpp) {
  const std::string vocab = std::string("vocab/") + GetParam();
  KANDIL_REQUIRE_FIXTURE(vocab);
  KANDIL_REQUIRE_FIXTURE(vocab + ".inp");
  const Tokenizer& tok = fixture_tokenizer(vocab);
  const std::vector<VocabCase> cases = read_vectors(vocab);
  ASSERT_EQ(cases.size(), 46u);
  size_t passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<TokenId> got = tok.encode(cases[i].text, false, false);
    if (got == cases[i].ids) {
      ++passed;
    } else {
      ADD_FAILURE() << vocab << " vector " << i << " '" << cases[i].text << "'\n  expected"
                    << format_ids(cases[i].ids) << "\n  got     " << format_ids(got);
    }
  }
  std::printf("[          ] %s: %zu/%zu vectors match llama.cpp\n", GetParam(), passed,
              cases.size());
  EXPECT_EQ(passed, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, VocabVectors,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf",
                                           "ggml-vocab-gpt-2.gguf",
                                           "ggml-vocab-deepseek-coder.gguf",
                                           "ggml-vocab-bert-bge.gguf"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name =
                               name.substr(11, name.size() - 16);  // between ggml-vocab- and .gguf
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(Tokenizer, BertWordPiece) {
  KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-bert-bge.gguf");
  const Tokenizer& t = fixture_tokenizer("vocab/ggml-vocab-bert-bge.gguf");
  EXPECT_EQ(t.kind(), TokenizerKind::wordpiece);
  EXPECT_EQ(t.n_vocab(), 30522);
  // [CLS] text [SEP] with add_special; continuation pieces join without a space.
  const std::vector<TokenId> ids = t.encode("Hello, World!", true, false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 101);
  EXPECT_EQ(ids.back(), 102);
  EXPECT_EQ(t.decode(ids), " hello , world !");
  EXPECT_EQ(t.encode("[CLS]", false, true), std::vector<TokenId>{101});
}

TEST(Tokenizer, FixtureMetadata) {
  REQUIRE_VOCAB_FIXTURES();
  const Tokenizer& spm = fixture_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(spm.kind(), TokenizerKind::spm);
  EXPECT_EQ(spm.n_vocab(), 32000);
  EXPECT_EQ(spm.bos(), 1);
  EXPECT_EQ(spm.eos(), 2);
  EXPECT_EQ(spm.unk(), 0);
  EXPECT_TRUE(spm.add_bos());
  EXPECT_FALSE(spm.add_eos());
  const Tokenizer& gpt2 = fixture_tokenizer("vocab/ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(gpt2.kind(), TokenizerKind::bpe);
  EXPECT_EQ(gpt2.pre(), "gpt-2");
  EXPECT_EQ(gpt2.bos(), 50256);
  EXPECT_FALSE(gpt2.add_bos());
  EXPECT_EQ(gpt2.encode("Hello", true, false), gpt2.encode("Hello", false, false));
  const Tokenizer& ds = fixture_tokenizer("vocab/ggml-vocab-deepseek-coder.gguf");
  EXPECT_TRUE(ds.add_bos());
  std::vector<TokenId> with_bos = ds.encode("Hello", true, false);
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos.front(), 32013);
}

// ---- round trips --------------------------------------------------------------------------------

TEST(Tokenizer, DecodeRoundTripBpe) {
  for (const char* name : {"vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-deepseek-coder.gguf"}) {
    KANDIL_REQUIRE_FIXTURE(std::string(name));
    const Tokenizer& tok = fixture_tokenizer(name);
    for (const VocabCase& c : read_vectors(name)) {
      EXPECT_EQ(tok.decode(tok.encode(c.text, false, false)), c.text) << name;
    }
  }
}

TEST(Tokenizer, DecodeRoundTripSpm) {
  for (const char* name : {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-phi-3.gguf"}) {
    KANDIL_REQUIRE_FIXTURE(std::string(name));
    const Tokenizer& tok = fixture_tokenizer(name);
    for (const VocabCase& c : read_vectors(name)) {
      // The space prefix stays in the decoded text; BOS decodes to nothing.
      std::string expected;
      if (!c.text.empty()) expected = ' ' + c.text;
      EXPECT_EQ(tok.decode(tok.encode(c.text, true, false)), expected) << name;
    }
  }
}

TEST(Tokenizer, RandomTextRoundTrip) {
  REQUIRE_VOCAB_FIXTURES();
  // Even n: whole characters (valid UTF-8). Odd n: single bytes, mostly invalid UTF-8. Never a
  // literal U+2581, which SentencePiece decodes as a space.
  const std::vector<std::string> chars = {"a", "b", " ", "Z", "0",    "\n",  "\t",   "<", ">",
                                          "/", "'", "é", "€", "🦙", "<s>", "</s>", "  "};
  const std::string bytes = "ab Z0\n<>'\xc3\xa9\xe2\x82\xac\xf0\x9f\xff\x80";
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<size_t>(state >> 33);
  };
  for (const char* name : {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-phi-3.gguf",
                           "vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-deepseek-coder.gguf"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    for (int n = 0; n < 400; ++n) {
      std::string s;
      for (size_t len = next() % 30; len > 0; --len) {
        if (n % 2 == 0) {
          s += chars[next() % chars.size()];
        } else {
          s += bytes[next() % bytes.size()];
        }
      }
      const std::vector<TokenId> ids = tok.encode(s, false, false);
      for (TokenId id : ids) ASSERT_TRUE(tok.valid(id)) << name;
      const bool valid_utf8 = tok::to_valid_utf8(s) == s;
      if (tok.kind() == TokenizerKind::bpe) {
        // Byte-level BPE reads invalid UTF-8 as U+FFFD, as llama.cpp does.
        EXPECT_EQ(tok.decode(ids), tok::to_valid_utf8(s)) << name;
      } else if (valid_utf8 && s.find("</s>") == std::string::npos) {
        // Exact for valid UTF-8 (phi-3 splits out its user-defined "</s>" and drops spaces after
        // it). Invalid input may not round-trip, as in llama.cpp: a truncated lead byte before a
        // space takes in the first bytes of its "▁", which then come back as raw bytes.
        EXPECT_EQ(tok.decode(ids), s.empty() ? s : ' ' + s) << name;
      }
      for (TokenId id : tok.encode(s, true, true)) ASSERT_TRUE(tok.valid(id)) << name;
    }
  }
}

// ---- prompts of the fixture models --------------------------------------------------------------

TEST(Tokenizer, Stories260KPrompt) {
  KANDIL_REQUIRE_FIXTURE("models/stories260K.gguf");
  const Tokenizer& tok = fixture_tokenizer("models/stories260K.gguf");
  EXPECT_EQ(tok.n_vocab(), 512);
  EXPECT_EQ(tok.encode("Once upon a time", true, false),
            (std::vector<TokenId>{1, 403, 407, 261, 378}));
}

TEST(Tokenizer, LlamaSpmPrompts) {
  KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-llama-spm.gguf");
  const Tokenizer& tok = fixture_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(tok.encode("Once upon a time", true, false),
            (std::vector<TokenId>{1, 9038, 2501, 263, 931}));
  EXPECT_EQ(
      tok.encode("The quick brown fox jumps over the lazy dog. In the beginning", true, false),
      (std::vector<TokenId>{1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203,
                            29889, 512, 278, 6763}));
  EXPECT_EQ(tok.encode("Hello world", true, false), (std::vector<TokenId>{1, 15043, 3186}));
  EXPECT_EQ(tok.encode("", true, false), (std::vector<TokenId>{1}));
  EXPECT_TRUE(tok.encode("", false, false).empty());
}

TEST(Tokenizer, ModelPromptsMatchReferences) {
  KANDIL_REQUIRE_FIXTURE("refs/stories260K.json");
  KANDIL_REQUIRE_FIXTURE("models/stories260K.gguf");
  // The reference JSON holds the ids llama.cpp fed for each prompt; check without a JSON parser by
  // comparing against the ids our tokenizer produces, rendered the same way.
  const Tokenizer& tok = fixture_tokenizer("models/stories260K.gguf");
  const std::string json = read_file(fixture("refs/stories260K.json"));
  const std::string prompt = "The quick brown fox jumps over the lazy dog. In the beginning";
  std::vector<TokenId> ids = tok.encode(prompt, true, false);
  EXPECT_EQ(ids.size(), 38u);
  std::string rendered;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) rendered += ", ";
    rendered += std::to_string(ids[i]);
  }
  EXPECT_NE(json.find("[" + rendered + "]"), std::string::npos) << rendered;
}

// ---- special tokens -----------------------------------------------------------------------------

TEST(Tokenizer, ParseSpecialSpm) {
  KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-llama-spm.gguf");
  const Tokenizer& tok = fixture_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
  const std::vector<TokenId> hello = tok.encode("hello", false, false);  // "▁hello"
  std::vector<TokenId> expected = {1};
  expected.insert(expected.end(), hello.begin(), hello.end());
  expected.push_back(2);
  // Text after a special token gets the space prefix, as in llama.cpp.
  EXPECT_EQ(tok.encode("<s>hello</s>", false, true), expected);
  std::vector<TokenId> with_bos = {1};
  with_bos.insert(with_bos.end(), expected.begin(), expected.end());
  EXPECT_EQ(tok.encode("<s>hello</s>", true, true), with_bos);
  // Without parse_special the markup is plain text.
  const std::vector<TokenId> plain = tok.encode("<s>hello</s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(tok.decode(plain), " <s>hello</s>");
  // Special tokens render only on request.
  EXPECT_EQ(tok.decode(expected), " hello");
  EXPECT_EQ(tok.decode(expected, true), "<s> hello</s>");
}

TEST(Tokenizer, ParseSpecialBpe) {
  KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-gpt-2.gguf");
  const Tokenizer& tok = fixture_tokenizer("vocab/ggml-vocab-gpt-2.gguf");
  const std::vector<TokenId> a = tok.encode("Hello", false, false);
  const std::vector<TokenId> b = tok.encode(" world", false, false);
  std::vector<TokenId> expected = a;
  expected.push_back(50256);
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(tok.encode("Hello<|endoftext|> world", false, true), expected);
  const std::vector<TokenId> plain = tok.encode("Hello<|endoftext|> world", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok.decode(plain), "Hello<|endoftext|> world");
  EXPECT_EQ(tok.token_to_piece(50256), "");
  EXPECT_EQ(tok.token_to_piece(50256, true), "<|endoftext|>");
}

TEST(Tokenizer, Phi3UserDefinedTokensAreAlwaysSplit) {
  KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-phi-3.gguf");
  const Tokenizer& tok = fixture_tokenizer("vocab/ggml-vocab-phi-3.gguf");
  // "</s>" is a user-defined token in this vocab: split out even without parse_special, and (phi-3
  // rule) whitespace after it is dropped; the text after it gets the space prefix again.
  EXPECT_EQ(tok.token_kind(2), TokenKind::user_defined);
  const std::vector<TokenId> a = tok.encode("a", false, false);
  const std::vector<TokenId> b = tok.encode("b", false, false);
  std::vector<TokenId> expected = a;
  expected.push_back(2);
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(tok.encode("a</s>   b", false, false), expected);
  EXPECT_EQ(tok.token_to_piece(2), "</s>");
}

TEST(Tokenizer, EndOfGeneration) {
  REQUIRE_VOCAB_FIXTURES();
  const Tokenizer& spm = fixture_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_TRUE(spm.is_eog(2));
  EXPECT_FALSE(spm.is_eog(1));
  EXPECT_FALSE(spm.is_eog(-1));
  EXPECT_FALSE(spm.is_eog(100000));
  const Tokenizer& phi3 = fixture_tokenizer("vocab/ggml-vocab-phi-3.gguf");
  EXPECT_TRUE(phi3.is_eog(32000));  // eos <|endoftext|>
  TokenId end = -1;
  for (TokenId id = 0; id < phi3.n_vocab(); ++id) {
    if (phi3.token_text(id) == "<|end|>") end = id;
  }
  ASSERT_GE(end, 0);
  EXPECT_TRUE(phi3.is_eog(end));
  EXPECT_EQ(phi3.token_kind(end), TokenKind::control);
  const Tokenizer& gpt2 = fixture_tokenizer("vocab/ggml-vocab-gpt-2.gguf");
  EXPECT_TRUE(gpt2.is_eog(50256));
  EXPECT_FALSE(gpt2.is_eog(0));
}

TEST(Tokenizer, PiecesSpm) {
  KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-llama-spm.gguf");
  const Tokenizer& tok = fixture_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(tok.token_to_piece(15043), " Hello");
  EXPECT_EQ(tok.token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(tok.token_to_piece(1), "");
  EXPECT_EQ(tok.token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok.token_to_piece(0), "");  // <unk>
  EXPECT_EQ(tok.token_to_piece(0, true), "<unk>");
  EXPECT_EQ(tok.token_to_piece(-1), "");
  EXPECT_EQ(tok.token_to_piece(32000), "");
}

// ---- streaming ----------------------------------------------------------------------------------

TEST(Tokenizer, StreamDecoderHoldsSplitCharacters) {
  KANDIL_REQUIRE_FIXTURE("vocab/ggml-vocab-llama-spm.gguf");
  const Tokenizer& tok = fixture_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
  const std::vector<TokenId> ids = tok.encode("this is 🦙.cpp", false, false);
  // ▁this ▁is ▁ <0xF0> <0x9F> <0xA6> <0x99> .cpp
  ASSERT_EQ(ids, (std::vector<TokenId>{445, 338, 29871, 243, 162, 169, 156, 29889, 8223}));
  StreamDecoder dec(tok);
  std::vector<std::string> parts;
  for (TokenId id : ids) parts.push_back(dec.push(id));
  EXPECT_EQ(parts, (std::vector<std::string>{" this", " is", " ", "", "", "", "🦙", ".", "cpp"}));
  EXPECT_EQ(dec.flush(), "");
  // A character cut off at the end comes out of flush().
  StreamDecoder cut(tok);
  EXPECT_EQ(cut.push(243), "");
  EXPECT_EQ(cut.push(162), "");
  EXPECT_EQ(cut.flush(), "\xF0\x9F");
  EXPECT_EQ(cut.flush(), "");
}

// ---- in-memory vocabs (no fixtures needed) ------------------------------------------------------

const std::string kSp = "\xe2\x96\x81";  // ▁

// A small SentencePiece vocab: <unk> <s> </s>, the 256 byte tokens, then scored pieces.
GgufWriter tiny_spm(const std::vector<std::pair<std::string, float>>& pieces,
                    const std::vector<std::pair<std::string, int32_t>>& extra = {}) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    tokens.push_back(name);
    scores.push_back(0);
    types.push_back(6);
  }
  for (const auto& [text, score] : pieces) {
    tokens.push_back(text);
    scores.push_back(score);
    types.push_back(1);
  }
  for (const auto& [text, type] : extra) {
    tokens.push_back(text);
    scores.push_back(0);
    types.push_back(type);
  }
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_f32s("tokenizer.ggml.scores", scores);
  w.set_i32s("tokenizer.ggml.token_type", types);
  return w;
}

constexpr TokenId kFirstPiece = 259;

TEST(TokenizerInMemory, SpmMergesByScore) {
  // ids: 259 ▁, 260 a, 261 b, 262 c, 263 ab, 264 bc, 265 ▁a, 266 abc, 267 ▁ab
  GgufWriter w = tiny_spm({{kSp, -1},
                           {"a", -2},
                           {"b", -2},
                           {"c", -2},
                           {"ab", -5},
                           {"bc", -3},
                           {kSp + "a", -4},
                           {"abc", -6},
                           {kSp + "ab", -7}});
  auto tok = from_writer(w);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.kind(), TokenizerKind::spm);
  EXPECT_TRUE(t.add_bos());
  EXPECT_FALSE(t.add_eos());
  // "▁abc": best pair is "bc" (-3), then "▁a" (-4); "▁a"+"bc" is not a token.
  EXPECT_EQ(t.encode("abc", false, false), (std::vector<TokenId>{265, 264}));
  EXPECT_EQ(t.encode("abc", true, false), (std::vector<TokenId>{1, 265, 264}));
  // "ab": "▁a" (-4) beats "ab" (-5); then "▁a"+"b" = "▁ab".
  EXPECT_EQ(t.encode("ab", false, false), (std::vector<TokenId>{267}));
  // Ties go to the leftmost pair: "a a" -> ▁a ▁a.
  EXPECT_EQ(t.encode("a a", false, false), (std::vector<TokenId>{265, 265}));
  // Characters that are not tokens fall back to bytes: é = C3 A9.
  EXPECT_EQ(t.encode("é", false, false), (std::vector<TokenId>{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t.decode(t.encode("é abc", true, false)), " é abc");
  EXPECT_EQ(t.token_to_piece(265), " a");
  EXPECT_EQ(t.token_to_piece(3 + 'x'), "x");
}

TEST(TokenizerInMemory, SpmSpacePrefixAndSpecials) {
  GgufWriter w =
      tiny_spm({{kSp, -1}, {"a", -2}, {kSp + "a", -4}}, {{"<|x|>", 3}, {"<|x|>y", 4}, {"<u>", 4}});
  w.set_bool("tokenizer.ggml.add_space_prefix", false);
  w.set_bool("tokenizer.ggml.add_eos_token", true);
  auto tok = from_writer(w);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const Tokenizer& t = **tok;
  const TokenId x = kFirstPiece + 3, xy = kFirstPiece + 4, u = kFirstPiece + 5;
  EXPECT_EQ(t.encode("a", false, false), (std::vector<TokenId>{260}));
  EXPECT_EQ(t.encode("a", true, false), (std::vector<TokenId>{1, 260, 2}));
  // Longest special text first; control tokens only with parse_special, user-defined always.
  EXPECT_EQ(t.encode("<|x|>y", false, true), (std::vector<TokenId>{xy}));
  EXPECT_EQ(t.encode("a<|x|>a", false, true), (std::vector<TokenId>{260, x, 260}));
  EXPECT_EQ(t.encode("<u>a", false, false), (std::vector<TokenId>{u, 260}));
  const std::vector<TokenId> plain = t.encode("<|x|>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), x), 0);
  EXPECT_EQ(t.decode(plain), "<|x|>");
}

TEST(TokenizerInMemory, StreamDecoderWithByteTokens) {
  auto tok = from_writer(tiny_spm({{kSp, -1}}));
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const Tokenizer& t = **tok;
  // "ü€" = C3 BC E2 82 AC, all byte tokens.
  const std::vector<TokenId> ids = t.encode("ü€", false, false);
  ASSERT_EQ(ids, (std::vector<TokenId>{259, 3 + 0xC3, 3 + 0xBC, 3 + 0xE2, 3 + 0x82, 3 + 0xAC}));
  StreamDecoder dec(t);
  std::vector<std::string> parts;
  for (TokenId id : ids) parts.push_back(dec.push(id));
  EXPECT_EQ(parts, (std::vector<std::string>{" ", "", "ü", "", "", "€"}));
  EXPECT_EQ(dec.flush(), "");
  // Control tokens are silent unless asked for.
  StreamDecoder plain(t), special(t, true);
  EXPECT_EQ(plain.push(2), "");
  EXPECT_EQ(special.push(2), "</s>");
}

// GPT-2 byte characters: printable bytes are themselves, space is Ġ (U+0120).
const std::string kG = "\xc4\xa0";

GgufWriter tiny_bpe(const std::vector<std::string>& extra_tokens,
                    const std::vector<std::string>& merges, const std::string& pre = "gpt-2") {
  std::vector<std::string> tokens;
  // All 256 byte characters, in byte order (ids 0..255 = the byte's character).
  for (uint32_t b = 0, next = 256; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    const uint32_t cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xc0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3f));
    }
    tokens.push_back(s);
  }
  tokens.insert(tokens.end(), extra_tokens.begin(), extra_tokens.end());
  tokens.push_back("<|endoftext|>");
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_i32s("tokenizer.ggml.token_type", types);
  w.set_strings("tokenizer.ggml.merges", merges);
  w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(tokens.size() - 1));
  return w;
}

TEST(TokenizerInMemory, BpeMergesByRank) {
  // 256 he, 257 ll, 258 hell, 259 hello, 260 Ġw, 261 or, 262 Ġwor, 263 ld, 264 Ġworld
  GgufWriter w =
      tiny_bpe({"he", "ll", "hell", "hello", kG + "w", "or", kG + "wor", "ld", kG + "world"},
               {"h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"});
  auto tok = from_writer(w);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.kind(), TokenizerKind::bpe);
  EXPECT_EQ(t.encode("hello world", false, false), (std::vector<TokenId>{259, 264}));
  EXPECT_EQ(t.encode("hello world", true, false), (std::vector<TokenId>{259, 264}));
  // "hellhello": pre-tokenized as one word; leftmost "he" merges first at equal rank.
  EXPECT_EQ(t.encode("hellhello", false, false), (std::vector<TokenId>{258, 259}));
  // Unmergeable bytes stay single byte characters.
  EXPECT_EQ(t.encode("\n", false, false), (std::vector<TokenId>{'\n'}));
  for (std::string s : {"hello world", " x\n\ty  z", "Grüße, 世界! 🦙", "it's 1234"}) {
    EXPECT_EQ(t.decode(t.encode(s, false, false)), s);
  }
  // Invalid UTF-8 is read as U+FFFD, as llama.cpp does.
  EXPECT_EQ(t.decode(t.encode("a\xff", false, false)), "a\xef\xbf\xbd");
  const TokenId eot = t.n_vocab() - 1;
  EXPECT_TRUE(t.is_eog(eot));
  EXPECT_EQ(t.encode("x<|endoftext|>", false, true), (std::vector<TokenId>{'x', eot}));
}

TEST(TokenizerInMemory, BpePreTokenizers) {
  for (const char* pre :
       {"default", "llama-bpe",    "deepseek-llm", "deepseek-v3",  "deepseek-coder",
        "falcon",  "mpt",          "starcoder",    "refact",       "command-r",
        "smollm",  "codeshell",    "exaone",       "minerva-7b",   "gpt-2",
        "phi-2",   "jina-es",      "jina-de",      "jina-v2-code", "roberta-bpe",
        "qwen2",   "stablelm2",    "chatglm-bpe",  "viking",       "tekken",
        "jais",    "olmo",         "dbrx",         "smaug-bpe",    "poro-chat",
        "bloom",   "gpt3-finnish", "chameleon",    "megrez"}) {
    auto tok = from_writer(tiny_bpe({}, {}, pre));
    ASSERT_TRUE(tok.ok()) << pre << ": " << tok.error().message;
    const std::string s =
        "Hello, World! It's 12345 ünïcode\n\n  tabs\tand 世界 🦙 <sentinel:3>";
    EXPECT_EQ((*tok)->decode((*tok)->encode(s, false, false)), s) << pre;
    EXPECT_EQ((*tok)->pre(), pre);
  }
  // llama3 and tekken add BOS by default; chatglm has none.
  auto llama3 = from_writer(tiny_bpe({}, {}, "llama-bpe"));
  ASSERT_TRUE(llama3.ok());
  EXPECT_TRUE((*llama3)->add_bos());
  auto chatglm = from_writer(tiny_bpe({}, {}, "chatglm-bpe"));
  ASSERT_TRUE(chatglm.ok());
  EXPECT_EQ((*chatglm)->bos(), -1);
}

// ---- pre-tokenizer regexes ---------------------------------------------------------------------

std::vector<std::string> split_with(const std::string& pre, const std::string& text) {
  auto spec = tok::pre_tokenizer_spec(pre);
  EXPECT_TRUE(spec.has_value()) << pre;
  if (!spec) return {};
  auto splitter = tok::RegexSplitter::compile(spec->patterns);
  EXPECT_TRUE(splitter.ok()) << splitter.error().message;
  if (!splitter.ok()) return {};
  std::vector<std::pair<size_t, size_t>> pieces;
  splitter->split(text, pieces);
  std::vector<std::string> out;
  for (const auto& [offset, length] : pieces) out.push_back(text.substr(offset, length));
  return out;
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(split_with("gpt-2", "Hello world  !! it's 123"),
            (Pieces{"Hello", " world", " ", " !!", " it", "'s", " 123"}));
  EXPECT_EQ(split_with("gpt-2", "a   "), (Pieces{"a", "   "}));
  EXPECT_EQ(split_with("gpt-2", " \n b"), (Pieces{" \n", " b"}));
  EXPECT_TRUE(split_with("gpt-2", "").empty());
  // llama.cpp's whitespace is Unicode White_Space: U+0085 and U+3000 are, U+180E is not.
  EXPECT_EQ(split_with("gpt-2", "\u180e\u180ea"), (Pieces{"\u180e\u180e", "a"}));
  EXPECT_EQ(split_with("gpt-2", "\u3000\u3000a"), (Pieces{"\u3000", "\u3000", "a"}));
  EXPECT_EQ(split_with("gpt-2", "a\u0085\u0085b"), (Pieces{"a", "\u0085", "\u0085", "b"}));
}

TEST(PreTokenizer, Llama3) {
  EXPECT_EQ(split_with("llama-bpe", "I'M 12345 x\n\n  y"),
            (Pieces{"I", "'M", " ", "123", "45", " x", "\n\n", " ", " y"}));
  // The case-insensitive contractions are ASCII only: no "'ſ" for "'s".
  EXPECT_EQ(split_with("llama-bpe", "it's 'ſ"), (Pieces{"it", "'s", " '", "ſ"}));
}

TEST(PreTokenizer, DeepseekLists) {
  EXPECT_EQ(split_with("deepseek-coder", "foo(1, 23)\n"),
            (Pieces{"foo", "(", "1", ",", " ", "2", "3", ")", "\n"}));
  // Each regex splits the pieces of the one before: ASCII letters are split off again by
  // "[!-/:-~...]", and "[...\u0800-\u4e00...]+" takes most non-Latin/Greek/Cyrillic letters.
  EXPECT_EQ(split_with("deepseek-llm", "µÀ Καλημέρα"), (Pieces{"µÀ", " Καλημέρα"}));
  EXPECT_EQ(split_with("deepseek-llm", "ab\u00e9\u212a"), (Pieces{"ab", "\u00e9", "\u212a"}));
  EXPECT_EQ(split_with("deepseek-llm", "x  \n"), (Pieces{"x", "  ", "\n"}));
}

TEST(PreTokenizer, Tekken) {
  EXPECT_EQ(split_with("tekken", "HelloWorld ABCdef éÉ"),
            (Pieces{"Hello", "World", " ABCdef", " éÉ"}));
}

TEST(PreTokenizer, UnknownName) { EXPECT_FALSE(tok::pre_tokenizer_spec("no-such").has_value()); }

TEST(PreTokenizer, ValidUtf8) {
  EXPECT_EQ(tok::to_valid_utf8("ok é"), "ok é");
  EXPECT_EQ(tok::to_valid_utf8("a\xff"), "a\xef\xbf\xbd");
  EXPECT_EQ(tok::to_valid_utf8("\xe2\x82"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(tok::to_valid_utf8("\xc1\x81"), "A");  // overlong forms are read as llama.cpp does
}

// ---- bad metadata -------------------------------------------------------------------------------

void expect_error(const GgufWriter& w, const std::string& needle) {
  auto tok = from_writer(w, "bad.gguf");
  ASSERT_FALSE(tok.ok()) << "expected an error mentioning '" << needle << "'";
  const std::string& msg = tok.error().message;
  EXPECT_EQ(msg.rfind("bad.gguf: ", 0), 0u) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

TEST(TokenizerBadMetadata, MissingAndUnknown) {
  GgufWriter none;
  none.set_string("general.architecture", "llama");
  expect_error(none, "tokenizer.ggml.model missing");

  GgufWriter no_tokens;
  no_tokens.set_string("tokenizer.ggml.model", "llama");
  expect_error(no_tokens, "tokenizer.ggml.tokens missing");

  GgufWriter empty;
  empty.set_string("tokenizer.ggml.model", "llama");
  empty.set_strings("tokenizer.ggml.tokens", {});
  expect_error(empty, "tokenizer.ggml.tokens is empty");

  GgufWriter wrong_type;
  wrong_type.set_string("tokenizer.ggml.model", "llama");
  wrong_type.set_i32s("tokenizer.ggml.tokens", {1, 2, 3});
  expect_error(wrong_type, "tokenizer.ggml.tokens");

  GgufWriter t5 = tiny_spm({});
  t5.set_string("tokenizer.ggml.model", "t5");
  expect_error(t5, "Unigram not supported yet");

  GgufWriter bert = tiny_spm({{"a", 0}});
  bert.set_string("tokenizer.ggml.model", "bert");
  bert.set_i32("tokenizer.ggml.cls_token_id", 1000000);
  expect_error(bert, "tokenizer.ggml.cls_token_id = 1000000 is out of range");

  GgufWriter unknown = tiny_spm({});
  unknown.set_string("tokenizer.ggml.model", "sentencepiece-9000");
  expect_error(unknown, "unknown tokenizer");

  expect_error(tiny_bpe({}, {}, "no-such-pre"), "unknown pre-tokenizer");
}

TEST(TokenizerBadMetadata, ArrayLengths) {
  GgufWriter scores = tiny_spm({{"a", -1}});
  scores.set_f32s("tokenizer.ggml.scores", {0.0f, 1.0f});
  expect_error(scores, "tokenizer.ggml.scores has 2 entries");

  GgufWriter types = tiny_spm({{"a", -1}});
  types.set_i32s("tokenizer.ggml.token_type", {1});
  expect_error(types, "tokenizer.ggml.token_type has 1 entries");

  GgufWriter string_scores = tiny_spm({});
  string_scores.set_strings("tokenizer.ggml.scores", {"x"});
  expect_error(string_scores, "tokenizer.ggml.scores");
}

TEST(TokenizerBadMetadata, SpecialIds) {
  GgufWriter bos = tiny_spm({});
  bos.set_u32("tokenizer.ggml.bos_token_id", 100000);
  expect_error(bos, "tokenizer.ggml.bos_token_id = 100000 is out of range");

  GgufWriter eos = tiny_spm({});
  eos.set_i32("tokenizer.ggml.eos_token_id", -5);
  expect_error(eos, "tokenizer.ggml.eos_token_id");

  GgufWriter eot = tiny_spm({});
  eot.set_u32("tokenizer.ggml.eot_token_id", 259);
  expect_error(eot, "tokenizer.ggml.eot_token_id");

  GgufWriter unk = tiny_spm({});
  unk.set_string("tokenizer.ggml.unknown_token_id", "zero");
  expect_error(unk, "tokenizer.ggml.unknown_token_id");

  // 0xFFFFFFFF means "none" in many converted files: the default stays, as in llama.cpp.
  GgufWriter none = tiny_spm({});
  none.set_u32("tokenizer.ggml.bos_token_id", 0xFFFFFFFFu);
  auto tok = from_writer(none);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ((*tok)->bos(), 1);
}

TEST(TokenizerBadMetadata, Merges) {
  GgufWriter copy;  // gpt2 without the merges key
  copy.set_string("tokenizer.ggml.model", "gpt2");
  copy.set_strings("tokenizer.ggml.tokens", {"a", "b"});
  expect_error(copy, "tokenizer.ggml.merges missing");

  expect_error(tiny_bpe({"he"}, {"h e", "x yz"}),
               "tokenizer.ggml.merges[1] = 'x yz': 'yz' is not a token");
  expect_error(tiny_bpe({"he"}, {"q z"}), "the merged text 'qz' is not a token");
  expect_error(tiny_bpe({"he"}, {"he"}), "expected two tokens separated by a space");
}

// ---- large inputs -------------------------------------------------------------------------------
// 1 MiB inputs, including single huge "words", must tokenize correctly (merges use priority
// queues, so this stays fast; speed itself is measured by bench/, never asserted here).

TEST(TokenizerLargeInput, OneMegabyteRoundTrips) {
  REQUIRE_VOCAB_FIXTURES();
  std::string mixed;
  const std::vector<VocabCase> cases = read_vectors("vocab/ggml-vocab-gpt-2.gguf");
  while (mixed.size() < (1u << 20)) {
    for (const VocabCase& c : cases) mixed += c.text + "\n";
  }
  const std::vector<std::string> inputs = {mixed, std::string(1u << 20, 'a'),
                                           std::string(1u << 20, ' '), std::string(1u << 20, '\n')};
  for (const char* name : {"vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-llama-spm.gguf",
                           "vocab/ggml-vocab-deepseek-coder.gguf"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    const bool spm = tok.kind() == TokenizerKind::spm;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::vector<TokenId> ids = tok.encode(inputs[i], false, false);
      ASSERT_FALSE(ids.empty());
      EXPECT_LE(ids.size(), inputs[i].size() + 1) << name << " input " << i;  // + the SPM prefix
      // SPM prepends one space; byte-level BPE reproduces the text exactly.
      EXPECT_EQ(tok.decode(ids), spm ? " " + inputs[i] : inputs[i]) << name << " input " << i;
    }
  }
}

TEST(TokenizerLargeInput, ManySpecialTokens) {
  std::vector<std::pair<std::string, int32_t>> specials;
  for (int i = 0; i < 5000; ++i) specials.emplace_back("<ctl_" + std::to_string(i) + ">", 3);
  auto tok = from_writer(tiny_spm({{kSp, -1}, {"a", -2}, {kSp + "a", -3}}, specials));
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  std::string text;
  while (text.size() < (1u << 20)) text += "a a<ctl_42>a ";
  const std::vector<TokenId> ids = (*tok)->encode(text, false, true);
  const TokenId ctl42 = kFirstPiece + 3 + 42;
  ASSERT_GE(ids.size(), 4u);
  // "▁a" "▁a" <ctl_42> "▁a": text after a special token gets the space prefix again.
  EXPECT_EQ(std::vector<TokenId>(ids.begin(), ids.begin() + 4),
            (std::vector<TokenId>{261, 261, ctl42, 261}));
}

}  // namespace
}  // namespace kandil
