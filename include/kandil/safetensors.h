// safetensors reader and writer (the Hugging Face weight format).
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON
//   {"<tensor>": {"dtype": "F16", "shape": [rows, cols], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<string>"}}
// then the data buffer; offsets are relative to its start. The reader maps the file and never
// copies tensor data. It checks what the reference implementation checks: header bounds and size,
// JSON shape, known dtypes, offsets inside the buffer, byte counts equal to the shape's, and a
// buffer covered by the tensors without holes or overlaps. Errors name the file, the tensor and
// what was expected.
//
// A model folder holds one `model.safetensors` or shards listed by `model.safetensors.index.json`
// ({"weight_map": {"<tensor>": "<shard file>"}}); SafetensorsSet opens either form.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/result.h"
#include "kandil/tensor_type.h"

namespace kandil {

enum class SafetensorsDType : uint8_t {
  BOOL,
  U8,
  I8,
  U16,
  I16,
  F16,
  BF16,
  U32,
  I32,
  F32,
  U64,
  I64,
  F64,
  F8_E4M3,
  F8_E5M2,
};

std::string_view safetensors_dtype_name(SafetensorsDType t);
std::optional<SafetensorsDType> safetensors_dtype_from_name(std::string_view name);
size_t safetensors_dtype_size(SafetensorsDType t);
// The engine's tensor type for F32 / F16 / BF16; nullopt for the others.
std::optional<TensorType> safetensors_to_tensor_type(SafetensorsDType t);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::F32;
  std::vector<int64_t> shape;  // row-major, outermost first (PyTorch order)
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;

  int64_t n_elements() const;
};

class SafetensorsFile {
 public:
  // Maps and validates a file. The mapping lives as long as the SafetensorsFile.
  static Result<SafetensorsFile> open(const std::string& path);
  // Validates a buffer the caller keeps alive; `name` is used in error messages.
  static Result<SafetensorsFile> parse(const uint8_t* data, size_t size, const std::string& name);

  SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& name() const { return name_; }
  // Tensors in data-offset order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;
  std::string name_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// The weights of a Hugging Face model folder: `model.safetensors`, or the shards named by
// `model.safetensors.index.json` (every tensor of the index must be in the shard it names, and no
// tensor may appear in two shards).
class SafetensorsSet {
 public:
  static Result<SafetensorsSet> open_dir(const std::string& dir);

  const SafetensorsTensor* find(std::string_view name) const;
  // Every tensor of every shard.
  std::vector<const SafetensorsTensor*> tensors() const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  uint64_t total_bytes() const;

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, const SafetensorsTensor*, std::less<>> index_;
};

// Builds a safetensors file. Tensor data is copied into the writer; the header is padded with
// spaces to a multiple of 8 bytes, as the reference writer does.
class SafetensorsWriter {
 public:
  Result<void> add(std::string name, SafetensorsDType dtype, std::vector<int64_t> shape,
                   const void* data, size_t nbytes);
  void set_metadata(std::string key, std::string value) {
    metadata_[std::move(key)] = std::move(value);
  }
  std::vector<uint8_t> serialize() const;
  // Writes to a temporary file beside `path` and renames it into place.
  Result<void> write_file(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    SafetensorsDType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  std::vector<Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace kandil
