// TLS in the samples, driven by real clients: curl over HTTPS, openssl s_client (versions, SNI,
// ALPN, client certificates, resumption), redis-cli and redis-benchmark with --tls, echo_client
// --tls, and the proxy terminating and originating TLS. The test CA and certificates are made
// with the openssl tool when the suite starts.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

using namespace std::chrono_literals;

// A CA, a server certificate for localhost and 127.0.0.1, one for other.test and a client's,
// in a directory of their own (made once for the suite, removed at its end).
class pki {
 public:
  pki() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "actnet-tls-sample-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return;
    }
    dir = pattern;
    const std::string script =
        "set -e; cd '" + dir +
        "'\n"
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem "
        "-out ca.pem -days 2 -subj '/CN=actnet test CA'\n"
        "leaf() {\n"
        "  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1-key.pem "
        "-out $1.csr -subj \"/CN=$2\"\n"
        "  printf 'subjectAltName=%s\\n' \"$3\" > $1.ext\n"
        "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out $1.pem "
        "-days 2 -extfile $1.ext\n"
        "}\n"
        "leaf server localhost DNS:localhost,IP:127.0.0.1\n"
        "leaf other other.test DNS:other.test\n"
        "leaf client 'client one' DNS:client.test\n";
    std::ofstream(dir + "/make.sh") << script;
    made = test::run_command("sh '" + dir + "/make.sh'");
  }
  pki(const pki&) = delete;
  pki& operator=(const pki&) = delete;
  ~pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  [[nodiscard]] std::string file(const std::string& name) const { return dir + "/" + name; }

  std::string dir;
  test::command_outcome made;
};

class tls_sample : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new pki(); }  // NOLINT: a suite-wide fixture
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(certs_->made.exit_code, 0) << "openssl could not make the test certificates "
                                            "(the test command installs openssl): "
                                         << certs_->made.output;
  }
  static std::string file(const std::string& name) { return certs_->file(name); }
  // The flags of a TLS listener on 127.0.0.1 with the server certificate.
  static std::vector<std::string> tls_server(std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"--listen",  "tls://127.0.0.1:0",   "--loops",
                                     "2",         "--tls-cert",          file("server.pem"),
                                     "--tls-key", file("server-key.pem")};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }
  static std::string port_of(const address& a) { return std::to_string(a.port()); }
  // openssl s_client to the server's port with `flags`, sending `input` and waiting a moment
  // for the answer; what it printed.
  static test::command_outcome s_client(const address& server, const std::string& flags,
                                        const std::string& input = "hello") {
    return test::run_command("(printf '" + input +
                             "\\n'; sleep 1) | timeout 10 openssl s_client "
                             "-connect 127.0.0.1:" +
                             port_of(server) + " " + flags);
  }

  static pki* certs_;
};

pki* tls_sample::certs_ = nullptr;

TEST_F(tls_sample, curl_speaks_https_with_alpn_and_keep_alive_and_refuses_a_bad_certificate) {
  test::sample_process server(ACTNET_HTTP_SERVER, tls_server());
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const std::string base = "https://localhost:" + port_of(server.bound);
  const test::command_outcome ok =
      test::run_command("curl -sS -v --max-time 20 --http1.1 --cacert " + file("ca.pem") + " " +
                        base + "/plaintext " + base + "/plaintext");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("ALPN: server accepted http/1.1"), std::string::npos) << ok.output;
  std::size_t bodies = 0;
  for (std::size_t at = ok.output.find("Hello, World!"); at != std::string::npos;
       at = ok.output.find("Hello, World!", at + 1)) {
    ++bodies;
  }
  EXPECT_EQ(bodies, 2U) << ok.output;
  EXPECT_NE(ok.output.find("Re-using existing connection"), std::string::npos) << ok.output;
  // The system's store does not know the test CA: curl's "peer certificate cannot be
  // authenticated" (60).
  EXPECT_EQ(test::run_command("curl -sS --max-time 20 " + base + "/plaintext").exit_code, 60);
  // A name the certificate does not have.
  const std::string other = "https://other.test:" + port_of(server.bound);
  EXPECT_EQ(test::run_command("curl -sS --max-time 20 --cacert " + file("ca.pem") +
                              " --resolve other.test:" + port_of(server.bound) + ":127.0.0.1 " +
                              other + "/plaintext")
                .exit_code,
            60);
}

TEST_F(tls_sample, openssl_s_client_sees_each_version_sni_alpn_and_a_resumed_session) {
  test::sample_process server(
      ACTNET_ECHO_SERVER,
      tls_server({"--tls-sni", "other.test," + file("other.pem") + "," + file("other-key.pem")}));
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const std::string ca = " -CAfile " + file("ca.pem");
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    const test::command_outcome c =
        s_client(server.bound, std::string(version) + ca + " -servername localhost");
    EXPECT_NE(c.output.find(std::string("New, TLSv1.") + (version[6] == '2' ? "2" : "3")),
              std::string::npos)
        << c.output;
    EXPECT_NE(c.output.find("Verify return code: 0 (ok)"), std::string::npos) << c.output;
    EXPECT_NE(c.output.find("\nhello"), std::string::npos) << "echoed: " << c.output;
  }
  const test::command_outcome sni = s_client(server.bound, ca + " -servername other.test");
  EXPECT_NE(sni.output.find("subject=CN = other.test"), std::string::npos) << sni.output;
  // Resumption, each version: the session saved by one connection is reused by the next.
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    const std::string session = file(std::string("session") + version);
    const test::command_outcome first =
        s_client(server.bound, std::string(version) + ca + " -sess_out " + session);
    EXPECT_NE(first.output.find("New, TLSv1."), std::string::npos) << first.output;
    const test::command_outcome again =
        s_client(server.bound, std::string(version) + ca + " -sess_in " + session);
    EXPECT_NE(again.output.find("Reused, TLSv1."), std::string::npos) << again.output;
  }
}

TEST_F(tls_sample, http_server_answers_alpn_http_1_1_and_refuses_a_protocol_it_does_not_speak) {
  test::sample_process server(ACTNET_HTTP_SERVER, tls_server());
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const std::string ca = " -CAfile " + file("ca.pem");
  const test::command_outcome h1 = s_client(server.bound, ca + " -alpn h2,http/1.1",
                                            "GET /plaintext HTTP/1.1\\r\\nHost: x\\r\\n\\r");
  EXPECT_NE(h1.output.find("ALPN protocol: http/1.1"), std::string::npos) << h1.output;
  EXPECT_NE(h1.output.find("Hello, World!"), std::string::npos) << h1.output;
  // Two requests in one record, pipelined: both answered, in order.
  const test::command_outcome piped = s_client(server.bound, ca,
                                               "GET /plaintext HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
                                               "GET /json HTTP/1.1\\r\\nHost: x\\r\\n\\r");
  const std::size_t first = piped.output.find("Hello, World!");
  EXPECT_NE(first, std::string::npos) << piped.output;
  EXPECT_NE(piped.output.find("\"message\"", first), std::string::npos) << piped.output;
  const test::command_outcome h2 = s_client(server.bound, ca + " -alpn h2");
  EXPECT_NE(h2.output.find("no application protocol"), std::string::npos) << h2.output;
}

TEST_F(tls_sample, a_required_client_certificate_lets_in_only_a_client_that_shows_one) {
  test::sample_process server(ACTNET_ECHO_SERVER, tls_server({"--tls-ca", file("ca.pem"),
                                                              "--tls-client-auth", "required"}));
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const std::string ca = " -CAfile " + file("ca.pem");
  const test::command_outcome without = s_client(server.bound, ca);
  EXPECT_NE(without.output.find("certificate required"), std::string::npos) << without.output;
  EXPECT_EQ(without.output.find("hello"), std::string::npos) << without.output;
  const test::command_outcome with = s_client(
      server.bound, ca + " -cert " + file("client.pem") + " -key " + file("client-key.pem"));
  EXPECT_NE(with.output.find("hello"), std::string::npos) << with.output;
}

TEST_F(tls_sample, echo_client_checks_every_byte_over_tls_and_refuses_an_unknown_ca) {
  test::sample_process server(ACTNET_ECHO_SERVER, tls_server());
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const std::string url = "tls://localhost:" + port_of(server.bound);
  const test::command_outcome ok = test::run_command(
      std::string(ACTNET_ECHO_CLIENT) + " --connect " + url + " --tls-ca " + file("ca.pem") +
      " --conns 20 --messages 200 --size 3000 --pipeline 4 --loops 2");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("4000 messages echoed"), std::string::npos) << ok.output;
  const test::command_outcome refused =
      test::run_command(std::string(ACTNET_ECHO_CLIENT) + " --connect " + url + " --conns 1");
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("certificate was rejected"), std::string::npos) << refused.output;
}

TEST_F(tls_sample, redis_cli_and_redis_benchmark_work_over_tls) {
  if (std::system("command -v redis-benchmark >/dev/null 2>&1") != 0) {
    FAIL() << "redis-tools is not installed: the test command installs it";
  }
  test::sample_process server(ACTNET_REDIS_SERVER, tls_server());
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const std::string cli = "timeout 20 redis-cli --tls --cacert " + file("ca.pem") +
                          " -h localhost -p " + port_of(server.bound) + " ";
  const test::command_outcome set = test::run_command(cli + "SET greeting 'hello tls'");
  EXPECT_EQ(set.output, "OK\n");
  const test::command_outcome get = test::run_command(cli + "GET greeting");
  EXPECT_EQ(get.output, "hello tls\n");
  const test::command_outcome bench = test::run_command(
      "timeout 60 redis-benchmark --tls --cacert " + file("ca.pem") + " -h localhost -p " +
      port_of(server.bound) + " -c 20 -n 20000 -P 16 -t set,get -q");
  EXPECT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_NE(bench.output.find("SET: "), std::string::npos) << bench.output;
  EXPECT_NE(bench.output.find("GET: "), std::string::npos) << bench.output;
  EXPECT_EQ(bench.output.find("rror"), std::string::npos) << bench.output;
  // Every reply of a pipelined run checked: 100 SETs then 100 GETs, answered in order.
  std::string script;
  for (int i = 0; i < 100; ++i) {
    script += "SET k" + std::to_string(i) + " v" + std::to_string(i) + "\\n";
  }
  for (int i = 0; i < 100; ++i) {
    script += "GET k" + std::to_string(i) + "\\n";
  }
  const test::command_outcome piped = test::run_command("printf '" + script + "' | " + cli);
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    expected += "OK\n";
  }
  for (int i = 0; i < 100; ++i) {
    expected += "v" + std::to_string(i) + "\n";
  }
  EXPECT_EQ(piped.output, expected);
}

TEST_F(tls_sample, the_proxy_terminates_tls_and_originates_it) {
  test::sample_process plain_echo(ACTNET_ECHO_SERVER,
                                  {"--listen", "tcp://127.0.0.1:0", "--loops", "1"});
  test::sample_process tls_echo(ACTNET_ECHO_SERVER, tls_server());
  ASSERT_EQ(plain_echo.addresses.size(), 1U);
  ASSERT_EQ(tls_echo.addresses.size(), 1U);
  // TLS in, plain to the upstream.
  std::vector<std::string> terminating = tls_server({"--upstream", plain_echo.bound.to_string()});
  test::sample_process front(ACTNET_PROXY, terminating);
  ASSERT_EQ(front.addresses.size(), 1U) << front.first_line;
  const test::command_outcome in = test::run_command(
      std::string(ACTNET_ECHO_CLIENT) + " --connect tls://localhost:" + port_of(front.bound) +
      " --tls-ca " + file("ca.pem") + " --conns 10 --messages 100 --size 5000 --pipeline 2");
  EXPECT_EQ(in.exit_code, 0) << in.output;
  // Plain in, TLS to the upstream (its certificate checked against the test CA).
  test::sample_process back(
      ACTNET_PROXY,
      {"--listen", "tcp://127.0.0.1:0", "--loops", "1", "--upstream",
       "tls://localhost:" + port_of(tls_echo.bound), "--upstream-tls-ca", file("ca.pem")});
  ASSERT_EQ(back.addresses.size(), 1U) << back.first_line;
  const test::command_outcome out =
      test::run_command(std::string(ACTNET_ECHO_CLIENT) + " --connect " + back.bound.to_string() +
                        " --conns 10 --messages 100 --size 5000 --pipeline 2");
  EXPECT_EQ(out.exit_code, 0) << out.output;
}

TEST_F(tls_sample, sighup_reloads_the_certificate_and_a_bad_one_leaves_the_old) {
  const std::string cert = file("live.pem");
  const std::string key = file("live-key.pem");
  std::filesystem::copy_file(file("server.pem"), cert,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(file("server-key.pem"), key,
                             std::filesystem::copy_options::overwrite_existing);
  test::sample_process server(ACTNET_ECHO_SERVER, {"--listen", "tls://127.0.0.1:0", "--loops", "1",
                                                   "--tls-cert", cert, "--tls-key", key});
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const auto subject = [&] {
    const test::command_outcome c = s_client(server.bound, "-CAfile " + file("ca.pem"));
    const std::size_t at = c.output.find("subject=");
    return at == std::string::npos ? c.output : c.output.substr(at, c.output.find('\n', at) - at);
  };
  const auto reloaded = [&] {
    char line[512] = {};
    return std::fgets(line, sizeof line, server.out) != nullptr ? std::string(line) : "";
  };
  EXPECT_EQ(subject(), "subject=CN = localhost");
  std::ofstream(cert) << "not a certificate\n";  // a bad file: refused, the old one stays
  ::kill(server.pid, SIGHUP);
  const std::string refused = reloaded();
  EXPECT_NE(refused.find("TLS reload refused"), std::string::npos) << refused;
  EXPECT_NE(refused.find(cert), std::string::npos) << "names the file: " << refused;
  EXPECT_EQ(subject(), "subject=CN = localhost");
  std::filesystem::copy_file(file("other.pem"), cert,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(file("other-key.pem"), key,
                             std::filesystem::copy_options::overwrite_existing);
  ::kill(server.pid, SIGHUP);
  EXPECT_NE(reloaded().find("TLS settings reloaded"), std::string::npos);
  EXPECT_EQ(subject(), "subject=CN = other.test");
}

}  // namespace
}  // namespace actnet
