// Tensor: an element type, a shape and row-major little-endian bytes.
//
// A Tensor either owns its bytes or views bytes kept alive by an owner it holds, so a
// transport can hand over a wire buffer and a backend can hand over framework memory without
// copying. Tensors are immutable after construction and cheap to copy (the owner is shared).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/data_type.h"

namespace modeld::core {

using Shape = std::vector<int64_t>;

// Product of the dimensions (1 for a scalar); -1 if a dimension is negative or the product
// overflows int64.
int64_t ElementCount(const Shape& shape);

// "[2, 3]": for error messages.
std::string ShapeToString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Owns `bytes`.
  static Tensor Owning(DataType type, Shape shape, std::string bytes);

  // Views `bytes`, which `owner` keeps alive (owner may be null when the caller guarantees the
  // bytes outlive every copy of this Tensor, as a transport does for a request it is serving).
  static Tensor Viewing(DataType type, Shape shape, absl::string_view bytes,
                        std::shared_ptr<const void> owner);

  DataType type() const { return type_; }
  const Shape& shape() const { return shape_; }
  absl::string_view bytes() const { return bytes_; }

  // Rows [first, first + count) of the first dimension, sharing this tensor's bytes (no
  // copy). INVALID_ARGUMENT for a scalar, rows out of range, or malformed BYTES data.
  absl::StatusOr<Tensor> SliceRows(int64_t first, int64_t count) const;
  // The same bytes under another shape of as many elements (the caller checks that).
  Tensor WithShape(Shape shape) const {
    Tensor copy = *this;
    copy.shape_ = std::move(shape);
    return copy;
  }

 private:
  DataType type_ = DataType::kFp32;
  Shape shape_;
  std::shared_ptr<const void> owner_;
  absl::string_view bytes_;
};

// Tensors by name: the inputs and the outputs of one Model::Run.
using TensorMap = absl::flat_hash_map<std::string, Tensor>;

// BYTES tensors carry each element as a 4-byte little-endian length followed by its bytes.
// Splits such a buffer into views of the elements. INVALID_ARGUMENT when a length runs past
// the end of the buffer.
absl::StatusOr<std::vector<absl::string_view>> SplitBytesElements(absl::string_view buffer);

// Appends one BYTES element (length prefix + bytes) to `buffer`.
void AppendBytesElement(absl::string_view element, std::string& buffer);

// Appends one fixed-size element (a number; little-endian, as modeld's hosts store it).
template <typename T>
void AppendElement(T value, std::string& buffer) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  buffer.append(raw, sizeof(T));
}

}  // namespace modeld::core
