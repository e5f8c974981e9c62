// gnet's server tests, ported (../shared/reference/gnet-v2.md §3): the matrix of reactor modes x
// protocols x sync/async x loop counts with 10 verified clients per address, the multi-address
// group, and the named cases (Tick, Shutdown, the close/shutdown actions, two engines on one
// port, ClosedWakeUp, DisconnectedAsyncWrite, SimServer, UDP send_to, StreamProxy). Exchanges
// are shorter than gnet's (one 1 MiB stream message, twenty 1 KiB datagrams per client):
// coverage, not soak.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::connect_to;
using test::eventually;
using test::peer_closed;
using test::recv_exact;
using test::running_engine;
using test::send_all;
using test::udp_client;

constexpr std::string_view greeting = "andypan\r\n";

std::string random_bytes(std::size_t n, std::mt19937& rng) {
  std::string s(n, '\0');
  for (char& c : s) {
    c = static_cast<char>(rng());
  }
  return s;
}

std::string text_of(const byte_views& v) {
  std::string s(reinterpret_cast<const char*>(v.first.data()), v.first.size());
  s.append(reinterpret_cast<const char*>(v.second.data()), v.second.size());
  return s;
}

std::string unix_path(std::string_view what) {
  static std::atomic<int> counter{0};
  return "/tmp/actnet-gnet-" + std::string(what) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter++) + ".sock";
}

/// A thread that runs jobs in order: the "other goroutine" of gnet's async cases.
class worker {
 public:
  worker() : thread_([this] { run(); }) {}
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  ~worker() {
    {
      const std::lock_guard lock(mutex_);
      done_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }
  void submit(std::function<void()> job) {
    {
      const std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return done_ || !jobs_.empty(); });
      if (jobs_.empty()) {
        return;
      }
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool done_ = false;
  std::thread thread_;
};

// -- the matrix --

enum class io_mode { lt, et, et_chunk, reuseport_lt, reuseport_et };

struct server_state {
  bool async = false;
  bool writev = false;
  bool socket_checks = false;  // gnet's 1-loop sync extras
  std::atomic<int> opened{0};  // streams and UDP sessions
  std::atomic<int> closed{0};
  std::atomic<int> streams_opened{0};
  std::atomic<int> streams_closed{0};
  std::atomic<int> sessions_open{0};
  std::mutex mutex;
  std::vector<std::string> errors;
  worker jobs;

  void fail(std::string what) {
    const std::lock_guard lock(mutex);
    errors.push_back(std::move(what));
  }
};

class gnet_conn : public connection {
 public:
  explicit gnet_conn(server_state* s) : s_(s) {}

  void on_open() override {
    session_ = is_datagram() && remote_address().has_value();
    if (!local_address()) {
      s_->fail("on_open: no local address");
    }
    if (is_datagram() && !session_) {
      return;  // a UDP socket actor: no peer yet
    }
    s_->opened++;
    if (session_) {
      s_->sessions_open++;
      return;
    }
    s_->streams_opened++;
    if (!remote_address()) {
      s_->fail("on_open: no remote address");
    }
    if (write(greeting)) {
      s_->fail("greeting not written");
    }
    if (s_->socket_checks) {
      socket_checks();
    }
  }

  void on_data() override {
    const byte_views all = next_all();
    const std::size_t size = all.first.size() + all.second.size();
    if (size == 0) {
      return;
    }
    if (!s_->async) {
      std::error_code ec;
      if (s_->writev && !is_datagram()) {
        // gnet's Writev of two halves.
        const std::string data = text_of(all);
        const auto bytes = std::as_bytes(std::span(data.data(), data.size()));
        const std::array halves{bytes.first(size / 2), bytes.subspan(size / 2)};
        ec = writev(halves);
      } else {
        ec = write(all);
      }
      if (ec) {
        s_->fail("write: " + ec.message());
      }
      return;
    }
    // Async: another thread writes it back through the connection's address.
    auto data = std::make_shared<std::string>(text_of(all));
    const conn_ref self = ref();
    const bool halves = s_->writev;
    server_state* s = s_;
    s_->jobs.submit([self, data, halves, s] {
      const auto done = [s](std::error_code ec) {
        if (ec) {
          s->fail("async write: " + ec.message());
        }
      };
      if (halves) {
        const auto bytes = std::as_bytes(std::span(data->data(), data->size()));
        const std::array parts{bytes.first(bytes.size() / 2), bytes.subspan(bytes.size() / 2)};
        self.async_writev(parts, done);
      } else {
        self.async_write(*data, done);
      }
    });
  }

  void on_close(std::error_code /*reason*/) override {
    if (is_datagram() && !session_) {
      return;
    }
    s_->closed++;
    if (session_) {
      s_->sessions_open--;
    } else {
      s_->streams_closed++;
    }
  }

 private:
  void socket_checks() {
    const bool tcp = local_address()->transport() == transport::tcp;
    const auto expect_ok = [this](std::error_code ec, const char* what) {
      if (ec) {
        s_->fail(std::string(what) + ": " + ec.message());
      }
    };
    expect_ok(flush(), "flush");
    expect_ok(set_recv_buffer(1 << 20), "set_recv_buffer");
    expect_ok(set_send_buffer(1 << 20), "set_send_buffer");
    if (inbound_buffered() != 0) {
      s_->fail("inbound bytes before any arrived");
    }
    if (discard(1) != errc::short_buffer) {
      s_->fail("discard(1) of nothing");
    }
    if (send_to(address::parse("udp://127.0.0.1:9"), std::string_view("x")) !=
        std::errc::operation_not_supported) {
      s_->fail("send_to on a stream");
    }
    using std::chrono::minutes;
    using std::chrono::seconds;
    if (tcp) {
      expect_ok(set_linger(seconds(1)), "set_linger");
      expect_ok(set_nodelay(false), "set_nodelay");
      if (set_keepalive({true, seconds(0), seconds(0), 0}) != std::errc::invalid_argument) {
        s_->fail("keepalive with zero times accepted");
      }
      expect_ok(set_keepalive({false, {}, {}, 0}), "keepalive off");
      expect_ok(set_keepalive({true, minutes(10), minutes(1), 10}), "keepalive on");
      expect_ok(set_linger(std::nullopt), "linger off");
    } else if (!set_keepalive({true, minutes(10), minutes(1), 10})) {
      s_->fail("TCP keep-alive timings accepted on a unix socket");
    }
    const result<unique_fd> dup = owner().dup_listener(0);
    if (!dup || dup->get() <= 2) {
      s_->fail("dup_listener in a handler");
    }
  }

  server_state* s_;
  bool session_ = false;
};

struct matrix_case {
  io_mode mode;
  std::vector<std::string> kinds;  // tcp, udp, unix: one listener each
  bool async;
  bool writev;
  std::size_t loops;
  std::size_t stream_bytes;
};

engine_options options_for(const matrix_case& c, bool multi_address) {
  engine_options o;
  o.loops = c.loops;
  o.edge_triggered =
      c.mode == io_mode::et || c.mode == io_mode::et_chunk || c.mode == io_mode::reuseport_et;
  if (c.mode == io_mode::et_chunk) {
    o.edge_triggered_chunk = c.loops == 1 ? std::size_t{1} << 18 : std::size_t{1} << 19;
  }
  o.reuse_port = c.mode == io_mode::reuseport_lt || c.mode == io_mode::reuseport_et;
  o.socket.keepalive = {true, std::chrono::minutes(1), std::chrono::seconds(10), 10};
  o.socket.tcp_nodelay = multi_address;  // gnet: TCPDelay, TCPNoDelay for multi-address
  if (c.loops > 1) {
    const bool unix_only = c.kinds.size() == 1 && c.kinds[0] == "unix";
    o.balancing = unix_only && !o.reuse_port ? load_balancing::source_addr_hash
                                             : load_balancing::least_connections;
  }
  return o;
}

// One client's exchanges; "" or what went wrong.
std::string stream_client(const address& a, std::size_t bytes, unsigned seed) {
  const int fd = connect_to(a);
  if (fd < 0) {
    return "cannot connect to " + a.to_string();
  }
  std::string error;
  std::mt19937 rng(seed);
  if (recv_exact(fd, greeting.size()) != greeting) {
    error = "no greeting";
  }
  // One large message and one small one, each echoed in full before the next.
  for (const std::size_t size : {bytes, std::size_t{1} + rng() % 4096}) {
    if (!error.empty()) {
      break;
    }
    const std::string data = random_bytes(size, rng);
    if (!send_all(fd, data)) {
      error = "send failed";
    } else if (recv_exact(fd, data.size()) != data) {
      error = "the echo of " + std::to_string(size) + " bytes differs";
    }
  }
  ::close(fd);
  return error;
}

std::string datagram_client(const address& a, unsigned seed) {
  const udp_client client(a, 5000);
  std::mt19937 rng(seed);
  for (int i = 0; i < 20; ++i) {
    const std::string data = random_bytes(1024, rng);
    if (!client.send(data)) {
      return "sendto failed";
    }
    if (client.receive() != data) {
      return "datagram " + std::to_string(i) + " came back different (or not at all)";
    }
  }
  return "";
}

void run_matrix_case(const matrix_case& c, bool multi_address) {
  engine e(options_for(c, multi_address));
  // After the engine: destroyed first, so its worker is joined while the conn_refs it uses
  // still name a live engine.
  server_state state;
  state.async = c.async;
  state.writev = c.writev;
  state.socket_checks = c.loops == 1 && !c.async && !multi_address;
  std::vector<address> addresses;
  std::vector<std::string> paths;
  for (const std::string& kind : c.kinds) {
    if (kind == "unix") {
      paths.push_back(unix_path("matrix"));
      addresses.push_back(e.listen<gnet_conn>("unix://" + paths.back(), &state));
    } else if (kind == "udp") {
      // Async UDP replies go through a session's address; sync ones reply in on_data.
      listen_options lo;
      lo.udp_sessions = c.async;
      addresses.push_back(e.listen<gnet_conn>(lo, "udp://127.0.0.1:0", &state));
    } else {
      addresses.push_back(e.listen<gnet_conn>("tcp://127.0.0.1:0", &state));
    }
  }
  // gnet's shutdown: a 10 ms ticker stops the engine once every client is done, every stream
  // connection has closed and count_connections counts only the sessions still open. (A loop
  // counts a connection until it is destroyed, just after its on_close: the count may lag the
  // closes by a tick, never more.)
  std::atomic<bool> clients_done{false};
  std::atomic<long> count_at_stop{-1};
  std::atomic<long> count_seen{-1};
  std::atomic<int> ticks{0};
  e.on_tick([&](engine& self) {
    ticks++;
    const auto count = static_cast<long>(self.count_connections());
    count_seen = count;
    if (clients_done.load() && state.streams_closed.load() == state.streams_opened.load() &&
        count == state.sessions_open.load()) {
      count_at_stop = count;
      self.stop();
      return std::chrono::nanoseconds(-1);
    }
    return std::chrono::nanoseconds(std::chrono::milliseconds(10));
  });
  std::thread server([&e] { e.run(); });
  std::vector<std::future<std::string>> clients;
  unsigned seed = 1;
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    for (int k = 0; k < 10; ++k) {
      const address a = addresses[i];
      const bool udp = c.kinds[i] == "udp";
      const std::size_t bytes = c.stream_bytes;
      clients.push_back(std::async(std::launch::async, [a, udp, bytes, s = seed++] {
        return udp ? datagram_client(a, s) : stream_client(a, bytes, s);
      }));
    }
  }
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::string error = clients[i].get();
    EXPECT_EQ(error, "") << "client " << i << " of " << addresses[i / 10].to_string();
  }
  clients_done = true;
  const bool stopped = eventually([&] { return count_at_stop.load() >= 0; });
  if (!stopped) {
    ADD_FAILURE() << "the ticker never stopped the engine: " << state.streams_closed.load()
                  << " of " << state.streams_opened.load() << " streams closed; count_connections "
                  << count_seen.load() << " with " << state.sessions_open.load()
                  << " sessions open (it must count the sessions, nothing else)";
    e.stop();
  }
  server.join();
  EXPECT_GT(ticks.load(), 0);
  EXPECT_EQ(state.opened.load(), state.closed.load()) << "on_close once per on_open";
  EXPECT_EQ(e.count_connections(), 0U);
  const std::lock_guard lock(state.mutex);
  EXPECT_TRUE(state.errors.empty()) << state.errors.front();
  for (const std::string& p : paths) {
    EXPECT_NE(::access(p.c_str(), F_OK), 0) << p << " left behind";
  }
}

std::string mode_name(io_mode m) {
  switch (m) {
    case io_mode::lt:
      return "LT";
    case io_mode::et:
      return "ET";
    case io_mode::et_chunk:
      return "ET_chunk";
    case io_mode::reuseport_lt:
      return "reuseport_LT";
    case io_mode::reuseport_et:
      return "reuseport_ET";
  }
  return "?";
}

std::string case_name(const matrix_case& c, bool multi) {
  std::string name = mode_name(c.mode) + "_";
  name += multi ? "multi" : c.kinds.front();
  name += c.async ? "_async" : (multi ? "_sync" : "");
  name += c.writev ? "_writev" : "";
  name += c.loops == 1 ? "_1loop" : "_Nloops";
  return name;
}

void PrintTo(const matrix_case& c, std::ostream* os) {
  *os << case_name(c, c.kinds.size() > 1);
}

class gnet_matrix : public ::testing::TestWithParam<matrix_case> {};

TEST_P(gnet_matrix, ten_clients_exchange_verified_messages) {
  run_matrix_case(GetParam(), false);
}

std::vector<matrix_case> matrix_cases() {
  std::vector<matrix_case> out;
  struct variant {
    const char* kind;
    bool async;
    bool writev;
  };
  const std::array variants{variant{"tcp", false, false}, variant{"tcp", true, false},
                            variant{"tcp", true, true},   variant{"udp", false, false},
                            variant{"udp", true, false},  variant{"unix", false, false},
                            variant{"unix", true, false}, variant{"unix", true, true}};
  for (const io_mode m : {io_mode::lt, io_mode::et, io_mode::et_chunk, io_mode::reuseport_lt,
                          io_mode::reuseport_et}) {
    for (const variant& v : variants) {
      for (const std::size_t loops : {1, 2}) {
        out.push_back({m, {v.kind}, v.async, v.writev, loops, std::size_t{1} << 20});
      }
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(gnet, gnet_matrix, ::testing::ValuesIn(matrix_cases()),
                         [](const auto& p) { return case_name(p.param, false); });

class gnet_multi_address : public ::testing::TestWithParam<matrix_case> {};

TEST_P(gnet_multi_address, every_address_serves_its_ten_clients) {
  run_matrix_case(GetParam(), true);
}

std::vector<matrix_case> multi_address_cases() {
  std::vector<matrix_case> out;
  for (const io_mode m : {io_mode::lt, io_mode::reuseport_lt, io_mode::et, io_mode::reuseport_et}) {
    for (const bool async : {false, true}) {
      for (const bool writev : {false, true}) {
        for (const std::size_t loops : {1, 2}) {
          std::vector<std::string> kinds{"tcp", "tcp", "unix", "unix"};
          if (!writev) {  // as gnet: the writev variants leave udp out
            kinds.insert(kinds.end(), {"udp", "udp"});
          }
          out.push_back({m, kinds, async, writev, loops, std::size_t{256} << 10});
        }
      }
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(gnet, gnet_multi_address, ::testing::ValuesIn(multi_address_cases()),
                         [](const auto& p) { return case_name(p.param, true); });

// -- the named cases --

class echo : public connection {
  void on_data() override { (void)write(next_all()); }
};

TEST(gnet_server, bad_addresses) {
  engine e(test::small_options());
  for (const char* bad : {"tulip://howdy", "howdy", "tcp://", "tcp://localhost:8080/foo", "unix://",
                          ":foo", "tcp://127.0.0.1\n"}) {
    EXPECT_THROW((void)e.listen<echo>(bad), std::invalid_argument) << bad;
  }
}

TEST(gnet_server, tick_25_times_then_shut_down) {
  engine e(test::small_options());
  (void)e.listen<echo>("tcp://127.0.0.1:0");
  int ticks = 0;
  e.on_tick([&](engine& self) {
    if (++ticks == 25) {
      self.stop();
      return std::chrono::nanoseconds(-1);
    }
    return std::chrono::nanoseconds(std::chrono::milliseconds(10));
  });
  e.run();
  EXPECT_EQ(ticks, 25);
}

class count_checking : public connection {
 public:
  explicit count_checking(std::atomic<int>* opened) : opened_(opened) {}
  void on_open() override { (*opened_)++; }

 private:
  std::atomic<int>* opened_;
};

TEST(gnet_server, shutdown_with_a_hundred_clients_closes_every_one) {
  engine_options o = test::small_options(2);
  o.outbound_ring_threshold = 512;
  o.outbound_cap = 512;
  o.read_buffer_size = 1024;
  engine e(o);
  std::atomic<int> opened{0};
  const address bound = e.listen<count_checking>("tcp://127.0.0.1:0", &opened);
  e.on_tick([&](engine& self) {
    if (opened.load() == 100 && self.count_connections() == 100) {
      self.stop();
      return std::chrono::nanoseconds(-1);
    }
    return std::chrono::nanoseconds(std::chrono::milliseconds(10));
  });
  std::thread server([&e] { e.run(); });
  std::vector<int> fds;
  for (int i = 0; i < 100; ++i) {
    fds.push_back(connect_to(bound));
    ASSERT_GE(fds.back(), 0);
  }
  for (const int fd : fds) {
    EXPECT_TRUE(peer_closed(fd));  // each client blocked in read sees the close
    ::close(fd);
  }
  server.join();
  EXPECT_EQ(e.count_connections(), 0U);
}

class close_after_echo : public connection {
  void on_data() override {
    std::string data(inbound_buffered(), '\0');
    (void)read(std::as_writable_bytes(std::span(data)));
    (void)write(data);
    close();
  }
  void on_close(std::error_code /*reason*/) override { shutdown_engine(); }
};

TEST(gnet_server, close_action_flushes_the_echo_first) {
  engine e(test::small_options());
  const address bound = e.listen<close_after_echo>("tcp://127.0.0.1:0");
  std::thread server([&e] { e.run(); });
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "hello, close"));
  EXPECT_EQ(recv_exact(fd, 12), "hello, close");
  EXPECT_TRUE(peer_closed(fd));
  ::close(fd);
  server.join();  // on_close shut the engine down
}

class shutdown_after_echo : public connection {
  void on_data() override {
    (void)write(peek_all());
    (void)discard(inbound_buffered());
    shutdown_engine();
  }
};

TEST(gnet_server, shutdown_action_after_an_echo_over_tcp_and_udp) {
  for (const char* url : {"tcp://127.0.0.1:0", "udp://127.0.0.1:0"}) {
    engine e(test::small_options());
    const address bound = e.listen<shutdown_after_echo>(url);
    std::thread server([&e] { e.run(); });
    if (bound.transport() == transport::udp) {
      const udp_client client(bound);
      ASSERT_TRUE(client.send("bye"));
      EXPECT_EQ(client.receive(), "bye");
    } else {
      const int fd = connect_to(bound);
      ASSERT_GE(fd, 0);
      ASSERT_TRUE(send_all(fd, "bye"));
      EXPECT_EQ(recv_exact(fd, 3), "bye");
      ::close(fd);
    }
    server.join();
  }
}

class close_on_open : public connection {
  void on_open() override { close(); }
  void on_close(std::error_code /*reason*/) override { shutdown_engine(); }
};

TEST(gnet_server, close_action_on_open) {
  engine e(test::small_options());
  const address bound = e.listen<close_on_open>("tcp://127.0.0.1:0");
  std::thread server([&e] { e.run(); });
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(peer_closed(fd));
  ::close(fd);
  server.join();
}

class shutdown_on_open : public connection {
  void on_open() override { shutdown_engine(); }
};

TEST(gnet_server, shutdown_action_on_open_and_dup_during_and_after_shutdown) {
  engine e(test::small_options());
  const address bound = e.listen<shutdown_on_open>("tcp://127.0.0.1:0");
  bool dup_in_shutdown = false;
  e.on_shutdown([&](engine& self) {
    const result<unique_fd> fd = self.dup_listener(0);
    dup_in_shutdown = fd && fd->get() > 2;
  });
  std::thread server([&e] { e.run(); });
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  server.join();
  ::close(fd);
  // gnet's on_shutdown runs while its listeners are still open; actnet's after the loops have
  // stopped and the listeners closed: a dup then reports the closed listener, as after run().
  EXPECT_FALSE(dup_in_shutdown);
  EXPECT_EQ(e.dup_listener(0).error(), std::errc::bad_file_descriptor);
}

TEST(gnet_server, two_engines_share_one_port_and_either_can_stop) {
  engine_options o = test::small_options();
  o.reuse_port = true;  // with reuse_addr, on by default
  std::atomic<int> opened_first{0};
  std::atomic<int> opened_second{0};
  running_engine first(o);
  const address bound = first->listen<count_checking>("tcp://127.0.0.1:0", &opened_first);
  running_engine second(o);
  (void)second->listen<count_checking>(bound.to_string(), &opened_second);
  first.start();
  second.start();
  std::vector<int> fds;
  for (int i = 0; i < 40; ++i) {
    fds.push_back(connect_to(bound));
    ASSERT_GE(fds.back(), 0);
  }
  ASSERT_TRUE(eventually([&] { return opened_first.load() + opened_second.load() == 40; }));
  EXPECT_GT(opened_first.load(), 0) << "the kernel spreads connections over both engines";
  EXPECT_GT(opened_second.load(), 0);
  for (const int fd : fds) {
    ::close(fd);
  }
  first.stop();
  first.stop();  // a second stop is a no-op
  const int before = opened_second.load();
  for (int i = 0; i < 5; ++i) {
    const int fd = connect_to(bound);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  EXPECT_TRUE(eventually([&] { return opened_second.load() == before + 5; }))
      << "the engine left serves the port alone";
}

struct wake_log {
  std::atomic<int> data_calls{0};
  std::atomic<int> closed{0};
  std::promise<conn_ref> ref;
};

class closed_wake_up : public connection {
 public:
  explicit closed_wake_up(wake_log* log) : log_(log) {}
  void on_data() override {
    if (log_->data_calls++ == 0) {
      (void)next_all();
      log_->ref.set_value(ref());
    }
  }
  void on_close(std::error_code /*reason*/) override { log_->closed++; }

 private:
  wake_log* log_;
};

TEST(gnet_server, a_wake_that_arrives_after_the_close_is_dropped) {
  wake_log log;
  running_engine e;
  const address bound = e->listen<closed_wake_up>("tcp://127.0.0.1:0", &log);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "x"));
  const conn_ref r = log.ref.get_future().get();
  std::thread other([r] {
    r.close();
    r.wake();  // after the close: a message to a connection that has gone
  });
  other.join();
  EXPECT_TRUE(peer_closed(fd));
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return e->loop(0).dropped_messages() >= 1; }));
  EXPECT_EQ(log.data_calls.load(), 1);
  EXPECT_EQ(log.closed.load(), 1);
}

class publishing : public connection {
 public:
  explicit publishing(std::promise<conn_ref>* p) : p_(p) {}
  void on_open() override { p_->set_value(ref()); }

 private:
  std::promise<conn_ref>* p_;
};

TEST(gnet_server, async_writes_to_a_disconnected_peer_end_with_connection_closed) {
  for (const bool writev : {false, true}) {
    std::promise<conn_ref> published;
    running_engine e;
    const address bound = e->listen<publishing>("tcp://127.0.0.1:0", &published);
    e.start();
    const int fd = connect_to(bound);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, "hello"));
    ::close(fd);
    const conn_ref r = published.get_future().get();
    std::error_code last;
    for (int i = 0; i < 2000 && last != errc::connection_closed; ++i) {
      auto done = std::make_shared<std::promise<std::error_code>>();
      std::future<std::error_code> f = done->get_future();
      const auto cb = [done](std::error_code ec) { done->set_value(ec); };
      const std::string_view text = "ping";
      if (writev) {
        const auto bytes = std::as_bytes(std::span(text.data(), text.size()));
        const std::array parts{bytes.first(2), bytes.subspan(2)};
        r.async_writev(parts, cb);
      } else {
        r.async_write(text, cb);
      }
      last = f.get();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(last, errc::connection_closed) << (writev ? "writev" : "write");
  }
}

// -- SimServer: framed messages (u16 magic 1314, u32 length, body), batches, wake() --

constexpr std::uint16_t magic = 1314;
constexpr std::size_t frame_header = 6;

std::string frame(const std::string& body) {
  std::string out(frame_header, '\0');
  out[0] = static_cast<char>(magic >> 8);
  out[1] = static_cast<char>(magic & 0xff);
  const auto n = static_cast<std::uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) {
    out[2 + static_cast<std::size_t>(i)] = static_cast<char>(n >> (24 - 8 * i));
  }
  return out + body;
}

struct sim_state {
  std::size_t batch_read;  // frames decoded per on_data (0: all)
  std::atomic<int> errors{0};
  std::atomic<int> wakes{0};
};

class sim_server_conn : public connection {
 public:
  explicit sim_server_conn(sim_state* s) : s_(s) {}
  void on_data() override {
    std::size_t decoded = 0;
    while (s_->batch_read == 0 || decoded < s_->batch_read) {
      const result<byte_views> head = peek(frame_header);
      if (!head) {
        return;  // wait for more
      }
      std::array<std::byte, frame_header> h{};
      std::copy(head->first.begin(), head->first.end(), h.begin());
      std::copy(head->second.begin(), head->second.end(), h.begin() + head->first.size());
      if ((std::to_integer<unsigned>(h[0]) << 8 | std::to_integer<unsigned>(h[1])) != magic) {
        s_->errors++;
        close();
        return;
      }
      std::uint32_t length = 0;
      for (std::size_t i = 2; i < frame_header; ++i) {
        length = length << 8 | std::to_integer<std::uint32_t>(h[i]);
      }
      const result<byte_views> whole = peek(frame_header + length);
      if (!whole) {
        return;
      }
      const std::array parts{whole->first, whole->second};
      if (writev(parts)) {
        s_->errors++;
      }
      (void)discard(frame_header + length);
      ++decoded;
    }
    if (inbound_buffered() > 0) {
      s_->wakes++;
      wake();  // the rest on the next turn
    }
  }

 private:
  sim_state* s_;
};

struct sim_case {
  std::size_t size;
  std::size_t batch_write;
  std::size_t batch_read;  // 0: unlimited
  bool edge;
};

class gnet_sim_server : public ::testing::TestWithParam<sim_case> {};

TEST_P(gnet_sim_server, framed_batches_come_back_whole_and_in_order) {
  const sim_case c = GetParam();
  sim_state state{c.batch_read};
  engine_options o = test::small_options(2);
  o.edge_triggered = c.edge;
  running_engine e(o);
  const address bound = e->listen<sim_server_conn>("tcp://127.0.0.1:0", &state);
  e.start();
  const std::size_t rounds = c.size >= (std::size_t{128} << 10) ? 1 : 3;
  std::vector<std::future<std::string>> clients;
  for (unsigned k = 0; k < 10; ++k) {
    clients.push_back(std::async(std::launch::async, [&, k]() -> std::string {
      const int fd = connect_to(bound);
      if (fd < 0) {
        return "connect failed";
      }
      std::mt19937 rng(k);
      std::string error;
      for (std::size_t r = 0; r < rounds && error.empty(); ++r) {
        std::string batch;
        for (std::size_t i = 0; i < c.batch_write; ++i) {
          batch += frame(random_bytes(c.size, rng));
        }
        if (!send_all(fd, batch)) {  // one write per batch, as gnet's client
          error = "send failed";
        } else if (recv_exact(fd, batch.size()) != batch) {
          error = "replies differ in round " + std::to_string(r);
        }
      }
      ::close(fd);
      return error;
    }));
  }
  for (auto& f : clients) {
    EXPECT_EQ(f.get(), "");
  }
  EXPECT_EQ(state.errors.load(), 0);
  if (c.batch_read != 0 && c.batch_read < c.batch_write) {
    EXPECT_GT(state.wakes.load(), 0) << "a read limit below the batch needs wake()";
  }
}

INSTANTIATE_TEST_SUITE_P(
    gnet, gnet_sim_server,
    ::testing::Values(sim_case{64, 200, 0, true}, sim_case{128, 100, 10, false},
                      sim_case{256, 50, 0, true}, sim_case{512, 30, 3, false},
                      sim_case{1024, 20, 0, true}, sim_case{64 << 10, 10, 1, false},
                      sim_case{128 << 10, 5, 0, true}, sim_case{512 << 10, 3, 1, false},
                      sim_case{1 << 20, 2, 0, true}),
    [](const auto& p) {
      const sim_case& c = p.param;
      return std::to_string(c.size) + "B_x" + std::to_string(c.batch_write) + "_read" +
             (c.batch_read == 0 ? std::string("all") : std::to_string(c.batch_read)) +
             (c.edge ? "_ET" : "_LT");
    });

// -- UDP send_to: the server answers every collected client with send_to --

struct collected_peers {
  std::vector<address> peers;
};

class broadcaster : public connection {
 public:
  explicit broadcaster(collected_peers* c) : c_(c) {}
  void on_data() override {
    (void)next_all();
    c_->peers.push_back(*remote_address());  // only this socket actor's thread touches it
    if (c_->peers.size() == 10) {
      for (const address& peer : c_->peers) {
        (void)send_to(peer, std::string_view("Broadcasting message"));
      }
    }
  }

 private:
  collected_peers* c_;
};

TEST(gnet_server, udp_send_to_reaches_every_collected_client) {
  collected_peers collected;
  running_engine e;  // one loop: one socket actor collects them all
  const address bound = e->listen<broadcaster>("udp://127.0.0.1:0", &collected);
  e.start();
  std::vector<std::unique_ptr<udp_client>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<udp_client>(bound));
    ASSERT_TRUE(clients.back()->send("hello"));
  }
  for (const auto& c : clients) {
    EXPECT_EQ(c->receive(), "Broadcasting message");
  }
}

// -- StreamProxy: each accepted connection is piped to a backend echo server --
// The backend connection is dialed by the proxy engine (the balancer picks its loop), and the
// two actors exchange bytes only by address (async writes and tells).

class proxy_front;

class proxy_back : public connection {
 public:
  explicit proxy_back(conn_ref front) : front_(front) {}
  void on_open() override;  // tells the front its address
  void on_data() override {
    const byte_views all = next_all();
    const std::array parts{all.first, all.second};
    front_.async_writev(parts);
  }
  void on_close(std::error_code /*reason*/) override { front_.close(); }

 private:
  conn_ref front_;
};

class proxy_front : public connection {
 public:
  explicit proxy_front(address backend) : backend_(std::move(backend)) {}
  void on_open() override {
    // gnet's Register with an address: the backend is dialed without blocking, on the loop
    // the balancer picks; a failed dial closes the front.
    owner().dial<proxy_back>(
        backend_.to_string(), {},
        [front = ref()](result<conn_ref> back) {
          if (!back) {
            front.close();
          }
        },
        ref());
  }
  void on_data() override {
    if (!back_.valid()) {
      return;  // stays buffered until the backend is linked (link wakes us)
    }
    const byte_views all = next_all();
    const std::array parts{all.first, all.second};
    back_.async_writev(parts);
  }
  void on_close(std::error_code /*reason*/) override {
    if (back_.valid()) {
      back_.close();
    }
  }
  void link(conn_ref back) {
    back_ = back;
    wake();
  }

 private:
  address backend_;
  conn_ref back_;
};

void proxy_back::on_open() {
  front_.tell<proxy_front>([me = ref()](proxy_front& f) { f.link(me); });
}

struct proxy_case {
  const char* backend;  // tcp or unix
  std::size_t loops;
  bool edge;
};

class gnet_stream_proxy : public ::testing::TestWithParam<proxy_case> {};

TEST_P(gnet_stream_proxy, ten_clients_through_the_proxy_get_their_bytes_back) {
  const proxy_case c = GetParam();
  engine_options o = test::small_options(c.loops);
  o.edge_triggered = c.edge;
  running_engine backend(o);
  const std::string path = unix_path("backend");
  const address backend_at = std::string_view(c.backend) == "unix"
                                 ? backend->listen<echo>("unix://" + path)
                                 : backend->listen<echo>("tcp://127.0.0.1:0");
  backend.start();
  running_engine proxy(o);
  const address front = proxy->listen<proxy_front>("tcp://127.0.0.1:0", backend_at);
  proxy.start();
  std::vector<std::future<std::string>> clients;
  for (unsigned k = 0; k < 10; ++k) {
    clients.push_back(std::async(std::launch::async, [front, k]() -> std::string {
      const int fd = connect_to(front);
      if (fd < 0) {
        return "connect failed";
      }
      std::mt19937 rng(k);
      const std::string data = random_bytes(std::size_t{256} << 10, rng);
      std::string error;
      if (!send_all(fd, data)) {
        error = "send failed";
      } else if (recv_exact(fd, data.size()) != data) {
        error = "bytes through the proxy differ";
      }
      ::close(fd);
      return error;
    }));
  }
  for (auto& f : clients) {
    EXPECT_EQ(f.get(), "");
  }
  // Every client closed: each front closes its back, and both engines drain to zero.
  EXPECT_TRUE(eventually([&] { return proxy->count_connections() == 0; }));
  EXPECT_TRUE(eventually([&] { return backend->count_connections() == 0; }));
}

INSTANTIATE_TEST_SUITE_P(gnet, gnet_stream_proxy,
                         ::testing::Values(proxy_case{"tcp", 1, false}, proxy_case{"tcp", 1, true},
                                           proxy_case{"tcp", 2, false}, proxy_case{"tcp", 2, true},
                                           proxy_case{"unix", 1, false},
                                           proxy_case{"unix", 1, true},
                                           proxy_case{"unix", 2, false},
                                           proxy_case{"unix", 2, true}),
                         [](const auto& p) {
                           return std::string(p.param.backend) + "_" +
                                  std::to_string(p.param.loops) + "loops" +
                                  (p.param.edge ? "_ET" : "_LT");
                         });

}  // namespace
}  // namespace actnet
