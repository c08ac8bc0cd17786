#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

#include "base/cpu_features.h"
#include "base/mmap.h"
#include "base/thread_pool.h"
#include "base/utf8.h"
#include "kandil/log.h"
#include "test_util.h"

namespace kandil {
namespace {

TEST(Base, ThreadPoolCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for(n, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        });
        for (auto& h : hits) ASSERT_EQ(h.load(), 1);
      }
    }
    std::atomic<int> calls{0};
    pool.run([&](int ith, int nth) {
      EXPECT_LT(ith, nth);
      EXPECT_EQ(nth, threads);
      calls++;
    });
    EXPECT_EQ(calls.load(), threads);
  }
  EXPECT_GE(ThreadPool::hardware_threads(), 1);
}

TEST(Base, Utf8IncompleteTailAndSanitize) {
  EXPECT_EQ(utf8::incomplete_tail("abc"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("a\xc3"), 1u);         // lead of a 2-byte sequence
  EXPECT_EQ(utf8::incomplete_tail("a\xc3\xa9"), 0u);     // é complete
  EXPECT_EQ(utf8::incomplete_tail("\xe2\x96"), 2u);      // 2 of 3 bytes
  EXPECT_EQ(utf8::incomplete_tail("\xf0\x9f\x98"), 3u);  // 3 of 4 bytes
  EXPECT_EQ(utf8::incomplete_tail("\xf0\x9f\x98\x80"), 0u);
  EXPECT_EQ(utf8::sanitize("ok \xe2\x96\x81"), "ok \xe2\x96\x81");
  EXPECT_EQ(utf8::sanitize("bad \xff!"), "bad \xef\xbf\xbd!");
  EXPECT_EQ(utf8::sanitize("cut \xe2\x96"), "cut \xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(utf8::sanitize("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
  std::string s;
  for (uint32_t cp : {0x41u, 0xe9u, 0x2581u, 0x1f600u}) utf8::append(s, cp);
  size_t i = 0;
  EXPECT_EQ(utf8::decode(s, i), 0x41u);
  EXPECT_EQ(utf8::decode(s, i), 0xe9u);
  EXPECT_EQ(utf8::decode(s, i), 0x2581u);
  EXPECT_EQ(utf8::decode(s, i), 0x1f600u);
  EXPECT_EQ(i, s.size());
}

TEST(Base, MappedFileReadsAndReportsErrors) {
  const std::string dir = kandil::testing::temp_dir();
  { std::ofstream(dir + "/f.bin", std::ios::binary) << "hello"; }
  auto f = MappedFile::open(dir + "/f.bin");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), f->size()), "hello");
  MappedFile moved = std::move(*f);
  EXPECT_EQ(moved.size(), 5u);
  auto missing = MappedFile::open(dir + "/missing.bin");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("missing.bin: cannot open"), std::string::npos);
  auto directory = MappedFile::open(dir);
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.error().message.find("not a regular file"), std::string::npos);
  { std::ofstream(dir + "/empty.bin"); }
  auto empty = MappedFile::open(dir + "/empty.bin");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), 0u);
}

TEST(Base, CpuFeaturesAndLogLevels) {
  const CpuFeatures& f = cpu_features();
  EXPECT_FALSE(f.to_string().empty());
  EXPECT_TRUE(!f.avx2 || f.avx);
  EXPECT_TRUE(!f.avx512bw || f.avx512f);
  log::Level old = log::level();
  log::set_level(log::Level::debug);
  EXPECT_EQ(log::level(), log::Level::debug);
  log::debug("debug message {}", 1);
  log::info("info message {}", 2);
  log::warn("warn message {}", 3);
  log::error("error message {}", 4);
  setenv("KANDIL_LOG", "error", 1);
  log::init_from_env();
  EXPECT_EQ(log::level(), log::Level::error);
  unsetenv("KANDIL_LOG");
  log::set_level(old);
}

TEST(Base, ResultCarriesValuesAndErrors) {
  Result<int> ok = 3;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  Result<int> bad = Error{"broken"};
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error().with_context("file.gguf").message, "file.gguf: broken");
  Result<void> v;
  EXPECT_TRUE(v.ok());
  Result<void> e = make_error("x");
  EXPECT_EQ(e.error().message, "x");
}

}  // namespace
}  // namespace kandil
