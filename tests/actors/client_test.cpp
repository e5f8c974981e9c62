// actnet::client: outbound connections as the same connection actors, on loops of their own.
// gnet's client suite ported (reference §3): TestClient's matrix, WakeConnImmediately,
// ClientReadOnEOF; and the client's own life cycle.
#include <gtest/gtest.h>
#include <unistd.h>

#include <actnet/actors/client.hpp>
#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <array>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"

namespace actnet {
namespace {

using namespace std::chrono_literals;
using test::eventually;
using test::running_engine;

/// What one client connection saw, for the test thread.
struct link {
  std::mutex mutex;
  std::condition_variable changed;
  conn_ref ref;
  bool opened = false;
  std::string received;
  int closes = 0;
  std::error_code close_reason;
  std::vector<std::string> checks;  // WakeConnImmediately: what the inbound API said

  /// Waits (20 s at most) until `done()` holds, under the lock.
  template <class Pred>
  bool wait(Pred done) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 20s, done);
  }
};

/// A client connection: on open, sends "PING\r\n" and wakes itself (gnet's TestClient);
/// collects what arrives.
class pinger : public connection {
 public:
  explicit pinger(link* l) : link_(l) {}
  void on_open() override {
    (void)write(std::string_view("PING\r\n"));
    wake();
    const std::lock_guard lock(link_->mutex);
    link_->ref = ref();
    link_->opened = true;
    link_->changed.notify_all();
  }
  void on_data() override {
    const byte_views in = next_all();
    const std::lock_guard lock(link_->mutex);
    for (const auto part : {in.first, in.second}) {
      link_->received.append(reinterpret_cast<const char*>(part.data()), part.size());
    }
    link_->changed.notify_all();
  }
  void on_close(std::error_code reason) override {
    const std::lock_guard lock(link_->mutex);
    ++link_->closes;
    link_->close_reason = reason;
    link_->changed.notify_all();
  }

 protected:
  link* link_;
};

class echo final : public connection {
  void on_data() override { (void)write(next_all()); }
};

std::string random_bytes(std::size_t n, std::mt19937& rng) {
  std::string s(n, '\0');
  for (char& c : s) {
    c = static_cast<char>(rng());
  }
  return s;
}

// -- TestClient: {tcp, unix} x {sync, async} x {1, 2 loops} -----------------------------------

struct matrix_case {
  const char* kind;  // "tcp" or "unix"
  bool async;        // writes through conn_ref::async_write (else a tell that writes)
  std::size_t loops;
};

class client_matrix : public testing::TestWithParam<matrix_case> {};

TEST_P(client_matrix, ten_clients_half_dialed_half_enrolled_get_every_byte_back) {
  const matrix_case& mc = GetParam();
  running_engine server(test::small_options(2));
  const std::string path = "/tmp/actnet-client-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  const std::string kind = mc.kind;
  const address bound =
      server->listen<echo>(kind == "unix" ? "unix://" + path : kind + "://127.0.0.1:0");
  server.start();

  engine_options o = client::default_options();
  o.loops = mc.loops;
  client c(o);
  c.start();
  constexpr int clients = 10;
  std::vector<std::unique_ptr<link>> links;
  for (int i = 0; i < clients; ++i) {
    links.push_back(std::make_unique<link>());
    if (i % 2 == 0 || kind == "udp") {  // a connected UDP socket is dialed, not enrolled
      const result<conn_ref> r = c.dial_and_wait<pinger>(bound.to_string(), {}, links.back().get());
      ASSERT_TRUE(r) << r.error().message();
      EXPECT_TRUE(links.back()->opened) << "dial_and_wait returns after on_open";
    } else {
      const int fd = test::connect_to(bound);
      ASSERT_GE(fd, 0);
      ASSERT_FALSE(c.enroll<pinger>(fd, links.back().get()));
      ASSERT_TRUE(links.back()->wait([&] { return links.back()->opened; }));
    }
  }
  EXPECT_TRUE(eventually([&] { return c.count_connections() == clients; }));
  for (std::size_t i = 0; i < mc.loops; ++i) {
    EXPECT_GT(c.underlying().loop(i).connection_count(), 0U) << "least-connections used loop " << i;
  }
  std::mt19937 rng(42);
  for (int i = 0; i < clients; ++i) {
    link& l = *links[static_cast<std::size_t>(i)];
    std::string expected = "PING\r\n";
    for (int round = 0; round < 2; ++round) {
      // UDP: one datagram each way per round (loopback does not drop them).
      const std::string payload = random_bytes(kind == "udp" ? 1024 : 256 * 1024, rng);
      expected += payload;
      if (mc.async) {
        l.ref.async_write(payload);
      } else {
        l.ref.tell<pinger>([payload](pinger& p) { (void)p.write(payload); });
      }
      ASSERT_TRUE(l.wait([&] { return l.received.size() >= expected.size(); }))
          << "client " << i << " round " << round;
      const std::lock_guard lock(l.mutex);
      ASSERT_EQ(l.received.size(), expected.size());
      ASSERT_TRUE(l.received == expected) << "client " << i << " round " << round;
    }
  }
  c.stop();
  for (const auto& l : links) {
    const std::lock_guard lock(l->mutex);
    EXPECT_EQ(l->closes, 1);
    EXPECT_EQ(l->close_reason, errc::engine_stopped);
  }
  EXPECT_EQ(c.count_connections(), 0U);
  server.stop();
  ::unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(gnet_client, client_matrix,
                         testing::Values(matrix_case{"tcp", false, 1}, matrix_case{"tcp", true, 1},
                                         matrix_case{"tcp", false, 2}, matrix_case{"tcp", true, 2},
                                         matrix_case{"unix", false, 1},
                                         matrix_case{"unix", true, 1},
                                         matrix_case{"unix", false, 2},
                                         matrix_case{"unix", true, 2}, matrix_case{"udp", false, 1},
                                         matrix_case{"udp", true, 1}, matrix_case{"udp", false, 2},
                                         matrix_case{"udp", true, 2}),
                         [](const testing::TestParamInfo<matrix_case>& param_info) {
                           return std::string(param_info.param.kind) +
                                  (param_info.param.async ? "_async_" : "_sync_") +
                                  std::to_string(param_info.param.loops) + "_loops";
                         });

TEST(client, dials_tcp4_and_tcp6_by_name) {
  running_engine server;
  const address v4 = server->listen<echo>("tcp4://127.0.0.1:0");
  address v6;
  try {
    v6 = server->listen<echo>("tcp6://[::1]:0");
  } catch (const std::system_error& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  server.start();
  client c;
  c.start();
  for (const address& a : {v4, v6}) {
    link l;
    const result<conn_ref> r = c.dial_and_wait<pinger>(a.to_string(), {}, &l);
    ASSERT_TRUE(r) << a.to_string() << ": " << r.error().message();
    ASSERT_TRUE(l.wait([&] { return l.received == "PING\r\n"; })) << a.to_string();
    l.ref.close();
    ASSERT_TRUE(l.wait([&] { return l.closes == 1; }));
  }
}

// -- WakeConnImmediately: on_data with nothing buffered ---------------------------------------

class wakes_at_once final : public pinger {
 public:
  using pinger::pinger;
  void on_open() override {
    wake();
    const std::lock_guard lock(link_->mutex);
    link_->opened = true;
    link_->changed.notify_all();
  }
  void on_data() override {
    std::vector<std::string> seen;
    std::array<std::byte, 10> ten{};
    seen.push_back("read(0): " + read(std::span<std::byte>()).message());
    seen.push_back("read(10): " + read(ten).message());
    seen.push_back("next(10): " + next(10).error().message());
    seen.push_back("peek(10): " + peek(10).error().message());
    seen.push_back("next_all: " + std::to_string(next_all().first.size()));
    seen.push_back("peek_all: " + std::to_string(peek_all().first.size()));
    seen.push_back("discard(0): " + discard(0).message());
    seen.push_back("discard(1): " + discard(1).message());
    seen.push_back("buffered: " + std::to_string(inbound_buffered()));
    close();
    const std::lock_guard lock(link_->mutex);
    link_->checks = seen;
    link_->changed.notify_all();
  }
};

TEST(client, wake_conn_immediately_sees_an_empty_inbound) {
  running_engine server;
  const address bound = server->listen<echo>("tcp://127.0.0.1:0");
  server.start();
  client c;
  c.start();
  link l;
  ASSERT_TRUE(c.dial_and_wait<wakes_at_once>(bound.to_string(), {}, &l));
  ASSERT_TRUE(l.wait([&] { return l.closes == 1; }));
  const std::string ok = std::error_code().message();
  const std::string short_buffer = std::error_code(errc::short_buffer).message();
  EXPECT_EQ(l.checks,
            (std::vector<std::string>{"read(0): " + ok, "read(10): " + short_buffer,
                                      "next(10): " + short_buffer, "peek(10): " + short_buffer,
                                      "next_all: 0", "peek_all: 0", "discard(0): " + ok,
                                      "discard(1): " + short_buffer, "buffered: 0"}));
  EXPECT_EQ(l.close_reason, std::error_code());
}

// -- ClientReadOnEOF: the bytes before the peer's FIN are delivered ----------------------------

class says_test_and_closes final : public connection {
  void on_open() override {
    (void)write(std::string_view("test"));
    close();
  }
};

TEST(client, read_on_eof_delivers_the_bytes_before_the_fin) {
  running_engine server;
  const address bound = server->listen<says_test_and_closes>("tcp://127.0.0.1:0");
  server.start();
  client c;
  c.start();
  link l;
  class quiet final : public pinger {  // no PING: the server is not an echo here
   public:
    using pinger::pinger;
    void on_open() override {}
  };
  ASSERT_TRUE(c.dial_and_wait<quiet>(bound.to_string(), {}, &l));
  ASSERT_TRUE(l.wait([&] { return l.closes == 1; }));
  EXPECT_EQ(l.received, "test");
  EXPECT_EQ(l.close_reason, errc::end_of_stream);
}

// -- connected UDP sockets -------------------------------------------------------------------

TEST(client, a_connected_udp_socket_knows_its_peer_and_closes_when_the_port_is_refused) {
  const address closed = [] {
    engine e(test::small_options());
    return e.listen<echo>("udp://127.0.0.1:0");  // bound, then closed with the engine
  }();
  client c;
  c.start();
  link l;
  class reporter final : public pinger {
   public:
    using pinger::pinger;
    void on_open() override {
      pinger::on_open();  // sends PING: the closed port answers with an ICMP refusal
      const std::lock_guard lock(link_->mutex);
      const result<address> peer = remote_address();
      link_->checks.push_back(peer ? peer->to_string() : peer.error().message());
      link_->checks.push_back(is_datagram() ? "datagram" : "stream");
    }
  };
  const result<conn_ref> r = c.dial_and_wait<reporter>(closed.to_string(), {}, &l);
  ASSERT_TRUE(r) << "connecting a UDP socket does not wait for the peer";
  ASSERT_TRUE(l.wait([&] { return l.closes == 1; }));
  EXPECT_EQ(l.close_reason, std::errc::connection_refused);
  EXPECT_EQ(l.checks, (std::vector<std::string>{closed.to_string(), "datagram"}));
  EXPECT_TRUE(eventually([&] { return c.count_connections() == 0; }));
}

// -- reconnect with backoff ------------------------------------------------------------------

/// Every outcome a reconnecting dial reported.
struct outcomes {
  std::mutex mutex;
  std::vector<std::error_code> seen;  // {} for each connection that opened
  dial_done callback() {
    return [this](result<conn_ref> r) {
      const std::lock_guard lock(mutex);
      seen.push_back(r ? std::error_code() : r.error());
    };
  }
  /// Outcomes equal to `which` (an error code or condition; {} for an open connection).
  template <class E>
  std::size_t count(E which) {
    const std::lock_guard lock(mutex);
    return static_cast<std::size_t>(
        std::count_if(seen.begin(), seen.end(), [&](std::error_code ec) { return ec == which; }));
  }
  std::size_t opened() { return count(std::error_code()); }
  std::size_t total() {
    const std::lock_guard lock(mutex);
    return seen.size();
  }
};

dial_options reconnecting(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                          std::size_t attempts = 0) {
  dial_options o;
  reconnect_policy p;
  p.initial_delay = initial;
  p.max_delay = max;
  p.max_attempts = attempts;
  o.reconnect = p;
  return o;
}

/// Says bye and closes every connection at once.
class kicker final : public connection {
  void on_open() override {
    (void)write(std::string_view("bye"));
    close();
  }
};

/// A port nothing listens on (bound once, then closed).
address free_port() {
  engine e(test::small_options());
  return e.listen<echo>("tcp://127.0.0.1:0");
}

TEST(reconnect, a_connection_the_peer_closes_is_dialed_again_as_a_new_actor) {
  running_engine server;
  const address bound = server->listen<kicker>("tcp://127.0.0.1:0");
  server.start();
  client c;
  c.start();
  outcomes o;
  link l;
  c.dial<pinger>(bound.to_string(), reconnecting(5ms, 20ms), o.callback(), &l);
  ASSERT_TRUE(eventually([&] { return o.opened() >= 3; })) << o.total() << " outcomes";
  ASSERT_TRUE(l.wait([&] { return l.closes >= 2; }));
  {
    // The peer closed (end of stream, or a reset: the kicker closes with our PING unread).
    const std::lock_guard lock(l.mutex);
    EXPECT_TRUE(l.close_reason == errc::end_of_stream ||
                l.close_reason == std::errc::connection_reset)
        << l.close_reason.message();
  }
  c.stop();
  EXPECT_EQ(o.count(std::errc::connection_refused), 0U);
}

TEST(reconnect, gives_up_after_max_attempts_failed_dials_in_a_row) {
  const address nobody = free_port();
  client c;
  c.start();
  outcomes o;
  link l;
  c.dial<pinger>(nobody.to_string(), reconnecting(2ms, 5ms, 3), o.callback(), &l);
  const std::errc refused = std::errc::connection_refused;
  ASSERT_TRUE(eventually([&] { return o.count(refused) == 3; }));
  std::this_thread::sleep_for(100ms);  // room for a fourth attempt, were there one (5 ms apart)
  EXPECT_EQ(o.total(), 3U);
  c.stop();
  EXPECT_EQ(o.total(), 3U) << "nothing was pending at stop";
}

TEST(reconnect, keeps_trying_until_the_server_comes_back) {
  const address later = free_port();
  client c;
  c.start();
  outcomes o;
  link l;
  c.dial<pinger>(later.to_string(), reconnecting(2ms, 10ms), o.callback(), &l);
  const std::errc refused = std::errc::connection_refused;
  ASSERT_TRUE(eventually([&] { return o.count(refused) >= 3; }));
  running_engine server;
  (void)server->listen<echo>(later.to_string());
  server.start();
  ASSERT_TRUE(eventually([&] { return o.opened() == 1; }));
  ASSERT_TRUE(l.wait([&] { return l.received == "PING\r\n"; }));
  c.stop();
}

TEST(reconnect, a_local_close_ends_it) {
  running_engine server;
  const address bound = server->listen<echo>("tcp://127.0.0.1:0");
  server.start();
  client c;
  c.start();
  outcomes o;
  link l;
  c.dial<pinger>(bound.to_string(), reconnecting(2ms, 5ms), o.callback(), &l);
  ASSERT_TRUE(l.wait([&] { return l.opened; }));
  l.ref.close();
  ASSERT_TRUE(l.wait([&] { return l.closes == 1; }));
  std::this_thread::sleep_for(100ms);  // room for a redial, were there one
  EXPECT_EQ(o.total(), 1U);
  {
    const std::lock_guard lock(l.mutex);
    EXPECT_EQ(l.closes, 1);
  }
}

TEST(reconnect, a_retry_waiting_at_stop_reports_engine_stopped_once) {
  const address nobody = free_port();
  client c;
  c.start();
  outcomes o;
  link l;
  c.dial<pinger>(nobody.to_string(), reconnecting(1h, 2h), o.callback(), &l);
  const std::errc refused = std::errc::connection_refused;
  ASSERT_TRUE(eventually([&] { return o.count(refused) == 1; }));
  c.stop();
  EXPECT_EQ(o.count(errc::engine_stopped), 1U);
  EXPECT_EQ(o.total(), 2U);
}

TEST(reconnect, a_bad_policy_is_rejected_at_once) {
  client c;
  const auto bad = [&](std::chrono::milliseconds initial, std::chrono::milliseconds max,
                       double multiplier) {
    dial_options o = reconnecting(initial, max);
    o.reconnect->multiplier = multiplier;
    return [&c, o] { c.dial<echo>("tcp://127.0.0.1:9", o, [](result<conn_ref>) {}); };
  };
  EXPECT_THROW(bad(0ms, 1s, 2)(), std::invalid_argument);
  EXPECT_THROW(bad(2s, 1s, 2)(), std::invalid_argument);
  EXPECT_THROW(bad(1ms, 1s, 0.5)(), std::invalid_argument);
  EXPECT_THROW(bad(1ms, std::chrono::hours(24 * 400), 2)(), std::invalid_argument);
  EXPECT_NO_THROW(bad(1ms, 1s, 1)());
}

// -- the client's life cycle --------------------------------------------------------------------

TEST(client, dial_and_wait_before_start_or_after_stop_says_engine_stopped) {
  client c;
  link l;
  const result<conn_ref> early = c.dial_and_wait<pinger>("tcp://127.0.0.1:9", {}, &l);
  EXPECT_EQ(early.error(), errc::engine_stopped);
  c.start();
  EXPECT_THROW(c.start(), std::logic_error);
  c.stop();
  const result<conn_ref> late = c.dial_and_wait<pinger>("tcp://127.0.0.1:9", {}, &l);
  EXPECT_EQ(late.error(), errc::engine_stopped);
  std::error_code async_late;
  c.dial<pinger>(
      "tcp://127.0.0.1:9", {}, [&](result<conn_ref> r) { async_late = r.error(); }, &l);
  EXPECT_EQ(async_late, errc::engine_stopped) << "a dial after stop() is answered at once";
}

TEST(client, dial_and_wait_from_its_own_loop_refuses_rather_than_deadlock) {
  running_engine server;
  const address bound = server->listen<echo>("tcp://127.0.0.1:0");
  server.start();
  client c;
  c.start();
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<std::error_code> seen;
  c.underlying().loop(0).post([&](event_loop&) {
    link l;
    const result<conn_ref> r = c.dial_and_wait<pinger>(bound.to_string(), {}, &l);
    const std::lock_guard lock(mutex);
    seen = r ? std::error_code() : r.error();
    cv.notify_all();
  });
  std::unique_lock lock(mutex);
  ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return seen.has_value(); }));
  EXPECT_EQ(*seen, std::errc::resource_deadlock_would_occur);
}

TEST(client, stop_from_its_own_handler_stops_it_and_the_destructor_joins) {
  running_engine server;
  const address bound = server->listen<echo>("tcp://127.0.0.1:0");
  server.start();
  link l;
  {
    client c;
    c.start();
    ASSERT_TRUE(c.dial_and_wait<pinger>(bound.to_string(), {}, &l));
    l.ref.tell<pinger>([&c](pinger&) { c.stop(); });  // from the client's own loop
    ASSERT_TRUE(l.wait([&] { return l.closes == 1; }));
    EXPECT_EQ(l.close_reason, errc::engine_stopped);
  }  // joined here
}

TEST(client, a_refused_dial_and_wait_returns_the_error) {
  const address closed = [] {
    engine e(test::small_options());
    return e.listen<echo>("tcp://127.0.0.1:0");
  }();
  client c;
  c.start();
  link l;
  const result<conn_ref> r = c.dial_and_wait<pinger>(closed.to_string(), {}, &l);
  EXPECT_EQ(r.error(), std::errc::connection_refused);
  EXPECT_FALSE(l.opened);
}

}  // namespace
}  // namespace actnet
