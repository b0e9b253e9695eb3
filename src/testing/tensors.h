// Tensors of plain numbers for tests: made from a vector, read back into one.
#pragma once

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace modeld::testing {

// A tensor owning `values` (little-endian, as modeld's hosts store them).
template <typename T>
core::Tensor MakeTensor(core::DataType type, core::Shape shape, const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return core::Tensor::Owning(type, std::move(shape), std::move(bytes));
}

// A tensor's elements as T.
template <typename T>
std::vector<T> Values(const core::Tensor& tensor) {
  std::vector<T> values(tensor.bytes().size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), tensor.bytes().data(), tensor.bytes().size());
  return values;
}

}  // namespace modeld::testing
