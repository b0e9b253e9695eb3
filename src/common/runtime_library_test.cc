#include "common/runtime_library.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace modeld::common {
namespace {

class RuntimeLibraryTest : public ::testing::Test {
 protected:
  RuntimeLibraryTest() {
    char pattern[] = "/tmp/modeld-runtime-library-XXXXXX";
    prefix_ = mkdtemp(pattern);
    std::filesystem::create_directories(prefix_ / "bin");
  }
  ~RuntimeLibraryTest() override { std::filesystem::remove_all(prefix_); }

  std::filesystem::path prefix_;
};

TEST_F(RuntimeLibraryTest, TheBuiltInPathServesWhenNothingIsInstalledBesideTheBinary) {
  EXPECT_EQ(RuntimeLibrary("/venv/onnxruntime/capi/libonnxruntime.so.1", prefix_ / "bin/modeld"),
            "/venv/onnxruntime/capi/libonnxruntime.so.1");
}

TEST_F(RuntimeLibraryTest, TheInstalledCopyWins) {
  std::filesystem::create_directories(prefix_ / "lib/modeld");
  std::ofstream(prefix_ / "lib/modeld/libonnxruntime.so.1") << "x";
  EXPECT_EQ(RuntimeLibrary("/venv/onnxruntime/capi/libonnxruntime.so.1", prefix_ / "bin/modeld"),
            (prefix_ / "lib/modeld/libonnxruntime.so.1").string());
  // Another library is still looked for where the build found it.
  EXPECT_EQ(RuntimeLibrary("/venv/tensorflow/libtensorflow_cc.so.2", prefix_ / "bin/modeld"),
            "/venv/tensorflow/libtensorflow_cc.so.2");
}

TEST_F(RuntimeLibraryTest, EmptyStaysEmpty) {
  std::filesystem::create_directories(prefix_ / "lib/modeld");
  EXPECT_EQ(RuntimeLibrary("", prefix_ / "bin/modeld"), "");
  EXPECT_EQ(RuntimeLibrary(""), "");
}

}  // namespace
}  // namespace modeld::common
