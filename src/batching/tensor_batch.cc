#include "batching/tensor_batch.h"

#include <numeric>

#include "absl/strings/str_cat.h"

namespace modeld::batching {

bool SameItemShapes(const core::TensorMap& a, const core::TensorMap& b) {
  for (const auto& [name, tensor] : a) {
    auto it = b.find(name);
    if (it == b.end()) return false;
    const core::Shape& x = tensor.shape();
    const core::Shape& y = it->second.shape();
    if (x.size() != y.size() || x.empty() || !std::equal(x.begin() + 1, x.end(), y.begin() + 1)) {
      return false;
    }
  }
  return a.size() == b.size();
}

core::TensorMap Concatenate(const std::vector<const core::TensorMap*>& parts,
                            const std::vector<core::TensorSpec>& inputs) {
  core::TensorMap batch;
  for (const core::TensorSpec& spec : inputs) {
    const core::Tensor& first = parts.front()->at(spec.name);
    core::Shape shape = first.shape();
    shape[0] = 0;
    size_t bytes = 0;
    for (const core::TensorMap* part : parts) {
      const core::Tensor& tensor = part->at(spec.name);
      shape[0] += tensor.shape()[0];
      bytes += tensor.bytes().size();
    }
    std::string data;
    data.reserve(bytes);
    for (const core::TensorMap* part : parts) {
      const absl::string_view piece = part->at(spec.name).bytes();
      data.append(piece.data(), piece.size());
    }
    batch[spec.name] = core::Tensor::Owning(first.type(), std::move(shape), std::move(data));
  }
  return batch;
}

absl::StatusOr<std::vector<core::TensorMap>> Split(const core::TensorMap& outputs,
                                                   const std::vector<int64_t>& rows) {
  const int64_t total = std::accumulate(rows.begin(), rows.end(), int64_t{0});
  std::vector<core::TensorMap> parts(rows.size());
  for (const auto& [name, tensor] : outputs) {
    if (tensor.shape().empty() || tensor.shape()[0] != total) {
      return absl::InternalError(absl::StrCat("output '", name, "' has shape ",
                                              core::ShapeToString(tensor.shape()),
                                              " but the batch holds ", total, " rows"));
    }
    int64_t first = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      absl::StatusOr<core::Tensor> slice = tensor.SliceRows(first, rows[i]);
      if (!slice.ok()) {
        return absl::InternalError(absl::StrCat("output '", name, "': ", slice.status().message()));
      }
      parts[i][name] = *std::move(slice);
      first += rows[i];
    }
  }
  return parts;
}

}  // namespace modeld::batching
