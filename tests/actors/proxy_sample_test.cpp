// samples/proxy: 100 connections through the proxy to the echo server, every byte verified by
// echo_client; closes carried across; a client that never reads cannot make the proxy grow past
// its outbound cap, and the other clients are still served.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "actors/sample_process.hpp"
#include "actors/test_util.hpp"

namespace actnet {
namespace {

/// Resident memory of process `pid`, in KiB (0 when unknown).
long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10);
    }
  }
  return 0;
}

test::sample_process start_proxy(const address& upstream, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{
      "--upstream", upstream.to_string(), "--listen", "tcp://127.0.0.1:0", "--loops", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return test::sample_process(ACTNET_PROXY, args);
}

TEST(proxy_sample, a_hundred_connections_reach_the_echo_server_byte_for_byte) {
  test::sample_process echo(ACTNET_ECHO_SERVER, {"--listen", "tcp://127.0.0.1:0", "--loops", "1"});
  ASSERT_EQ(echo.addresses.size(), 1U) << echo.first_line;
  test::sample_process proxy = start_proxy(echo.bound);
  ASSERT_EQ(proxy.addresses.size(), 1U) << proxy.first_line;
  const test::command_outcome client =
      test::run_command(std::string(ACTNET_ECHO_CLIENT) + " --connect " + proxy.bound.to_string() +
                        " --conns 100 --messages 100 --size 4000 --pipeline 4 --loops 2");
  const std::string& output = client.output;
  EXPECT_EQ(client.exit_code, 0) << output;
  EXPECT_NE(output.find("10000 messages echoed"), std::string::npos) << output;
  EXPECT_NE(output.find("; 0 failed connections"), std::string::npos) << output;
  const int proxy_status = proxy.stop();
  EXPECT_TRUE(WIFEXITED(proxy_status) && WEXITSTATUS(proxy_status) == 0);
}

/// An upstream that greets, then closes; and counts the connections that closed.
class greets_and_closes final : public connection {
 public:
  explicit greets_and_closes(std::atomic<int>* closed) : closed_(closed) {}
  void on_open() override {
    (void)write(std::string_view("hello"));
    close();
  }
  void on_close(std::error_code /*reason*/) override { (*closed_)++; }

 private:
  std::atomic<int>* closed_;
};

class silent final : public connection {
 public:
  explicit silent(std::atomic<int>* closed) : closed_(closed) {}
  void on_close(std::error_code /*reason*/) override { (*closed_)++; }

 private:
  std::atomic<int>* closed_;
};

TEST(proxy_sample, a_close_on_either_side_closes_the_other_after_its_output) {
  std::atomic<int> greeter_closed{0};
  std::atomic<int> silent_closed{0};
  test::running_engine upstream;
  const address greeter = upstream->listen<greets_and_closes>("tcp://127.0.0.1:0", &greeter_closed);
  const address quiet = upstream->listen<silent>("tcp://127.0.0.1:0", &silent_closed);
  upstream.start();

  test::sample_process to_greeter = start_proxy(greeter);
  ASSERT_EQ(to_greeter.addresses.size(), 1U) << to_greeter.first_line;
  const int fd = test::connect_to(to_greeter.bound);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(test::recv_exact(fd, 5), "hello") << "the upstream's last bytes are delivered";
  EXPECT_TRUE(test::peer_closed(fd)) << "then the client's side is closed";
  ::close(fd);

  test::sample_process to_quiet = start_proxy(quiet);
  ASSERT_EQ(to_quiet.addresses.size(), 1U) << to_quiet.first_line;
  const int leaving = test::connect_to(to_quiet.bound);
  ASSERT_GE(leaving, 0);
  ASSERT_TRUE(test::send_all(leaving, "bye"));
  ASSERT_TRUE(test::eventually([&] { return upstream->count_connections() == 1; }));
  ::close(leaving);
  EXPECT_TRUE(test::eventually([&] { return silent_closed.load() == 1; }))
      << "the client's close reaches the upstream";
}

TEST(proxy_sample, a_client_that_never_reads_is_pushed_back_loses_nothing_and_others_are_served) {
  test::sample_process echo(ACTNET_ECHO_SERVER, {"--listen", "tcp://127.0.0.1:0", "--loops", "1"});
  ASSERT_EQ(echo.addresses.size(), 1U) << echo.first_line;
  test::sample_process proxy = start_proxy(echo.bound, {});
  ASSERT_EQ(proxy.addresses.size(), 1U) << proxy.first_line;
  const long rss_before = rss_kib(proxy.pid);

  // Sends without reading: the echo comes back through the proxy, whose side toward this
  // client fills to its high watermark; then the proxy stops reading the echo server, which
  // stops reading the proxy, which stops reading the client: its sends stall.
  const int hog = test::connect_to(proxy.bound);
  ASSERT_GE(hog, 0);
  timeval short_wait{2, 0};
  ::setsockopt(hog, SOL_SOCKET, SO_SNDTIMEO, &short_wait, sizeof short_wait);
  std::size_t sent = 0;
  constexpr std::size_t limit = std::size_t{512} << 20;
  long rss_peak = rss_before;
  bool stalled = false;
  while (sent < limit) {
    const std::string chunk = test::pattern_bytes(sent, 64 * 1024);
    const ssize_t n = ::send(hog, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      stalled = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      break;
    }
    sent += static_cast<std::size_t>(n);
    if (sent % (std::size_t{4} << 20) == 0) {
      rss_peak = std::max(rss_peak, rss_kib(proxy.pid));
    }
  }
  rss_peak = std::max(rss_peak, rss_kib(proxy.pid));
  RecordProperty("sent_kib", static_cast<int>(sent >> 10));
  RecordProperty("rss_growth_kib", static_cast<int>(rss_peak - rss_before));
  EXPECT_TRUE(stalled) << "the client was not pushed back: errno " << errno << " after "
                       << (sent >> 20) << " MiB";
  // About a watermark per direction and the socket buffers, far below what was sent.
  EXPECT_LT(rss_peak - rss_before, 16 * 1024)
      << "RSS grew from " << rss_before << " KiB to " << rss_peak << " KiB after " << (sent >> 20)
      << " MiB sent";

  const int healthy = test::connect_to(proxy.bound);
  ASSERT_GE(healthy, 0);
  ASSERT_TRUE(test::send_all(healthy, "still served"));
  EXPECT_EQ(test::recv_exact(healthy, 12), "still served");
  ::close(healthy);

  // The hog reads at last: every byte it sent comes back, in order.
  const std::string back = test::recv_exact(hog, sent);
  EXPECT_EQ(back.size(), sent);
  EXPECT_TRUE(back == test::pattern_bytes(0, sent)) << "a byte was lost or reordered";
  ::close(hog);
  const int status = proxy.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace actnet
