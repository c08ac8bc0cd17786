#include "kandil/gguf.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "base/mmap.h"

namespace kandil {

struct GgufFile::Mapping {
  MappedFile file;
};

namespace {

constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 4;
// Counts read from the file are checked against the bytes left, but in a multi-GB file a corrupt
// count can still pass that check: vectors reserve at most this many entries up front and grow
// as the entries are actually read.
constexpr uint64_t kMaxReserve = uint64_t{1} << 18;

size_t scalar_size(GgufValueType t) {
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
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
      return 8;
    default:
      return 0;
  }
}

// Cursor over an untrusted buffer; every read is bounds-checked and failures carry the offset.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  Error fail(const std::string& what) const {
    return Error{fmt::format("{}: offset {}: {}", name_, pos_, what)};
  }

  template <class T>
  bool read(T& out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(&out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  // `what` describes the string for error messages; it is only called on failure, so reading a
  // 150k-entry vocab does not format 150k messages.
  template <class What>
  Result<std::string_view> read_string(What&& what) {
    uint64_t len = 0;
    size_t at = pos_;
    if (!read(len)) return fail(fmt::format("truncated: expected the length of {}", what()));
    if (len > remaining()) {
      pos_ = at;
      return fail(
          fmt::format("truncated or corrupt: {} has length {} but only {} bytes remain in the file",
                      what(), len, remaining() - 8));
    }
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

  Result<GgufValue> read_value(GgufValueType type, const std::string& key, int depth) {
    GgufValue v;
    v.type = type;
    size_t at = pos_;
    switch (type) {
      case GgufValueType::UINT8: {
        uint8_t x;
        if (!read(x)) break;
        v.u = x;
        v.i = x;
        return v;
      }
      case GgufValueType::INT8: {
        int8_t x;
        if (!read(x)) break;
        v.i = x;
        v.u = static_cast<uint64_t>(x);
        return v;
      }
      case GgufValueType::UINT16: {
        uint16_t x;
        if (!read(x)) break;
        v.u = x;
        v.i = x;
        return v;
      }
      case GgufValueType::INT16: {
        int16_t x;
        if (!read(x)) break;
        v.i = x;
        v.u = static_cast<uint64_t>(x);
        return v;
      }
      case GgufValueType::UINT32: {
        uint32_t x;
        if (!read(x)) break;
        v.u = x;
        v.i = x;
        return v;
      }
      case GgufValueType::INT32: {
        int32_t x;
        if (!read(x)) break;
        v.i = x;
        v.u = static_cast<uint64_t>(x);
        return v;
      }
      case GgufValueType::UINT64: {
        uint64_t x;
        if (!read(x)) break;
        v.u = x;
        v.i = static_cast<int64_t>(x);
        return v;
      }
      case GgufValueType::INT64: {
        int64_t x;
        if (!read(x)) break;
        v.i = x;
        v.u = static_cast<uint64_t>(x);
        return v;
      }
      case GgufValueType::FLOAT32: {
        float x;
        if (!read(x)) break;
        v.f = x;
        return v;
      }
      case GgufValueType::FLOAT64: {
        double x;
        if (!read(x)) break;
        v.f = x;
        return v;
      }
      case GgufValueType::BOOL: {
        uint8_t x;
        if (!read(x)) break;
        if (x > 1) {
          pos_ = at;
          return fail(fmt::format("key '{}': bool value must be 0 or 1, found {}", key, x));
        }
        v.b = x != 0;
        v.u = x;
        v.i = x;
        return v;
      }
      case GgufValueType::STRING: {
        auto s = read_string([&] { return fmt::format("the string value of key '{}'", key); });
        if (!s.ok()) return s.error();
        v.str = *s;
        return v;
      }
      case GgufValueType::ARRAY: {
        if (depth >= kMaxArrayDepth)
          return fail(fmt::format("key '{}': arrays nested too deeply", key));
        uint32_t et = 0;
        uint64_t count = 0;
        if (!read(et)) break;
        if (et > static_cast<uint32_t>(GgufValueType::FLOAT64)) {
          pos_ = at;
          return fail(fmt::format("key '{}': unknown array element type {}", key, et));
        }
        if (!read(count)) break;
        v.elem_type = static_cast<GgufValueType>(et);
        v.count = count;
        if (v.elem_type == GgufValueType::STRING) {
          if (count > remaining() / 8) {
            return fail(
                fmt::format("truncated or corrupt: key '{}': array of {} strings cannot fit in the "
                            "{} bytes left",
                            key, count, remaining()));
          }
          // Capped: a corrupt count in a multi-GB file must not reserve gigabytes up front.
          v.strings.reserve(static_cast<size_t>(std::min<uint64_t>(count, kMaxReserve)));
          for (uint64_t k = 0; k < count; ++k) {
            auto s = read_string([&] { return fmt::format("element {} of key '{}'", k, key); });
            if (!s.ok()) return s.error();
            v.strings.push_back(*s);
          }
        } else if (v.elem_type == GgufValueType::ARRAY) {
          if (count > remaining() / 12) {
            return fail(
                fmt::format("truncated or corrupt: key '{}': array of {} arrays cannot fit in the "
                            "{} bytes left",
                            key, count, remaining()));
          }
          for (uint64_t k = 0; k < count; ++k) {
            auto e = read_value(GgufValueType::ARRAY, key, depth + 1);
            if (!e.ok()) return e.error();
            v.arrays.push_back(std::move(*e));
          }
        } else {
          size_t es = scalar_size(v.elem_type);
          if (count > remaining() / es) {
            return fail(
                fmt::format("truncated or corrupt: key '{}': array of {} {} elements needs {} "
                            "bytes but only {} remain",
                            key, count, gguf_value_type_name(v.elem_type),
                            count > std::numeric_limits<uint64_t>::max() / es
                                ? std::numeric_limits<uint64_t>::max()
                                : count * es,
                            remaining()));
          }
          if (v.elem_type == GgufValueType::BOOL) {
            for (uint64_t k = 0; k < count; ++k) {
              if (data_[pos_ + k] > 1) {
                return fail(fmt::format("key '{}': bool element {} must be 0 or 1", key, k));
              }
            }
          }
          v.raw = data_ + pos_;
          pos_ += static_cast<size_t>(count * es);
        }
        return v;
      }
    }
    pos_ = at;
    return fail(fmt::format("truncated: expected a {} value for key '{}'",
                            gguf_value_type_name(type), key));
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

}  // namespace

std::string_view gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
      return "u8";
    case GgufValueType::INT8:
      return "i8";
    case GgufValueType::UINT16:
      return "u16";
    case GgufValueType::INT16:
      return "i16";
    case GgufValueType::UINT32:
      return "u32";
    case GgufValueType::INT32:
      return "i32";
    case GgufValueType::FLOAT32:
      return "f32";
    case GgufValueType::BOOL:
      return "bool";
    case GgufValueType::STRING:
      return "str";
    case GgufValueType::ARRAY:
      return "arr";
    case GgufValueType::UINT64:
      return "u64";
    case GgufValueType::INT64:
      return "i64";
    case GgufValueType::FLOAT64:
      return "f64";
  }
  return "?";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
      return true;
    default:
      return false;
  }
}

double GgufValue::array_f64(uint64_t k) const {
  const uint8_t* p = raw + k * scalar_size(elem_type);
  switch (elem_type) {
    case GgufValueType::FLOAT32: {
      float x;
      std::memcpy(&x, p, 4);
      return x;
    }
    case GgufValueType::FLOAT64: {
      double x;
      std::memcpy(&x, p, 8);
      return x;
    }
    case GgufValueType::UINT64: {
      uint64_t x;
      std::memcpy(&x, p, 8);
      return static_cast<double>(x);
    }
    default:
      return static_cast<double>(array_i64(k));
  }
}

int64_t GgufValue::array_i64(uint64_t k) const {
  const uint8_t* p = raw + k * scalar_size(elem_type);
  switch (elem_type) {
    case GgufValueType::UINT8:
    case GgufValueType::BOOL:
      return *p;
    case GgufValueType::INT8:
      return static_cast<int8_t>(*p);
    case GgufValueType::UINT16: {
      uint16_t x;
      std::memcpy(&x, p, 2);
      return x;
    }
    case GgufValueType::INT16: {
      int16_t x;
      std::memcpy(&x, p, 2);
      return x;
    }
    case GgufValueType::UINT32: {
      uint32_t x;
      std::memcpy(&x, p, 4);
      return x;
    }
    case GgufValueType::INT32: {
      int32_t x;
      std::memcpy(&x, p, 4);
      return x;
    }
    case GgufValueType::UINT64: {
      uint64_t x;
      std::memcpy(&x, p, 8);
      return static_cast<int64_t>(x);
    }
    case GgufValueType::INT64: {
      int64_t x;
      std::memcpy(&x, p, 8);
      return x;
    }
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: {
      // Truncates toward zero; NaN gives 0 and out-of-range values saturate (a plain cast is UB).
      const double x = array_f64(k);
      if (!(x == x)) return 0;
      if (x >= 9223372036854775808.0) return std::numeric_limits<int64_t>::max();
      if (x <= -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
      return static_cast<int64_t>(x);
    }
    default:
      return 0;
  }
}

namespace {
std::string quote(std::string_view s, size_t max_chars = 200) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : s) {
    if (n++ >= max_chars) {
      out += "...";
      break;
    }
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}
}  // namespace

std::string GgufValue::to_string(size_t max_items) const {
  switch (type) {
    case GgufValueType::STRING:
      return quote(str);
    case GgufValueType::BOOL:
      return b ? "true" : "false";
    case GgufValueType::FLOAT32:
      return fmt::format("{}", static_cast<float>(f));
    case GgufValueType::FLOAT64:
      return fmt::format("{}", f);
    case GgufValueType::UINT64:
    case GgufValueType::UINT32:
    case GgufValueType::UINT16:
    case GgufValueType::UINT8:
      return fmt::format("{}", u);
    case GgufValueType::ARRAY: {
      std::string out = fmt::format("[{} x {}]", count, gguf_value_type_name(elem_type));
      if (count == 0) return out;
      out += " [";
      size_t shown = static_cast<size_t>(count < max_items ? count : max_items);
      for (size_t k = 0; k < shown; ++k) {
        if (k) out += ", ";
        if (elem_type == GgufValueType::STRING) {
          out += quote(strings[k], 40);
        } else if (elem_type == GgufValueType::ARRAY) {
          out += arrays[k].to_string(max_items);
        } else if (elem_type == GgufValueType::FLOAT32 || elem_type == GgufValueType::FLOAT64) {
          out += fmt::format("{}", array_f64(k));
        } else if (elem_type == GgufValueType::BOOL) {
          out += array_i64(k) ? "true" : "false";
        } else {
          out += fmt::format("{}", array_i64(k));
        }
      }
      if (shown < count) out += ", ...";
      return out + "]";
    }
    default:
      return fmt::format("{}", i);
  }
}

GgufFile::GgufFile() = default;
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

Result<GgufFile> GgufFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  if (!mapped.ok()) return mapped.error();
  auto mapping = std::make_unique<Mapping>();
  mapping->file = std::move(*mapped);
  auto parsed = parse(mapping->file.data(), mapping->file.size(), path);
  if (!parsed.ok()) return parsed.error();
  parsed->mapping_ = std::move(mapping);
  return std::move(parsed).value();
}

Result<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  GgufFile f;
  f.name_ = name;
  f.size_ = size;
  Reader r(data, size, f.name_);

  uint32_t magic = 0;
  if (!r.read(magic)) {
    return r.fail(fmt::format(
        "truncated: {} bytes is too short for a GGUF header (expected at least 24 bytes)", size));
  }
  if (std::memcmp(&magic, "GGUF", 4) != 0) {
    return Error{fmt::format("{}: not a GGUF file (magic bytes are not \"GGUF\")", name)};
  }
  if (!r.read(f.version_)) return r.fail("truncated: expected the GGUF version");
  if (f.version_ != 2 && f.version_ != 3) {
    return Error{
        fmt::format("{}: unsupported GGUF version {} (expected 2 or 3)", name, f.version_)};
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (!r.read(n_tensors)) return r.fail("truncated: expected the tensor count");
  if (!r.read(n_kv)) return r.fail("truncated: expected the metadata key/value count");
  // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8+4+4+8.
  if (n_kv > r.remaining() / 13) {
    return r.fail(
        fmt::format("truncated or corrupt: metadata count {} is impossible for a file of {} bytes",
                    n_kv, size));
  }
  if (n_tensors > r.remaining() / 24) {
    return r.fail(
        fmt::format("truncated or corrupt: tensor count {} is impossible for a file of {} bytes",
                    n_tensors, size));
  }

  std::unordered_set<std::string_view> seen_keys;
  f.kv_.reserve(static_cast<size_t>(std::min<uint64_t>(n_kv, kMaxReserve)));
  for (uint64_t k = 0; k < n_kv; ++k) {
    auto key = r.read_string([&] { return fmt::format("the key of metadata entry {}", k); });
    if (!key.ok()) return key.error();
    if (!seen_keys.insert(*key).second)
      return r.fail(fmt::format("duplicate metadata key '{}'", *key));
    uint32_t type = 0;
    if (!r.read(type))
      return r.fail(fmt::format("truncated: expected the value type of key '{}'", *key));
    if (type > static_cast<uint32_t>(GgufValueType::FLOAT64)) {
      return r.fail(fmt::format("key '{}': unknown value type {}", *key, type));
    }
    auto value = r.read_value(static_cast<GgufValueType>(type), std::string(*key), 0);
    if (!value.ok()) return value.error();
    f.kv_.push_back(GgufKV{*key, std::move(*value)});
  }

  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufValueType::UINT32) {
      return Error{fmt::format("{}: general.alignment must be u32, found {}", name,
                               gguf_value_type_name(a->type))};
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return Error{
          fmt::format("{}: general.alignment must be a power of two, found {}", name, a->u)};
    }
    f.alignment_ = static_cast<uint32_t>(a->u);
  }

  std::unordered_set<std::string_view> seen_tensors;
  f.tensors_.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors, kMaxReserve)));
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensorInfo info;
    auto tname = r.read_string([&] { return fmt::format("the name of tensor {}", t); });
    if (!tname.ok()) return tname.error();
    info.name = *tname;
    if (!seen_tensors.insert(info.name).second)
      return r.fail(fmt::format("duplicate tensor '{}'", info.name));
    if (!r.read(info.n_dims))
      return r.fail(fmt::format("truncated: tensor '{}': expected n_dims", info.name));
    if (info.n_dims == 0 || info.n_dims > kMaxDims) {
      return r.fail(fmt::format("tensor '{}': n_dims is {} (expected 1..{})", info.name,
                                info.n_dims, kMaxDims));
    }
    for (uint32_t d = 0; d < info.n_dims; ++d) {
      uint64_t ne = 0;
      if (!r.read(ne))
        return r.fail(fmt::format("truncated: tensor '{}': expected dimension {}", info.name, d));
      if (ne == 0 || ne > (uint64_t{1} << 40)) {
        return r.fail(
            fmt::format("tensor '{}': dimension {} is {} (expected 1..2^40)", info.name, d, ne));
      }
      info.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t type = 0;
    if (!r.read(type))
      return r.fail(fmt::format("truncated: tensor '{}': expected its type", info.name));
    auto ti = tensor_type_info(type);
    if (!ti) return r.fail(fmt::format("tensor '{}': unknown tensor type id {}", info.name, type));
    info.type = static_cast<TensorType>(type);
    if (!r.read(info.offset))
      return r.fail(fmt::format("truncated: tensor '{}': expected its offset", info.name));
    if (info.ne[0] % ti->block_size != 0) {
      return Error{
          fmt::format("{}: tensor '{}': row length {} is not a multiple of the {} block size {}",
                      name, info.name, info.ne[0], ti->name, ti->block_size)};
    }
    // Each dim is <= 2^40 but the element count must stay <= 2^62. Checked after every factor:
    // four factors of 2^40 would overflow even 128 bits.
    __int128 elems = 1;
    for (int d = 0; d < 4; ++d) {
      elems *= info.ne[d];
      if (elems > (static_cast<__int128>(1) << 62)) {
        return Error{
            fmt::format("{}: tensor '{}': too many elements (more than 2^62)", name, info.name)};
      }
    }
    // In 128 bits: 2^62 elements of an 8-byte type would wrap a 64-bit product to a small size.
    const __int128 nbytes = elems / ti->block_size * static_cast<__int128>(ti->block_bytes);
    if (nbytes > static_cast<__int128>(size)) {
      return Error{
          fmt::format("{}: truncated or corrupt: tensor '{}': its {} elements of {} need more "
                      "bytes than the whole file ({})",
                      name, info.name, static_cast<int64_t>(elems), ti->name, size)};
    }
    info.nbytes = static_cast<uint64_t>(nbytes);
    if (info.offset % f.alignment_ != 0) {
      return Error{
          fmt::format("{}: tensor '{}': data offset {} is not a multiple of the alignment {}", name,
                      info.name, info.offset, f.alignment_)};
    }
    f.tensors_.push_back(info);
  }

  uint64_t pos = r.pos();
  f.data_offset_ = (pos + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (n_tensors > 0 && f.data_offset_ > size) {
    return Error{fmt::format(
        "{}: truncated: tensor data should start at offset {} but the file has {} bytes", name,
        f.data_offset_, size)};
  }
  for (auto& t : f.tensors_) {
    uint64_t avail = size - f.data_offset_;
    if (t.offset > avail || t.nbytes > avail - t.offset) {
      return Error{fmt::format(
          "{}: tensor '{}': data [{}, {}) lies past the end of the file ({} bytes); the file is "
          "truncated "
          "or the offset is corrupt",
          name, t.name, f.data_offset_ + t.offset, f.data_offset_ + t.offset + t.nbytes, size)};
    }
    t.data = data + f.data_offset_ + t.offset;
  }
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& kv : kv_) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view tname) const {
  for (const auto& t : tensors_) {
    if (t.name == tname) return &t;
  }
  return nullptr;
}

Result<std::optional<int64_t>> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<int64_t>{};
  if (v->is_integer()) {
    if (v->type == GgufValueType::UINT64 && v->u > static_cast<uint64_t>(INT64_MAX)) {
      return Error{fmt::format("{}: key '{}': value {} is too large", name_, key, v->u)};
    }
    return std::optional<int64_t>{v->i};
  }
  if (v->type == GgufValueType::BOOL) return std::optional<int64_t>{v->b ? 1 : 0};
  return Error{fmt::format("{}: key '{}': expected an integer, found {}", name_, key,
                           gguf_value_type_name(v->type))};
}

Result<std::optional<double>> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<double>{};
  if (v->is_float()) return std::optional<double>{v->f};
  if (v->type == GgufValueType::UINT64) return std::optional<double>{static_cast<double>(v->u)};
  if (v->is_integer()) return std::optional<double>{static_cast<double>(v->i)};
  return Error{fmt::format("{}: key '{}': expected a number, found {}", name_, key,
                           gguf_value_type_name(v->type))};
}

Result<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<bool>{};
  if (v->type == GgufValueType::BOOL) return std::optional<bool>{v->b};
  if (v->is_integer()) return std::optional<bool>{v->i != 0};
  return Error{fmt::format("{}: key '{}': expected a bool, found {}", name_, key,
                           gguf_value_type_name(v->type))};
}

Result<std::optional<std::string_view>> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<std::string_view>{};
  if (v->type == GgufValueType::STRING) return std::optional<std::string_view>{v->str};
  return Error{fmt::format("{}: key '{}': expected a string, found {}", name_, key,
                           gguf_value_type_name(v->type))};
}

Result<const GgufValue*> GgufFile::get_array(std::string_view key, GgufValueType elem_type) const {
  const GgufValue* v = find(key);
  if (!v) return static_cast<const GgufValue*>(nullptr);
  if (v->type != GgufValueType::ARRAY || v->elem_type != elem_type) {
    return Error{fmt::format("{}: key '{}': expected an array of {}, found {}{}", name_, key,
                             gguf_value_type_name(elem_type), gguf_value_type_name(v->type),
                             v->type == GgufValueType::ARRAY
                                 ? fmt::format(" of {}", gguf_value_type_name(v->elem_type))
                                 : "")};
  }
  return v;
}

}  // namespace kandil
