#include "backend/onnx/ort_api.h"

#include <dlfcn.h>

#include <cstring>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"

namespace modeld::backend::ort {
namespace {

// What OrtGetApiBase returns: GetApi(version) gives the function table of that version (null
// when the library is older), GetVersionString the release ("1.32.0").
struct ApiBase {
  const void* const* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)();
};

absl::StatusOr<const Api*> Open(const std::string& library) {
  if (library.empty()) {
    return absl::FailedPreconditionError(
        "no ONNX Runtime library: modeld was built without the onnxruntime wheel in .venv; "
        "pass --onnxruntime-library=PATH to its libonnxruntime.so");
  }
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the ONNX Runtime library ", library, ": ", dlerror()));
  }
  using GetApiBase = const ApiBase* (*)();
  auto get_api_base = reinterpret_cast<GetApiBase>(dlsym(handle, "OrtGetApiBase"));
  if (get_api_base == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(library, " is no ONNX Runtime library: it has no OrtGetApiBase"));
  }
  const ApiBase* base = get_api_base();
  const char* version = base->GetVersionString();
  const void* const* table = base->GetApi(kOrtApiVersion);
  if (table == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ONNX Runtime library ", library, " is version ", version,
                     "; modeld needs 1.", kOrtApiVersion, " or later"));
  }
  auto* api = new Api;  // never freed: ONNX Runtime stays loaded for the process
  api->library = library;
  api->version = version;
  // Each entry of the table is a function pointer; copied into the member of its type.
#define MODELD_ORT_RESOLVE(position, name, result, parameters) \
  std::memcpy(&api->name, &table[position], sizeof(api->name));
  MODELD_ORT_FUNCTIONS(MODELD_ORT_RESOLVE)
#undef MODELD_ORT_RESOLVE
  return api;
}

}  // namespace

absl::StatusOr<const Api*> LoadApi(const std::string& library) {
  static absl::once_flag once;
  static absl::StatusOr<const Api*>* loaded = nullptr;
  absl::call_once(once, [&] { loaded = new absl::StatusOr<const Api*>(Open(library)); });
  return *loaded;
}

absl::Status ToStatus(const Api& api, Status* status, absl::string_view context) {
  if (status == nullptr) return absl::OkStatus();
  const ErrorCode code = api.GetErrorCode(status);
  std::string message = absl::StrCat(context, ": ", api.GetErrorMessage(status));
  api.ReleaseStatus(status);
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return absl::InvalidArgumentError(message);
    case ErrorCode::kNoSuchFile:
      return absl::NotFoundError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace modeld::backend::ort
