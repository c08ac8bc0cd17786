#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/file_io.h"
#include "kandil/gguf.h"

namespace kandil {
namespace {

// resize + memcpy rather than vector::insert of a byte range: GCC 12 at -O3 reports false
// -Wstringop-overflow / -Warray-bounds errors for the inlined insert on small vectors.
template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

size_t elem_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    default:
      return 8;
  }
}

// Encodes a value's payload (without its type tag).
void encode_payload(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8:
      put<uint8_t>(out, static_cast<uint8_t>(v.u));
      break;
    case GgufValueType::INT8:
      put<int8_t>(out, static_cast<int8_t>(v.i));
      break;
    case GgufValueType::UINT16:
      put<uint16_t>(out, static_cast<uint16_t>(v.u));
      break;
    case GgufValueType::INT16:
      put<int16_t>(out, static_cast<int16_t>(v.i));
      break;
    case GgufValueType::UINT32:
      put<uint32_t>(out, static_cast<uint32_t>(v.u));
      break;
    case GgufValueType::INT32:
      put<int32_t>(out, static_cast<int32_t>(v.i));
      break;
    case GgufValueType::UINT64:
      put<uint64_t>(out, v.u);
      break;
    case GgufValueType::INT64:
      put<int64_t>(out, v.i);
      break;
    case GgufValueType::FLOAT32:
      put<float>(out, static_cast<float>(v.f));
      break;
    case GgufValueType::FLOAT64:
      put<double>(out, v.f);
      break;
    case GgufValueType::BOOL:
      put<uint8_t>(out, v.b ? 1 : 0);
      break;
    case GgufValueType::STRING:
      put_string(out, v.str);
      break;
    case GgufValueType::ARRAY:
      put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      put<uint64_t>(out, v.count);
      if (v.elem_type == GgufValueType::STRING) {
        for (auto s : v.strings) put_string(out, s);
      } else if (v.elem_type == GgufValueType::ARRAY) {
        for (const auto& a : v.arrays) encode_payload(out, a);
      } else {
        out.insert(out.end(), v.raw, v.raw + v.count * elem_size(v.elem_type));
      }
      break;
  }
}

std::vector<uint8_t> tagged(GgufValueType t) {
  std::vector<uint8_t> out;
  put<uint32_t>(out, static_cast<uint32_t>(t));
  return out;
}

}  // namespace

void GgufWriter::set_raw(std::string key, std::vector<uint8_t> encoded) {
  if (key == "general.alignment") {
    // The alignment is written by serialize() from alignment_ (the padding must match it), so
    // copying metadata from another file cannot produce a duplicate or contradicting key.
    uint32_t tag = 0, value = 0;
    if (encoded.size() == 8) {
      std::memcpy(&tag, encoded.data(), 4);
      std::memcpy(&value, encoded.data() + 4, 4);
    }
    if (tag == static_cast<uint32_t>(GgufValueType::UINT32)) set_alignment(value);
    return;
  }
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(encoded);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(encoded));
}

void GgufWriter::set_u8(std::string key, uint8_t v) {
  auto e = tagged(GgufValueType::UINT8);
  put(e, v);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_u32(std::string key, uint32_t v) {
  auto e = tagged(GgufValueType::UINT32);
  put(e, v);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_i32(std::string key, int32_t v) {
  auto e = tagged(GgufValueType::INT32);
  put(e, v);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_u64(std::string key, uint64_t v) {
  auto e = tagged(GgufValueType::UINT64);
  put(e, v);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_f32(std::string key, float v) {
  auto e = tagged(GgufValueType::FLOAT32);
  put(e, v);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_bool(std::string key, bool v) {
  auto e = tagged(GgufValueType::BOOL);
  put<uint8_t>(e, v ? 1 : 0);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_string(std::string key, std::string_view v) {
  auto e = tagged(GgufValueType::STRING);
  put_string(e, v);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_strings(std::string key, const std::vector<std::string>& v) {
  auto e = tagged(GgufValueType::ARRAY);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::STRING));
  put<uint64_t>(e, v.size());
  for (const auto& s : v) put_string(e, s);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_f32s(std::string key, const std::vector<float>& v) {
  auto e = tagged(GgufValueType::ARRAY);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::FLOAT32));
  put<uint64_t>(e, v.size());
  for (float x : v) put(e, x);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_i32s(std::string key, const std::vector<int32_t>& v) {
  auto e = tagged(GgufValueType::ARRAY);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::INT32));
  put<uint64_t>(e, v.size());
  for (int32_t x : v) put(e, x);
  set_raw(std::move(key), std::move(e));
}
void GgufWriter::set_value(std::string key, const GgufValue& v) {
  auto e = tagged(v.type);
  encode_payload(e, v);
  set_raw(std::move(key), std::move(e));
}

Result<void> GgufWriter::check_tensor(const std::string& name, TensorType type,
                                      const std::vector<int64_t>& shape, size_t* nbytes) const {
  if (shape.empty() || shape.size() > 4) {
    return Error{fmt::format("tensor '{}': {} dimensions (expected 1..4)", name, shape.size())};
  }
  auto info = tensor_type_info(static_cast<uint32_t>(type));
  if (!info) return Error{fmt::format("tensor '{}': unknown type", name)};
  if (shape[0] % info->block_size != 0) {
    return Error{fmt::format("tensor '{}': row length {} is not a multiple of the {} block size {}",
                             name, shape[0], info->name, info->block_size)};
  }
  int64_t rows = 1;
  for (size_t d = 1; d < shape.size(); ++d) rows *= shape[d];
  *nbytes = tensor_row_bytes(type, shape[0]) * static_cast<size_t>(rows);
  for (const auto& t : tensors_) {
    if (t.name == name) return Error{fmt::format("tensor '{}' added twice", name)};
  }
  return {};
}

Result<void> GgufWriter::add_tensor(std::string name, TensorType type, std::vector<int64_t> shape,
                                    const void* data, size_t nbytes) {
  size_t expected = 0;
  if (auto r = check_tensor(name, type, shape, &expected); !r.ok()) return r;
  if (nbytes != expected) {
    return Error{fmt::format("tensor '{}': {} bytes given, {} expected for its shape and type",
                             name, nbytes, expected)};
  }
  const auto* p = static_cast<const uint8_t*>(data);
  tensors_.push_back(Tensor{std::move(name), type, std::move(shape),
                            std::vector<uint8_t>(p, p + nbytes), nullptr, nbytes});
  return {};
}

Result<void> GgufWriter::add_tensor_deferred(std::string name, TensorType type,
                                             std::vector<int64_t> shape, FillFn fill) {
  size_t nbytes = 0;
  if (auto r = check_tensor(name, type, shape, &nbytes); !r.ok()) return r;
  tensors_.push_back(Tensor{std::move(name), type, std::move(shape), {}, std::move(fill), nbytes});
  return {};
}

namespace {
// An alignment that is not a power of two (0 included) cannot be written: the default is used.
uint32_t effective_alignment(uint32_t a) { return a != 0 && (a & (a - 1)) == 0 ? a : 32; }
}  // namespace

std::vector<uint8_t> GgufWriter::header() const {
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  const uint32_t alignment = effective_alignment(alignment_);
  const bool write_alignment = alignment != 32;
  put<uint64_t>(out, kv_.size() + (write_alignment ? 1 : 0));
  for (const auto& [key, value] : kv_) {
    put_string(out, key);
    out.insert(out.end(), value.begin(), value.end());
  }
  if (write_alignment) {
    put_string(out, "general.alignment");
    put<uint32_t>(out, static_cast<uint32_t>(GgufValueType::UINT32));
    put<uint32_t>(out, alignment);
  }
  auto align = [&](uint64_t x) { return (x + alignment - 1) / alignment * alignment; };
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset = align(offset + t.nbytes);
  }
  out.resize(align(out.size()), 0);
  return out;
}

std::vector<uint8_t> GgufWriter::serialize() const {
  std::vector<uint8_t> out = header();
  const uint32_t alignment = effective_alignment(alignment_);
  auto align = [&](uint64_t x) { return (x + alignment - 1) / alignment * alignment; };
  for (const auto& t : tensors_) {
    if (t.fill) {
      const size_t at = out.size();
      out.resize(at + t.nbytes);
      if (!t.fill(out.data() + at).ok()) return {};
    } else {
      out.insert(out.end(), t.data.begin(), t.data.end());
    }
    out.resize(align(out.size()), 0);
  }
  return out;
}

Result<void> GgufWriter::write_file(const std::string& path) const {
  bool deferred = false;
  for (const auto& t : tensors_) deferred = deferred || static_cast<bool>(t.fill);
  if (!deferred) {
    const std::vector<uint8_t> bytes = serialize();
    return write_file_atomic(path, bytes.data(), bytes.size());
  }
  // Stream: the header, then one tensor at a time (the buffer is reused).
  auto out = AtomicFileWriter::create(path);
  if (!out.ok()) return out.error();
  const std::vector<uint8_t> head = header();
  if (auto r = out->write(head.data(), head.size()); !r.ok()) return r;
  const uint32_t alignment = effective_alignment(alignment_);
  std::vector<uint8_t> buf;
  for (const auto& t : tensors_) {
    const uint8_t* data = t.data.data();
    if (t.fill) {
      buf.assign(t.nbytes, 0);
      if (auto r = t.fill(buf.data()); !r.ok()) {
        return Error{fmt::format("{}: tensor '{}': {}", path, t.name, r.error().message)};
      }
      data = buf.data();
    }
    if (auto r = out->write(data, t.nbytes); !r.ok()) return r;
    const size_t pad = (alignment - t.nbytes % alignment) % alignment;
    static const uint8_t kZeros[256] = {};
    for (size_t left = pad; left > 0;) {
      const size_t n = std::min(left, sizeof(kZeros));
      if (auto r = out->write(kZeros, n); !r.ok()) return r;
      left -= n;
    }
  }
  return out->commit();
}

}  // namespace kandil
