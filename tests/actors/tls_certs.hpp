// Test certificates made at run time with OpenSSL: a CA and leaf certificates it signs (P-256
// keys, SANs for names and 127.0.0.1), written as PEM files into a directory of their own that
// goes with the object. Tests only: nothing here is for production keys.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace actnet::test {

class test_pki {
 public:
  struct files {
    std::string cert;
    std::string key;
  };

  test_pki() {
    std::string pattern = (std::filesystem::temp_directory_path() / "actnet-tls-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    dir_ = pattern;
    ca_key_ = new_key();
    ca_ = make_cert("actnet test CA", {}, ca_key_, nullptr, nullptr, true);
    ca_file_ = dir_ + "/ca.pem";
    write_cert(ca_file_, ca_);
  }
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;
  ~test_pki() {
    X509_free(ca_);
    EVP_PKEY_free(ca_key_);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  [[nodiscard]] const std::string& ca_file() const { return ca_file_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }

  /// A leaf certificate with subject CN `name` and SANs `dns` names (plus IP 127.0.0.1 when
  /// `with_ip`), signed by this CA (or self-signed, `self_signed`; expired a day ago,
  /// `expired`), as `stem`.pem / -key.pem.
  files issue(const std::string& stem, const std::string& name, std::vector<std::string> dns,
              bool with_ip = true, bool self_signed = false, bool expired = false) {
    EVP_PKEY* key = new_key();
    std::string san;
    for (const std::string& d : dns) {
      san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
    }
    if (with_ip) {
      san += (san.empty() ? "" : ",") + std::string("IP:127.0.0.1");
    }
    X509* cert = self_signed ? make_cert(name, san, key, nullptr, nullptr, false)
                             : make_cert(name, san, key, ca_, ca_key_, false, expired);
    files f{dir_ + "/" + stem + ".pem", dir_ + "/" + stem + "-key.pem"};
    write_cert(f.cert, cert);
    FILE* out = std::fopen(f.key.c_str(), "w");
    PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(out);
    X509_free(cert);
    EVP_PKEY_free(key);
    return f;
  }

 private:
  static EVP_PKEY* new_key() { return EVP_EC_gen("P-256"); }

  static X509* make_cert(const std::string& cn, const std::string& san, EVP_PKEY* key, X509* issuer,
                         EVP_PKEY* issuer_key, bool ca, bool expired = false) {
    static long serial = 1;
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), expired ? -3600L * 24 * 30 : -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), expired ? -3600L * 24 : 3600L * 24 * 30);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
    const auto add = [&](int nid, const std::string& value) {
      X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      X509_add_ext(x, e, -1);
      X509_EXTENSION_free(e);
    };
    add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (ca) {
      add(NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (!san.empty()) {
      add(NID_subject_alt_name, san);
    }
    X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256());
    return x;
  }

  static void write_cert(const std::string& path, X509* cert) {
    FILE* out = std::fopen(path.c_str(), "w");
    PEM_write_X509(out, cert);
    std::fclose(out);
  }

  std::string dir_;
  std::string ca_file_;
  EVP_PKEY* ca_key_ = nullptr;
  X509* ca_ = nullptr;
};

}  // namespace actnet::test
