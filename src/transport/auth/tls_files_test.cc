#include "transport/auth/tls_files.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/temp_repository.h"

namespace modeld::transport::auth {
namespace {

using ::testing::HasSubstr;

// Makes a self-signed certificate and key with the openssl command (scripts/setup installs it).
void MakeCertificate(const std::filesystem::path& dir, const std::string& name) {
  const std::string command = absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "
      "/CN=",
      name, " -keyout ", (dir / (name + ".key")).string(), " -out ",
      (dir / (name + ".crt")).string(), " 2>/dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeCertificate(dir_.path(), "server");
    MakeCertificate(dir_.path(), "other");
  }
  std::string File(const std::string& name) const { return (dir_.path() / name).string(); }
  modeld::testing::TempRepository dir_;
};

TEST_F(TlsFilesTest, LoadsAMatchingPair) {
  auto material =
      LoadTlsMaterial({File("server.crt"), File("server.key"), File("other.crt")}, "--grpc-tls");
  ASSERT_TRUE(material.ok()) << material.status();
  EXPECT_THAT(material->cert_chain_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(material->private_key_pem, HasSubstr("PRIVATE KEY"));
  EXPECT_THAT(material->client_ca_pem, HasSubstr("BEGIN CERTIFICATE"));
}

TEST_F(TlsFilesTest, NamesTheFlagOfAWrongFile) {
  absl::Status status =
      LoadTlsMaterial({File("server.crt"), File("other.key"), ""}, "--http-tls").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--http-tls-key: the key in"));
  EXPECT_THAT(status.message(), HasSubstr("does not belong to the certificate"));

  status = LoadTlsMaterial({File("server.key"), File("server.key"), ""}, "--http-tls").status();
  EXPECT_THAT(status.message(), HasSubstr("--http-tls-cert:"));
  EXPECT_THAT(status.message(), HasSubstr("holds no PEM certificate"));

  status = LoadTlsMaterial({File("server.crt"), File("server.crt"), ""}, "--http-tls").status();
  EXPECT_THAT(status.message(), HasSubstr("holds no PEM private key"));

  status =
      LoadTlsMaterial({File("server.crt"), File("server.key"), File("missing.pem")}, "--grpc-tls")
          .status();
  EXPECT_THAT(status.message(), HasSubstr("--grpc-tls-client-ca: cannot read"));
}

}  // namespace
}  // namespace modeld::transport::auth
