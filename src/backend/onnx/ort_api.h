// OrtApi: the part of ONNX Runtime's C API that modeld calls, declared here, and opened from
// the onnxruntime wheel's libonnxruntime.so at run time.
//
// Why our own declarations. No registry modeld's build can reach ships ONNX Runtime's C header
// (the PyPI wheel, the npm package and the Maven jar carry the library alone), and the header
// must not be copied from elsewhere. The C API is small to declare: the library exports one
// function, OrtGetApiBase, whose GetApi(version) returns OrtApi, a table of function pointers
// that ONNX Runtime only ever appends to, so a function keeps its position in every later
// release. Below are the functions modeld calls, each with its signature from ONNX Runtime's
// API reference and its position in the table (kOrtApiVersion's table holds them all). Every
// one is called by ort_api_test.cc and onnx_backend_test.cc against the real library: a wrong
// position or signature fails there, never silently.
//
// Why not RTLD_DEEPBIND, as TensorFlow needs: the library exports nothing but OrtGetApiBase
// (its protobuf, Abseil and the rest are hidden), so it cannot capture modeld's symbols nor
// they its own; a plain RTLD_LOCAL dlopen is enough, and sanitizers accept it.
//
// Private to the onnx backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeld::backend::ort {

// Opaque types of the C API.
struct Status;
struct Env;
struct Session;
struct SessionOptions;
struct RunOptions;
struct Value;
struct TypeInfo;
struct TensorTypeAndShapeInfo;
struct MemoryInfo;
struct Allocator;

// The C API's enums, by value (each is a C enum: an int).
enum class ErrorCode : int {
  kOk = 0,
  kFail = 1,
  kInvalidArgument = 2,
  kNoSuchFile = 3,
  kNoModel = 4,
  kEngineError = 5,
  kRuntimeException = 6,
  kInvalidProtobuf = 7,
  kModelLoaded = 8,
  kNotImplemented = 9,
  kInvalidGraph = 10,
  kEpFail = 11,
};
enum class LoggingLevel : int { kVerbose = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };
enum class ElementType : int {
  kUndefined = 0,
  kFloat = 1,
  kUint8 = 2,
  kInt8 = 3,
  kUint16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUint32 = 12,
  kUint64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBfloat16 = 16,
};
enum class OnnxType : int {
  kUnknown = 0,
  kTensor = 1,
  kSequence = 2,
  kMap = 3,
  kOpaque = 4,
  kSparseTensor = 5,
  kOptional = 6,
};
enum class GraphOptimizationLevel : int { kDisableAll = 0, kBasic = 1, kExtended = 2, kAll = 99 };
enum class AllocatorType : int { kDevice = 0, kArena = 1 };
enum class MemType : int { kDefault = 0 };

// ONNX Runtime's log sink: (param, severity, category, log id, code location, message).
using LoggingFunction = void (*)(void* param, LoggingLevel severity, const char* category,
                                 const char* log_id, const char* code_location,
                                 const char* message);

// The table version asked for: ONNX Runtime 1.17, the oldest release modeld supports.
inline constexpr uint32_t kOrtApiVersion = 17;

// X(position in OrtApi, name, return type, parameter list) for each function modeld calls.
#define MODELD_ORT_FUNCTIONS(X)                                                                \
  X(1, GetErrorCode, ErrorCode, (const Status*))                                               \
  X(2, GetErrorMessage, const char*, (const Status*))                                          \
  X(3, CreateEnv, Status*, (LoggingLevel, const char* log_id, Env**))                          \
  X(4, CreateEnvWithCustomLogger, Status*,                                                     \
    (LoggingFunction, void* param, LoggingLevel, const char* log_id, Env**))                   \
  X(7, CreateSession, Status*,                                                                 \
    (const Env*, const char* model_path, const SessionOptions*, Session**))                    \
  X(9, Run, Status*,                                                                           \
    (Session*, const RunOptions*, const char* const* input_names, const Value* const* inputs,  \
     size_t input_count, const char* const* output_names, size_t output_count,                 \
     Value** outputs))                                                                         \
  X(10, CreateSessionOptions, Status*, (SessionOptions**))                                     \
  X(11, SetOptimizedModelFilePath, Status*, (SessionOptions*, const char* path))               \
  X(23, SetSessionGraphOptimizationLevel, Status*, (SessionOptions*, GraphOptimizationLevel))  \
  X(24, SetIntraOpNumThreads, Status*, (SessionOptions*, int))                                 \
  X(25, SetInterOpNumThreads, Status*, (SessionOptions*, int))                                 \
  X(30, SessionGetInputCount, Status*, (const Session*, size_t*))                              \
  X(31, SessionGetOutputCount, Status*, (const Session*, size_t*))                             \
  X(33, SessionGetInputTypeInfo, Status*, (const Session*, size_t index, TypeInfo**))          \
  X(34, SessionGetOutputTypeInfo, Status*, (const Session*, size_t index, TypeInfo**))         \
  X(36, SessionGetInputName, Status*, (const Session*, size_t index, Allocator*, char**))      \
  X(37, SessionGetOutputName, Status*, (const Session*, size_t index, Allocator*, char**))     \
  X(48, CreateTensorAsOrtValue, Status*,                                                       \
    (Allocator*, const int64_t* shape, size_t rank, ElementType, Value**))                     \
  X(49, CreateTensorWithDataAsOrtValue, Status*,                                               \
    (const MemoryInfo*, void* data, size_t bytes, const int64_t* shape, size_t rank,           \
     ElementType, Value**))                                                                    \
  X(51, GetTensorMutableData, Status*, (Value*, void**))                                       \
  X(53, GetStringTensorDataLength, Status*, (const Value*, size_t*))                           \
  X(54, GetStringTensorContent, Status*,                                                       \
    (const Value*, void* bytes, size_t bytes_length, size_t* offsets, size_t offsets_length))  \
  X(55, CastTypeInfoToTensorInfo, Status*, (const TypeInfo*, const TensorTypeAndShapeInfo**))  \
  X(56, GetOnnxTypeFromTypeInfo, Status*, (const TypeInfo*, OnnxType*))                        \
  X(60, GetTensorElementType, Status*, (const TensorTypeAndShapeInfo*, ElementType*))          \
  X(61, GetDimensionsCount, Status*, (const TensorTypeAndShapeInfo*, size_t*))                 \
  X(62, GetDimensions, Status*, (const TensorTypeAndShapeInfo*, int64_t*, size_t))             \
  X(65, GetTensorTypeAndShape, Status*, (const Value*, TensorTypeAndShapeInfo**))              \
  X(67, GetValueType, Status*, (const Value*, OnnxType*))                                      \
  X(69, CreateCpuMemoryInfo, Status*, (AllocatorType, MemType, MemoryInfo**))                  \
  X(76, AllocatorFree, Status*, (Allocator*, void*))                                           \
  X(78, GetAllocatorWithDefaultOptions, Status*, (Allocator**))                                \
  X(92, ReleaseEnv, void, (Env*))                                                              \
  X(93, ReleaseStatus, void, (Status*))                                                        \
  X(94, ReleaseMemoryInfo, void, (MemoryInfo*))                                                \
  X(95, ReleaseSession, void, (Session*))                                                      \
  X(96, ReleaseValue, void, (Value*))                                                          \
  X(98, ReleaseTypeInfo, void, (TypeInfo*))                                                    \
  X(99, ReleaseTensorTypeAndShapeInfo, void, (TensorTypeAndShapeInfo*))                        \
  X(100, ReleaseSessionOptions, void, (SessionOptions*))                                       \
  X(130, AddSessionConfigEntry, Status*, (SessionOptions*, const char* key, const char* value)) \
  X(252, GetResizedStringTensorElementBuffer, Status*,                                         \
    (Value*, size_t index, size_t length, char** buffer))

struct Api {
#define MODELD_ORT_DECLARE(position, name, result, parameters) result(*name) parameters = nullptr;
  MODELD_ORT_FUNCTIONS(MODELD_ORT_DECLARE)
#undef MODELD_ORT_DECLARE
  std::string library;  // the path it was opened from
  std::string version;  // ONNX Runtime's version string, e.g. "1.32.0"
};

// Opens `library` and reads the function table, once per process: later calls return the same
// table whatever path they name. FAILED_PRECONDITION naming the path and the reason when the
// library cannot be opened, lacks OrtGetApiBase, or is older than kOrtApiVersion.
absl::StatusOr<const Api*> LoadApi(const std::string& library);

// `status` (which it releases) as an absl::Status: OK for null, else INTERNAL (INVALID_ARGUMENT
// for ONNX Runtime's invalid-argument errors, NOT_FOUND for a missing file) with ONNX Runtime's
// message after `context`.
absl::Status ToStatus(const Api& api, Status* status, absl::string_view context);

// Owners that release what the C API created.
template <typename T, void (*Api::*release)(T*)>
class Owned {
 public:
  Owned() = default;
  Owned(const Api* api, T* value) : api_(api), value_(value) {}
  Owned(Owned&& other) noexcept : api_(other.api_), value_(other.value_) { other.value_ = nullptr; }
  Owned& operator=(Owned&& other) noexcept {
    if (this != &other) {
      Reset();
      api_ = other.api_;
      value_ = other.value_;
      other.value_ = nullptr;
    }
    return *this;
  }
  ~Owned() { Reset(); }

  T* get() const { return value_; }
  // For the C API's out parameters: releases what it holds, then takes what is written there.
  T** out(const Api* api) {
    Reset();
    api_ = api;
    return &value_;
  }
  void Reset() {
    if (value_ != nullptr) (api_->*release)(value_);
    value_ = nullptr;
  }

 private:
  const Api* api_ = nullptr;
  T* value_ = nullptr;
};
using OwnedEnv = Owned<Env, &Api::ReleaseEnv>;
using OwnedSession = Owned<Session, &Api::ReleaseSession>;
using OwnedSessionOptions = Owned<SessionOptions, &Api::ReleaseSessionOptions>;
using OwnedValue = Owned<Value, &Api::ReleaseValue>;
using OwnedTypeInfo = Owned<TypeInfo, &Api::ReleaseTypeInfo>;
using OwnedTensorInfo = Owned<TensorTypeAndShapeInfo, &Api::ReleaseTensorTypeAndShapeInfo>;
using OwnedMemoryInfo = Owned<MemoryInfo, &Api::ReleaseMemoryInfo>;

}  // namespace modeld::backend::ort
