// KCP conversations as connection actors (kcp:// listeners and dials), on each back end: bytes
// echoed in order and byte for byte in fast and normal modes, in one write and in many; a close
// that waits for its output to be acknowledged; a conversation whose peer goes quiet closed at
// kcp_options::idle_timeout; the connection timeouts (read, write) on a conversation; datagrams
// that open no conversation (too short, no data) dropped and counted; the cap on conversations; bad
// urls and options refused by name.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <actnet/reactor/kcp.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/kcp_test_util.hpp"
#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::echo_record;
using test::eventually;
using test::kcp_echo;
using test::kcp_pattern;
using test::pattern_sender;
using test::running_engine;
using namespace std::chrono_literals;

kcp_options fast() {
  return test::kcp_mode(true);
}

// Echoes `total` bytes written `chunk` at a time through a kcp:// listener and back.
void echo_through(const std::optional<kcp_options>& tuning, std::size_t loops, std::size_t total,
                  std::size_t chunk) {
  echo_record t;  // before the engine: its connections write to it until they close
  t.expected = total;
  running_engine e(test::small_options(loops));
  listen_options lo;
  lo.kcp = tuning;
  const address bound = e->listen<kcp_echo>(lo, "kcp://127.0.0.1:0");
  e.start();
  dial_options d;
  d.kcp = tuning;
  std::promise<result<conn_ref>> dialed;
  e->dial<pattern_sender>(
      "kcp://127.0.0.1:" + std::to_string(bound.port()), d,
      [&dialed](result<conn_ref> r) { dialed.set_value(r); }, &t, total, chunk);
  ASSERT_TRUE(dialed.get_future().get().has_value());
  ASSERT_EQ(t.done.get_future().wait_for(60s), std::future_status::ready);
  const std::lock_guard lock(t.mutex);
  test::expect_kcp_pattern(t.got, total);
}

TEST(kcp, a_dial_echoes_a_mebibyte_through_a_listener_in_fast_mode) {
  echo_through(fast(), 2, 1 << 20, 1 << 20);
}

TEST(kcp, normal_mode_echoes_in_order_too) {
  echo_through(std::nullopt, 1, 64 * 1024, 64 * 1024);
}

TEST(kcp, many_small_writes_arrive_in_order) {
  echo_through(fast(), 1, 2000 * 64, 64);
}

// Writes `total` bytes and closes at once: the close waits for KCP's acks.
class write_and_close final : public connection {
 public:
  explicit write_and_close(std::size_t total) : total_(total) {}
  void on_open() override {
    (void)write(kcp_pattern(total_));
    close();
  }

 private:
  std::size_t total_;
};

// Sends one byte to open the conversation, then records what comes back.
class opener final : public pattern_sender {
 public:
  explicit opener(echo_record* r) : pattern_sender(r, 0, 1) {}
  void on_open() override { (void)write(std::string_view("!")); }
};

TEST(kcp, a_close_after_a_write_waits_until_the_peer_has_every_byte) {
  constexpr std::size_t total = 512 * 1024;
  echo_record t;  // before the engine: its connections write to it until they close
  t.expected = total;
  running_engine e(test::small_options(1));
  listen_options lo;
  lo.kcp = fast();
  const address bound = e->listen<write_and_close>(lo, "kcp://127.0.0.1:0", total);
  e.start();
  dial_options d;
  d.kcp = fast();
  e->dial<opener>(
      "kcp://127.0.0.1:" + std::to_string(bound.port()), d, [](result<conn_ref>) {}, &t);
  ASSERT_EQ(t.done.get_future().wait_for(60s), std::future_status::ready);
  {
    const std::lock_guard lock(t.mutex);
    test::expect_kcp_pattern(t.got, total);
  }
  // The server's side closes once its last segment is acknowledged; the client's stays.
  EXPECT_TRUE(eventually([&] { return e->count_connections() == 1; }));
}

// Notes its close.
class noting final : public connection {
 public:
  explicit noting(echo_record* r) : record_(r) {}
  void on_close(std::error_code reason) override { record_->closed(reason); }

 private:
  echo_record* record_;
};

// A loopback UDP socket that sends raw datagrams to `port`.
class raw_udp {
 public:
  explicit raw_udp(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    to_.sin_family = AF_INET;
    to_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to_.sin_port = htons(port);
  }
  raw_udp(const raw_udp&) = delete;
  raw_udp& operator=(const raw_udp&) = delete;
  ~raw_udp() { ::close(fd_); }
  void send(const std::vector<std::byte>& d) const {
    ASSERT_EQ(
        ::sendto(fd_, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to_),  // NOLINT
                 sizeof to_),
        static_cast<ssize_t>(d.size()));
  }

 private:
  int fd_;
  sockaddr_in to_{};
};

std::vector<std::byte> segment(std::uint32_t conv, detail::kcp_command cmd, std::string_view data) {
  detail::kcp_header h;
  h.conv = conv;
  h.cmd = cmd;
  h.wnd = 32;
  h.len = static_cast<std::uint32_t>(data.size());
  std::vector<std::byte> b(detail::kcp_header::size + data.size());
  detail::write_kcp_header(h, b);
  std::memcpy(b.data() + detail::kcp_header::size, data.data(), data.size());
  return b;
}

std::uint64_t dropped(engine& e) {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < e.loop_count(); ++i) {
    n += e.loop(i).datagrams_dropped();
  }
  return n;
}

TEST(kcp, a_conversation_whose_peer_goes_quiet_closes_at_the_idle_timeout) {
  echo_record t;  // before the engine: its connections write to it until they close
  running_engine e(test::small_options(1));
  listen_options lo;
  lo.kcp = kcp_options{};
  lo.kcp->idle_timeout = 200ms;
  lo.session_idle_timeout = 1h;  // UDP sessions' alone: a conversation has its own
  const address bound = e->listen<noting>(lo, "kcp://127.0.0.1:0", &t);
  e.start();
  const raw_udp peer(bound.port());
  peer.send(segment(77, detail::kcp_command::push, "hello"));
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(t.mutex);
    return t.closes == 1;
  }));
  const std::lock_guard lock(t.mutex);
  EXPECT_EQ(t.close_reason, std::errc::timed_out);
}

TEST(kcp, datagrams_that_open_no_conversation_are_dropped_and_counted) {
  echo_record t;  // before the engine: its connections write to it until they close
  running_engine e(test::small_options(1));
  listen_options lo;
  lo.kcp = kcp_options{};
  lo.kcp->max_conversations = 1;
  const address bound = e->listen<noting>(lo, "kcp://127.0.0.1:0", &t);
  e.start();
  const raw_udp peer(bound.port());
  peer.send({std::byte{1}, std::byte{2}});                // shorter than a header
  peer.send(segment(5, detail::kcp_command::ack, ""));    // no data: opens nothing
  peer.send(segment(6, detail::kcp_command::push, "a"));  // opens conversation 6
  peer.send(segment(7, detail::kcp_command::push, "b"));  // past max_conversations
  ASSERT_TRUE(eventually([&] { return dropped(*e) == 3; }));
  EXPECT_EQ(e->count_connections(), 1U);
}

TEST(kcp, the_connection_timeouts_apply_a_read_timeout_to_a_quiet_conversation) {
  echo_record server;  // before the engine: its connections write to them until they close
  echo_record client;
  engine_options eo = test::small_options(1);
  eo.connection_timeouts.read = 200ms;
  running_engine e(eo);
  listen_options lo;
  lo.kcp = fast();
  const address bound = e->listen<noting>(lo, "kcp://127.0.0.1:0", &server);
  e.start();
  dial_options d;
  d.kcp = fast();
  // One byte, then silence: KCP still acks it, but nothing is read after it.
  e->dial<opener>(
      "kcp://127.0.0.1:" + std::to_string(bound.port()), d, [](result<conn_ref>) {}, &client);
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(server.mutex);
    return server.closes == 1;
  }));
  const std::lock_guard lock(server.mutex);
  EXPECT_EQ(server.close_reason, make_error_code(errc::read_timeout));
}

// Reads nothing (its window closes), after opening the conversation with one byte.
class deaf_opener final : public pattern_sender {
 public:
  explicit deaf_opener(echo_record* r) : pattern_sender(r, 0, 1) {}
  void on_open() override {
    pause_reading();
    (void)write(std::string_view("!"));
  }
};

// Writes 4 MiB at its first byte, with a write timeout of 300 ms.
class flooder final : public connection {
 public:
  explicit flooder(echo_record* r) : record_(r) {}
  void on_data() override {
    (void)next_all();
    if (!wrote_) {
      wrote_ = true;
      set_timeouts({.write = 300ms});
      (void)write(kcp_pattern(4 << 20));
    }
  }
  void on_close(std::error_code reason) override { record_->closed(reason); }

 private:
  echo_record* record_;
  bool wrote_ = false;
};

TEST(kcp, a_write_timeout_closes_a_conversation_whose_peer_stopped_reading) {
  echo_record server;  // before the engine: its connections write to them until they close
  echo_record client;
  running_engine e(test::small_options(1));
  listen_options lo;
  lo.kcp = fast();
  const address bound = e->listen<flooder>(lo, "kcp://127.0.0.1:0", &server);
  e.start();
  dial_options d;
  d.kcp = fast();
  e->dial<deaf_opener>(
      "kcp://127.0.0.1:" + std::to_string(bound.port()), d, [](result<conn_ref>) {}, &client);
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(server.mutex);
    return server.closes == 1;
  }));
  const std::lock_guard lock(server.mutex);
  EXPECT_EQ(server.close_reason, make_error_code(errc::write_timeout));
}

TEST(kcp, bad_urls_and_options_are_refused_by_name) {
  engine e(test::small_options(1));
  listen_options lo;
  lo.kcp = kcp_options{};
  EXPECT_THROW((void)e.listen<kcp_echo>(lo, "udp://127.0.0.1:0"), std::invalid_argument);
  lo.kcp->interval = 1ms;
  try {
    (void)e.listen<kcp_echo>(lo, "kcp://127.0.0.1:0");
    ADD_FAILURE() << "an interval of 1 ms was taken";
  } catch (const std::invalid_argument& err) {
    EXPECT_NE(std::string(err.what()).find("kcp_options::interval = 1 ms"), std::string::npos)
        << err.what();
  }
  lo.kcp = kcp_options{};
  lo.kcp->mtu = 20;
  EXPECT_THROW((void)e.listen<kcp_echo>(lo, "kcp://127.0.0.1:0"), std::invalid_argument);
  lo.kcp = kcp_options{};
  lo.kcp->idle_timeout = 0ms;
  EXPECT_THROW((void)e.listen<kcp_echo>(lo, "kcp://127.0.0.1:0"), std::invalid_argument);
  lo.kcp = kcp_options{};
  lo.kcp->max_conversations = 0;
  EXPECT_THROW((void)e.listen<kcp_echo>(lo, "kcp://127.0.0.1:0"), std::invalid_argument);
  dial_options d;
  d.kcp = kcp_options{};
  EXPECT_THROW(e.dial<kcp_echo>("tcp://127.0.0.1:9", d, [](result<conn_ref>) {}),
               std::invalid_argument);
}

}  // namespace
}  // namespace actnet
