// tensorflow.TensorProto <-> modeld tensors, for TensorFlow Serving's gRPC API (protocols.md
// §4): values raw in tensor_content or in the typed field of their dtype, as
// tf.make_tensor_proto writes them and tf.make_ndarray reads them.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tensor.h"
#include "tensorflow/tensor.pb.h"

namespace modeld::transport::grpc_tfserving {

// The tensor `proto` holds; `what` names it in errors ("input 'x'"). Values come from
// tensor_content (raw little-endian, viewed without copying: `proto` must outlive the
// result) or from the dtype's typed field: float_val, double_val, int_val (INT32, INT16, INT8,
// UINT8, UINT16; range-checked), int64_val, bool_val, half_val (FP16 bit patterns),
// uint32_val, uint64_val, string_val (BYTES). A typed field with one value fills the whole
// shape, as in TensorFlow, taking the bytes it fills from `fill_budget`. INVALID_ARGUMENT
// naming the problem: a dtype modeld does not serve, an unknown rank or negative dimension,
// strings in tensor_content, a count of values or bytes that does not fit the shape (or a
// shape whose byte size overflows), a value out of its dtype's range, one value that would
// fill more bytes than are left in `fill_budget`.
absl::StatusOr<core::Tensor> DecodeTensorProto(const tensorflow::TensorProto& proto,
                                               absl::string_view what, int64_t& fill_budget);

// The bytes that single typed values may fill, across the tensors of one request: a few bytes
// on the wire must not make modeld allocate gigabytes (a client that means it sends the
// values, within the message limit).
inline constexpr int64_t kMaxFilledBytes = int64_t{64} << 20;

// One tensor alone, with a budget of kMaxFilledBytes.
absl::StatusOr<core::Tensor> DecodeTensorProto(const tensorflow::TensorProto& proto,
                                               absl::string_view what);

// `tensor` as TensorFlow Serving answers it: dtype, `shape` (the shape TensorFlow Serving
// shows, holding as many elements as the tensor) and the typed field of the dtype.
// INVALID_ARGUMENT when BYTES data is malformed.
absl::Status EncodeTensorProto(const core::Tensor& tensor, const core::Shape& shape,
                               tensorflow::TensorProto* out);

}  // namespace modeld::transport::grpc_tfserving
