// Sampler chain and StopMatcher.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kandil/sampling.h"

namespace kandil {
namespace {

// Every filter disabled, plain temperature 1 sampling.
SamplingParams plain(uint64_t seed = 1) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  p.seed = seed;
  return p;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature = 1.0) {
  double m = -std::numeric_limits<double>::infinity();
  for (float l : logits) m = std::max(m, static_cast<double>(l) / temperature);
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = std::exp(static_cast<double>(logits[i]) / temperature - m);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  return p;
}

// Relative frequency of each token over `draws` samples.
std::vector<double> frequencies(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<double> f(logits.size(), 0.0);
  for (int d = 0; d < draws; ++d) {
    TokenId t = s.sample(logits.data());
    EXPECT_GE(t, 0);
    EXPECT_LT(t, static_cast<TokenId>(logits.size()));
    f[static_cast<size_t>(t)] += 1.0;
  }
  for (double& x : f) x /= draws;
  return f;
}

void expect_distribution(const std::vector<double>& got, const std::vector<double>& want,
                         double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (want[i] == 0.0) {
      EXPECT_EQ(got[i], 0.0) << "token " << i << " must never be drawn";
    } else {
      EXPECT_NEAR(got[i], want[i], tol) << "token " << i;
    }
  }
}

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

TEST(Sampler, GreedyIsArgmax) {
  std::mt19937 gen(42);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  SamplingParams p;  // defaults: top-k / top-p / min-p set, but greedy ignores them
  p.temperature = 0.0f;
  const int n = 1000;
  Sampler s(p, n);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> logits(n);
    for (float& l : logits) l = nd(gen);
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    EXPECT_EQ(s.sample(logits.data()), static_cast<TokenId>(best));
  }
  p.temperature = -1.0f;  // negative temperatures are greedy too
  Sampler neg(p, 4);
  std::vector<float> l = {0.0f, 1.0f, 3.0f, 2.0f};
  EXPECT_EQ(neg.sample(l.data()), 2);
}

TEST(Sampler, GreedyTiesGoToLowestId) {
  SamplingParams p = plain();
  p.temperature = 0.0f;
  Sampler s(p, 6);
  std::vector<float> l = {1.0f, 5.0f, 2.0f, 5.0f, 5.0f, -1.0f};
  for (int k = 0; k < 5; ++k) EXPECT_EQ(s.sample(l.data()), 1);
}

TEST(Sampler, GreedySeesBiasAndPenalties) {
  SamplingParams p = plain();
  p.temperature = 0.0f;
  p.logit_bias = {{0, 2.5f}};
  Sampler s(p, 3);
  std::vector<float> l = {1.0f, 3.0f, 2.0f};
  EXPECT_EQ(s.sample(l.data()), 0);  // 3.5 beats 3.0

  p.logit_bias.clear();
  p.repeat_penalty = 2.0f;
  Sampler r(p, 3);
  r.accept(1);
  EXPECT_EQ(r.sample(l.data()), 2);  // token 1 drops to 1.5
}

TEST(Sampler, TopKAlone) {
  // logits 1..5: top-2 keeps tokens 3 and 4 with probabilities 1/(1+e) and e/(1+e).
  SamplingParams p = plain(7);
  p.top_k = 2;
  Sampler s(p, 5);
  std::vector<float> l = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
  const double e = std::exp(1.0);
  expect_distribution(frequencies(s, l, 20000), {0, 0, 0, 1 / (1 + e), e / (1 + e)}, 0.015);

  p.top_k = 1;  // top-1 is greedy
  Sampler one(p, 5);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(one.sample(l.data()), 4);

  p.top_k = 50;  // larger than the vocab: no-op
  Sampler big(p, 5);
  expect_distribution(frequencies(big, l, 20000), softmax(l), 0.015);
}

TEST(Sampler, TopKOnALargeVocab) {
  // Scattered maxima in a big vocab: top-3 must find them wherever they are.
  const int n = 150000;
  std::vector<float> l(n, 0.0f);
  for (int i = 0; i < n; ++i) l[static_cast<size_t>(i)] = static_cast<float>(i % 97) * 0.01f;
  l[123456] = 20.0f;
  l[7] = 20.0f;
  l[99999] = 20.0f;
  SamplingParams p = plain(3);
  p.top_k = 3;
  Sampler s(p, n);
  std::set<TokenId> seen;
  for (int k = 0; k < 300; ++k) seen.insert(s.sample(l.data()));
  EXPECT_EQ(seen, (std::set<TokenId>{7, 99999, 123456}));
}

TEST(Sampler, TopPAlone) {
  // Probabilities 0.1, 0.2, 0.3, 0.4 (ids 0..3). Sorted: 0.4, 0.3, 0.2, 0.1.
  std::vector<float> l = log_probs({0.1, 0.2, 0.3, 0.4});
  SamplingParams p = plain(11);
  p.top_p = 0.65f;  // 0.4 < 0.65 <= 0.7: keep {3, 2}
  Sampler s(p, 4);
  expect_distribution(frequencies(s, l, 20000), {0, 0, 0.3 / 0.7, 0.4 / 0.7}, 0.015);

  p.top_p = 0.75f;  // 0.7 < 0.75 <= 0.9: keep {3, 2, 1}
  Sampler s3(p, 4);
  expect_distribution(frequencies(s3, l, 20000), {0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9}, 0.015);

  p.top_p = 0.1f;  // the first token alone already reaches p
  Sampler s1(p, 4);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(s1.sample(l.data()), 3);

  p.top_p = 0.0f;  // at least one token is always kept
  Sampler s0(p, 4);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(s0.sample(l.data()), 3);
}

TEST(Sampler, TopPOnALargeVocabWithoutTopK) {
  // 200 strong tokens share ~all the mass; top-p 0.9 must cut the weak tail without top-k.
  const int n = 150000;
  std::vector<float> l(n, -30.0f);
  for (int i = 0; i < 200; ++i)
    l[static_cast<size_t>(i * 701)] = 5.0f + 0.001f * static_cast<float>(i);
  SamplingParams p = plain(5);
  p.top_p = 0.9f;
  Sampler s(p, n);
  std::set<TokenId> seen;
  for (int k = 0; k < 1000; ++k) {
    TokenId t = s.sample(l.data());
    ASSERT_EQ(t % 701, 0) << t;
    ASSERT_LT(t / 701, 200);
    seen.insert(t);
  }
  // The 0.9 prefix covers the 180 or so strongest of the 200 (highest ids); the weakest are cut.
  EXPECT_GT(seen.size(), 150u);
  EXPECT_EQ(seen.count(0), 0u);
  EXPECT_EQ(seen.count(701), 0u);
}

TEST(Sampler, MinPAlone) {
  // Probabilities 0.05, 0.1, 0.25, 0.6; min_p 0.3 -> threshold 0.18: keep {2, 3}.
  std::vector<float> l = log_probs({0.05, 0.1, 0.25, 0.6});
  SamplingParams p = plain(13);
  p.min_p = 0.3f;
  Sampler s(p, 4);
  expect_distribution(frequencies(s, l, 20000), {0, 0, 0.25 / 0.85, 0.6 / 0.85}, 0.015);

  p.min_p = 0.15f;  // threshold 0.09: keep {1, 2, 3}
  Sampler s3(p, 4);
  expect_distribution(frequencies(s3, l, 20000), {0, 0.1 / 0.95, 0.25 / 0.95, 0.6 / 0.95}, 0.015);

  p.min_p = 1.0f;  // only the maximum
  Sampler s1(p, 4);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(s1.sample(l.data()), 3);
}

TEST(Sampler, TemperatureAlone) {
  // Logits 0 and ln 2: at T = 0.5 they become 0 and 2 ln 2 -> probabilities 1/5 and 4/5;
  // at T = 2 they become 0 and ln 2 / 2 -> 1/(1+sqrt 2) and sqrt 2/(1+sqrt 2).
  std::vector<float> l = {0.0f, static_cast<float>(std::log(2.0))};
  SamplingParams p = plain(17);
  p.temperature = 0.5f;
  Sampler cold(p, 2);
  expect_distribution(frequencies(cold, l, 20000), {0.2, 0.8}, 0.015);
  p.temperature = 2.0f;
  Sampler hot(p, 2);
  const double r2 = std::sqrt(2.0);
  expect_distribution(frequencies(hot, l, 20000), {1 / (1 + r2), r2 / (1 + r2)}, 0.015);
}

TEST(Sampler, FiltersSeeUntemperedProbabilities) {
  // min-p runs before temperature (llama.cpp order): a high temperature must not let token 0 in.
  std::vector<float> l = log_probs({0.05, 0.35, 0.6});
  SamplingParams p = plain(19);
  p.min_p = 0.1f;  // threshold 0.06: token 0 cut
  p.temperature = 100.0f;
  Sampler s(p, 3);
  auto f = frequencies(s, l, 10000);
  EXPECT_EQ(f[0], 0.0);
  EXPECT_NEAR(f[1], 0.5, 0.03);  // nearly flat among the survivors at T = 100
}

TEST(Sampler, EmpiricalDistributionMatchesSoftmax) {
  std::vector<float> l = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
  for (float t : {1.0f, 0.7f, 1.6f}) {
    SamplingParams p = plain(2024);
    p.temperature = t;
    Sampler s(p, 5);
    auto f = frequencies(s, l, 20000);
    auto want = softmax(l, t);
    // Standard deviation of each frequency is at most sqrt(0.25 / 20000) = 0.0035.
    expect_distribution(f, want, 0.015);
    // Chi-square with 4 degrees of freedom: 99.99th percentile is about 23.5.
    double chi2 = 0.0;
    for (size_t i = 0; i < f.size(); ++i)
      chi2 += 20000.0 * (f[i] - want[i]) * (f[i] - want[i]) / want[i];
    EXPECT_LT(chi2, 23.5) << "temperature " << t;
  }
}

TEST(Sampler, DeterministicForASeed) {
  std::vector<float> l = {0.3f, 0.1f, 0.2f, 0.25f, 0.15f, 0.0f, 0.05f, 0.12f};
  SamplingParams p = plain(99);
  p.top_k = 6;
  p.top_p = 0.97f;
  Sampler a(p, 8), b(p, 8);
  std::vector<TokenId> sa, sb;
  for (int k = 0; k < 1000; ++k) {
    sa.push_back(a.sample(l.data()));
    sb.push_back(b.sample(l.data()));
  }
  EXPECT_EQ(sa, sb);

  a.reset();  // reset restarts the same sequence
  std::vector<TokenId> again;
  for (int k = 0; k < 1000; ++k) again.push_back(a.sample(l.data()));
  EXPECT_EQ(sa, again);

  p.seed = 100;
  Sampler c(p, 8);
  std::vector<TokenId> sc;
  for (int k = 0; k < 1000; ++k) sc.push_back(c.sample(l.data()));
  EXPECT_NE(sa, sc);
}

TEST(Sampler, RepeatPenaltyMath) {
  SamplingParams p = plain();
  p.repeat_penalty = 2.0f;
  Sampler s(p, 4);
  s.accept(0);
  s.accept(1);
  s.accept(1);  // repeat penalty ignores the count
  std::vector<float> l = {3.0f, -3.0f, 1.0f, 0.0f};
  s.apply_bias_and_penalties(l.data());
  EXPECT_FLOAT_EQ(l[0], 1.5f);   // positive: divided
  EXPECT_FLOAT_EQ(l[1], -6.0f);  // negative: multiplied
  EXPECT_FLOAT_EQ(l[2], 1.0f);   // not in the history
  EXPECT_FLOAT_EQ(l[3], 0.0f);

  Sampler z(p, 4);
  z.accept(3);
  std::vector<float> zero = {0.0f, 0.0f, 0.0f, 0.0f};
  z.apply_bias_and_penalties(zero.data());
  EXPECT_FLOAT_EQ(zero[3], 0.0f);  // zero stays zero
}

TEST(Sampler, PresenceAndFrequencyPenaltyMath) {
  SamplingParams p = plain();
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p, 4);
  for (TokenId t : {2, 0, 2, 2}) s.accept(t);
  std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f};
  s.apply_bias_and_penalties(l.data());
  EXPECT_FLOAT_EQ(l[0], 1.0f - 0.25f - 0.5f);      // count 1
  EXPECT_FLOAT_EQ(l[1], 1.0f);                     // absent
  EXPECT_FLOAT_EQ(l[2], 1.0f - 3 * 0.25f - 0.5f);  // count 3, presence once
  EXPECT_FLOAT_EQ(l[3], 1.0f);

  // Applying twice penalises twice (the state is not consumed).
  std::vector<float> l2 = {1.0f, 1.0f, 1.0f, 1.0f};
  s.apply_bias_and_penalties(l2.data());
  EXPECT_EQ(l, l2);
}

TEST(Sampler, AllPenaltiesCombineInLlamaCppOrder) {
  SamplingParams p = plain();
  p.repeat_penalty = 1.5f;
  p.presence_penalty = 0.2f;
  p.frequency_penalty = 0.1f;
  p.logit_bias = {{1, 1.0f}};
  Sampler s(p, 3);
  s.accept(1);
  s.accept(1);
  std::vector<float> l = {0.5f, 2.0f, -1.0f};
  s.apply_bias_and_penalties(l.data());
  // token 1: bias first (2 + 1 = 3), repeat (3 / 1.5 = 2), then 2 * 0.1 + 0.2.
  EXPECT_FLOAT_EQ(l[1], 2.0f - 0.2f - 0.2f);
  EXPECT_FLOAT_EQ(l[0], 0.5f);
  EXPECT_FLOAT_EQ(l[2], -1.0f);
}

TEST(Sampler, PenaltyWindow) {
  SamplingParams p = plain();
  p.frequency_penalty = 1.0f;
  p.repeat_last_n = 3;
  Sampler s(p, 5);
  for (TokenId t : {0, 0, 1, 2, 3}) s.accept(t);  // window holds {1, 2, 3}
  std::vector<float> l(5, 0.0f);
  s.apply_bias_and_penalties(l.data());
  EXPECT_EQ(l, (std::vector<float>{0.0f, -1.0f, -1.0f, -1.0f, 0.0f}));

  p.repeat_last_n = 0;  // no history at all
  Sampler none(p, 5);
  for (TokenId t : {0, 1}) none.accept(t);
  std::vector<float> l0(5, 0.0f);
  none.apply_bias_and_penalties(l0.data());
  EXPECT_EQ(l0, std::vector<float>(5, 0.0f));

  p.repeat_last_n = -1;  // whole history
  Sampler all(p, 5);
  for (int k = 0; k < 500; ++k) all.accept(4);
  std::vector<float> la(5, 0.0f);
  all.apply_bias_and_penalties(la.data());
  EXPECT_FLOAT_EQ(la[4], -500.0f);

  all.reset();  // reset clears the history
  std::vector<float> lr(5, 0.0f);
  all.apply_bias_and_penalties(lr.data());
  EXPECT_EQ(lr, std::vector<float>(5, 0.0f));
}

TEST(Sampler, LogitBiasMinusInfinityBansAToken) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> l = {0.0f, 10.0f, 0.0f, 0.0f};

  SamplingParams g = plain();
  g.temperature = 0.0f;
  g.logit_bias = {{1, -inf}};
  Sampler greedy(g, 4);
  EXPECT_EQ(greedy.sample(l.data()), 0);

  SamplingParams p = plain(23);
  p.logit_bias = {{1, -inf}, {3, -inf}};
  Sampler s(p, 4);
  auto f = frequencies(s, l, 10000);
  EXPECT_EQ(f[1], 0.0);
  EXPECT_EQ(f[3], 0.0);
  EXPECT_NEAR(f[0], 0.5, 0.03);

  // Also with every filter active.
  p.top_k = 3;
  p.top_p = 0.9f;
  p.min_p = 0.01f;
  Sampler f2(p, 4);
  for (int k = 0; k < 1000; ++k) {
    TokenId t = f2.sample(l.data());
    EXPECT_TRUE(t == 0 || t == 2) << t;
  }

  // The raw logits are not modified.
  EXPECT_EQ(l, (std::vector<float>{0.0f, 10.0f, 0.0f, 0.0f}));
}

// ---- StopMatcher ----------------------------------------------------------------------------

struct StopRun {
  std::string out;
  bool stopped = false;
};

StopRun run_chunks(const std::vector<std::string>& stops, const std::vector<std::string>& chunks) {
  StopMatcher m(stops);
  StopRun r;
  for (const auto& c : chunks) {
    bool stopped = false;
    r.out += m.feed(c, stopped);
    if (stopped) {
      r.stopped = true;
      // Nothing is emitted after the stop.
      bool again = false;
      EXPECT_EQ(m.feed("tail", again), "");
      EXPECT_TRUE(again);
      EXPECT_EQ(m.flush(), "");
      return r;
    }
  }
  r.out += m.flush();
  return r;
}

// The result must not depend on how the text is chunked: every 2- and 3-way split.
void check_all_splits(const std::vector<std::string>& stops, const std::string& text,
                      const std::string& want, bool want_stopped) {
  {
    StopRun r = run_chunks(stops, {text});
    EXPECT_EQ(r.out, want) << "whole text";
    EXPECT_EQ(r.stopped, want_stopped);
  }
  for (size_t i = 0; i <= text.size(); ++i) {
    for (size_t j = i; j <= text.size(); ++j) {
      StopRun r = run_chunks(stops, {text.substr(0, i), text.substr(i, j - i), text.substr(j)});
      EXPECT_EQ(r.out, want) << "split at " << i << ", " << j;
      EXPECT_EQ(r.stopped, want_stopped) << "split at " << i << ", " << j;
    }
  }
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  StopRun r = run_chunks(stops, bytes);
  EXPECT_EQ(r.out, want) << "byte by byte";
  EXPECT_EQ(r.stopped, want_stopped);
}

TEST(StopMatcher, StopsAtEveryChunking) {
  check_all_splits({"<|end|>"}, "Hello world<|end|>more text", "Hello world", true);
  check_all_splits({"\n\n", "User:"}, "line one\nline two\n\nUser: hi", "line one\nline two", true);
  check_all_splits({"User:", "\n\n"}, "a User\n\nUser:", "a User", true);
}

TEST(StopMatcher, NoStopEmitsEverything) {
  check_all_splits({"<|end|>"}, "a <|en d|> <|end| <|", "a <|en d|> <|end| <|", false);
  check_all_splits({}, "anything at all", "anything at all", false);
  check_all_splits({""}, "empty stops are ignored", "empty stops are ignored", false);
}

TEST(StopMatcher, FirstCompletedStopWins) {
  // "bc" completes before "abcd" does (as it would when streamed byte by byte), so it wins even
  // though "abcd" starts earlier.
  check_all_splits({"abcd", "bc"}, "xabcdy", "xa", true);
  check_all_splits({"cd", "abcdef"}, "__abcdef", "__ab", true);
  // Same end: the longer (earlier-starting) one wins.
  check_all_splits({"b", "ab"}, "xaby", "x", true);
  // Overlapping self-prefix: "aab" inside "aaab".
  check_all_splits({"aab"}, "xaaab", "xa", true);
}

TEST(StopMatcher, HoldsBackOnlyPossiblePrefixes) {
  StopMatcher m({"</s>", "STOP"});
  bool stopped = false;
  EXPECT_EQ(m.feed("hello </", stopped), "hello ");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.feed("x", stopped), "</x");  // no longer a prefix: released
  EXPECT_EQ(m.feed(" ST", stopped), " ");
  EXPECT_EQ(m.feed("OP!", stopped), "");
  EXPECT_TRUE(stopped);
  EXPECT_TRUE(m.stopped());

  StopMatcher n({"</s>"});
  EXPECT_EQ(n.feed("abc<", stopped), "abc");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(n.flush(), "<");
}

TEST(StopMatcher, StopAtTheVeryStart) { check_all_splits({"###"}, "###rest", "", true); }

}  // namespace
}  // namespace kandil
