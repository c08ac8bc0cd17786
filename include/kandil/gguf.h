// GGUF (v2, v3) reader and writer. The reader never copies tensor data: tensor infos point into the
// caller's buffer / the file mapping. Every length, count and offset is bounds-checked; errors name
// the file, the byte offset and what was expected.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/result.h"
#include "kandil/tensor_type.h"

namespace kandil {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

std::string_view gguf_value_type_name(GgufValueType t);

struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  // Scalars: integers in `i` (signed view) and `u` (unsigned view), floats in `f`, bools in `b`.
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0.0;
  bool b = false;
  std::string_view str;  // STRING
  // ARRAY: element type and count. Numeric elements stay in the file (`raw`, little endian);
  // strings are listed in `strings`; nested arrays in `arrays`.
  GgufValueType elem_type = GgufValueType::UINT8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;
  std::vector<std::string_view> strings;
  std::vector<GgufValue> arrays;

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64; }
  // Numeric array element k as double / int64 (elem_type must be numeric or bool).
  double array_f64(uint64_t k) const;
  int64_t array_i64(uint64_t k) const;
  // One-line rendering for `kandil info` (arrays longer than `max_items` are summarised).
  std::string to_string(size_t max_items = 8) const;
};

struct GgufKV {
  std::string_view key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string_view name;
  TensorType type = TensorType::F32;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ggml order: ne[0] is the row length
  uint64_t offset = 0;           // relative to the data section
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // Maps and parses a file. The mapping lives as long as the GgufFile.
  static Result<GgufFile> open(const std::string& path);
  // Parses a buffer the caller keeps alive; `name` is used in error messages.
  static Result<GgufFile> parse(const uint8_t* data, size_t size, const std::string& name);

  GgufFile();
  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  const std::vector<GgufKV>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  const GgufValue* find(std::string_view key) const;
  const GgufTensorInfo* find_tensor(std::string_view name) const;

  // Typed getters: nullopt when absent. A present key of the wrong type is an error.
  Result<std::optional<int64_t>> get_int(std::string_view key) const;
  Result<std::optional<double>> get_float(std::string_view key) const;
  Result<std::optional<bool>> get_bool(std::string_view key) const;
  Result<std::optional<std::string_view>> get_string(std::string_view key) const;
  // Array of strings (nullptr when absent; error if the key holds something else).
  Result<const GgufValue*> get_array(std::string_view key, GgufValueType elem_type) const;

 private:
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;
  std::string name_;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kv_;
  std::vector<GgufTensorInfo> tensors_;
};

// Builds a GGUF v3 file. Values and tensor data are copied into the writer.
class GgufWriter {
 public:
  void set_u8(std::string key, uint8_t v);
  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string_view v);
  void set_strings(std::string key, const std::vector<std::string>& v);
  void set_f32s(std::string key, const std::vector<float>& v);
  void set_i32s(std::string key, const std::vector<int32_t>& v);
  // Copies a value read from another file (any type, arrays included).
  void set_value(std::string key, const GgufValue& v);

  // shape in ggml order (row length first). data must hold tensor_row_bytes(type, shape[0]) * rows.
  Result<void> add_tensor(std::string name, TensorType type, std::vector<int64_t> shape,
                          const void* data, size_t nbytes);

  // A tensor whose bytes are produced while write_file() writes the file (converters then hold
  // one tensor at a time, not the whole model): fill(dst) must write exactly the tensor's bytes.
  using FillFn = std::function<Result<void>(uint8_t* dst)>;
  Result<void> add_tensor_deferred(std::string name, TensorType type, std::vector<int64_t> shape,
                                   FillFn fill);
  void set_alignment(uint32_t alignment) { alignment_ = alignment; }
  // The whole file in memory; deferred tensors are filled too (an empty vector if a fill fails).
  std::vector<uint8_t> serialize() const;
  // Writes to a temporary file beside `path` and renames it into place.
  Result<void> write_file(const std::string& path) const;

 private:
  void set_raw(std::string key, std::vector<uint8_t> encoded);
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
    FillFn fill;  // deferred tensors: data is empty
    size_t nbytes = 0;
  };
  Result<void> check_tensor(const std::string& name, TensorType type,
                            const std::vector<int64_t>& shape, size_t* nbytes) const;
  std::vector<uint8_t> header() const;  // everything before the tensor data, padded
  std::vector<std::pair<std::string, std::vector<uint8_t>>> kv_;  // key -> type + value bytes
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace kandil
