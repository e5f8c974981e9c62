// samples/http: http_server as a process, driven by curl (keep-alive, several URLs on one
// connection) and by raw sockets (pipelining, requests split between two reads at every byte,
// bad input answered and closed while other connections carry on).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

using namespace std::chrono_literals;

/// Reads one response (head and Content-Length body) from `fd`; empty at end of stream.
std::string read_response(int fd, std::string& buffered) {
  for (;;) {
    const std::size_t head_end = buffered.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      const std::size_t at = buffered.find("Content-Length: ");
      const std::size_t length =
          at < head_end ? std::strtoul(buffered.c_str() + at + 16, nullptr, 10) : 0;
      if (buffered.size() >= head_end + 4 + length) {
        std::string response = buffered.substr(0, head_end + 4 + length);
        buffered.erase(0, response.size());
        return response;
      }
    }
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      return {};
    }
    buffered.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string body_of(const std::string& response) {
  const std::size_t head_end = response.find("\r\n\r\n");
  return head_end == std::string::npos ? "" : response.substr(head_end + 4);
}

std::string status_of(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

test::sample_process start_http(const std::vector<std::string>& more = {}) {
  std::vector<std::string> args = {"--listen", "tcp://127.0.0.1:0", "--loops", "2"};
  args.insert(args.end(), more.begin(), more.end());
  return test::sample_process(ACTNET_HTTP_SERVER, args);
}

std::string host_port(const address& a) {
  const std::string url = a.to_string();
  return url.substr(url.find("://") + 3);
}

TEST(http_server_sample, curl_gets_several_urls_over_one_kept_alive_connection) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) {
    FAIL() << "curl is not installed: the test command installs it (apt-get install curl)";
  }
  test::sample_process server = start_http();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const std::string base = "http://" + host_port(server.bound);
  const test::command_outcome curl =
      test::run_command("curl -sS -v --max-time 20 " + base + "/plaintext " + base + "/json " +
                        base + "/nothing-here");
  const std::string& output = curl.output;
  ASSERT_EQ(curl.exit_code, 0) << output;
  EXPECT_NE(output.find("Hello, World!"), std::string::npos) << output;
  EXPECT_NE(output.find(R"({"message":"Hello, World!"})"), std::string::npos) << output;
  EXPECT_NE(output.find("< HTTP/1.1 404 Not Found"), std::string::npos) << output;
  EXPECT_NE(output.find("< Server: actnet"), std::string::npos) << output;
  EXPECT_NE(output.find("< Date: "), std::string::npos) << output;
  EXPECT_NE(output.find("Re-using existing connection"), std::string::npos)
      << "curl opened a new connection per URL:\n"
      << output;
}

TEST(http_server_sample, sixteen_pipelined_requests_are_answered_in_order) {
  test::sample_process server = start_http();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const int fd = test::connect_to(server.bound);
  ASSERT_GE(fd, 0);
  std::string batch;
  for (int i = 0; i < 16; ++i) {
    batch += i % 2 == 0 ? "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
                        : "GET /json HTTP/1.1\r\nHost: x\r\n\r\n";
  }
  ASSERT_TRUE(test::send_all(fd, batch));
  std::string buffered;
  for (int i = 0; i < 16; ++i) {
    const std::string response = read_response(fd, buffered);
    ASSERT_EQ(status_of(response), "HTTP/1.1 200 OK") << i;
    EXPECT_EQ(body_of(response), i % 2 == 0 ? "Hello, World!" : R"({"message":"Hello, World!"})")
        << i;
  }
  ::close(fd);
}

TEST(http_server_sample, an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout) {
  test::sample_process server = start_http({"--keepalive-timeout", "200"});
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const int fd = test::connect_to(server.bound);  // reads time out after 20 s
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string buffered;
  EXPECT_EQ(status_of(read_response(fd, buffered)), "HTTP/1.1 200 OK");
  // Then nothing: the server closes the connection (end of stream, not the 20 s timeout).
  char byte = 0;
  errno = 0;
  EXPECT_EQ(::recv(fd, &byte, 1, 0), 0) << std::strerror(errno);
  ::close(fd);
  // A half-sent request goes quiet too: closed the same way, nothing answered.
  const int quiet = test::connect_to(server.bound);
  ASSERT_GE(quiet, 0);
  ASSERT_TRUE(test::send_all(quiet, "GET /plaintext HTTP/1.1\r\nHo"));
  errno = 0;
  EXPECT_EQ(::recv(quiet, &byte, 1, 0), 0) << std::strerror(errno);
  ::close(quiet);
}

TEST(http_server_sample, two_requests_split_between_two_reads_at_every_byte) {
  test::sample_process server = start_http();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const std::string pair =
      "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
  for (std::size_t cut = 1; cut < pair.size(); ++cut) {
    const int fd = test::connect_to(server.bound);
    ASSERT_GE(fd, 0);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ASSERT_TRUE(test::send_all(fd, pair.substr(0, cut)));
    std::this_thread::sleep_for(1ms);  // so that the server reads the halves apart
    ASSERT_TRUE(test::send_all(fd, pair.substr(cut)));
    std::string buffered;
    EXPECT_EQ(body_of(read_response(fd, buffered)), "Hello, World!") << "cut at " << cut;
    EXPECT_EQ(body_of(read_response(fd, buffered)), R"({"message":"Hello, World!"})")
        << "cut at " << cut;
    ::close(fd);
  }
}

TEST(http_server_sample, bad_requests_get_their_status_and_a_close_and_others_carry_on) {
  test::sample_process server = start_http();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const int healthy = test::connect_to(server.bound);
  ASSERT_GE(healthy, 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"GET / HTTP/1.1\r\nX: " + std::string(9000, 'v') + "\r\n\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large"},
      {"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", "HTTP/1.1 413 Content Too Large"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 501 Not Implemented"},
      {"GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"},
  };
  for (const auto& [request, expected] : cases) {
    const int fd = test::connect_to(server.bound);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(test::send_all(fd, request));
    std::string buffered;
    const std::string response = read_response(fd, buffered);
    EXPECT_EQ(status_of(response), expected);
    EXPECT_NE(response.find("Connection: close"), std::string::npos) << expected;
    EXPECT_TRUE(test::peer_closed(fd)) << expected;
    ::close(fd);
    // Meanwhile the kept-alive connection is served as ever.
    ASSERT_TRUE(test::send_all(healthy, "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string kept;
    EXPECT_EQ(body_of(read_response(healthy, kept)), "Hello, World!");
  }
  ::close(healthy);
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace actnet
