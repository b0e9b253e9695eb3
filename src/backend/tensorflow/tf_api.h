// TfApi: TensorFlow's C API, opened from libtensorflow_cc.so.2 at run time.
//
// modeld never links TensorFlow. The wheel's libtensorflow_cc and libtensorflow_framework
// export their own copies of protobuf, gRPC, BoringSSL, re2 and more; linked into modeld beside
// Debian's protobuf and gRPC (which LibTorch uses too), the dynamic linker would bind one
// copy's callers to the other's functions. So the library is opened with
//   RTLD_LOCAL   - its symbols stay out of the process's global scope: modeld's gRPC, protobuf
//                  and OpenSSL remain Debian's;
//   RTLD_DEEPBIND - its own references bind to its own copies before the global scope's;
// and the C API's functions (plain C, no shared types) are looked up by name. The library is
// opened on first use, so modeld without TensorFlow models never pays for it, and never
// closed (TensorFlow cannot be unloaded).
//
// Private to the tensorflow backend: only its .cc files include this header (it includes
// TensorFlow's C headers, for the function types).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tstring.h"

namespace modeld::backend {

// The C API functions modeld calls, each under its C name.
#define MODELD_TF_FUNCTIONS(X)                                                                    \
  X(TF_Version)                                                                                   \
  X(TF_NewStatus)                                                                                 \
  X(TF_DeleteStatus)                                                                              \
  X(TF_GetCode)                                                                                   \
  X(TF_Message)                                                                                   \
  X(TF_NewBuffer) X(TF_DeleteBuffer) X(TF_NewGraph) X(TF_DeleteGraph) X(TF_GraphOperationByName)  \
      X(TF_NewSessionOptions) X(TF_DeleteSessionOptions) X(TF_SetConfig)                          \
          X(TF_LoadSessionFromSavedModel) X(TF_SessionRun) X(TF_CloseSession) X(TF_DeleteSession) \
              X(TF_AllocateTensor) X(TF_NewTensor) X(TF_DeleteTensor) X(TF_TensorType)            \
                  X(TF_NumDims) X(TF_Dim) X(TF_TensorByteSize) X(TF_TensorData) X(TF_StringInit)  \
                      X(TF_StringCopy) X(TF_StringGetDataPointer) X(TF_StringGetSize)             \
                          X(TF_StringDealloc)

struct TfApi {
#define MODELD_TF_DECLARE(name) decltype(&::name) name = nullptr;
  MODELD_TF_FUNCTIONS(MODELD_TF_DECLARE)
#undef MODELD_TF_DECLARE
  std::string library;  // the path it was opened from
};

// Opens `library` and resolves every function, once per process: later calls return the same
// table whatever path they name. FAILED_PRECONDITION naming the path and the loader's error
// when the library cannot be opened or lacks a function.
absl::StatusOr<const TfApi*> LoadTfApi(const std::string& library);

// A TF_Status, deleted on scope exit.
class TfStatus {
 public:
  explicit TfStatus(const TfApi& api) : api_(api), status_(api.TF_NewStatus()) {}
  ~TfStatus() { api_.TF_DeleteStatus(status_); }
  TfStatus(const TfStatus&) = delete;
  TfStatus& operator=(const TfStatus&) = delete;

  TF_Status* get() const { return status_; }
  bool ok() const { return api_.TF_GetCode(status_) == TF_OK; }
  // TensorFlow's message, after `context` when given.
  std::string Message(absl::string_view context) const;
  // Message(context) as an INTERNAL error.
  absl::Status Error(absl::string_view context) const;

 private:
  const TfApi& api_;
  TF_Status* const status_;
};

// The graph endpoint of the tensor `name` ("operation:index", or "operation" for index 0).
// INVALID_ARGUMENT starting with `what` (what names it: "signature tensor 'x'") when the name
// is malformed or the graph has no such operation.
absl::StatusOr<TF_Output> GraphTensor(const TfApi& api, TF_Graph* graph, const std::string& name,
                                      absl::string_view what);

}  // namespace modeld::backend
