// The only place an absl::Status becomes a wire error (design.md §5). The message is kept
// whole, so a client sees what the server saw.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace modeld::transport {

grpc::Status ToGrpcStatus(const absl::Status& status);

// Ends a callback-API unary call at once with `status`; returns its reactor for the handler
// to return.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status);

// The google.rpc.Code number for `status` (0 for OK), as the Redis transport's ReplyEnvelope
// carries it. absl::StatusCode follows google.rpc.Code, so the number is the status's code.
int ToRpcCode(const absl::Status& status);

// The HTTP status for `status`, as TensorFlow Serving maps them (protocols.md §3; the codes of
// design.md §5 are a subset): 200 OK; 400 INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE;
// 401 UNAUTHENTICATED; 403 PERMISSION_DENIED; 404 NOT_FOUND; 409 ALREADY_EXISTS, ABORTED;
// 429 RESOURCE_EXHAUSTED; 499 CANCELLED; 501 UNIMPLEMENTED; 503 UNAVAILABLE;
// 504 DEADLINE_EXCEEDED; 500 every other code (INTERNAL, UNKNOWN, DATA_LOSS).
int ToHttpStatus(const absl::Status& status);

}  // namespace modeld::transport
