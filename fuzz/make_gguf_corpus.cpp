// Writes the seed corpus of fuzz_gguf (fuzz/corpus/gguf/): a few small valid GGUF files made with
// GgufWriter, covering every value type, nested arrays, several tensor types and a non-default
// alignment. The files have no .gguf extension because .gitignore ignores *.gguf. Not part of the
// CMake build; to regenerate (from the repository root, after building
// the engine library in build-dir):
//   g++ -std=c++20 -Iinclude -Isrc fuzz/make_gguf_corpus.cpp build-dir/libkandil_engine.a
//       -lfmt -lpcre2-8 -pthread -o /tmp/make_gguf_corpus
//   /tmp/make_gguf_corpus fuzz/corpus/gguf
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kandil/gguf.h"

using namespace kandil;

namespace {

std::vector<uint8_t> bytes_of(size_t n, uint8_t seed) {
  std::vector<uint8_t> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(seed + i * 7);
  return d;
}

GgufValue array_of(GgufValueType elem, const std::vector<uint8_t>& storage, uint64_t count) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = elem;
  v.count = count;
  v.raw = storage.data();
  return v;
}

GgufValue scalar(GgufValueType t, int64_t i, double f = 0.0) {
  GgufValue v;
  v.type = t;
  v.i = i;
  v.u = static_cast<uint64_t>(i);
  v.f = f;
  v.b = i != 0;
  return v;
}

bool add(GgufWriter& w, const char* name, TensorType type, std::vector<int64_t> shape,
         uint8_t seed) {
  int64_t rows = 1;
  for (size_t d = 1; d < shape.size(); ++d) rows *= shape[d];
  const auto data = bytes_of(tensor_row_bytes(type, shape[0]) * static_cast<size_t>(rows), seed);
  auto r = w.add_tensor(name, type, std::move(shape), data.data(), data.size());
  if (!r.ok()) std::fprintf(stderr, "%s\n", r.error().message.c_str());
  return r.ok();
}

bool save(const std::string& dir, const char* name, std::vector<uint8_t> bytes) {
  const std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  std::fclose(f);
  std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
  return ok && bytes.size() < 4096;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;

  // 1. Header only.
  ok &= save(dir, "seed-empty", GgufWriter().serialize());

  // 2. Every metadata value type, nested arrays included.
  {
    GgufWriter w;
    w.set_u8("u8", 200);
    w.set_value("i8", scalar(GgufValueType::INT8, -5));
    w.set_value("u16", scalar(GgufValueType::UINT16, 60000));
    w.set_value("i16", scalar(GgufValueType::INT16, -300));
    w.set_u32("u32", 123456);
    w.set_i32("i32", -123456);
    w.set_u64("u64", 1ull << 40);
    w.set_value("i64", scalar(GgufValueType::INT64, -(1ll << 40)));
    w.set_f32("f32", 0.5f);
    w.set_value("f64", scalar(GgufValueType::FLOAT64, 0, 1e-300));
    w.set_bool("bool", true);
    w.set_string("str", "hello\nworld");
    w.set_strings("strs", {"a", "", "xyz"});
    w.set_f32s("f32s", {1.0f, -2.0f});
    w.set_i32s("i32s", {7, -7});
    const auto u64s = bytes_of(16, 1);
    const auto bools = std::vector<uint8_t>{1, 0, 1};
    const auto i16s = bytes_of(6, 9);
    w.set_value("u64s", array_of(GgufValueType::UINT64, u64s, 2));
    w.set_value("f64s", array_of(GgufValueType::FLOAT64, u64s, 2));
    w.set_value("bools", array_of(GgufValueType::BOOL, bools, 3));
    GgufValue strs;
    strs.type = GgufValueType::ARRAY;
    strs.elem_type = GgufValueType::STRING;
    strs.count = 2;
    strs.strings = {"p", "qq"};
    GgufValue nested;
    nested.type = GgufValueType::ARRAY;
    nested.elem_type = GgufValueType::ARRAY;
    nested.count = 3;
    nested.arrays = {array_of(GgufValueType::INT16, i16s, 3), strs,
                     array_of(GgufValueType::UINT8, i16s, 0)};
    w.set_value("nested", nested);
    ok &= save(dir, "seed-metadata", w.serialize());
  }

  // 3. Tensors of several types and ranks.
  {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    ok &= add(w, "f32", TensorType::F32, {5}, 1);
    ok &= add(w, "f16", TensorType::F16, {4, 2}, 2);
    ok &= add(w, "q4_0", TensorType::Q4_0, {32, 2}, 3);
    ok &= add(w, "q8_0", TensorType::Q8_0, {32, 1, 1}, 4);
    ok &= add(w, "q6_k", TensorType::Q6_K, {256}, 5);
    ok &= add(w, "i8", TensorType::I8, {2, 2, 2, 2}, 6);
    ok &= save(dir, "seed-tensors", w.serialize());
  }

  // 4. Non-default alignment.
  {
    GgufWriter w;
    w.set_alignment(64);
    w.set_u32("llama.block_count", 1);
    ok &= add(w, "a", TensorType::F32, {3}, 7);
    ok &= add(w, "b", TensorType::BF16, {3}, 8);
    ok &= save(dir, "seed-align64", w.serialize());
  }

  // 5. A tiny model-like file: llama keys, a 6-token vocab, two tensors.
  {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", "seed");
    w.set_u32("llama.context_length", 64);
    w.set_u32("llama.embedding_length", 32);
    w.set_u32("llama.block_count", 1);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>",
                                            "\xe2\x96\x81"
                                            "a",
                                            "b", "<0x0A>"});
    w.set_f32s("tokenizer.ggml.scores", {0, 0, 0, -1, -2, -3});
    w.set_i32s("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 6});
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    ok &= add(w, "token_embd.weight", TensorType::Q8_0, {32, 6}, 9);
    ok &= add(w, "output_norm.weight", TensorType::F32, {32}, 10);
    ok &= save(dir, "seed-model", w.serialize());
  }

  // 6. Version 2 (same layout as 3).
  {
    GgufWriter w;
    w.set_string("general.architecture", "v2");
    ok &= add(w, "t", TensorType::F32, {2}, 11);
    auto b = w.serialize();
    b[4] = 2;
    ok &= save(dir, "seed-v2", std::move(b));
  }

  return ok ? 0 : 1;
}
