// GGUF reader/writer: round trips of every value type and tensor layout, and the reader's behaviour
// on truncated, corrupt and hostile files (always an error naming the problem, never a crash).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "kandil/gguf.h"
#include "test_util.h"

namespace kandil {
namespace {

// Whether `msg` contains `what` (gtest only: the suite does not link gmock).
::testing::AssertionResult Contains(const std::string& msg, const std::string& what) {
  if (msg.find(what) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "message \"" << msg << "\" does not contain \"" << what << "\"";
}

// ---- helpers --------------------------------------------------------------------------------

// Little-endian byte builder for hand-made (often malformed) files.
struct Bytes {
  std::vector<uint8_t> b;

  template <class T>
  Bytes& put(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    return raw(s);
  }
  // resize + memcpy: vector::insert into a small vector trips GCC 12's -Wstringop-overflow at -O3.
  Bytes& raw(std::string_view s) {
    const size_t at = b.size();
    b.resize(at + s.size());
    if (!s.empty()) std::memcpy(b.data() + at, s.data(), s.size());
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  Bytes& pad_to(size_t alignment) {
    b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
  // GGUF header: magic, version, tensor count, kv count.
  static Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Bytes x;
    x.raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
    return x;
  }
  // A tensor info record.
  Bytes& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
};

constexpr uint32_t kU32 = static_cast<uint32_t>(GgufValueType::UINT32);
constexpr uint32_t kStr = static_cast<uint32_t>(GgufValueType::STRING);
constexpr uint32_t kArr = static_cast<uint32_t>(GgufValueType::ARRAY);

// Parses a copy held in a buffer of exactly the file's size, so reads past the end are real
// out-of-bounds reads (caught by ASan builds) instead of reads of the caller's spare capacity.
struct Parsed {
  std::vector<uint8_t> bytes;
  Result<GgufFile> file;
};

std::unique_ptr<Parsed> parse(const std::vector<uint8_t>& bytes,
                              const std::string& name = "test.gguf") {
  auto p = std::unique_ptr<Parsed>(new Parsed{bytes, Error{}});
  auto* data = p->bytes.empty() ? nullptr : p->bytes.data();
  p->file = GgufFile::parse(data, p->bytes.size(), name);
  return p;
}

// Parsing must fail with a message that starts with the file name and contains `what`.
void expect_error(const std::vector<uint8_t>& bytes, const std::string& what) {
  auto p = parse(bytes);
  ASSERT_FALSE(p->file.ok()) << "expected an error containing: " << what;
  const std::string& msg = p->file.error().message;
  EXPECT_EQ(msg.rfind("test.gguf: ", 0), 0u) << msg;
  EXPECT_TRUE(Contains(msg, what));
}

template <class T>
std::vector<uint8_t> le_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

GgufValue scalar(GgufValueType t, int64_t i, uint64_t u, double f = 0.0, bool b = false) {
  GgufValue v;
  v.type = t;
  v.i = i;
  v.u = u;
  v.f = f;
  v.b = b;
  return v;
}

GgufValue numeric_array(GgufValueType elem, const std::vector<uint8_t>& storage, uint64_t count) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = elem;
  v.count = count;
  v.raw = storage.data();
  return v;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 8));
  return d;
}

// ---- round trips ----------------------------------------------------------------------------

TEST(Gguf, RoundTripEveryValueType) {
  GgufWriter w;
  w.set_u8("t.u8", 250);
  w.set_value("t.i8", scalar(GgufValueType::INT8, -100, 0));
  w.set_value("t.u16", scalar(GgufValueType::UINT16, 0, 65000));
  w.set_value("t.i16", scalar(GgufValueType::INT16, -32000, 0));
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_u64("t.u64", 18000000000000000000ull);
  w.set_value("t.i64", scalar(GgufValueType::INT64, -9000000000000000000ll, 0));
  w.set_f32("t.f32", 1e-5f);
  w.set_value("t.f64", scalar(GgufValueType::FLOAT64, 0, 0, -2.718281828459045));
  w.set_bool("t.true", true);
  w.set_bool("t.false", false);
  w.set_string("t.str", "héllo \"world\"\n");
  w.set_string("t.empty", "");
  w.set_strings("t.strs", {"a", "", "ccc", std::string("nul\0byte", 8)});
  w.set_f32s("t.f32s", {1.5f, -2.25f, 1e30f});
  w.set_i32s("t.i32s", {-1, 0, 2147483647});
  w.set_i32s("t.empty_arr", {});

  const auto u8s = le_bytes<uint8_t>({0, 1, 255});
  const auto i8s = le_bytes<int8_t>({-128, 0, 127});
  const auto u16s = le_bytes<uint16_t>({0, 65535});
  const auto i16s = le_bytes<int16_t>({-32768, 32767});
  const auto u32s = le_bytes<uint32_t>({4294967295u});
  const auto u64s = le_bytes<uint64_t>({0, 18446744073709551615ull});
  const auto i64s = le_bytes<int64_t>({std::numeric_limits<int64_t>::min(), 5});
  const auto f64s = le_bytes<double>({0.1, -1e300});
  const auto bools = le_bytes<uint8_t>({1, 0, 1});
  w.set_value("a.u8", numeric_array(GgufValueType::UINT8, u8s, 3));
  w.set_value("a.i8", numeric_array(GgufValueType::INT8, i8s, 3));
  w.set_value("a.u16", numeric_array(GgufValueType::UINT16, u16s, 2));
  w.set_value("a.i16", numeric_array(GgufValueType::INT16, i16s, 2));
  w.set_value("a.u32", numeric_array(GgufValueType::UINT32, u32s, 1));
  w.set_value("a.u64", numeric_array(GgufValueType::UINT64, u64s, 2));
  w.set_value("a.i64", numeric_array(GgufValueType::INT64, i64s, 2));
  w.set_value("a.f64", numeric_array(GgufValueType::FLOAT64, f64s, 2));
  w.set_value("a.bool", numeric_array(GgufValueType::BOOL, bools, 3));

  // Nested: [[1, 2, 3], [], [["x", "yz"]]]
  const auto inner_i32 = le_bytes<int32_t>({1, 2, 3});
  GgufValue strs;
  strs.type = GgufValueType::ARRAY;
  strs.elem_type = GgufValueType::STRING;
  strs.count = 2;
  strs.strings = {"x", "yz"};
  GgufValue deep;
  deep.type = GgufValueType::ARRAY;
  deep.elem_type = GgufValueType::ARRAY;
  deep.count = 1;
  deep.arrays = {strs};
  GgufValue empty_i32 = numeric_array(GgufValueType::INT32, inner_i32, 0);
  GgufValue nested;
  nested.type = GgufValueType::ARRAY;
  nested.elem_type = GgufValueType::ARRAY;
  nested.count = 3;
  nested.arrays = {numeric_array(GgufValueType::INT32, inner_i32, 3), empty_i32, deep};
  w.set_value("a.nested", nested);

  auto p = parse(w.serialize());
  ASSERT_TRUE(p->file.ok()) << p->file.error().message;
  const GgufFile& f = *p->file;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.metadata().size(), 28u);
  // Keys keep their order.
  EXPECT_EQ(f.metadata().front().key, "t.u8");
  EXPECT_EQ(f.metadata().back().key, "a.nested");

  auto get = [&](const char* key) {
    const GgufValue* v = f.find(key);
    EXPECT_NE(v, nullptr) << key;
    return v ? *v : GgufValue{};
  };
  EXPECT_EQ(get("t.u8").type, GgufValueType::UINT8);
  EXPECT_EQ(get("t.u8").u, 250u);
  EXPECT_EQ(get("t.i8").type, GgufValueType::INT8);
  EXPECT_EQ(get("t.i8").i, -100);
  EXPECT_EQ(get("t.u16").u, 65000u);
  EXPECT_EQ(get("t.i16").i, -32000);
  EXPECT_EQ(get("t.u32").type, GgufValueType::UINT32);
  EXPECT_EQ(get("t.u32").u, 4000000000u);
  EXPECT_EQ(get("t.i32").i, -2000000000);
  EXPECT_EQ(get("t.u64").u, 18000000000000000000ull);
  EXPECT_EQ(get("t.i64").i, -9000000000000000000ll);
  EXPECT_EQ(get("t.f32").type, GgufValueType::FLOAT32);
  EXPECT_EQ(static_cast<float>(get("t.f32").f), 1e-5f);
  EXPECT_EQ(get("t.f64").type, GgufValueType::FLOAT64);
  EXPECT_EQ(get("t.f64").f, -2.718281828459045);
  EXPECT_TRUE(get("t.true").b);
  EXPECT_FALSE(get("t.false").b);
  EXPECT_EQ(get("t.str").str, "héllo \"world\"\n");
  EXPECT_EQ(get("t.empty").str, "");

  GgufValue s = get("t.strs");
  EXPECT_EQ(s.elem_type, GgufValueType::STRING);
  ASSERT_EQ(s.count, 4u);
  ASSERT_EQ(s.strings.size(), 4u);
  EXPECT_EQ(s.strings[0], "a");
  EXPECT_EQ(s.strings[1], "");
  EXPECT_EQ(s.strings[2], "ccc");
  EXPECT_EQ(s.strings[3], std::string_view("nul\0byte", 8));

  GgufValue fa = get("t.f32s");
  ASSERT_EQ(fa.count, 3u);
  EXPECT_EQ(fa.array_f64(0), 1.5);
  EXPECT_EQ(fa.array_f64(1), -2.25);
  EXPECT_EQ(static_cast<float>(fa.array_f64(2)), 1e30f);
  GgufValue ia = get("t.i32s");
  ASSERT_EQ(ia.count, 3u);
  EXPECT_EQ(ia.array_i64(0), -1);
  EXPECT_EQ(ia.array_i64(2), 2147483647);
  EXPECT_EQ(get("t.empty_arr").count, 0u);
  EXPECT_EQ(get("t.empty_arr").elem_type, GgufValueType::INT32);

  GgufValue a = get("a.u8");
  EXPECT_EQ(a.array_i64(2), 255);
  a = get("a.i8");
  EXPECT_EQ(a.array_i64(0), -128);
  EXPECT_EQ(a.array_i64(2), 127);
  a = get("a.u16");
  EXPECT_EQ(a.array_i64(1), 65535);
  a = get("a.i16");
  EXPECT_EQ(a.array_i64(0), -32768);
  a = get("a.u32");
  EXPECT_EQ(a.array_i64(0), 4294967295ll);
  a = get("a.u64");
  EXPECT_EQ(a.array_f64(1), 18446744073709551615.0);  // unsigned, not -1
  a = get("a.i64");
  EXPECT_EQ(a.array_i64(0), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(a.array_f64(1), 5.0);
  a = get("a.f64");
  EXPECT_EQ(a.array_f64(0), 0.1);
  EXPECT_EQ(a.array_f64(1), -1e300);
  EXPECT_EQ(a.array_i64(1), std::numeric_limits<int64_t>::min());  // saturates, no UB
  a = get("a.bool");
  EXPECT_EQ(a.elem_type, GgufValueType::BOOL);
  EXPECT_EQ(a.array_i64(0), 1);
  EXPECT_EQ(a.array_i64(1), 0);

  GgufValue n = get("a.nested");
  EXPECT_EQ(n.elem_type, GgufValueType::ARRAY);
  ASSERT_EQ(n.arrays.size(), 3u);
  EXPECT_EQ(n.arrays[0].elem_type, GgufValueType::INT32);
  ASSERT_EQ(n.arrays[0].count, 3u);
  EXPECT_EQ(n.arrays[0].array_i64(2), 3);
  EXPECT_EQ(n.arrays[1].count, 0u);
  ASSERT_EQ(n.arrays[2].arrays.size(), 1u);
  EXPECT_EQ(n.arrays[2].arrays[0].strings, (std::vector<std::string_view>{"x", "yz"}));

  // to_string renders every kind.
  EXPECT_EQ(get("t.u8").to_string(), "250");
  EXPECT_EQ(get("t.i8").to_string(), "-100");
  EXPECT_EQ(get("t.u64").to_string(), "18000000000000000000");
  EXPECT_EQ(get("t.true").to_string(), "true");
  EXPECT_EQ(get("t.str").to_string(), "\"héllo \\\"world\\\"\\n\"");
  EXPECT_EQ(get("t.i32s").to_string(), "[3 x i32] [-1, 0, 2147483647]");
  EXPECT_EQ(get("t.empty_arr").to_string(), "[0 x i32]");
  EXPECT_EQ(get("a.bool").to_string(), "[3 x bool] [true, false, true]");
  EXPECT_EQ(get("t.f32s").to_string(2), "[3 x f32] [1.5, -2.25, ...]");
  EXPECT_EQ(get("a.nested").to_string(),
            "[3 x arr] [[3 x i32] [1, 2, 3], [0 x i32], [1 x arr] [[2 x str] [\"x\", \"yz\"]]]");

  // Typed getters.
  EXPECT_EQ(*f.get_int("t.i32").value(), -2000000000);
  EXPECT_EQ(*f.get_int("t.u32").value(), 4000000000ll);
  EXPECT_FALSE(f.get_int("t.u64").ok());  // > INT64_MAX
  EXPECT_EQ(*f.get_float("t.u64").value(), 18000000000000000000.0);
  EXPECT_EQ(*f.get_float("t.f64").value(), -2.718281828459045);
  EXPECT_EQ(*f.get_bool("t.true").value(), true);
  EXPECT_EQ(*f.get_string("t.str").value(), "héllo \"world\"\n");
  EXPECT_FALSE(f.get_int("missing").value().has_value());
  auto bad = f.get_string("t.u8");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(bad.error().message, "expected a string, found u8"));
  EXPECT_FALSE(f.get_int("t.str").ok());
  EXPECT_FALSE(f.get_float("t.strs").ok());
  EXPECT_EQ(f.get_array("t.strs", GgufValueType::STRING).value(), f.find("t.strs"));
  auto wrong_arr = f.get_array("t.i32s", GgufValueType::STRING);
  ASSERT_FALSE(wrong_arr.ok());
  EXPECT_TRUE(Contains(wrong_arr.error().message, "expected an array of str, found arr of i32"));

  // Copying every value into a new writer reproduces the same bytes.
  GgufWriter copy;
  for (const auto& kv : f.metadata()) copy.set_value(std::string(kv.key), kv.value);
  EXPECT_EQ(copy.serialize(), w.serialize());
}

struct TensorSpec {
  std::string name;
  TensorType type;
  std::vector<int64_t> shape;
};

std::vector<TensorSpec> tensor_specs() {
  return {
      {"f32.vec", TensorType::F32, {7}},          // 28 bytes: forces padding
      {"f16.mat", TensorType::F16, {4, 3}},       // 24 bytes
      {"q4_0.mat", TensorType::Q4_0, {64, 2}},    // 2 rows * 2 blocks * 18
      {"q8_0.3d", TensorType::Q8_0, {32, 1, 2}},  // 2 * 34
      {"q6_k.mat", TensorType::Q6_K, {256, 2}},   // 2 * 210
      {"i32.4d", TensorType::I32, {3, 2, 2, 2}},  // 96 bytes
      {"bf16.row", TensorType::BF16, {5}},        // 10 bytes
      {"q4_k.row", TensorType::Q4_K, {512}},      // 2 * 144
  };
}

void check_tensor_round_trip(uint32_t alignment) {
  SCOPED_TRACE("alignment " + std::to_string(alignment));
  GgufWriter w;
  w.set_string("general.architecture", "test");
  if (alignment != 32) w.set_alignment(alignment);
  std::vector<std::vector<uint8_t>> datas;
  auto specs = tensor_specs();
  for (size_t k = 0; k < specs.size(); ++k) {
    const auto& t = specs[k];
    int64_t rows = 1;
    for (size_t d = 1; d < t.shape.size(); ++d) rows *= t.shape[d];
    datas.push_back(pattern(tensor_row_bytes(t.type, t.shape[0]) * static_cast<size_t>(rows),
                            static_cast<uint8_t>(k * 17 + 1)));
    auto r = w.add_tensor(t.name, t.type, t.shape, datas.back().data(), datas.back().size());
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  const auto bytes = w.serialize();
  auto p = parse(bytes);
  ASSERT_TRUE(p->file.ok()) << p->file.error().message;
  const GgufFile& f = *p->file;
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.file_size(), bytes.size());
  EXPECT_EQ(f.data_offset() % alignment, 0u);
  if (alignment != 32) {
    ASSERT_NE(f.find("general.alignment"), nullptr);
    EXPECT_EQ(f.find("general.alignment")->u, alignment);
  } else {
    EXPECT_EQ(f.find("general.alignment"), nullptr);
  }
  ASSERT_EQ(f.tensors().size(), specs.size());
  uint64_t expected_offset = 0;
  for (size_t k = 0; k < specs.size(); ++k) {
    const auto& want = specs[k];
    const GgufTensorInfo& t = f.tensors()[k];
    SCOPED_TRACE(want.name);
    EXPECT_EQ(t.name, want.name);
    EXPECT_EQ(t.type, want.type);
    ASSERT_EQ(t.n_dims, want.shape.size());
    for (size_t d = 0; d < 4; ++d) EXPECT_EQ(t.ne[d], d < want.shape.size() ? want.shape[d] : 1);
    EXPECT_EQ(t.offset, expected_offset);
    EXPECT_EQ(t.offset % alignment, 0u);
    EXPECT_EQ(t.nbytes, datas[k].size());
    EXPECT_EQ(t.data, p->bytes.data() + f.data_offset() + t.offset);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % alignment,
              reinterpret_cast<uintptr_t>(p->bytes.data()) % alignment);
    EXPECT_EQ(std::vector<uint8_t>(t.data, t.data + t.nbytes), datas[k]);
    EXPECT_EQ(f.find_tensor(want.name), &t);
    expected_offset = (t.offset + t.nbytes + alignment - 1) / alignment * alignment;
  }
  EXPECT_EQ(f.data_offset() + expected_offset, bytes.size());  // the writer pads the last tensor
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  EXPECT_EQ(f.tensors()[3].n_elements(), 64);
  EXPECT_EQ(f.tensors()[3].n_rows(), 2);
  EXPECT_EQ(f.tensors()[5].n_elements(), 24);
}

TEST(Gguf, RoundTripTensors) {
  for (uint32_t alignment : {32u, 64u, 8u, 1u, 256u}) check_tensor_round_trip(alignment);
}

TEST(Gguf, WriteFileAndOpen) {
  GgufWriter w;
  w.set_string("general.name", "file test");
  const auto data = pattern(16 * 4, 3);
  ASSERT_TRUE(w.add_tensor("w", TensorType::F32, {16}, data.data(), data.size()).ok());
  const std::string path = testing::temp_dir() + "/x.gguf";
  auto wr = w.write_file(path);
  ASSERT_TRUE(wr.ok()) << wr.error().message;
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->name(), path);
  EXPECT_EQ(*f->get_string("general.name").value(), "file test");
  ASSERT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(std::vector<uint8_t>(f->tensors()[0].data, f->tensors()[0].data + 64), data);
  // Moving the file keeps the mapping (tensor data pointers stay valid).
  GgufFile moved = std::move(f).value();
  EXPECT_EQ(std::vector<uint8_t>(moved.tensors()[0].data, moved.tensors()[0].data + 64), data);

  auto missing = GgufFile::open(path + ".missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.error().message, "x.gguf.missing"));
  // An empty file is an error, not a crash.
  { std::ofstream(path + ".empty", std::ios::binary); }
  auto empty = GgufFile::open(path + ".empty");
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(Contains(empty.error().message, "truncated"));
}

TEST(Gguf, WriterKeepsAlignmentConsistent) {
  // general.alignment given as metadata (e.g. copied from another file) becomes the alignment,
  // and is written once.
  GgufWriter w;
  w.set_u32("general.alignment", 64);
  const auto data = pattern(4, 1);
  ASSERT_TRUE(w.add_tensor("a", TensorType::F32, {1}, data.data(), 4).ok());
  ASSERT_TRUE(w.add_tensor("b", TensorType::F32, {1}, data.data(), 4).ok());
  auto p = parse(w.serialize());
  ASSERT_TRUE(p->file.ok()) << p->file.error().message;
  EXPECT_EQ(p->file->alignment(), 64u);
  EXPECT_EQ(p->file->metadata().size(), 1u);
  EXPECT_EQ(p->file->tensors()[1].offset, 64u);

  // The writer rejects bad tensors.
  GgufWriter bad;
  EXPECT_FALSE(bad.add_tensor("x", TensorType::F32, {}, nullptr, 0).ok());
  EXPECT_FALSE(bad.add_tensor("x", TensorType::F32, {1, 1, 1, 1, 1}, data.data(), 4).ok());
  EXPECT_FALSE(bad.add_tensor("x", TensorType::Q4_0, {16}, data.data(), 4).ok());
  EXPECT_FALSE(bad.add_tensor("x", TensorType::F32, {2}, data.data(), 4).ok());
  ASSERT_TRUE(bad.add_tensor("x", TensorType::F32, {1}, data.data(), 4).ok());
  EXPECT_FALSE(bad.add_tensor("x", TensorType::F32, {1}, data.data(), 4).ok());
}

// ---- truncation ----------------------------------------------------------------------------

// A small valid file whose last tensor ends exactly on the alignment, so the file has no trailing
// padding and every proper prefix lacks bytes that the reader needs.
std::vector<uint8_t> small_valid_file() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_bool("flag", true);
  w.set_f32("eps", 1e-5f);
  w.set_strings("tokenizer.ggml.tokens", {"<s>", "a", "bc"});
  w.set_f32s("tokenizer.ggml.scores", {0.0f, -1.0f, -2.0f});
  const auto i16s = le_bytes<int16_t>({1, 2});
  GgufValue inner = numeric_array(GgufValueType::INT16, i16s, 2);
  GgufValue nested;
  nested.type = GgufValueType::ARRAY;
  nested.elem_type = GgufValueType::ARRAY;
  nested.count = 2;
  nested.arrays = {inner, inner};
  w.set_value("nested", nested);
  const auto a = pattern(8 * 4, 1);
  const auto b = pattern(18, 2);
  const auto c = pattern(16 * 2, 3);
  EXPECT_TRUE(w.add_tensor("a", TensorType::F32, {4, 2}, a.data(), a.size()).ok());
  EXPECT_TRUE(w.add_tensor("b", TensorType::Q4_0, {32}, b.data(), b.size()).ok());
  EXPECT_TRUE(w.add_tensor("c", TensorType::F16, {16}, c.data(), c.size()).ok());
  return w.serialize();
}

TEST(Gguf, EveryTruncationIsAnError) {
  const auto full = small_valid_file();
  {
    auto p = parse(full);
    ASSERT_TRUE(p->file.ok()) << p->file.error().message;
    ASSERT_EQ(p->file->tensors().size(), 3u);
    const auto& last = p->file->tensors().back();
    ASSERT_EQ(p->file->data_offset() + last.offset + last.nbytes, full.size())
        << "fixture has trailing padding";
  }
  for (size_t len = 0; len < full.size(); ++len) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    auto p = parse(prefix);
    ASSERT_FALSE(p->file.ok()) << "a prefix of " << len << " bytes parsed";
    const std::string& msg = p->file.error().message;
    EXPECT_EQ(msg.rfind("test.gguf: ", 0), 0u) << msg;
    EXPECT_TRUE(Contains(msg, "truncated")) << "prefix of " << len << " bytes";
  }
}

TEST(Gguf, TruncationMessagesSayWhatIsMissing) {
  const auto full = small_valid_file();
  auto prefix = [&](size_t n) {
    return std::vector<uint8_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
  };
  expect_error(prefix(2), "too short for a GGUF header");
  expect_error(prefix(6), "expected the GGUF version");
  expect_error(prefix(12), "expected the tensor count");
  expect_error(prefix(20), "expected the metadata key/value count");
  expect_error(prefix(full.size() - 1), "tensor 'c'");
  expect_error(prefix(full.size() - 1), "past the end of the file");
}

// ---- header ---------------------------------------------------------------------------------

TEST(Gguf, WrongMagic) {
  auto bytes = small_valid_file();
  bytes[0] = 'g';
  expect_error(bytes, "not a GGUF file");
  expect_error(Bytes().raw("GGML").zeros(40).b, "not a GGUF file");
  expect_error(Bytes().raw("\x89PNG").zeros(40).b, "not a GGUF file");
}

TEST(Gguf, UnsupportedVersions) {
  expect_error(Bytes::header(0, 0, 1).b, "unsupported GGUF version 1");
  expect_error(Bytes::header(0, 0, 4).b, "unsupported GGUF version 4");
  expect_error(Bytes::header(0, 0, 0).b, "unsupported GGUF version 0");
  expect_error(Bytes::header(0, 0, 0x03000000).b, "unsupported GGUF version 50331648");
  // Version 2 has the same layout as 3.
  auto p = parse(Bytes::header(0, 0, 2).b);
  ASSERT_TRUE(p->file.ok()) << p->file.error().message;
  EXPECT_EQ(p->file->version(), 2u);
}

TEST(Gguf, EmptyFileIsValid) {
  auto p = parse(Bytes::header(0, 0).b);
  ASSERT_TRUE(p->file.ok()) << p->file.error().message;
  EXPECT_TRUE(p->file->metadata().empty());
  EXPECT_TRUE(p->file->tensors().empty());
}

// ---- absurd counts and lengths -------------------------------------------------------------

TEST(Gguf, AbsurdCounts) {
  const uint64_t huge[] = {uint64_t{1} << 63, ~uint64_t{0}, uint64_t{1} << 32, 1000000};
  for (uint64_t n : huge) {
    SCOPED_TRACE(n);
    expect_error(Bytes::header(0, n).str("k").u32(kU32).u32(1).b, "metadata count");
    expect_error(Bytes::header(n, 0).tensor("t", {1}, 0, 0).b, "tensor count");
    // Key length.
    expect_error(Bytes::header(0, 1).u64(n).raw("abc").u32(kU32).u32(0).b,
                 "the key of metadata entry 0 has length");
    // String value length.
    expect_error(Bytes::header(0, 1).str("k").u32(kStr).u64(n).raw("abc").b,
                 "string value of key 'k' has length");
    // Array counts: of bytes, of 8-byte elements (count * 8 overflows for 2^63), of strings, of
    // arrays.
    expect_error(Bytes::header(0, 1).str("k").u32(kArr).u32(0).u64(n).zeros(8).b, "array of");
    expect_error(Bytes::header(0, 1).str("k").u32(kArr).u32(10).u64(n).zeros(8).b,
                 "u64 elements needs");
    expect_error(Bytes::header(0, 1).str("k").u32(kArr).u32(kStr).u64(n).str("x").b,
                 "strings cannot fit");
    expect_error(Bytes::header(0, 1).str("k").u32(kArr).u32(kArr).u64(n).zeros(12).b,
                 "arrays cannot fit");
    // A string element's length inside an array.
    expect_error(Bytes::header(0, 1).str("k").u32(kArr).u32(kStr).u64(1).u64(n).b,
                 "element 0 of key 'k' has length");
    // Tensor name length.
    expect_error(Bytes::header(1, 0).u64(n).zeros(24).b, "the name of tensor 0 has length");
  }
}

TEST(Gguf, ArraysNestedTooDeeply) {
  Bytes ok = Bytes::header(0, 1).str("k").u32(kArr);
  for (int d = 0; d < 3; ++d) ok.u32(kArr).u64(1);
  ok.u32(kU32).u64(1).u32(7);
  ASSERT_TRUE(parse(ok.b)->file.ok());  // 4 levels
  Bytes deep = Bytes::header(0, 1).str("k").u32(kArr);
  for (int d = 0; d < 64; ++d) deep.u32(kArr).u64(1);
  deep.u32(kU32).u64(1).u32(7);
  expect_error(deep.b, "nested too deeply");
}

TEST(Gguf, BadValues) {
  expect_error(Bytes::header(0, 1).str("k").u32(13).u32(0).b, "key 'k': unknown value type 13");
  expect_error(Bytes::header(0, 1).str("k").u32(0xFFFFFFFF).u32(0).b,
               "unknown value type 4294967295");
  expect_error(Bytes::header(0, 1).str("k").u32(kArr).u32(13).u64(0).b,
               "unknown array element type 13");
  expect_error(Bytes::header(0, 1).str("k").u32(7).u8(2).b, "bool value must be 0 or 1, found 2");
  expect_error(Bytes::header(0, 1).str("k").u32(kArr).u32(7).u64(3).u8(1).u8(0).u8(9).b,
               "bool element 2 must be 0 or 1");
}

TEST(Gguf, DuplicateKeysAndTensors) {
  expect_error(Bytes::header(0, 2).str("k").u32(kU32).u32(1).str("k").u32(kStr).str("x").b,
               "duplicate metadata key 'k'");
  Bytes t = Bytes::header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32);
  t.pad_to(32).zeros(64);
  expect_error(t.b, "duplicate tensor 'w'");
}

// ---- tensor infos ---------------------------------------------------------------------------

// One F32 tensor with the given info fields, followed by `data_bytes` bytes of (aligned) data.
std::vector<uint8_t> one_tensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset,
                                size_t data_bytes, Bytes kvs = Bytes(), uint64_t n_kv = 0,
                                size_t alignment = 32) {
  Bytes b = Bytes::header(1, n_kv);
  b.raw(std::string_view(reinterpret_cast<const char*>(kvs.b.data()), kvs.b.size()));
  b.tensor("w", std::move(ne), type, offset);
  b.pad_to(alignment).zeros(data_bytes);
  return b.b;
}

TEST(Gguf, TensorDataPastTheEnd) {
  ASSERT_TRUE(parse(one_tensor({8}, 0, 0, 32))->file.ok());
  expect_error(one_tensor({8}, 0, 0, 31), "tensor 'w': data [");
  expect_error(one_tensor({8}, 0, 0, 31), "past the end of the file");
  expect_error(one_tensor({8}, 0, 32, 32), "past the end of the file");
  expect_error(one_tensor({8}, 0, uint64_t{1} << 63, 32), "past the end of the file");
  expect_error(one_tensor({8}, 0, ~uint64_t{0} - 31, 32), "past the end of the file");
  // Offset + size overflowing 64 bits must not wrap around into the file.
  expect_error(one_tensor({8}, 0, ~uint64_t{0} / 32 * 32, 64), "past the end of the file");
}

TEST(Gguf, MisalignedOffset) {
  expect_error(one_tensor({8}, 0, 4, 64), "data offset 4 is not a multiple of the alignment 32");
  // With general.alignment = 8 the same offset 8 is fine, 4 is not.
  Bytes kv;
  kv.str("general.alignment").u32(kU32).u32(8);
  ASSERT_TRUE(parse(one_tensor({8}, 0, 8, 64, kv, 1, 8))->file.ok());
  expect_error(one_tensor({8}, 0, 4, 64, kv, 1, 8), "not a multiple of the alignment 8");
}

TEST(Gguf, UnknownTensorType) {
  for (uint32_t type : {4u, 5u, 31u, 33u, 36u, 1000u, 0xFFFFFFFFu}) {
    expect_error(one_tensor({32}, type, 0, 256),
                 "tensor 'w': unknown tensor type id " + std::to_string(type));
  }
}

TEST(Gguf, BadDimensions) {
  Bytes zero = Bytes::header(1, 0);
  zero.str("w").u32(0).u32(0).u64(0);
  zero.pad_to(32).zeros(32);
  expect_error(zero.b, "n_dims is 0 (expected 1..4)");
  expect_error(one_tensor({1, 1, 1, 1, 1}, 0, 0, 32), "n_dims is 5 (expected 1..4)");
  Bytes many = Bytes::header(1, 0);
  many.str("w").u32(0xFFFFFFFF).zeros(64);
  expect_error(many.b, "n_dims is 4294967295");
  expect_error(one_tensor({8, 0}, 0, 0, 32), "dimension 1 is 0");
  expect_error(one_tensor({uint64_t{1} << 41}, 0, 0, 32), "dimension 0 is 2199023255552");
  expect_error(one_tensor({~uint64_t{0}}, 0, 0, 32), "dimension 0 is");
  // Row length not a multiple of the block size.
  expect_error(one_tensor({33}, 2, 0, 64),
               "row length 33 is not a multiple of the Q4_0 block size 32");
  // 2^40 * 2^40 * 2^40 * 2^40 elements: the count itself must not overflow.
  const uint64_t big = uint64_t{1} << 40;
  expect_error(one_tensor({big, big, big, big}, 0, 0, 32), "too many elements");
  // 2^62 F32 elements are 2^64 bytes: the size must not wrap to 0.
  expect_error(one_tensor({big, uint64_t{1} << 22}, 0, 0, 32),
               "need more bytes than the whole file");
  expect_error(one_tensor({big, uint64_t{1} << 22}, 28, 0, 32),
               "need more bytes than the whole file");
}

// ---- general.alignment ----------------------------------------------------------------------

TEST(Gguf, BadAlignment) {
  auto with = [](Bytes kv) { return one_tensor({8}, 0, 0, 64, std::move(kv), 1); };
  expect_error(with(Bytes().str("general.alignment").u32(kU32).u32(0)),
               "general.alignment must be a power of two, found 0");
  expect_error(with(Bytes().str("general.alignment").u32(kU32).u32(3)),
               "general.alignment must be a power of two, found 3");
  expect_error(with(Bytes().str("general.alignment").u32(kU32).u32(48)), "power of two, found 48");
  expect_error(with(Bytes().str("general.alignment").u32(10).u64(32)),
               "general.alignment must be u32, found u64");
  expect_error(with(Bytes().str("general.alignment").u32(5).u32(32)),
               "general.alignment must be u32, found i32");
  expect_error(with(Bytes().str("general.alignment").u32(kStr).str("32")),
               "general.alignment must be u32, found str");
  // Valid non-default alignments.
  auto p = parse(with(Bytes().str("general.alignment").u32(kU32).u32(16)));
  ASSERT_TRUE(p->file.ok()) << p->file.error().message;
  EXPECT_EQ(p->file->alignment(), 16u);
  EXPECT_EQ(p->file->data_offset() % 16, 0u);
  // A huge alignment pushes the data section past the end of the file.
  expect_error(with(Bytes().str("general.alignment").u32(kU32).u32(0x80000000u)), "truncated");
}

// ---- real models ----------------------------------------------------------------------------

struct FixtureModel {
  const char* file;
  uint64_t bytes;
  size_t n_tensors;
  std::map<TensorType, size_t> types;
  int64_t n_embd;
  int64_t n_vocab;
};

void PrintTo(const FixtureModel& m, std::ostream* os) { *os << m.file; }

class GgufFixture : public ::testing::TestWithParam<FixtureModel> {};

TEST_P(GgufFixture, TensorCountsAndTypes) {
  const FixtureModel& m = GetParam();
  const std::string rel = std::string("models/") + m.file;
  KANDIL_REQUIRE_FIXTURE(rel);
  auto f = GgufFile::open(testing::fixture(rel));
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->file_size(), m.bytes);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(*f->get_string("general.architecture").value(), "llama");
  ASSERT_EQ(f->tensors().size(), m.n_tensors);
  std::map<TensorType, size_t> types;
  for (const auto& t : f->tensors()) ++types[t.type];
  EXPECT_EQ(types, m.types);

  // Shapes of the named tensors, data inside the file, tensors not overlapping.
  const GgufTensorInfo* emb = f->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->n_dims, 2u);
  EXPECT_EQ(emb->ne[0], m.n_embd);
  EXPECT_EQ(emb->ne[1], m.n_vocab);
  const GgufTensorInfo* norm = f->find_tensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->type, TensorType::F32);
  EXPECT_EQ(norm->n_dims, 1u);
  EXPECT_EQ(norm->ne[0], m.n_embd);
  ASSERT_NE(f->find_tensor("output.weight"), nullptr);

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& t : f->tensors()) {
    EXPECT_EQ(t.nbytes, tensor_row_bytes(t.type, t.ne[0]) * static_cast<uint64_t>(t.n_rows()))
        << t.name;
    EXPECT_LE(f->data_offset() + t.offset + t.nbytes, f->file_size()) << t.name;
    ranges.emplace_back(t.offset, t.offset + t.nbytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t k = 1; k < ranges.size(); ++k) EXPECT_LE(ranges[k - 1].second, ranges[k].first);

  // Every metadata value renders.
  for (const auto& kv : f->metadata()) EXPECT_FALSE(kv.value.to_string().empty()) << kv.key;
  auto tokens = f->get_array("tokenizer.ggml.tokens", GgufValueType::STRING);
  ASSERT_TRUE(tokens.ok());
  ASSERT_NE(*tokens, nullptr);
  EXPECT_EQ((*tokens)->count, static_cast<uint64_t>(m.n_vocab));
}

const FixtureModel kFixtureModels[] = {
    {"stories260K.gguf", 1185376, 48, {{TensorType::F32, 48}}, 64, 512},
    {"tiny-f32.gguf", 17503648, 21, {{TensorType::F32, 21}}, 64, 32000},
    {"tiny-f16.gguf", 9115040, 21, {{TensorType::F16, 16}, {TensorType::F32, 5}}, 64, 32000},
    {"small-f16.gguf", 39532736, 39, {{TensorType::F16, 30}, {TensorType::F32, 9}}, 256, 32000},
    {"small-Q8_0.gguf", 21346528, 39, {{TensorType::Q8_0, 30}, {TensorType::F32, 9}}, 256, 32000},
    {"small-Q4_0.gguf",
     13759200,
     39,
     {{TensorType::Q4_0, 29}, {TensorType::Q6_K, 1}, {TensorType::F32, 9}},
     256,
     32000},
    {"small-Q4_K_M.gguf",
     13869024,
     39,
     {{TensorType::Q4_K, 25}, {TensorType::Q6_K, 5}, {TensorType::F32, 9}},
     256,
     32000},
    {"small-Q6_K.gguf", 16648416, 39, {{TensorType::Q6_K, 30}, {TensorType::F32, 9}}, 256, 32000},
};

INSTANTIATE_TEST_SUITE_P(Models, GgufFixture, ::testing::ValuesIn(kFixtureModels),
                         [](const ::testing::TestParamInfo<FixtureModel>& info) {
                           std::string n = info.param.file;
                           n = n.substr(0, n.find(".gguf"));
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

TEST(GgufFixtureDetails, QuantizedOutputTypes) {
  KANDIL_REQUIRE_FIXTURE("models/small-Q4_0.gguf");
  auto q40 = GgufFile::open(testing::fixture("models/small-Q4_0.gguf"));
  ASSERT_TRUE(q40.ok()) << q40.error().message;
  EXPECT_EQ(q40->find_tensor("output.weight")->type, TensorType::Q6_K);
  EXPECT_EQ(q40->find_tensor("token_embd.weight")->type, TensorType::Q4_0);
  EXPECT_EQ(*q40->get_int("general.file_type").value(), 2);
  EXPECT_EQ(*q40->get_int("general.quantization_version").value(), 2);
  // llama-quantize writes output.weight first.
  EXPECT_EQ(q40->tensors().front().name, "output.weight");

  KANDIL_REQUIRE_FIXTURE("models/small-Q4_K_M.gguf");
  auto qkm = GgufFile::open(testing::fixture("models/small-Q4_K_M.gguf"));
  ASSERT_TRUE(qkm.ok()) << qkm.error().message;
  for (const char* name : {"output.weight", "blk.2.attn_v.weight", "blk.3.attn_v.weight",
                           "blk.2.ffn_down.weight", "blk.3.ffn_down.weight"}) {
    ASSERT_NE(qkm->find_tensor(name), nullptr) << name;
    EXPECT_EQ(qkm->find_tensor(name)->type, TensorType::Q6_K) << name;
  }
  EXPECT_EQ(qkm->find_tensor("blk.0.attn_v.weight")->type, TensorType::Q4_K);
  EXPECT_EQ(*qkm->get_int("general.file_type").value(), 15);
}

TEST(GgufFixtureDetails, Stories260K) {
  KANDIL_REQUIRE_FIXTURE("models/stories260K.gguf");
  auto f = GgufFile::open(testing::fixture("models/stories260K.gguf"));
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->find("llama.rope.freq_base"), nullptr);
  EXPECT_EQ(f->find("general.file_type"), nullptr);
  EXPECT_EQ(*f->get_int("llama.block_count").value(), 5);
  EXPECT_EQ(*f->get_int("llama.feed_forward_length").value(), 172);
  EXPECT_EQ(*f->get_string("tokenizer.ggml.model").value(), "llama");
  // Order: token_embd, output_norm, output, then per layer.
  EXPECT_EQ(f->tensors()[0].name, "token_embd.weight");
  EXPECT_EQ(f->tensors()[1].name, "output_norm.weight");
  EXPECT_EQ(f->tensors()[2].name, "output.weight");
  EXPECT_EQ(f->tensors()[3].name, "blk.0.attn_q.weight");
}

// Every truncation of a real model header also fails cleanly (prefixes up to the data section).
TEST(GgufFixtureDetails, TruncatedRealHeader) {
  KANDIL_REQUIRE_FIXTURE("models/stories260K.gguf");
  const std::string all = testing::read_file(testing::fixture("models/stories260K.gguf"));
  const std::vector<uint8_t> bytes(all.begin(), all.end());
  auto p = parse(bytes);
  ASSERT_TRUE(p->file.ok());
  const size_t header = static_cast<size_t>(p->file->data_offset());
  for (size_t len = 0; len < header + 64; len += (len < 4096 ? 1 : 97)) {
    auto q = parse(
        std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)));
    ASSERT_FALSE(q->file.ok()) << len;
    EXPECT_TRUE(Contains(q->file.error().message, "truncated")) << len;
  }
}

}  // namespace
}  // namespace kandil
