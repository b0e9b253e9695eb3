// Tensor element types and their names on the wire and in config.pbtxt.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"
#include "kserve/model_config.pb.h"
#include "tensorflow/types.pb.h"

namespace modeld::core {

enum class DataType {
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kFp32,
  kFp64,
  kBytes,  // variable-size elements, each a 4-byte little-endian length + the bytes
};

// The protocol name: "BOOL", "UINT8", ..., "FP32", "BYTES".
absl::string_view DataTypeName(DataType type);

// Parses a protocol name (case-sensitive, as the protocol says); nullopt when unknown.
std::optional<DataType> DataTypeFromName(absl::string_view name);

// Maps config.pbtxt's enum (TYPE_FP32, TYPE_STRING, ...); nullopt for TYPE_INVALID and for
// types modeld does not serve (TYPE_BF16).
std::optional<DataType> DataTypeFromConfig(inference::DataType type);
inference::DataType DataTypeToConfig(DataType type);

// TensorFlow's dtypes (DT_STRING is BYTES); nullopt for those modeld does not serve
// (bfloat16, complex, quantized, resource, variant).
std::optional<DataType> DataTypeFromTf(tensorflow::DataType type);
tensorflow::DataType DataTypeToTf(DataType type);

// Bytes per element; 0 for BYTES, whose elements vary in size.
int64_t DataTypeSize(DataType type);

}  // namespace modeld::core
