#include "repository/warmup.h"

#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "repository/scan.h"

namespace modeld::repository {
namespace {

// `count` random elements of `type`: floats in [0, 1), integers 0..9, 0/1, short strings.
std::string RandomBytes(core::DataType type, int64_t count, std::mt19937& random) {
  std::string bytes;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int> digit(0, 9);
  for (int64_t i = 0; i < count; ++i) {
    switch (type) {
      case core::DataType::kFp32:
        core::AppendElement<float>(static_cast<float>(unit(random)), bytes);
        break;
      case core::DataType::kFp64:
        core::AppendElement<double>(unit(random), bytes);
        break;
      case core::DataType::kFp16:
        // Halves in [1, 2): exponent 15, a random 10-bit mantissa.
        core::AppendElement<uint16_t>(static_cast<uint16_t>(0x3C00 | (random() & 0x3FF)), bytes);
        break;
      case core::DataType::kBool:
        core::AppendElement<uint8_t>(static_cast<uint8_t>(random() & 1), bytes);
        break;
      case core::DataType::kBytes: {
        std::string text(static_cast<size_t>(digit(random)), '\0');
        for (char& c : text) c = static_cast<char>('a' + digit(random));
        core::AppendBytesElement(text, bytes);
        break;
      }
      default: {
        // Integers: 0..9 in the element's width, little-endian.
        const int64_t size = core::DataTypeSize(type);
        std::string element(static_cast<size_t>(size), '\0');
        element[0] = static_cast<char>(digit(random));
        bytes += element;
        break;
      }
    }
  }
  return bytes;
}

std::string ZeroBytes(core::DataType type, int64_t count) {
  if (type != core::DataType::kBytes) {
    return std::string(static_cast<size_t>(count * core::DataTypeSize(type)), '\0');
  }
  std::string bytes;
  for (int64_t i = 0; i < count; ++i) core::AppendBytesElement("", bytes);
  return bytes;
}

}  // namespace

absl::StatusOr<std::vector<WarmupRequest>> WarmupRequests(const core::ModelConfig& config,
                                                          const std::filesystem::path& model_dir) {
  std::vector<WarmupRequest> requests;
  std::mt19937 random(20261124);  // fixed: the same warm-up every load
  for (const inference::ModelWarmup& warmup : config.proto.model_warmup()) {
    WarmupRequest out;
    out.name = warmup.name();
    out.count = warmup.count() == 0 ? 1 : static_cast<int>(warmup.count());
    out.request.model_name = config.name;
    for (const auto& [name, input] : warmup.inputs()) {
      const core::TensorSpec* spec = config.FindInput(name);
      core::Shape shape;
      if (config.max_batch_size > 0) shape.push_back(warmup.batch_size());
      shape.insert(shape.end(), input.dims().begin(), input.dims().end());
      const int64_t count = core::ElementCount(shape);
      std::string bytes;
      switch (input.input_data_type_case()) {
        case inference::ModelWarmup::Input::kRandomData:
          bytes = RandomBytes(spec->type, count, random);
          break;
        case inference::ModelWarmup::Input::kInputDataFile: {
          const std::filesystem::path path = model_dir / "warmup" / input.input_data_file();
          bytes = ReadFileOrEmpty(path);
          const bool fits =
              spec->type == core::DataType::kBytes
                  ? core::SplitBytesElements(bytes).ok() &&
                        core::SplitBytesElements(bytes)->size() == static_cast<size_t>(count)
                  : bytes.size() == static_cast<size_t>(count * core::DataTypeSize(spec->type));
          if (!fits) {
            return absl::InvalidArgumentError(
                absl::StrCat("warm-up '", warmup.name(), "': ", path.string(),
                             " is missing or does not hold input '", name, "' of shape ",
                             core::ShapeToString(shape), " (raw bytes; strings length-prefixed)"));
          }
          break;
        }
        default:
          bytes = ZeroBytes(spec->type, count);
          break;
      }
      out.request.inputs[name] =
          core::Tensor::Owning(spec->type, std::move(shape), std::move(bytes));
    }
    requests.push_back(std::move(out));
  }
  return requests;
}

absl::Status RunWarmup(batching::Scheduler& scheduler, const std::vector<WarmupRequest>& requests) {
  for (const WarmupRequest& warmup : requests) {
    for (int i = 0; i < warmup.count; ++i) {
      absl::Notification done;
      absl::Status status;
      core::InferRequest request = warmup.request;
      scheduler.Enqueue(std::move(request),
                        [&done, &status](absl::StatusOr<core::InferResponse> result) {
                          status = result.status();
                          done.Notify();
                        });
      done.WaitForNotification();
      if (!status.ok()) {
        return absl::InternalError(
            absl::StrCat("warm-up '", warmup.name, "' failed: ", status.message()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace modeld::repository
