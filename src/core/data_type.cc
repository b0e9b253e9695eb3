#include "core/data_type.h"

#include <array>

namespace modeld::core {
namespace {

struct TypeInfo {
  DataType type;
  absl::string_view name;
  inference::DataType config;
  tensorflow::DataType tf;
  int64_t size;
};

constexpr std::array<TypeInfo, 13> kTypes = {{
    {DataType::kBool, "BOOL", inference::TYPE_BOOL, tensorflow::DT_BOOL, 1},
    {DataType::kUint8, "UINT8", inference::TYPE_UINT8, tensorflow::DT_UINT8, 1},
    {DataType::kUint16, "UINT16", inference::TYPE_UINT16, tensorflow::DT_UINT16, 2},
    {DataType::kUint32, "UINT32", inference::TYPE_UINT32, tensorflow::DT_UINT32, 4},
    {DataType::kUint64, "UINT64", inference::TYPE_UINT64, tensorflow::DT_UINT64, 8},
    {DataType::kInt8, "INT8", inference::TYPE_INT8, tensorflow::DT_INT8, 1},
    {DataType::kInt16, "INT16", inference::TYPE_INT16, tensorflow::DT_INT16, 2},
    {DataType::kInt32, "INT32", inference::TYPE_INT32, tensorflow::DT_INT32, 4},
    {DataType::kInt64, "INT64", inference::TYPE_INT64, tensorflow::DT_INT64, 8},
    {DataType::kFp16, "FP16", inference::TYPE_FP16, tensorflow::DT_HALF, 2},
    {DataType::kFp32, "FP32", inference::TYPE_FP32, tensorflow::DT_FLOAT, 4},
    {DataType::kFp64, "FP64", inference::TYPE_FP64, tensorflow::DT_DOUBLE, 8},
    {DataType::kBytes, "BYTES", inference::TYPE_STRING, tensorflow::DT_STRING, 0},
}};

const TypeInfo& Info(DataType type) { return kTypes[static_cast<size_t>(type)]; }

}  // namespace

absl::string_view DataTypeName(DataType type) { return Info(type).name; }

std::optional<DataType> DataTypeFromName(absl::string_view name) {
  for (const TypeInfo& info : kTypes) {
    if (info.name == name) return info.type;
  }
  return std::nullopt;
}

std::optional<DataType> DataTypeFromConfig(inference::DataType type) {
  for (const TypeInfo& info : kTypes) {
    if (info.config == type) return info.type;
  }
  return std::nullopt;
}

inference::DataType DataTypeToConfig(DataType type) { return Info(type).config; }

int64_t DataTypeSize(DataType type) { return Info(type).size; }

std::optional<DataType> DataTypeFromTf(tensorflow::DataType type) {
  for (const TypeInfo& info : kTypes) {
    if (info.tf == type) return info.type;
  }
  return std::nullopt;
}

tensorflow::DataType DataTypeToTf(DataType type) { return Info(type).tf; }

}  // namespace modeld::core
