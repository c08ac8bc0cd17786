#include <cctype>
#include <string>

#include "kandil/tensor_type.h"
#include "ops/quant.h"

namespace kandil {
namespace {
struct Entry {
  uint32_t id;
  TensorTypeInfo info;
};
// Layouts of every ggml type id so files with types we cannot compute with still parse and list.
constexpr Entry kTypes[] = {
    {0, {"F32", 1, 4}},         {1, {"F16", 1, 2}},         {2, {"Q4_0", 32, 18}},
    {3, {"Q4_1", 32, 20}},      {6, {"Q5_0", 32, 22}},      {7, {"Q5_1", 32, 24}},
    {8, {"Q8_0", 32, 34}},      {9, {"Q8_1", 32, 36}},      {10, {"Q2_K", 256, 84}},
    {11, {"Q3_K", 256, 110}},   {12, {"Q4_K", 256, 144}},   {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}},   {15, {"Q8_K", 256, 292}},   {16, {"IQ2_XXS", 256, 66}},
    {17, {"IQ2_XS", 256, 74}},  {18, {"IQ3_XXS", 256, 98}}, {19, {"IQ1_S", 256, 50}},
    {20, {"IQ4_NL", 32, 18}},   {21, {"IQ3_S", 256, 110}},  {22, {"IQ2_S", 256, 82}},
    {23, {"IQ4_XS", 256, 136}}, {24, {"I8", 1, 1}},         {25, {"I16", 1, 2}},
    {26, {"I32", 1, 4}},        {27, {"I64", 1, 8}},        {28, {"F64", 1, 8}},
    {29, {"IQ1_M", 256, 56}},   {30, {"BF16", 1, 2}},       {34, {"TQ1_0", 256, 54}},
    {35, {"TQ2_0", 256, 66}},
};
}  // namespace

std::optional<TensorTypeInfo> tensor_type_info(uint32_t type_id) {
  for (const auto& e : kTypes) {
    if (e.id == type_id) return e.info;
  }
  return std::nullopt;
}

bool tensor_type_supported(TensorType type) {
  const ops::TypeTraits* t = ops::type_traits(type);
  return t != nullptr && t->vec_dot != nullptr;
}

std::string_view tensor_type_name(TensorType type) {
  auto info = tensor_type_info(static_cast<uint32_t>(type));
  return info ? info->name : std::string_view("?");
}

size_t tensor_row_bytes(TensorType type, int64_t n) {
  auto info = tensor_type_info(static_cast<uint32_t>(type));
  if (!info) return 0;
  return static_cast<size_t>(n / info->block_size) * info->block_bytes;
}

std::optional<TensorType> tensor_type_from_name(std::string_view name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& e : kTypes) {
    if (e.info.name == upper) return static_cast<TensorType>(e.id);
  }
  return std::nullopt;
}

}  // namespace kandil
