#include "testing/fake_model_config.h"

#include "absl/strings/str_cat.h"

namespace modeld::testing {

std::string FakeModelConfig(absl::string_view extra) {
  return absl::StrCat(R"pb(
                        backend: "fake"
                        max_batch_size: 8
                        input {
                          name: "x"
                          data_type: TYPE_FP32
                          dims: [ 2 ]
                        }
                        output {
                          name: "y"
                          data_type: TYPE_FP32
                          dims: [ 2 ]
                        }
                      )pb",
                      extra);
}

}  // namespace modeld::testing
