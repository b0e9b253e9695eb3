#include "transport/auth/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace modeld::transport::auth {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view flag) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::unique_ptr<BIO, BioFree> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::unique_ptr<X509, X509Free> FirstCertificate(const std::string& pem) {
  auto bio = MemoryBio(pem);
  return std::unique_ptr<X509, X509Free>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files, absl::string_view flag_prefix) {
  const std::string cert_flag = absl::StrCat(flag_prefix, "-cert");
  const std::string key_flag = absl::StrCat(flag_prefix, "-key");
  const std::string ca_flag = absl::StrCat(flag_prefix, "-client-ca");
  TlsMaterial material;
  ASSIGN_OR_RETURN(material.cert_chain_pem, ReadFile(files.cert_file, cert_flag));
  ASSIGN_OR_RETURN(material.private_key_pem, ReadFile(files.key_file, key_flag));
  auto cert = FirstCertificate(material.cert_chain_pem);
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_flag, ": ", files.cert_file, " holds no PEM certificate"));
  }
  auto key_bio = MemoryBio(material.private_key_pem);
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        key_flag, ": ", files.key_file, " holds no PEM private key (or it is encrypted)"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(key_flag, ": the key in ", files.key_file,
                                                   " does not belong to the certificate in ",
                                                   files.cert_file));
  }
  if (!files.client_ca_file.empty()) {
    ASSIGN_OR_RETURN(material.client_ca_pem, ReadFile(files.client_ca_file, ca_flag));
    const bool parsed = FirstCertificate(material.client_ca_pem) != nullptr;
    ERR_clear_error();
    if (!parsed) {
      return absl::InvalidArgumentError(
          absl::StrCat(ca_flag, ": ", files.client_ca_file, " holds no PEM certificate"));
    }
  }
  return material;
}

}  // namespace modeld::transport::auth
