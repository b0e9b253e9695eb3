#include "core/request_validator.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::core {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

ModelConfig AddSubConfig(int max_batch_size) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(
      absl::StrCat("platform: \"pytorch_libtorch\"\nmax_batch_size: ", max_batch_size, R"pb(
        input
        [ {
          name: "a"
          data_type: TYPE_FP32
          dims: [ 2 ]
        }
          , {
            name: "b"
            data_type: TYPE_FP32
            dims: [ -1 ]
          }] output
        [ {
          name: "sum"
          data_type: TYPE_FP32
          dims: [ 2 ]
        }
          , {
            name: "diff"
            data_type: TYPE_FP32
            dims: [ 2 ]
          }]
      )pb"),
      "test", "add_sub");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

Tensor Floats(Shape shape) {
  return Tensor::Owning(DataType::kFp32, shape, std::string(ElementCount(shape) * 4, '\0'));
}

InferRequest Request(Shape a, Shape b) {
  InferRequest request;
  request.model_name = "add_sub";
  request.inputs["a"] = Floats(a);
  request.inputs["b"] = Floats(b);
  return request;
}

absl::Status Check(const ModelConfig& config, const InferRequest& request) {
  return ValidateRequest(config, request);
}

TEST(RequestValidatorTest, AcceptsGoodRequests) {
  const ModelConfig batched = AddSubConfig(8);
  EXPECT_TRUE(Check(batched, Request({1, 2}, {1, 5})).ok());
  EXPECT_TRUE(Check(batched, Request({8, 2}, {8, 0})).ok());
  InferRequest with_outputs = Request({3, 2}, {3, 2});
  with_outputs.requested_outputs = {"diff"};
  EXPECT_TRUE(Check(batched, with_outputs).ok());
  EXPECT_TRUE(Check(AddSubConfig(0), Request({2}, {7})).ok());
}

TEST(RequestValidatorTest, ElementLimitCountsEveryInput) {
  // a: 4 x 2 = 8 elements, b: 4 x 3 = 12; 20 in all.
  const InferRequest request = Request({4, 2}, {4, 3});
  EXPECT_TRUE(CheckRequestElements(request, 20).ok());
  EXPECT_TRUE(CheckRequestElements(request, 0).ok());  // no limit
  absl::Status status = CheckRequestElements(request, 19);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("more than 19 tensor elements"),
                                      HasSubstr("--max-request-elements=19")));
  // A shape whose product overflows is over any limit.
  InferRequest huge;
  huge.inputs["a"] =
      Tensor::Viewing(DataType::kFp32, {int64_t{1} << 40, int64_t{1} << 40}, "", nullptr);
  EXPECT_FALSE(CheckRequestElements(huge, 100).ok());
}

TEST(RequestValidatorTest, NamesTheProblem) {
  const ModelConfig config = AddSubConfig(8);
  struct Case {
    InferRequest request;
    std::vector<std::string> words;
  };
  std::vector<Case> cases;
  cases.push_back({InferRequest{}, {"has no inputs", "'a' (FP32 [-1, 2])"}});
  {
    InferRequest r = Request({1, 2}, {1, 2});
    r.inputs.erase("b");
    cases.push_back({r, {"missing input 'b'", "FP32 [-1, -1]"}});
  }
  {
    InferRequest r = Request({1, 2}, {1, 2});
    r.inputs["c"] = Floats({1, 2});
    cases.push_back({r, {"unknown input 'c'", "'a'"}});
  }
  {
    InferRequest r = Request({1, 2}, {1, 2});
    r.inputs["a"] = Tensor::Owning(DataType::kInt32, {1, 2}, std::string(8, '\0'));
    cases.push_back({r, {"input 'a' has datatype INT32", "expects FP32"}});
  }
  cases.push_back({Request({1, 3}, {1, 2}), {"input 'a' has shape [1, 3]", "expects [-1, 2]"}});
  cases.push_back({Request({2}, {1, 2}), {"input 'a' has shape [2]"}});
  cases.push_back({Request({9, 2}, {9, 2}), {"input 'a' has batch size 9", "max_batch_size 8"}});
  cases.push_back({Request({0, 2}, {0, 2}), {"input 'a' has batch size 0"}});
  cases.push_back(
      {Request({2, 2}, {3, 2}), {"disagree on the batch size", "'a' has 2", "'b' has 3"}});
  {
    InferRequest r = Request({1, 2}, {1, 2});
    r.inputs["a"] = Tensor::Owning(DataType::kFp32, {1, 2}, std::string(12, '\0'));
    cases.push_back({r, {"input 'a' has 12 bytes", "needs 8"}});
  }
  {
    InferRequest r = Request({1, 2}, {1, 2});
    r.requested_outputs = {"product"};
    cases.push_back({r, {"requested output 'product'", "'sum'"}});
  }
  {
    InferRequest r = Request({1, 2}, {1, 2});
    r.requested_outputs = {"sum", "sum"};
    cases.push_back({r, {"output 'sum' is requested more than once"}});
  }
  for (const Case& c : cases) {
    absl::Status status = Check(config, c.request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    for (const std::string& word : c.words) EXPECT_THAT(status.message(), HasSubstr(word));
  }
}

TEST(RequestValidatorTest, HugeShapesDoNotWrapAround) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(R"pb(
                                                          backend: "fake"
                                                          max_batch_size: 4
                                                          input {
                                                            name: "x"
                                                            data_type: TYPE_FP32
                                                            dims: [ -1 ]
                                                          }
                                                          output {
                                                            name: "y"
                                                            data_type: TYPE_FP32
                                                            dims: [ -1 ]
                                                          }
                                                        )pb",
                                                        "test", "m");
  ASSERT_TRUE(config.ok());
  InferRequest request;
  // 2^62 elements x 4 bytes wraps to 0 bytes in int64.
  request.inputs["x"] = Tensor::Owning(DataType::kFp32, {1, int64_t{1} << 62}, "");
  absl::Status status = ValidateRequest(*config, request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("too large"));
}

TEST(RequestValidatorTest, BoolBytesAreZeroOrOne) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(R"pb(
                                                          backend: "fake"
                                                          input {
                                                            name: "mask"
                                                            data_type: TYPE_BOOL
                                                            dims: [ 3 ]
                                                          }
                                                          output {
                                                            name: "out"
                                                            data_type: TYPE_BOOL
                                                            dims: [ 3 ]
                                                          }
                                                        )pb",
                                                        "test", "bools");
  ASSERT_TRUE(config.ok());
  InferRequest request;
  request.inputs["mask"] = Tensor::Owning(DataType::kBool, {3}, std::string("\x01\x00\x01", 3));
  EXPECT_TRUE(ValidateRequest(*config, request).ok());
  request.inputs["mask"] = Tensor::Owning(DataType::kBool, {3}, std::string("\x01\x00\x07", 3));
  EXPECT_THAT(ValidateRequest(*config, request).message(),
              AllOf(HasSubstr("input 'mask' has byte 7 at element 2"), HasSubstr("0 or 1")));
}

TEST(RequestValidatorTest, ChecksBytesElementCounts) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(R"pb(
                                                          backend: "fake"
                                                          input {
                                                            name: "text"
                                                            data_type: TYPE_STRING
                                                            dims: [ 2 ]
                                                          }
                                                          output {
                                                            name: "out"
                                                            data_type: TYPE_STRING
                                                            dims: [ 2 ]
                                                          }
                                                        )pb",
                                                        "test", "strings");
  ASSERT_TRUE(config.ok());
  std::string two;
  AppendBytesElement("ab", two);
  AppendBytesElement("", two);
  InferRequest request;
  request.inputs["text"] = Tensor::Owning(DataType::kBytes, {2}, two);
  EXPECT_TRUE(ValidateRequest(*config, request).ok());

  std::string one;
  AppendBytesElement("ab", one);
  request.inputs["text"] = Tensor::Owning(DataType::kBytes, {2}, one);
  EXPECT_THAT(ValidateRequest(*config, request).message(),
              AllOf(HasSubstr("input 'text' holds 1 BYTES elements"), HasSubstr("needs 2")));

  request.inputs["text"] = Tensor::Owning(DataType::kBytes, {2}, two.substr(0, 5));
  EXPECT_THAT(ValidateRequest(*config, request).message(),
              AllOf(HasSubstr("input 'text'"), HasSubstr("declares 2 bytes")));
}

}  // namespace
}  // namespace modeld::core

namespace modeld::core {
namespace {

TrainRequest GoodTrainRequest() {
  TrainRequest request;
  request.model_name = "add_sub";
  request.inputs["a"] = Tensor::Owning(DataType::kFp32, {3, 2}, std::string(24, '\0'));
  request.inputs["b"] = Tensor::Owning(DataType::kFp32, {3, 2}, std::string(24, '\0'));
  request.targets["sum"] = Tensor::Owning(DataType::kFp32, {3, 2}, std::string(24, '\0'));
  return request;
}

TEST(TrainRequestValidatorTest, AcceptsInputsAndWellFormedTargets) {
  EXPECT_TRUE(ValidateTrainRequest(AddSubConfig(8), GoodTrainRequest()).ok());
}

TEST(TrainRequestValidatorTest, NamesTheProblem) {
  const ModelConfig config = AddSubConfig(8);
  struct Case {
    std::function<void(TrainRequest&)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](TrainRequest& r) { r.targets.clear(); }, "has no targets"},
      {[](TrainRequest& r) { r.inputs.erase("b"); }, "missing input 'b'"},
      {[](TrainRequest& r) {
         r.targets["sum"] = Tensor::Owning(DataType::kFp32, {2, 2}, std::string(16, '\0'));
       },
       "target 'sum' has shape [2, 2] but the inputs have batch size 3"},
      {[](TrainRequest& r) {
         r.targets["sum"] = Tensor::Owning(DataType::kFp32, {3, 2}, std::string(20, '\0'));
       },
       "target 'sum' has 20 bytes of data"},
      {[](TrainRequest& r) { r.targets["a"] = r.inputs.at("a"); },
       "target 'a' has the name of an input"},
  };
  for (const Case& c : cases) {
    TrainRequest request = GoodTrainRequest();
    c.change(request);
    const absl::Status status = ValidateTrainRequest(config, request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace modeld::core
