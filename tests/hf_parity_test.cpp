// tokenizer.json parity with @huggingface/transformers: tests/js/tokenizers/parity.sh writes the
// reference tokenizations (NAME.jsonl) and a manifest (NAME <tab> tokenizer folder) into
// $KANDIL_HF_PARITY_DIR and runs these tests; without that variable they skip.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "kandil/tokenizer.h"

namespace kandil {
namespace {

std::string ids_text(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

TEST(HfParity, IdsAndDecodeMatchTransformersJs) {
  const char* dir = std::getenv("KANDIL_HF_PARITY_DIR");
  if (!dir || !*dir) {
    GTEST_SKIP() << "KANDIL_HF_PARITY_DIR not set: run tests/js/tokenizers/parity.sh (CTest "
                    "tokenizer_json_parity) for the comparison with @huggingface/transformers";
  }
  std::ifstream manifest(std::string(dir) + "/manifest.tsv");
  ASSERT_TRUE(manifest) << dir << "/manifest.tsv missing";
  size_t total_cases = 0, total_tokenizers = 0;
  for (std::string line; std::getline(manifest, line);) {
    const size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string name = line.substr(0, tab), folder = line.substr(tab + 1);
    auto tok = Tokenizer::from_hf_dir(folder);
    ASSERT_TRUE(tok.ok()) << name << ": " << tok.error().message;
    std::ifstream ref(std::string(dir) + "/" + name + ".jsonl");
    ASSERT_TRUE(ref) << name << ".jsonl missing";
    size_t cases = 0, ids_ok = 0, plain_ok = 0, dec_ok = 0, dec_special_ok = 0, reported = 0;
    for (std::string l; std::getline(ref, l);) {
      if (l.empty()) continue;
      const auto j = nlohmann::json::parse(l);
      const std::string text = j["text"].get<std::string>();
      const auto want = j["ids"].get<std::vector<TokenId>>();
      const auto want_plain = j["ids_plain"].get<std::vector<TokenId>>();
      const auto want_dec = j["decoded"].get<std::string>();
      const auto want_dec_special = j["decoded_special"].get<std::string>();
      ++cases;
      const std::vector<TokenId> got = (*tok)->encode(text, true, true);
      const std::vector<TokenId> got_plain = (*tok)->encode(text, false, true);
      const std::string dec = got_plain.empty() ? "" : (*tok)->decode(got_plain, false);
      const std::string dec_special = got.empty() ? "" : (*tok)->decode(got, true);
      ids_ok += got == want;
      plain_ok += got_plain == want_plain;
      dec_ok += dec == want_dec;
      dec_special_ok += dec_special == want_dec_special;
      if ((got != want || got_plain != want_plain || dec != want_dec ||
           dec_special != want_dec_special) &&
          reported++ < 8) {
        ADD_FAILURE() << name << " case " << cases - 1 << " '" << text << "'"
                      << "\n  expected" << ids_text(want) << "\n  got     " << ids_text(got)
                      << "\n  expected plain" << ids_text(want_plain) << "\n  got plain     "
                      << ids_text(got_plain) << "\n  decoded  '" << dec << "'\n  expected '"
                      << want_dec << "'\n  decoded special  '" << dec_special
                      << "'\n  expected special '" << want_dec_special << "'";
      }
    }
    std::printf(
        "[          ] %s: %zu cases: ids %zu, ids without specials %zu, decode %zu, decode with "
        "specials %zu identical\n",
        name.c_str(), cases, ids_ok, plain_ok, dec_ok, dec_special_ok);
    EXPECT_GT(cases, 2000u);
    EXPECT_EQ(ids_ok, cases) << name;
    EXPECT_EQ(plain_ok, cases) << name;
    EXPECT_EQ(dec_ok, cases) << name;
    EXPECT_EQ(dec_special_ok, cases) << name;
    total_cases += cases;
    ++total_tokenizers;
  }
  std::printf("[          ] %zu tokenizers x cases = %zu encodings compared\n", total_tokenizers,
              total_cases);
  EXPECT_GT(total_tokenizers, 0u);
}

}  // namespace
}  // namespace kandil
