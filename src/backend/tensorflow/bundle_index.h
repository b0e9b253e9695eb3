// Reading the index of a TensorFlow checkpoint (a "tensor bundle": <prefix>.index beside
// <prefix>.data-*), without TensorFlow.
//
// TensorFlow's restore assigns a checkpoint's tensor to a variable whatever its shape, so a
// checkpoint of another model would silently reshape the weights; modeld compares the index of
// a checkpoint with the model's own before restoring it.
//
// The index is a LevelDB-format table (TensorFlow's copy, uncompressed) mapping each tensor's
// name to a serialized BundleEntryProto (dtype = 1, shape = 2, ...); the empty key holds the
// bundle's header.
//
// Private to the tensorflow backend.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tensor.h"
#include "tensorflow/types.pb.h"

namespace modeld::backend {

struct BundleTensor {
  tensorflow::DataType dtype = tensorflow::DT_INVALID;
  core::Shape shape;
};

// The tensors an index lists, by name (the header left out). INVALID_ARGUMENT saying what is
// wrong when `index` is not such a table (truncated, compressed blocks, bad entries).
absl::StatusOr<std::map<std::string, BundleTensor>> ReadBundleIndex(absl::string_view index);

}  // namespace modeld::backend
