// samples/proxy: 100 connections through the proxy to the echo server, every byte verified by
// echo_client; closes carried across, and half-closes passed on; a client that never reads
// cannot make the proxy grow past its outbound cap, and the other clients are still served.
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
#include <mutex>
#include <string>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

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
  // About a watermark per direction and the socket buffers, far below what was sent (and, on
  // io_uring, the loops' buffer rings, a fixed cost); a sanitizer's shadow memory multiplies both.
  engine_options proxy_options;
  proxy_options.loops = 2;
  proxy_options.backend = test::backend_under_test();
  const auto ring_kib = static_cast<long>(test::ring_buffer_bytes(proxy_options) >> 10);
  const auto budget_kib = static_cast<long>(16 * 1024 * test::memory_factor) + ring_kib;
  EXPECT_LT(rss_peak - rss_before, budget_kib)
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

// -- half-close passed on --

struct upstream_log {
  std::mutex mutex;
  std::string heard;
  std::vector<std::error_code> reasons;
};

/// An upstream that answers a request only once it has all of it: 50 ms after the peer's FIN,
/// it sends back everything it heard, then closes.
class replies_at_fin final : public connection {
 public:
  explicit replies_at_fin(upstream_log* log) : log_(log) {}
  void on_data() override { heard_ += next_all().to_string(); }
  void on_peer_shutdown() override {
    (void)after(std::chrono::milliseconds(50), [](connection& c) {
      auto& self = static_cast<replies_at_fin&>(c);
      (void)self.write(self.heard_);
      self.close();
    });
  }
  void on_close(std::error_code reason) override {
    const std::lock_guard lock(log_->mutex);
    log_->reasons.push_back(reason);
  }

 private:
  upstream_log* log_;
  std::string heard_;
};

TEST(proxy_sample, a_client_that_half_closes_after_its_request_gets_the_whole_reply) {
  upstream_log log;
  test::running_engine upstream;
  const address bound = upstream->listen<replies_at_fin>("tcp://127.0.0.1:0", &log);
  upstream.start();
  test::sample_process proxy = start_proxy(bound);
  ASSERT_EQ(proxy.addresses.size(), 1U) << proxy.first_line;
  const int fd = test::connect_to(proxy.bound);
  ASSERT_GE(fd, 0);
  // 4 MiB, more than the sockets and the proxy's watermark hold, so the reply goes out over
  // many writable events after the FIN has passed.
  constexpr std::size_t size = std::size_t{4} << 20;
  ASSERT_TRUE(test::send_all(fd, test::pattern_bytes(0, size)));
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  const std::string back = test::read_to_end(fd);
  ::close(fd);
  EXPECT_EQ(back.size(), size) << "the reply was cut short at the client's FIN";
  EXPECT_TRUE(back == test::pattern_bytes(0, size)) << "a byte was lost or reordered";
  ASSERT_TRUE(test::eventually([&] {
    const std::lock_guard lock(log.mutex);
    return !log.reasons.empty();
  }));
  const int status = proxy.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/// An upstream that says "hello" and shuts its writing at once, then listens. At the peer's
/// FIN it closes (the default), unless `keep_open`.
class speaks_first final : public connection {
 public:
  speaks_first(upstream_log* log, bool keep_open) : log_(log), keep_open_(keep_open) {}
  void on_open() override {
    (void)write(std::string_view("hello"));
    (void)shutdown_write();
  }
  void on_data() override {
    const std::lock_guard lock(log_->mutex);
    log_->heard += next_all().to_string();
  }
  void on_peer_shutdown() override {
    if (!keep_open_) {
      close();
    }
  }
  void on_close(std::error_code reason) override {
    const std::lock_guard lock(log_->mutex);
    log_->reasons.push_back(reason);
  }

 private:
  upstream_log* log_;
  bool keep_open_;
};

TEST(proxy_sample, a_server_that_half_closes_first_still_hears_the_client_out) {
  upstream_log log;
  test::running_engine upstream;
  const address bound = upstream->listen<speaks_first>("tcp://127.0.0.1:0", &log, false);
  upstream.start();
  test::sample_process proxy = start_proxy(bound);
  ASSERT_EQ(proxy.addresses.size(), 1U) << proxy.first_line;
  const int fd = test::connect_to(proxy.bound);
  ASSERT_GE(fd, 0);
  timeval tv{5, 0};  // a missing FIN fails in 5 s
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(test::recv_exact(fd, 5), "hello");
  EXPECT_TRUE(test::peer_closed(fd)) << "the server's FIN is passed on";
  ASSERT_TRUE(test::send_all(fd, "and yet I go on"));
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  ASSERT_TRUE(test::eventually([&] {
    const std::lock_guard lock(log.mutex);
    return !log.reasons.empty();
  }));
  {
    const std::lock_guard lock(log.mutex);
    EXPECT_EQ(log.heard, "and yet I go on");
    EXPECT_EQ(log.reasons.front(), errc::end_of_stream) << log.reasons.front().message();
  }
  EXPECT_EQ(test::read_to_end(fd), "") << "the proxy closed its side too";
  ::close(fd);
  ASSERT_TRUE(test::eventually([&] { return upstream->count_connections() == 0; }));
  const int status = proxy.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(proxy_sample, a_pipe_with_one_way_shut_closes_after_the_fin_timeout) {
  upstream_log log;
  test::running_engine upstream;
  const address bound = upstream->listen<speaks_first>("tcp://127.0.0.1:0", &log, true);
  upstream.start();
  test::sample_process proxy = start_proxy(bound, {"--fin-timeout", "200"});
  ASSERT_EQ(proxy.addresses.size(), 1U) << proxy.first_line;
  const int fd = test::connect_to(proxy.bound);
  ASSERT_GE(fd, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(test::recv_exact(fd, 5), "hello");
  EXPECT_TRUE(test::peer_closed(fd));
  // The client neither sends nor closes: after 200 ms the proxy closes both sides.
  ASSERT_TRUE(test::eventually([&] {
    const std::lock_guard lock(log.mutex);
    return !log.reasons.empty();
  })) << "the half-closed pipe stayed open";
  ::close(fd);
  const int status = proxy.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace actnet
