#include "kandil/safetensors.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "base/file_io.h"
#include "base/mmap.h"

namespace kandil {

struct SafetensorsFile::Mapping {
  MappedFile file;
};

namespace {

// The reference implementation refuses headers above 100 MB; so do we (a corrupt length must not
// make us parse gigabytes of tensor data as JSON).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kMaxDims = 8;

struct DTypeInfo {
  SafetensorsDType type;
  std::string_view name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {SafetensorsDType::BOOL, "BOOL", 1},       {SafetensorsDType::U8, "U8", 1},
    {SafetensorsDType::I8, "I8", 1},           {SafetensorsDType::U16, "U16", 2},
    {SafetensorsDType::I16, "I16", 2},         {SafetensorsDType::F16, "F16", 2},
    {SafetensorsDType::BF16, "BF16", 2},       {SafetensorsDType::U32, "U32", 4},
    {SafetensorsDType::I32, "I32", 4},         {SafetensorsDType::F32, "F32", 4},
    {SafetensorsDType::U64, "U64", 8},         {SafetensorsDType::I64, "I64", 8},
    {SafetensorsDType::F64, "F64", 8},         {SafetensorsDType::F8_E4M3, "F8_E4M3", 1},
    {SafetensorsDType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeInfo& info(SafetensorsDType t) { return kDTypes[static_cast<size_t>(t)]; }

// Elements of a shape, or nullopt on a negative dimension or overflow past 2^62.
std::optional<uint64_t> count_elements(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > (uint64_t{1} << 62) / static_cast<uint64_t>(d)) return std::nullopt;
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

Result<uint64_t> json_u64(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number_integer()) return make_error(what + ": expected a non-negative integer");
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  const int64_t i = v.get<int64_t>();
  if (i < 0)
    return make_error(what + ": expected a non-negative integer, got " + std::to_string(i));
  return static_cast<uint64_t>(i);
}

Result<SafetensorsTensor> parse_entry(const std::string& name, const nlohmann::json& entry,
                                      const uint8_t* buffer, uint64_t buffer_size,
                                      uint64_t& begin_out) {
  const std::string where = fmt::format("tensor '{}'", name);
  if (!entry.is_object()) return make_error(where + ": expected an object");
  const auto dt = entry.find("dtype");
  const auto sh = entry.find("shape");
  const auto off = entry.find("data_offsets");
  if (dt == entry.end() || !dt->is_string())
    return make_error(where + ": expected a string field 'dtype'");
  if (sh == entry.end() || !sh->is_array())
    return make_error(where + ": expected an array field 'shape'");
  if (off == entry.end() || !off->is_array() || off->size() != 2)
    return make_error(where + ": expected 'data_offsets' as [begin, end]");

  SafetensorsTensor t;
  t.name = name;
  auto dtype = safetensors_dtype_from_name(dt->get_ref<const std::string&>());
  if (!dtype)
    return make_error(fmt::format("{}: unknown dtype '{}'", where, dt->get<std::string>()));
  t.dtype = *dtype;
  if (sh->size() > kMaxDims)
    return make_error(fmt::format("{}: {} dimensions (at most {})", where, sh->size(), kMaxDims));
  for (size_t d = 0; d < sh->size(); ++d) {
    auto dim = json_u64((*sh)[d], fmt::format("{}: shape[{}]", where, d));
    if (!dim) return dim.error();
    if (*dim > (uint64_t{1} << 62)) return make_error(where + ": shape dimension too large");
    t.shape.push_back(static_cast<int64_t>(*dim));
  }
  auto begin = json_u64((*off)[0], where + ": data_offsets[0]");
  if (!begin) return begin.error();
  auto end = json_u64((*off)[1], where + ": data_offsets[1]");
  if (!end) return end.error();
  if (*end < *begin || *end > buffer_size)
    return make_error(fmt::format("{}: data_offsets [{}, {}] outside the {}-byte data buffer",
                                  where, *begin, *end, buffer_size));
  const auto n = count_elements(t.shape);
  if (!n) return make_error(where + ": shape overflows");
  const uint64_t expect = *n * info(t.dtype).size;
  if (*end - *begin != expect)
    return make_error(fmt::format("{}: data_offsets span {} bytes but {} {} needs {}", where,
                                  *end - *begin, *n, info(t.dtype).name, expect));
  t.data = buffer + *begin;
  t.nbytes = expect;
  begin_out = *begin;
  return t;
}

}  // namespace

std::string_view safetensors_dtype_name(SafetensorsDType t) { return info(t).name; }

std::optional<SafetensorsDType> safetensors_dtype_from_name(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.type;
  return std::nullopt;
}

size_t safetensors_dtype_size(SafetensorsDType t) { return info(t).size; }

std::optional<TensorType> safetensors_to_tensor_type(SafetensorsDType t) {
  switch (t) {
    case SafetensorsDType::F32:
      return TensorType::F32;
    case SafetensorsDType::F16:
      return TensorType::F16;
    case SafetensorsDType::BF16:
      return TensorType::BF16;
    default:
      return std::nullopt;
  }
}

int64_t SafetensorsTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  if (!mapped) return mapped.error();
  auto mapping = std::make_unique<Mapping>();
  mapping->file = std::move(mapped.value());
  auto parsed = parse(mapping->file.data(), mapping->file.size(), path);
  if (!parsed) return parsed.error();
  parsed->mapping_ = std::move(mapping);
  return std::move(parsed.value());
}

Result<SafetensorsFile> SafetensorsFile::parse(const uint8_t* data, size_t size,
                                               const std::string& name) {
  auto fail = [&](const std::string& what) { return Error{name + ": " + what}; };
  if (size < 8) return fail(fmt::format("{} bytes: too short for the 8-byte header length", size));
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > kMaxHeaderBytes)
    return fail(fmt::format("header length {} exceeds the {}-byte limit (corrupt file?)",
                            header_len, kMaxHeaderBytes));
  if (header_len > size - 8)
    return fail(
        fmt::format("truncated: header length {} but only {} bytes follow", header_len, size - 8));
  if (header_len < 2 || data[8] != '{')
    return fail("offset 8: expected the JSON header to start with '{'");

  const char* header = reinterpret_cast<const char*>(data + 8);
  nlohmann::json doc = nlohmann::json::parse(header, header + header_len, nullptr,
                                             /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return fail(fmt::format("offset 8: the {}-byte header is not a JSON object", header_len));

  SafetensorsFile f;
  f.name_ = name;
  const uint8_t* buffer = data + 8 + header_len;
  const uint64_t buffer_size = size - 8 - header_len;
  std::vector<std::pair<uint64_t, size_t>> order;  // (begin, index) to check coverage
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return fail("__metadata__: expected an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          return fail(fmt::format("__metadata__.{}: expected a string value", m.key()));
        f.metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    uint64_t begin = 0;
    auto t = parse_entry(it.key(), it.value(), buffer, buffer_size, begin);
    if (!t) return t.error().with_context(name);
    order.emplace_back(begin, f.tensors_.size());
    f.tensors_.push_back(std::move(t.value()));
  }

  // The tensors must tile the buffer: sorted by offset, each starts where the previous ended and
  // the last ends at the end of the file.
  std::sort(order.begin(), order.end());
  uint64_t at = 0;
  std::vector<SafetensorsTensor> sorted;
  sorted.reserve(order.size());
  for (const auto& [begin, idx] : order) {
    const SafetensorsTensor& t = f.tensors_[idx];
    if (begin != at)
      return fail(
          fmt::format("tensor '{}' starts at data offset {} but the previous one ends at {} "
                      "(overlap or hole in the data buffer)",
                      t.name, begin, at));
    at = begin + t.nbytes;
    sorted.push_back(t);
  }
  if (at != buffer_size)
    return fail(fmt::format(
        "the tensors cover {} of the {} data bytes (truncated or trailing data)", at, buffer_size));
  f.tensors_ = std::move(sorted);
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

Result<SafetensorsSet> SafetensorsSet::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  SafetensorsSet set;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  std::error_code ec;
  if (fs::exists(index_path, ec)) {
    auto mapped = MappedFile::open(index_path.string());
    if (!mapped) return mapped.error();
    const char* text = reinterpret_cast<const char*>(mapped->data());
    nlohmann::json doc =
        nlohmann::json::parse(text, text + mapped->size(), nullptr, /*allow_exceptions=*/false);
    const std::string where = index_path.string();
    if (doc.is_discarded() || !doc.is_object()) return make_error(where + ": not a JSON object");
    const auto wm = doc.find("weight_map");
    if (wm == doc.end() || !wm->is_object() || wm->empty())
      return make_error(where + ": expected a non-empty object 'weight_map'");
    std::map<std::string, std::vector<std::string>> by_shard;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string())
        return make_error(fmt::format("{}: weight_map.{}: expected a file name", where, it.key()));
      const std::string shard = it->get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        return make_error(fmt::format("{}: weight_map.{}: '{}' is not a file name in the folder",
                                      where, it.key(), shard));
      by_shard[shard].push_back(it.key());
    }
    set.files_.reserve(by_shard.size());
    for (const auto& [shard, names] : by_shard) {
      auto f = SafetensorsFile::open((fs::path(dir) / shard).string());
      if (!f) return f.error();
      for (const auto& n : names)
        if (!f->find(n))
          return make_error(
              fmt::format("{}: tensor '{}' is listed in {} but not stored there", where, n, shard));
      set.files_.push_back(std::move(f.value()));
    }
  } else if (fs::exists(single, ec)) {
    auto f = SafetensorsFile::open(single.string());
    if (!f) return f.error();
    set.files_.push_back(std::move(f.value()));
  } else {
    return make_error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const auto& f : set.files_) {
    for (const auto& t : f.tensors()) {
      if (!set.index_.emplace(t.name, &t).second)
        return make_error(
            fmt::format("{}: tensor '{}' is stored in more than one shard", f.name(), t.name));
    }
  }
  return set;
}

const SafetensorsTensor* SafetensorsSet::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

std::vector<const SafetensorsTensor*> SafetensorsSet::tensors() const {
  std::vector<const SafetensorsTensor*> out;
  for (const auto& f : files_)
    for (const auto& t : f.tensors()) out.push_back(&t);
  return out;
}

uint64_t SafetensorsSet::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_)
    for (const auto& t : f.tensors()) n += t.nbytes;
  return n;
}

Result<void> SafetensorsWriter::add(std::string name, SafetensorsDType dtype,
                                    std::vector<int64_t> shape, const void* data, size_t nbytes) {
  if (name.empty() || name == "__metadata__")
    return make_error(fmt::format("safetensors: invalid tensor name '{}'", name));
  for (const auto& t : tensors_)
    if (t.name == name) return make_error("safetensors: duplicate tensor '" + name + "'");
  const auto n = count_elements(shape);
  if (!n || *n * safetensors_dtype_size(dtype) != nbytes)
    return make_error(
        fmt::format("safetensors: tensor '{}': {} bytes do not match its shape", name, nbytes));
  Tensor t{std::move(name), dtype, std::move(shape), {}};
  t.data.resize(nbytes);
  if (nbytes) std::memcpy(t.data.data(), data, nbytes);
  tensors_.push_back(std::move(t));
  return {};
}

std::vector<uint8_t> SafetensorsWriter::serialize() const {
  // nlohmann's object is ordered by key; the data buffer follows the order tensors were added.
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t at = 0;
  for (const auto& t : tensors_) {
    header[t.name] = {{"dtype", std::string(safetensors_dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {at, at + t.data.size()}}};
    at += t.data.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + text.size() + at);
  const uint64_t len = text.size();
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const auto& t : tensors_) {
    if (!t.data.empty()) std::memcpy(p, t.data.data(), t.data.size());
    p += t.data.size();
  }
  return out;
}

Result<void> SafetensorsWriter::write_file(const std::string& path) const {
  const std::vector<uint8_t> bytes = serialize();
  return write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace kandil
