#include "core/tensor.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace modeld::core {

int64_t ElementCount(const Shape& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return -1;
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) return -1;
    count *= dim;
  }
  return count;
}

std::string ShapeToString(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

Tensor Tensor::Owning(DataType type, Shape shape, std::string bytes) {
  auto storage = std::make_shared<const std::string>(std::move(bytes));
  absl::string_view view = *storage;
  return Viewing(type, std::move(shape), view, std::move(storage));
}

Tensor Tensor::Viewing(DataType type, Shape shape, absl::string_view bytes,
                       std::shared_ptr<const void> owner) {
  Tensor tensor;
  tensor.type_ = type;
  tensor.shape_ = std::move(shape);
  tensor.owner_ = std::move(owner);
  tensor.bytes_ = bytes;
  return tensor;
}

absl::StatusOr<Tensor> Tensor::SliceRows(int64_t first, int64_t count) const {
  if (shape_.empty() || first < 0 || count < 0 || first + count > shape_[0]) {
    return absl::InvalidArgumentError(absl::StrCat("rows [", first, ", ", first + count,
                                                   ") are outside shape ", ShapeToString(shape_)));
  }
  Shape shape = shape_;
  shape[0] = count;
  const int64_t row_elements = ElementCount(Shape(shape_.begin() + 1, shape_.end()));
  size_t begin = 0;
  size_t end = 0;
  if (type_ != DataType::kBytes) {
    const int64_t row_bytes = row_elements * DataTypeSize(type_);
    begin = first * row_bytes;
    end = begin + count * row_bytes;
    if (end > bytes_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor of shape ", ShapeToString(shape_),
                                                     " holds only ", bytes_.size(), " bytes"));
    }
  } else {
    // Variable-size elements: walk the length prefixes to the first and past the last row.
    absl::StatusOr<std::vector<absl::string_view>> elements = SplitBytesElements(bytes_);
    if (!elements.ok()) return elements.status();
    const int64_t first_element = first * row_elements;
    const int64_t end_element = (first + count) * row_elements;
    if (end_element > static_cast<int64_t>(elements->size())) {
      return absl::InvalidArgumentError(absl::StrCat("BYTES tensor of shape ",
                                                     ShapeToString(shape_), " holds only ",
                                                     elements->size(), " elements"));
    }
    auto offset_of = [&](int64_t element) -> size_t {
      if (element == static_cast<int64_t>(elements->size())) return bytes_.size();
      return (*elements)[element].data() - bytes_.data() - 4;  // back over the length prefix
    };
    begin = offset_of(first_element);
    end = offset_of(end_element);
  }
  return Viewing(type_, std::move(shape), bytes_.substr(begin, end - begin), owner_);
}

absl::StatusOr<std::vector<absl::string_view>> SplitBytesElements(absl::string_view buffer) {
  std::vector<absl::string_view> elements;
  size_t offset = 0;
  while (offset < buffer.size()) {
    if (buffer.size() - offset < 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("BYTES element ", elements.size(), " has a truncated 4-byte length prefix"));
    }
    const auto* p = reinterpret_cast<const unsigned char*>(buffer.data() + offset);
    const uint32_t length = p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t{p[3]} << 24);
    offset += 4;
    if (length > buffer.size() - offset) {
      return absl::InvalidArgumentError(absl::StrCat("BYTES element ", elements.size(),
                                                     " declares ", length, " bytes but only ",
                                                     buffer.size() - offset, " remain"));
    }
    elements.push_back(buffer.substr(offset, length));
    offset += length;
  }
  return elements;
}

void AppendBytesElement(absl::string_view element, std::string& buffer) {
  const auto length = static_cast<uint32_t>(element.size());
  const char prefix[4] = {static_cast<char>(length & 0xff), static_cast<char>((length >> 8) & 0xff),
                          static_cast<char>((length >> 16) & 0xff),
                          static_cast<char>((length >> 24) & 0xff)};
  buffer.append(prefix, 4);
  buffer.append(element.data(), element.size());
}

}  // namespace modeld::core
