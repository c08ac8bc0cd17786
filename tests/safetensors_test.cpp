// safetensors reader / writer: round trips, sharded folders, and every malformed-header check.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/fp16.h"
#include "kandil/safetensors.h"
#include "test_util.h"

namespace kandil {
namespace {

using testing::random_row;
using testing::temp_dir;

std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0x5a);
  const uint64_t len = header.size();
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

std::string parse_error(const std::string& header, size_t data_bytes) {
  auto bytes = raw_file(header, data_bytes);
  auto f = SafetensorsFile::parse(bytes.data(), bytes.size(), "bad.safetensors");
  return f ? std::string("(parsed)") : f.error().message;
}

TEST(Safetensors, RoundTripKeepsDataShapesAndMetadata) {
  const auto a = random_row(6 * 5, 1);
  const auto b32 = random_row(7, 2);
  std::vector<uint16_t> b(b32.size());
  for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_fp16(b32[i]);
  SafetensorsWriter w;
  ASSERT_TRUE(w.add("layer.weight", SafetensorsDType::F32, {6, 5}, a.data(), a.size() * 4).ok());
  ASSERT_TRUE(w.add("bias", SafetensorsDType::F16, {7}, b.data(), b.size() * 2).ok());
  ASSERT_TRUE(w.add("empty", SafetensorsDType::BF16, {0, 3}, nullptr, 0).ok());
  w.set_metadata("format", "pt");
  const auto bytes = w.serialize();
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);

  auto f = SafetensorsFile::parse(bytes.data(), bytes.size(), "rt.safetensors");
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const auto* t = f->find("layer.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, SafetensorsDType::F32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{6, 5}));
  EXPECT_EQ(t->n_elements(), 30);
  EXPECT_EQ(std::memcmp(t->data, a.data(), a.size() * 4), 0);
  const auto* tb = f->find("bias");
  ASSERT_NE(tb, nullptr);
  EXPECT_EQ(safetensors_to_tensor_type(tb->dtype), TensorType::F16);
  EXPECT_EQ(std::memcmp(tb->data, b.data(), b.size() * 2), 0);
  EXPECT_EQ(f->find("empty")->nbytes, 0u);
  EXPECT_EQ(f->find("missing"), nullptr);

  const std::string path = temp_dir() + "/model.safetensors";
  ASSERT_TRUE(w.write_file(path).ok());
  auto mapped = SafetensorsFile::open(path);
  ASSERT_TRUE(mapped.ok()) << mapped.error().message;
  EXPECT_EQ(std::memcmp(mapped->find("layer.weight")->data, a.data(), a.size() * 4), 0);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Safetensors, DTypeNamesRoundTrip) {
  for (const char* n : {"BOOL", "U8", "I8", "U16", "I16", "F16", "BF16", "U32", "I32", "F32", "U64",
                        "I64", "F64", "F8_E4M3", "F8_E5M2"}) {
    auto d = safetensors_dtype_from_name(n);
    ASSERT_TRUE(d.has_value()) << n;
    EXPECT_EQ(safetensors_dtype_name(*d), n);
  }
  EXPECT_FALSE(safetensors_dtype_from_name("F12").has_value());
  EXPECT_EQ(safetensors_dtype_size(SafetensorsDType::BF16), 2u);
  EXPECT_FALSE(safetensors_to_tensor_type(SafetensorsDType::I64).has_value());
}

TEST(Safetensors, ShardedFolderFindsEveryTensor) {
  const std::string dir = temp_dir();
  const auto x = random_row(12, 3), y = random_row(8, 4);
  SafetensorsWriter w1, w2;
  ASSERT_TRUE(w1.add("a", SafetensorsDType::F32, {3, 4}, x.data(), 48).ok());
  ASSERT_TRUE(w2.add("b", SafetensorsDType::F32, {8}, y.data(), 32).ok());
  ASSERT_TRUE(w1.write_file(dir + "/model-00001-of-00002.safetensors").ok());
  ASSERT_TRUE(w2.write_file(dir + "/model-00002-of-00002.safetensors").ok());
  nlohmann::json index = {
      {"metadata", {{"total_size", 80}}},
      {"weight_map",
       {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  auto set = SafetensorsSet::open_dir(dir);
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(set->files().size(), 2u);
  EXPECT_EQ(set->tensors().size(), 2u);
  EXPECT_EQ(set->total_bytes(), 80u);
  ASSERT_NE(set->find("b"), nullptr);
  EXPECT_EQ(std::memcmp(set->find("b")->data, y.data(), 32), 0);

  // The index names a tensor its shard does not hold.
  index["weight_map"]["c"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  auto bad = SafetensorsSet::open_dir(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("tensor 'c' is listed in model-00002"), std::string::npos)
      << bad.error().message;

  // A shard name that leaves the folder.
  index["weight_map"] = {{"a", "../model-00001-of-00002.safetensors"}};
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  bad = SafetensorsSet::open_dir(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("not a file name"), std::string::npos);

  std::ofstream(dir + "/model.safetensors.index.json") << "{\"weight_map\": 3}";
  EXPECT_FALSE(SafetensorsSet::open_dir(dir).ok());
}

TEST(Safetensors, SingleFileFolderAndMissingWeights) {
  const std::string dir = temp_dir();
  auto none = SafetensorsSet::open_dir(dir);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no model.safetensors"), std::string::npos);
  const auto x = random_row(4, 5);
  SafetensorsWriter w;
  ASSERT_TRUE(w.add("w", SafetensorsDType::F32, {4}, x.data(), 16).ok());
  ASSERT_TRUE(w.write_file(dir + "/model.safetensors").ok());
  auto set = SafetensorsSet::open_dir(dir);
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_NE(set->find("w"), nullptr);
}

TEST(Safetensors, WriterRejectsBadTensors) {
  SafetensorsWriter w;
  float v[4] = {1, 2, 3, 4};
  EXPECT_TRUE(w.add("x", SafetensorsDType::F32, {2, 2}, v, 16).ok());
  EXPECT_FALSE(w.add("x", SafetensorsDType::F32, {2, 2}, v, 16).ok());
  EXPECT_FALSE(w.add("y", SafetensorsDType::F32, {3}, v, 16).ok());
  EXPECT_FALSE(w.add("__metadata__", SafetensorsDType::F32, {4}, v, 16).ok());
  EXPECT_FALSE(w.add("", SafetensorsDType::F32, {4}, v, 16).ok());
}

TEST(Safetensors, MalformedHeadersGiveClearErrors) {
  struct Case {
    std::string header;
    size_t data;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"[1,2]", 0, "to start with"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], ", 8, "not a JSON object"},
      {"{\"a\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
       "unknown dtype 'Q4'"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 8,
       "outside the 8-byte"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, "needs 12"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 8]}}", 8, "shape[0]"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", 8, "'shape'"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8, "data_offsets"},
      {"{\"a\": {\"dtype\": 7, \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "'dtype'"},
      {"{\"a\": 5}", 0, "expected an object"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "hole"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
       " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
       12, "overlap"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 8, "trailing"},
      {"{\"__metadata__\": {\"k\": 1}}", 0, "expected a string value"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, "
       "8]}}",
       8, "overflows"},
  };
  for (const auto& c : cases) {
    const std::string msg = parse_error(c.header, c.data);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.header << "\n -> " << msg;
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
  }

  // Header length past the end, absurd header length, too short.
  auto bytes = raw_file("{}", 0);
  const uint64_t big = 1000;
  std::memcpy(bytes.data(), &big, 8);
  auto f = SafetensorsFile::parse(bytes.data(), bytes.size(), "t.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("truncated"), std::string::npos);
  const uint64_t huge = uint64_t{1} << 40;
  std::memcpy(bytes.data(), &huge, 8);
  f = SafetensorsFile::parse(bytes.data(), bytes.size(), "t.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("limit"), std::string::npos);
  f = SafetensorsFile::parse(bytes.data(), 5, "t.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("too short"), std::string::npos);
  EXPECT_FALSE(SafetensorsFile::open(temp_dir() + "/nope.safetensors").ok());
  // An empty header is a valid (empty) file.
  auto empty = raw_file("{}", 0);
  EXPECT_TRUE(SafetensorsFile::parse(empty.data(), empty.size(), "e").ok());
}

TEST(Safetensors, EveryTruncationOfAValidFileIsRejected) {
  const auto x = random_row(10, 9);
  SafetensorsWriter w;
  ASSERT_TRUE(w.add("x", SafetensorsDType::F32, {10}, x.data(), 40).ok());
  const auto bytes = w.serialize();
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(SafetensorsFile::parse(bytes.data(), n, "cut").ok()) << n;
}

}  // namespace
}  // namespace kandil
