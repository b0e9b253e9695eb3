#include "backend/tensorflow/tf_api.h"

#include <dlfcn.h>

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/stderr_router.h"

namespace modeld::backend {
namespace {

absl::Mutex mu;
const TfApi* loaded ABSL_GUARDED_BY(mu) = nullptr;

absl::StatusOr<const TfApi*> Open(const std::string& library) {
  if (library.empty()) {
    return absl::FailedPreconditionError(
        "no TensorFlow library: modeld was built without the tensorflow-cpu wheel and "
        "--tensorflow-library is not set");
  }
  // TensorFlow prints its own log lines to stderr: route them into modeld's log first.
  if (absl::Status routed = common::RouteStderrThroughLog(); !routed.ok()) {
    spdlog::warn("TensorFlow's log lines keep their own format: {}", routed.message());
  }
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (handle == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the TensorFlow library cannot be loaded: ", dlerror()));
  }
  auto api = std::make_unique<TfApi>();
  api->library = library;
  std::string missing;
#define MODELD_TF_RESOLVE(name)                                            \
  api->name = reinterpret_cast<decltype(api->name)>(dlsym(handle, #name)); \
  if (api->name == nullptr) absl::StrAppend(&missing, missing.empty() ? "" : ", ", #name);
  MODELD_TF_FUNCTIONS(MODELD_TF_RESOLVE)
#undef MODELD_TF_RESOLVE
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(library, " lacks TensorFlow C API functions: ", missing));
  }
  spdlog::info("TensorFlow {} loaded from {}", api->TF_Version(), library);
  return api.release();  // lives as long as the process, like the library
}

}  // namespace

absl::StatusOr<const TfApi*> LoadTfApi(const std::string& library) {
  absl::MutexLock lock(&mu);
  if (loaded == nullptr) {
    absl::StatusOr<const TfApi*> api = Open(library);
    if (!api.ok()) return api.status();
    loaded = *api;
  }
  return loaded;
}

std::string TfStatus::Message(absl::string_view context) const {
  const absl::string_view message = absl::StripTrailingAsciiWhitespace(api_.TF_Message(status_));
  return context.empty() ? std::string(message) : absl::StrCat(context, ": ", message);
}

absl::Status TfStatus::Error(absl::string_view context) const {
  return absl::InternalError(Message(context));
}

absl::StatusOr<TF_Output> GraphTensor(const TfApi& api, TF_Graph* graph, const std::string& name,
                                      absl::string_view what) {
  std::string operation = name;
  int index = 0;
  if (const size_t colon = name.rfind(':'); colon != std::string::npos) {
    operation = name.substr(0, colon);
    if (!absl::SimpleAtoi(absl::string_view(name).substr(colon + 1), &index) || index < 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, " names graph tensor '", name, "'"));
    }
  }
  TF_Operation* op = api.TF_GraphOperationByName(graph, operation.c_str());
  if (op == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " names operation '", operation, "', which the graph does not have"));
  }
  return TF_Output{op, index};
}

}  // namespace modeld::backend
