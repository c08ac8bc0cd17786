// tokenizer.json: small hand-written documents for each component (normalizers, pre-tokenizers,
// BPE / WordPiece / Unigram models, post-processors, decoders, added tokens), the folder loader,
// and malformed input. Expected values follow tokenizers.js (@huggingface/transformers).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kandil/tokenizer.h"
#include "test_util.h"
#include "tokenizer/hf_tokenizer.h"

namespace kandil {
namespace {

using json = nlohmann::json;
using Ids = std::vector<TokenId>;
using tok::hf::Pieces;

std::unique_ptr<Tokenizer> load(const json& j, const json& config = nullptr) {
  auto t = Tokenizer::from_tokenizer_json_text(j.dump(), config.is_null() ? "" : config.dump());
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return t.ok() ? std::move(*t) : nullptr;
}

std::string load_error(const std::string& text) {
  auto t = Tokenizer::from_tokenizer_json_text(text, "", "bad.json");
  EXPECT_FALSE(t.ok());
  return t.ok() ? "" : t.error().message;
}

json wordpiece_model(const json& vocab) {
  return {{"type", "WordPiece"},
          {"unk_token", "[UNK]"},
          {"continuing_subword_prefix", "##"},
          {"max_input_chars_per_word", 100},
          {"vocab", vocab}};
}

// A document with only a normalizer / pre-tokenizer, for testing the component itself.
std::unique_ptr<tok::hf::Spec> spec_with(const char* key, const json& component) {
  json j = {{"model", wordpiece_model({{"[UNK]", 0}})}};
  j[key] = component;
  auto s = tok::hf::parse(j.dump(), "", "test.json");
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return s.ok() ? std::move(*s) : nullptr;
}

std::string normalize(const json& n, const std::string& text) {
  auto s = spec_with("normalizer", n);
  return s ? s->normalizer->apply(text) : "<error>";
}

Pieces pre_tokenize(const json& p, const std::string& text, size_t section = 0) {
  auto s = spec_with("pre_tokenizer", p);
  Pieces pieces{text};
  if (s) s->pre_tokenizer->apply(pieces, section);
  return pieces;
}

json literal(const std::string& s) { return {{"String", s}}; }
json regex(const std::string& s) { return {{"Regex", s}}; }

// ---- normalizers --------------------------------------------------------------------------------

TEST(HfNormalizer, UnicodeForms) {
  EXPECT_EQ(normalize({{"type", "NFC"}}, "e\u0301"), "\u00e9");
  EXPECT_EQ(normalize({{"type", "NFD"}}, "\u00e9"), "e\u0301");
  EXPECT_EQ(normalize({{"type", "NFKC"}}, "\ufb01 \uff28\u2460"), "fi H1");
  EXPECT_EQ(normalize({{"type", "NFKD"}}, "\u00e9\ufb01"), "e\u0301fi");
}

TEST(HfNormalizer, CaseAccentsReplacePrependStrip) {
  EXPECT_EQ(normalize({{"type", "Lowercase"}}, "HeLLo \u00c9\u0130 \u039f\u0394\u039f\u03a3"),
            "hello \u00e9i\u0307 \u03bf\u03b4\u03bf\u03c2");
  EXPECT_EQ(normalize({{"type", "StripAccents"}}, "e\u0301a\u0300"), "ea");
  json seq = {{"type", "Sequence"},
              {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}}}};
  EXPECT_EQ(normalize(seq, "caf\u00e9"), "cafe");
  EXPECT_EQ(
      normalize({{"type", "Replace"}, {"pattern", literal(" ")}, {"content", "\u2581"}}, "a b  c"),
      "a\u2581b\u2581\u2581c");
  EXPECT_EQ(
      normalize({{"type", "Replace"}, {"pattern", regex("\\d+")}, {"content", "#"}}, "a12b345"),
      "a#b#");
  EXPECT_EQ(normalize({{"type", "Prepend"}, {"prepend", "\u2581"}}, "x"), "\u2581x");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, " \tx \n"),
            "x");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, " x "),
            " x");
  EXPECT_EQ(
      normalize({{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}}, "a\tb\u00a0\ufb01"),
      "a b fi");
}

TEST(HfNormalizer, Bert) {
  json bert = {{"type", "BertNormalizer"},
               {"clean_text", true},
               {"handle_chinese_chars", true},
               {"strip_accents", nullptr},
               {"lowercase", true}};
  EXPECT_EQ(normalize(bert, "H\u00e9llo\tW\u00f6rld\x01\u4e2d\u6587"),
            "hello world \u4e2d  \u6587 ");
  bert["lowercase"] = false;
  EXPECT_EQ(normalize(bert, "H\u00e9llo"), "H\u00e9llo");
  bert["strip_accents"] = true;
  EXPECT_EQ(normalize(bert, "H\u00e9llo"), "Hello");
}

// ---- pre-tokenizers -----------------------------------------------------------------------------

TEST(HfPreTokenizer, SplitRegexIsolated) {
  const std::string llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  json split = {
      {"type", "Split"}, {"pattern", regex(llama3)}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_EQ(pre_tokenize(split, "Hello  world12345 I'VE"),
            (Pieces{"Hello", " ", " world", "123", "45", " I", "'VE"}));
  json removed = {{"type", "Split"}, {"pattern", literal(" ")}, {"behavior", "Removed"}};
  EXPECT_EQ(pre_tokenize(removed, "a b  c"), (Pieces{"a", "b", "c"}));
  json invert = {
      {"type", "Split"}, {"pattern", regex("\\d")}, {"behavior", "Isolated"}, {"invert", true}};
  EXPECT_EQ(pre_tokenize(invert, "a1b22"), (Pieces{"1", "2", "2"}));
}

TEST(HfPreTokenizer, SimpleSplitters) {
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "a12b"),
            (Pieces{"a", "1", "2", "b"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "a12b"),
            (Pieces{"a", "12", "b"}));
  EXPECT_EQ(pre_tokenize({{"type", "Punctuation"}}, "hi!!there"), (Pieces{"hi", "!!", "there"}));
  EXPECT_EQ(pre_tokenize({{"type", "WhitespaceSplit"}}, " a  b\t"), (Pieces{"a", "b"}));
  EXPECT_EQ(pre_tokenize({{"type", "Whitespace"}}, "a.b c_d"), (Pieces{"a", ".", "b", "c_d"}));
  EXPECT_EQ(pre_tokenize({{"type", "BertPreTokenizer"}}, " Hello, w\u00f6rld!! "),
            (Pieces{"Hello", ",", "w\u00f6rld", "!", "!"}));
  EXPECT_EQ(pre_tokenize({{"type", "FixedLength"}, {"length", 2}}, "abcde"),
            (Pieces{"ab", "cd", "e"}));
  EXPECT_EQ(pre_tokenize({{"type", "Replace"}, {"pattern", literal("a")}, {"content", "b"}}, "aXa"),
            (Pieces{"bXb"}));
}

TEST(HfPreTokenizer, MetaspaceAndByteLevel) {
  json meta = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}};
  EXPECT_EQ(pre_tokenize(meta, "a b", 0), (Pieces{"\u2581a\u2581b"}));
  EXPECT_EQ(pre_tokenize(meta, "a b", 1), (Pieces{"a\u2581b"}));
  meta["prepend_scheme"] = "never";
  EXPECT_EQ(pre_tokenize(meta, "a", 0), (Pieces{"a"}));
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  EXPECT_EQ(pre_tokenize(bl, "hi you\n"), (Pieces{"\u0120hi", "\u0120you", "\u010a"}));
  json seq = {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "WhitespaceSplit"}}, {{"type", "Digits"}, {"individual_digits", true}}}}};
  EXPECT_EQ(pre_tokenize(seq, "ab12 c"), (Pieces{"ab", "1", "2", "c"}));
}

// ---- models, post-processors, decoders ----------------------------------------------------------

TEST(HfTokenizer, ByteLevelBpe) {
  json j = {
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", 10}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}}}},
      {"model",
       {{"type", "BPE"},
        {"vocab",
         {{"h", 0},
          {"e", 1},
          {"l", 2},
          {"o", 3},
          {"\u0120", 4},
          {"he", 5},
          {"ll", 6},
          {"llo", 7},
          {"hello", 8},
          {"\u0120hello", 9}}},
        {"merges", {"h e", "l l", "ll o", "he llo", "\u0120 hello"}}}}};
  auto t = load(j);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind(), TokenizerKind::hf_bpe);
  EXPECT_EQ(t->encode("hello hello", true, true), (Ids{8, 9}));
  EXPECT_EQ(t->encode("hello<|end|>", true, true), (Ids{8, 10}));
  EXPECT_EQ(t->encode("hel", true, true), (Ids{5, 2}));
  EXPECT_EQ(t->decode({8, 9, 10}, false), "hello hello");
  EXPECT_EQ(t->decode({8, 9, 10}, true), "hello hello<|end|>");
  EXPECT_EQ(t->token_to_piece(9), " hello");
  EXPECT_TRUE(t->is_eog(10));
  // Unknown characters with neither unk token nor byte fallback are dropped, as in tokenizers.js.
  EXPECT_EQ(t->encode("hex", false, true), (Ids{5}));
  // Merges are cached: the same word twice gives the same result.
  EXPECT_EQ(t->encode("hello hello hello", false, true), (Ids{8, 9, 9}));
}

TEST(HfTokenizer, SentencePieceBpeWithByteFallback) {
  json vocab = {{"<unk>", 0},   {"<s>", 1},    {"</s>", 2},   {"\u2581", 3}, {"a", 4},
                {"\u2581a", 5}, {"<0xE2>", 6}, {"<0x82>", 7}, {"<0xAC>", 8}};
  json j = {{"normalizer",
             {{"type", "Sequence"},
              {"normalizers",
               {{{"type", "Prepend"}, {"prepend", "\u2581"}},
                {{"type", "Replace"}, {"pattern", literal(" ")}, {"content", "\u2581"}}}}}},
            {"post_processor",
             {{"type", "TemplateProcessing"},
              {"single",
               {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
            {"decoder",
             {{"type", "Sequence"},
              {"decoders",
               {{{"type", "Replace"}, {"pattern", literal("\u2581")}, {"content", " "}},
                {{"type", "ByteFallback"}},
                {{"type", "Fuse"}},
                {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
            {"added_tokens",
             {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
              {{"id", 1}, {"content", "<s>"}, {"special", true}},
              {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
            {"model",
             {{"type", "BPE"},
              {"unk_token", "<unk>"},
              {"byte_fallback", true},
              {"fuse_unk", true},
              {"vocab", vocab},
              {"merges", json::array({json::array({"\u2581", "a"})})}}}};
  auto t = load(j, {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->bos(), 1);
  EXPECT_EQ(t->eos(), 2);
  EXPECT_TRUE(t->add_bos());
  EXPECT_FALSE(t->add_eos());
  EXPECT_EQ(t->encode("a\u20ac", true, true), (Ids{1, 5, 6, 7, 8}));
  EXPECT_EQ(t->encode("a\u20ac", false, true), (Ids{5, 6, 7, 8}));
  EXPECT_EQ(t->encode("aq", false, true), (Ids{5, 0}));  // 'q' has no byte token
  EXPECT_EQ(t->decode({1, 5, 6, 7, 8}, false), "a\u20ac");
  EXPECT_EQ(t->token_to_piece(6), "\xe2");
  EXPECT_EQ(t->token_to_piece(5), " a");
  EXPECT_EQ(t->token_kind(6), TokenKind::byte);
  EXPECT_EQ(t->token_kind(1), TokenKind::control);
  // parse_special = false: "<s>" in the text is plain text.
  EXPECT_EQ(t->encode("<s>", false, true), (Ids{1}));
  EXPECT_NE(t->encode("<s>", false, false), (Ids{1}));
  StreamDecoder stream(*t);
  std::string streamed = stream.push(5);
  streamed += stream.push(6);
  EXPECT_EQ(streamed, " a");
  streamed += stream.push(7);
  streamed += stream.push(8);
  EXPECT_EQ(streamed, " a\u20ac");
}

TEST(HfTokenizer, BertWordPiece) {
  json vocab = {{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2},  {"[SEP]", 3},
                {"hello", 4}, {"world", 5}, {"##s", 6},    {",", 7},
                {"!", 8},     {"un", 9},    {"##aff", 10}, {"##able", 11}};
  json j = {{"normalizer", {{"type", "BertNormalizer"}, {"lowercase", true}}},
            {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
            {"post_processor",
             {{"type", "BertProcessing"}, {"cls", {"[CLS]", 2}}, {"sep", {"[SEP]", 3}}}},
            {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
            {"added_tokens",
             {{{"id", 1}, {"content", "[UNK]"}, {"special", true}},
              {{"id", 2}, {"content", "[CLS]"}, {"special", true}},
              {{"id", 3}, {"content", "[SEP]"}, {"special", true}}}},
            {"model", wordpiece_model(vocab)}};
  auto t = load(j);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind(), TokenizerKind::hf_wordpiece);
  const Ids ids = t->encode("H\u00e9llo, Worlds! unaffable \u4e2d", true, true);
  EXPECT_EQ(ids, (Ids{2, 4, 7, 5, 6, 8, 9, 10, 11, 1, 3}));
  EXPECT_EQ(t->decode(ids, false), "hello, worlds! unaffable");
  EXPECT_EQ(t->decode(ids, true), "[CLS] hello, worlds! unaffable [UNK] [SEP]");
  EXPECT_EQ(t->token_to_piece(6), "s");
  EXPECT_EQ(t->token_to_piece(5), " world");
  EXPECT_EQ(t->bos(), 2);
  EXPECT_EQ(t->eos(), 3);
  EXPECT_EQ(t->unk(), 1);
  EXPECT_EQ(t->encode(std::string(101, 'a'), false, true), (Ids{1}));  // over max chars
}

TEST(HfTokenizer, UnigramViterbi) {
  json j = {{"pre_tokenizer",
             {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}}},
            {"decoder", {{"type", "Metaspace"}, {"replacement", "\u2581"}}},
            {"model",
             {{"type", "Unigram"},
              {"unk_id", 0},
              {"vocab", json::array({json::array({"<unk>", 0.0}), json::array({"\u2581", -1.0}),
                                     json::array({"a", -2.0}), json::array({"b", -2.0}),
                                     json::array({"ab", -1.5}), json::array({"\u2581ab", -1.0}),
                                     json::array({"\u2581a", -3.0})})}}}};
  auto t = load(j);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind(), TokenizerKind::hf_unigram);
  EXPECT_EQ(t->encode("ab ab", false, true), (Ids{5, 5}));
  EXPECT_EQ(t->encode("abc", false, true), (Ids{5, 0}));
  EXPECT_EQ(t->encode("cc", false, true), (Ids{1, 0}));  // unknown run fused into one <unk>
  EXPECT_EQ(t->encode("ba", false, true), (Ids{1, 3, 2}));
  EXPECT_EQ(t->decode({5, 5}, false), "ab ab");
}

TEST(HfTokenizer, RobertaBpeDecoderEndOfWordAndConfigOptions) {
  json j = {
      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
      {"post_processor",
       {{"type", "Sequence"},
        {"processors",
         {{{"type", "ByteLevel"}},
          {{"type", "RobertaProcessing"}, {"cls", {"<s>", 0}}, {"sep", {"</s>", 1}}}}}}},
      {"decoder", {{"type", "BPEDecoder"}, {"suffix", "</w>"}}},
      {"added_tokens",
       {{{"id", 0}, {"content", "<s>"}, {"special", true}},
        {{"id", 1}, {"content", "</s>"}, {"special", true}}}},
      {"model",
       {{"type", "BPE"},
        {"end_of_word_suffix", "</w>"},
        {"vocab",
         {{"<s>", 0}, {"</s>", 1}, {"a", 2}, {"b", 3}, {"b</w>", 4}, {"ab</w>", 5}, {"a</w>", 6}}},
        {"merges", {"a b</w>"}}}}};
  auto t = load(j, {{"remove_space", true}});
  ASSERT_TRUE(t);
  const Ids ids = t->encode("  ab   a  b ", true, true);
  EXPECT_EQ(ids, (Ids{0, 5, 6, 4, 1}));
  EXPECT_EQ(t->decode(ids, true), "<s>ab a b </s>");
  EXPECT_EQ(t->decode(ids, false), "ab a b");
  EXPECT_EQ(t->token_to_piece(5), "ab ");

  json ctc = {
      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
      {"decoder",
       {{"type", "CTC"}, {"pad_token", "<pad>"}, {"word_delimiter_token", "|"}, {"cleanup", true}}},
      {"model",
       {{"type", "BPE"},
        {"continuing_subword_suffix", "@@"},
        {"vocab", {{"<pad>", 0}, {"|", 1}, {"h", 2}, {"i", 3}, {"h@@", 4}, {"i@@", 5}}},
        {"merges", json::array()}}}};
  t = load(ctc, {{"do_lowercase_and_remove_accent", true}});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("H\u00cd hi", true, true), (Ids{4, 4, 3}));
  EXPECT_EQ(t->decode({2, 2, 0, 3, 1, 1, 2, 3}, false), "hi hi");
}

TEST(HfTokenizer, AddedTokensStripAndNormalized) {
  json j = {
      {"normalizer", {{"type", "Lowercase"}}},
      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
      {"added_tokens",
       {{{"id", 3}, {"content", "<MASK>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}},
        {{"id", 4}, {"content", "Foo"}, {"special", false}, {"normalized", true}}}},
      {"model", wordpiece_model({{"[UNK]", 0}, {"a", 1}, {"b", 2}})}};
  auto t = load(j);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("a  <MASK>  b", false, true), (Ids{1, 3, 2}));
  // A normalized added token matches after normalization ("FOO" -> "foo").
  EXPECT_EQ(t->encode("a FOO b", false, true), (Ids{1, 4, 2}));
  EXPECT_EQ(t->token_kind(4), TokenKind::user_defined);
  EXPECT_EQ(t->token_text(3), "<MASK>");
}

TEST(HfTokenizer, FromHfDirReadsConfigAndGenerationConfig) {
  const auto dir = std::filesystem::temp_directory_path() / "kandil_hf_dir_test";
  std::filesystem::create_directories(dir);
  json j = {{"added_tokens",
             {{{"id", 1}, {"content", "<eos>"}, {"special", true}},
              {{"id", 2}, {"content", "<end_of_turn>"}, {"special", true}},
              {{"id", 3}, {"content", "<stop>"}, {"special", true}}}},
            {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
            {"model", wordpiece_model({{"[UNK]", 0}, {"x", 4}})}};
  std::ofstream(dir / "tokenizer.json") << j.dump();
  std::ofstream(dir / "tokenizer_config.json")
      << json{{"eos_token", {{"content", "<eos>"}}}}.dump();
  std::ofstream(dir / "generation_config.json") << json{{"eos_token_id", {1, 3}}}.dump();
  std::ofstream(dir / "config.json") << json{{"eos_token_id", 1}}.dump();
  auto t = Tokenizer::from_hf_dir(dir.string());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ((*t)->eos(), 1);
  EXPECT_TRUE((*t)->is_eog(1));
  EXPECT_TRUE((*t)->is_eog(2));  // <end_of_turn> by its text
  EXPECT_TRUE((*t)->is_eog(3));  // generation_config.json
  EXPECT_FALSE((*t)->is_eog(4));
  std::ofstream(dir / "generation_config.json") << "{\"eos_token_id\": \"x\"}";
  auto bad = Tokenizer::from_hf_dir(dir.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("generation_config.json"), std::string::npos);
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(Tokenizer::from_hf_dir(dir.string()).ok());
  EXPECT_FALSE(Tokenizer::from_tokenizer_json((dir / "tokenizer.json").string()).ok());
}

// ---- malformed input ----------------------------------------------------------------------------

TEST(HfTokenizer, MalformedInputIsAClearError) {
  EXPECT_NE(load_error("{\"model\": ").find("bad.json: invalid JSON at byte"), std::string::npos);
  EXPECT_NE(load_error("[]").find("expected a JSON object"), std::string::npos);
  // A number too large for a double is a clear error, not an escaping exception (fuzzer find).
  EXPECT_NE(load_error("{\"model\": {\"type\": 7e7777}}").find("bad.json: invalid JSON"),
            std::string::npos);
  EXPECT_NE(load_error("{}").find("missing \"model\""), std::string::npos);
  const json model = wordpiece_model({{"[UNK]", 0}});
  EXPECT_NE(load_error(json{{"model", model},
                            {"normalizer",
                             {{"type", "Sequence"},
                              {"normalizers", {{{"type", "NFC"}}, {{"type", "Bogus"}}}}}}}
                           .dump())
                .find("normalizer.normalizers[1].type: unknown normalizer type 'Bogus'"),
            std::string::npos);
  EXPECT_NE(
      load_error(json{{"model", model},
                      {"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}}}}
                     .dump())
          .find("pre_tokenizer.pattern.Regex: regex does not compile"),
      std::string::npos);
  EXPECT_NE(
      load_error(json{{"model", {{"type", "BPE"}, {"vocab", {{"a", -1}}}, {"merges", {}}}}}.dump())
          .find("model.vocab[\"a\"]"),
      std::string::npos);
  EXPECT_NE(
      load_error(
          json{{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", {"ab"}}}}}.dump())
          .find("model.merges[0]"),
      std::string::npos);
  EXPECT_NE(load_error(json{{"model", model}, {"added_tokens", {{{"id", 1}}}}}.dump())
                .find("added_tokens[0]: missing \"content\""),
            std::string::npos);
  EXPECT_NE(load_error(json{{"model", {{"type", "Unigram"}, {"vocab", {{"a"}}}}}}.dump())
                .find("model.vocab[0]"),
            std::string::npos);
  EXPECT_NE(load_error(json{{"model", wordpiece_model({{"[UNK]", 0}, {"x", 9000000}})}}.dump())
                .find("token ids are not dense"),
            std::string::npos);
  EXPECT_NE(load_error(json{{"model", {{"type", "Magic"}, {"vocab", json::object()}}}}.dump())
                .find("unknown model type 'Magic'"),
            std::string::npos);
  EXPECT_NE(
      load_error(json{{"model", model}, {"decoder", {{"type", "Strip"}, {"start", "x"}}}}.dump())
          .find("decoder.start: expected an integer"),
      std::string::npos);
  EXPECT_NE(load_error(json{{"model", model},
                            {"post_processor", {{"type", "TemplateProcessing"}, {"single", {1}}}}}
                           .dump())
                .find("post_processor.single[0]"),
            std::string::npos);
}

TEST(HfTokenizer, CliTokenizeWithTokenizerJson) {
  const auto dir = std::filesystem::temp_directory_path() / "kandil_hf_cli_test";
  std::filesystem::create_directories(dir);
  json j = {{"normalizer", {{"type", "Lowercase"}}},
            {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
            {"model", wordpiece_model({{"[UNK]", 0}, {"a", 1}, {"b", 2}})}};
  std::ofstream(dir / "tokenizer.json") << j.dump();
  auto r = testing::run_kandil("tokenize --tokenizer " + (dir / "tokenizer.json").string() +
                               " --ids 'A b c'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 2 0\n");
  r = testing::run_kandil("tokenize --tokenizer " + dir.string() + " --json 'b'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\":[2]}\n");
  std::ofstream(dir / "tokenizer.json") << "{\"model\": 1}";
  r = testing::run_kandil("tokenize --tokenizer " + dir.string() + " x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tokenizer.json: model: expected an object"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kandil
