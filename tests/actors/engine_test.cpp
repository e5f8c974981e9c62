// engine + connection actors over loopback TCP (and TLS for the lifecycle cases): lifecycle
// counts, echo across every reactor mode, cross-thread async writes, close / wake / FIN
// ordering, stop, bad addresses.
#include "actnet/actors/engine.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/epoll.h>

#include <actnet/error.hpp>
#include <array>
#include <atomic>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/test_util.hpp"
#include "actors/transports.hpp"

namespace actnet {
namespace {

using test::connect_to;
using test::eventually;
using test::running_engine;

class echo_connection : public connection {
  void on_data() override {
    const byte_views data = next_all();
    const std::array parts{data.first, data.second};
    (void)writev(parts);
  }
};

// The engine refuses `o` with std::invalid_argument whose message contains `needle`.
void expect_rejected(const engine_options& o, std::string_view needle) {
  try {
    engine e(o);
    ADD_FAILURE() << "accepted; expected a rejection naming " << needle;
  } catch (const std::invalid_argument& ex) {
    EXPECT_NE(std::string(ex.what()).find(needle), std::string::npos) << ex.what();
  }
}

// -- lifecycle --

struct lifecycle_counts {
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};
  std::mutex mutex;
  std::vector<std::error_code> reasons;
};

class counting_connection : public echo_connection {
 public:
  explicit counting_connection(lifecycle_counts* counts) : counts_(counts) {}
  void on_open() override { counts_->opened++; }
  void on_close(std::error_code reason) override {
    const std::lock_guard lock(counts_->mutex);
    counts_->reasons.push_back(reason);
    counts_->closed++;
  }

 private:
  lifecycle_counts* counts_;
};

// The lifecycle cases, over TCP and TLS from one body (KCP has no end of stream: its own suites
// cover its opening and closing). A TLS client ends with close_notify and then the FIN.
class lifecycle : public ::testing::TestWithParam<test::over> {};

TEST_P(lifecycle, every_client_gets_exactly_one_open_and_one_close) {
  lifecycle_counts counts;
  running_engine e(test::small_options(2));
  const test::target t = test::listen_over<counting_connection>(*e, GetParam(), &counts);
  e.start();
  constexpr int clients = 50;
  std::vector<test::stream_end> ends;
  for (int i = 0; i < clients; ++i) {
    ends.push_back(test::open_end(t));
    ASSERT_TRUE(ends.back().ok());
    ASSERT_TRUE(ends.back().send_all("ping"));
    ASSERT_EQ(ends.back().recv_exact(4), "ping");
  }
  ASSERT_TRUE(eventually([&] { return e->count_connections() == clients; }));
  EXPECT_EQ(counts.opened, clients);
  for (test::stream_end& end : ends) {
    ASSERT_TRUE(end.shut_write());
    end.close();
  }
  ASSERT_TRUE(eventually([&] { return counts.closed == clients; }));
  EXPECT_EQ(e->count_connections(), 0U);
  e.stop();
  EXPECT_EQ(counts.opened, clients);
  EXPECT_EQ(counts.closed, clients);
  for (const std::error_code& r : counts.reasons) {
    EXPECT_EQ(r, make_error_code(errc::end_of_stream)) << r.message();
  }
}

// -- echo over every reactor mode --

struct echo_mode {
  bool edge;
  std::size_t loops;
  bool reuse_port;
};

std::string mode_name(const ::testing::TestParamInfo<echo_mode>& info) {
  return std::string(info.param.edge ? "et" : "lt") + "_" + std::to_string(info.param.loops) +
         "_loops_" + (info.param.reuse_port ? "reuseport" : "main_reactor");
}

class engine_echo : public ::testing::TestWithParam<echo_mode> {};

// Drives `conns` non-blocking clients at once, each sending `bytes` of its own random data in
// chunks while reading the echo, and checks every byte. Returns "" or what went wrong.
std::string drive_echo(const address& a, int conns, std::size_t bytes) {
  struct client {
    int fd = -1;
    std::string data;
    std::size_t sent = 0;
    std::size_t received = 0;
  };
  std::vector<client> clients(static_cast<std::size_t>(conns));
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::mt19937 rng(12345);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    client& c = clients[i];
    c.data.resize(bytes);
    for (char& ch : c.data) {
      ch = static_cast<char>(rng());
    }
    c.fd = connect_to(a);
    if (c.fd < 0) {
      return "connect failed";
    }
    ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  std::size_t done = 0;
  std::string error;
  std::vector<char> buf(1 << 16);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::array<epoll_event, 256> events{};
  while (done < clients.size() && error.empty()) {
    if (std::chrono::steady_clock::now() > deadline) {
      error = "timed out";
      break;
    }
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    for (int k = 0; k < n && error.empty(); ++k) {
      client& c = clients[events[static_cast<std::size_t>(k)].data.u64];
      if (c.sent < bytes) {
        const std::size_t chunk = std::min<std::size_t>(bytes - c.sent, 64 * 1024);
        const ssize_t w = ::send(c.fd, c.data.data() + c.sent, chunk, MSG_NOSIGNAL);
        if (w > 0) {
          c.sent += static_cast<std::size_t>(w);
        }
        if (c.sent == bytes) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = events[static_cast<std::size_t>(k)].data.u64;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      for (;;) {
        const ssize_t r = ::recv(c.fd, buf.data(), buf.size(), 0);
        if (r <= 0) {
          if (r == 0) {
            error = "server closed a connection early";
          }
          break;
        }
        if (c.received + static_cast<std::size_t>(r) > bytes ||
            std::memcmp(buf.data(), c.data.data() + c.received, static_cast<std::size_t>(r)) != 0) {
          error = "echoed bytes differ at offset " + std::to_string(c.received);
          break;
        }
        c.received += static_cast<std::size_t>(r);
        if (c.received == bytes) {
          ++done;
        }
      }
    }
  }
  for (client& c : clients) {
    ::close(c.fd);
  }
  ::close(ep);
  return error;
}

TEST_P(engine_echo, two_hundred_connections_echo_a_mebibyte_each_byte_for_byte) {
  const echo_mode m = GetParam();
  engine_options o;
  o.loops = m.loops;
  o.edge_triggered = m.edge;
  o.reuse_port = m.reuse_port;
  running_engine e(o);
  const address bound = e->listen<echo_connection>("tcp://127.0.0.1:0");
  e.start();
  EXPECT_EQ(drive_echo(bound, 200, std::size_t{1} << 20), "");
  ASSERT_TRUE(eventually([&] { return e->count_connections() == 0; }));
}

INSTANTIATE_TEST_SUITE_P(modes, engine_echo,
                         ::testing::Values(echo_mode{false, 1, false}, echo_mode{true, 1, false},
                                           echo_mode{false, 2, false}, echo_mode{true, 2, false},
                                           echo_mode{false, 1, true}, echo_mode{true, 1, true},
                                           echo_mode{false, 2, true}, echo_mode{true, 2, true}),
                         mode_name);

// -- messages from other threads --

struct published {
  std::mutex mutex;
  std::vector<conn_ref> refs;
  std::atomic<int> closed{0};
};

class publishing_connection : public connection {
 public:
  explicit publishing_connection(published* p) : p_(p) {}
  void on_open() override {
    const std::lock_guard lock(p_->mutex);
    p_->refs.push_back(ref());
  }
  void on_close(std::error_code /*reason*/) override { p_->closed++; }

 private:
  published* p_;
};

// Sends `text` with async_write and waits for its completion's error code.
std::error_code completion_of(const conn_ref& target, std::string_view text) {
  auto result = std::make_shared<std::promise<std::error_code>>();  // outlives a timed-out wait
  std::future<std::error_code> f = result->get_future();
  target.async_write(text, [result](std::error_code ec) { result->set_value(ec); });
  if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    ADD_FAILURE() << "no completion within 20 s";
    return {};
  }
  return f.get();
}

conn_ref first_ref(published& p) {
  EXPECT_TRUE(eventually([&] {
    const std::lock_guard lock(p.mutex);
    return !p.refs.empty();
  }));
  const std::lock_guard lock(p.mutex);
  return p.refs.front();
}

TEST(engine, async_writes_from_four_threads_arrive_complete_and_in_order_per_thread) {
  published p;
  running_engine e(test::small_options(2));
  const address bound = e->listen<publishing_connection>("tcp://127.0.0.1:0", &p);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  const conn_ref target = first_ref(p);
  constexpr int threads = 4;
  constexpr int writes = 10000;
  std::atomic<int> completed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < writes; ++i) {
        char msg[16];
        std::snprintf(msg, sizeof msg, "%d:%06d;", t, i);  // 9 bytes each
        target.async_write(std::string_view(msg, 9), [&](std::error_code ec) {
          if (!ec) {
            completed++;
          }
        });
      }
    });
  }
  const std::string all = test::recv_exact(fd, std::size_t{threads} * writes * 9);
  for (auto& w : writers) {
    w.join();
  }
  ASSERT_EQ(all.size(), std::size_t{threads} * writes * 9);
  std::array<int, threads> next{};
  for (std::size_t pos = 0; pos < all.size(); pos += 9) {
    const int t = all[pos] - '0';
    ASSERT_GE(t, 0);
    ASSERT_LT(t, threads);
    EXPECT_EQ(std::stoi(all.substr(pos + 2, 6)), next[static_cast<std::size_t>(t)]++)
        << "thread " << t << " out of order";
  }
  EXPECT_TRUE(eventually([&] { return completed == threads * writes; }));

  ::close(fd);
  ASSERT_TRUE(eventually([&] { return p.closed == 1; }));
  EXPECT_EQ(completion_of(target, "too late"), make_error_code(errc::connection_closed));
  EXPECT_GE(e->loop(0).dropped_messages() + e->loop(1).dropped_messages(), 1U);
}

// on_data keeps the first bytes unconsumed; a wake() from another thread makes it see them
// again, and then it echoes them.
class lazy_connection : public publishing_connection {
 public:
  using publishing_connection::publishing_connection;
  void on_data() override {
    if (calls_++ == 0) {
      return;  // leave it buffered
    }
    const byte_views data = next_all();
    (void)write(data.to_string());
  }

 private:
  int calls_ = 0;
};

struct event_log {
  std::mutex mutex;
  std::vector<std::string> events;
  void add(std::string e) {
    const std::lock_guard lock(mutex);
    events.push_back(std::move(e));
  }
  std::vector<std::string> get() {
    const std::lock_guard lock(mutex);
    return events;
  }
};

class logging_connection : public connection {
 public:
  explicit logging_connection(event_log* log) : log_(log) {}
  void on_data() override { log_->add("data:" + next_all().to_string()); }
  void on_close(std::error_code reason) override { log_->add("close:" + reason.message()); }

 private:
  event_log* log_;
};

// Writes 8 MiB at open, far more than the socket takes, then closes: all of it must arrive.
class flood_then_close : public connection {
  void on_open() override {
    const std::string big(std::size_t{8} << 20, 'z');
    (void)write(big);
    close();
  }
};

TEST_P(lifecycle, close_from_another_thread_closes_the_connection) {
  published p;
  running_engine e;
  const test::target t = test::listen_over<publishing_connection>(*e, GetParam(), &p);
  e.start();
  test::stream_end end = test::open_end(t);
  ASSERT_TRUE(end.ok());
  first_ref(p).close();
  EXPECT_TRUE(end.peer_closed());
  EXPECT_TRUE(eventually([&] { return p.closed == 1; }));
}

TEST_P(lifecycle, wake_delivers_buffered_data_to_on_data_again) {
  published p;
  running_engine e;
  const test::target t = test::listen_over<lazy_connection>(*e, GetParam(), &p);
  e.start();
  test::stream_end end = test::open_end(t);
  ASSERT_TRUE(end.ok());
  const conn_ref r = first_ref(p);
  ASSERT_TRUE(end.send_all("kept for later"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it arrive (not asserted)
  r.wake();
  EXPECT_EQ(end.recv_exact(14), "kept for later");
}

TEST_P(lifecycle, data_sent_before_the_fin_reaches_on_data_before_on_close) {
  event_log log;
  running_engine e;
  const test::target t = test::listen_over<logging_connection>(*e, GetParam(), &log);
  e.start();
  test::stream_end end = test::open_end(t);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(end.send_all("last words"));
  ASSERT_TRUE(end.shut_write());
  ASSERT_TRUE(eventually([&] {
    const std::vector<std::string> events = log.get();
    return !events.empty() && events.back().rfind("close:", 0) == 0;
  }));
  const std::vector<std::string> events = log.get();
  std::string data;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].rfind("data:", 0), 0U) << events[i];
    data += events[i].substr(5);
  }
  EXPECT_EQ(data, "last words");
  EXPECT_EQ(events.back(), "close:" + make_error_code(errc::end_of_stream).message());
}

TEST_P(lifecycle, output_queued_before_close_is_flushed_before_the_fin) {
  running_engine e;
  const test::target t = test::listen_over<flood_then_close>(*e, GetParam());
  e.start();
  test::stream_end end = test::open_end(t);
  ASSERT_TRUE(end.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the buffer back up
  const std::string got = end.recv_exact((std::size_t{8} << 20) + 1);
  EXPECT_EQ(got.size(), std::size_t{8} << 20);  // everything, then the clean end
  EXPECT_EQ(got.find_first_not_of('z'), std::string::npos);
  EXPECT_TRUE(end.peer_closed());
}

TEST_P(lifecycle, stop_closes_every_connection_once_joins_and_leaks_no_fd) {
  (void)test::shared_tls();  // (its files made before the count)
  const int fds_before = test::open_fds();
  lifecycle_counts counts;
  std::vector<test::stream_end> clients;
  {
    running_engine e(test::small_options(2));
    const test::target t = test::listen_over<counting_connection>(*e, GetParam(), &counts);
    e.start();
    for (int i = 0; i < 100; ++i) {
      clients.push_back(test::open_end(t));
      ASSERT_TRUE(clients.back().ok());
    }
    // Opened, not only counted: a TLS client's handshake ends before the server's (which
    // waits for its Finished), and a connection still shaking hands at stop never opens.
    ASSERT_TRUE(eventually([&] { return counts.opened == 100; }));
    ASSERT_EQ(e->count_connections(), 100U);
    e.stop();
    EXPECT_EQ(e->count_connections(), 0U);
  }
  EXPECT_EQ(counts.opened, 100);
  EXPECT_EQ(counts.closed, 100);
  for (const std::error_code& r : counts.reasons) {
    EXPECT_EQ(r, make_error_code(errc::engine_stopped));
  }
  for (test::stream_end& end : clients) {
    EXPECT_TRUE(end.peer_closed());
  }
  clients.clear();
  EXPECT_EQ(test::open_fds(), fds_before);
}

INSTANTIATE_TEST_SUITE_P(engine, lifecycle, ::testing::Values(test::over::tcp, test::over::tls),
                         [](const auto& p) { return std::string(test::name_of(p.param)); });

TEST(engine, stop_before_run_makes_run_return_at_once) {
  engine e(test::small_options());
  (void)e.listen<echo_connection>("tcp://127.0.0.1:0");
  e.stop();
  e.run();
  EXPECT_EQ(e.count_connections(), 0U);
}

TEST(engine, a_handler_can_shut_the_engine_down) {
  class stopper : public connection {
    void on_data() override { shutdown_engine(); }
  };
  engine e(test::small_options(2));
  const address bound = e.listen<stopper>("tcp://127.0.0.1:0");
  std::thread client([bound] {
    const int fd = connect_to(bound);
    (void)test::send_all(fd, "stop");
    (void)test::peer_closed(fd);
    ::close(fd);
  });
  e.run();  // returns because of the handler
  client.join();
}

TEST(engine, hooks_and_the_ticker_run_on_the_engine) {
  engine e(test::small_options(2));
  (void)e.listen<echo_connection>("tcp://127.0.0.1:0");
  std::vector<std::string> order;
  int ticks = 0;
  e.on_boot([&](engine&) { order.emplace_back("boot"); });
  e.on_shutdown([&](engine&) { order.emplace_back("shutdown"); });
  e.on_tick([&](engine& self) {
    if (++ticks == 5) {
      self.stop();
      return std::chrono::nanoseconds(-1);
    }
    return std::chrono::nanoseconds(std::chrono::milliseconds(1));
  });
  e.run();
  EXPECT_EQ(ticks, 5);
  EXPECT_EQ(order, (std::vector<std::string>{"boot", "shutdown"}));
}

// -- configuration errors --

TEST(engine, a_bad_address_is_rejected_at_listen_naming_it) {
  engine e(test::small_options());
  for (const char* bad : {"tulip://x", "tcp://", "tcp://localhost:8080/foo", ":foo"}) {
    try {
      (void)e.listen<echo_connection>(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::invalid_argument& ex) {
      EXPECT_NE(std::string(ex.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << ex.what();
    }
  }
}

TEST(engine, a_bad_option_is_rejected_naming_it_and_its_value) {
  engine_options o;
  o.read_buffer_size = 10;
  expect_rejected(o, "read_buffer_size = 10");
}

TEST(engine, busy_poll_is_rejected_below_zero_and_past_a_second) {
  engine_options o;
  o.busy_poll = std::chrono::microseconds(-1);
  expect_rejected(o, "busy_poll (us) = -1");
  o.busy_poll = std::chrono::seconds(2);
  expect_rejected(o, "busy_poll (us) = 2000000");
}

TEST(engine, mail_linger_is_rejected_below_zero_and_past_a_millisecond) {
  engine_options o;
  o.mail_linger = std::chrono::microseconds(-1);
  expect_rejected(o, "mail_linger (us) = -1");
  o.mail_linger = std::chrono::microseconds(1001);
  expect_rejected(o, "mail_linger (us) = 1001");
}

// -- busy polling --

engine_options polling(std::chrono::microseconds spin) {
  engine_options o = test::small_options();
  o.busy_poll = spin;
  return o;
}

// Posts a closure to loop 0 and waits until it has run.
void ping(engine& e) {
  std::promise<void> ran;
  ASSERT_FALSE(e.loop(0).post([&ran](event_loop&) { ran.set_value(); }));
  ASSERT_EQ(ran.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
}

TEST(engine, a_busy_polling_loop_takes_mail_without_being_woken) {
  running_engine e(polling(std::chrono::seconds(1)));
  e.start();
  ping(*e);  // may wake the loop, which then polls for a second after each message
  const std::uint64_t before = e->loop(0).wakeups();
  // A ping that comes more than a second after the one before may find the loop asleep: only
  // a test thread starved that long by a loaded machine sends one.
  int late = 0;
  auto last = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    const auto now = std::chrono::steady_clock::now();
    late += now - last > std::chrono::milliseconds(900) ? 1 : 0;
    ping(*e);
    last = std::chrono::steady_clock::now();
  }
  EXPECT_LE(e->loop(0).wakeups() - before, static_cast<std::uint64_t>(late));
  RecordProperty("late_pings", late);
}

// Posts a closure to loop 0, waits until it has run, and returns when it ran.
std::chrono::steady_clock::time_point ping_at(engine& e) {
  std::promise<std::chrono::steady_clock::time_point> ran;
  EXPECT_FALSE(
      e.loop(0).post([&ran](event_loop&) { ran.set_value(std::chrono::steady_clock::now()); }));
  auto when = ran.get_future();
  EXPECT_EQ(when.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  return when.get();
}

// A thread's pings, each after the answer to the one before: with mail_linger longer than the
// time from one ping's handler to the next ping, the loop is still watching its mailbox when
// that comes, so it is not woken (a ping sent later than that, the test thread being slow to
// wake on a loaded machine, may wake it: counted).
TEST(engine, a_lingering_loop_takes_the_next_message_without_being_woken) {
  engine_options o = test::small_options();
  o.mail_linger = std::chrono::milliseconds(1);
  running_engine e(o);
  e.start();
  auto ran = ping_at(*e);
  const std::uint64_t before = e->loop(0).wakeups();
  int late = 0;
  for (int i = 0; i < 200; ++i) {
    late += std::chrono::steady_clock::now() - ran > std::chrono::microseconds(900) ? 1 : 0;
    ran = ping_at(*e);
  }
  EXPECT_LE(e->loop(0).wakeups() - before, static_cast<std::uint64_t>(late));
  RecordProperty("late_pings", late);
  // And it sleeps once the mail stops: a ping after a pause longer than the linger wakes it.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::uint64_t idle = e->loop(0).wakeups();
  ping(*e);
  EXPECT_EQ(e->loop(0).wakeups() - idle, 1U);
}

// Two loops pinned to one CPU: a lingering loop would spin on the core the other waits for, so
// neither lingers. Pings 200 us apart, well inside the 1 ms linger: a lingering loop would take
// each without a wake-up; these loops have gone to sleep by then, and each ping wakes them (most
// of them: on a slow machine the loop may not have got to its sleep yet).
TEST(engine, loops_that_outnumber_their_cpus_do_not_linger) {
  engine_options o = test::small_options(2);
  o.mail_linger = std::chrono::milliseconds(1);
  o.cpu_affinity = {0};
  running_engine e(o);
  e.start();
  (void)ping_at(*e);
  const std::uint64_t before = e->loop(0).wakeups();
  constexpr int pings = 50;
  for (int i = 0; i < pings; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    (void)ping_at(*e);
  }
  EXPECT_GE(e->loop(0).wakeups() - before, static_cast<std::uint64_t>(pings / 2));
}

TEST(engine, a_busy_polling_loop_runs_a_timer_due_before_its_polling_ends) {
  running_engine e(polling(std::chrono::seconds(1)));
  e.start();
  std::promise<std::chrono::steady_clock::duration> fired;
  ASSERT_FALSE(e->loop(0).post([&fired](event_loop& l) {
    const auto start = std::chrono::steady_clock::now();  // on the loop: its own delay only
    l.after(std::chrono::milliseconds(20),
            [&fired, start] { fired.set_value(std::chrono::steady_clock::now() - start); });
  }));
  auto when = fired.get_future();
  ASSERT_EQ(when.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  // Not a timing test: the bound only tells "at its deadline" from "after a second of polling".
  EXPECT_LT(when.get(), std::chrono::milliseconds(900));
}

TEST(engine, a_busy_polling_loop_serves_connections_and_stops) {
  running_engine e(polling(std::chrono::microseconds(50)));
  const address bound = e->listen<echo_connection>("tcp://127.0.0.1:0");
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 100; ++i) {
    const std::string message = "message " + std::to_string(i);
    ASSERT_TRUE(test::send_all(fd, message));
    ASSERT_EQ(test::recv_exact(fd, message.size()), message);
  }
  ::close(fd);
  e.stop();
  EXPECT_EQ(e->count_connections(), 0U);
}

// -- memory after a burst of connections --

// What loop 0 reports on its own thread.
std::size_t slot_table_size(engine& e) {
  std::promise<std::size_t> size;
  e.loop(0).post([&size](event_loop& l) { size.set_value(l.slot_table_size()); });
  return size.get_future().get();
}

// One loop of publishing connections whose loop releases memory `delay` after going idle.
struct idle_release_server {
  static engine_options options(std::chrono::milliseconds delay) {
    engine_options o = test::small_options(1);
    o.idle_release = delay;
    return o;
  }
  explicit idle_release_server(std::chrono::milliseconds delay) : e(options(delay)) {
    bound = e->listen<publishing_connection>("tcp://127.0.0.1:0", &p);
    e.start();
  }
  published p;
  running_engine e;
  address bound;
};

TEST(engine, an_idle_loop_gives_its_slot_table_back_and_refs_stay_unique) {
  idle_release_server server(std::chrono::milliseconds(20));
  published& p = server.p;
  running_engine& e = server.e;
  const address& bound = server.bound;
  std::vector<int> fds;
  for (int i = 0; i < 50; ++i) {
    fds.push_back(connect_to(bound));
    ASSERT_GE(fds.back(), 0);
  }
  ASSERT_TRUE(eventually([&] { return e->count_connections() == 50; }));
  EXPECT_EQ(slot_table_size(*e), 50U);
  const conn_ref old = first_ref(p);
  for (const int fd : fds) {
    ::close(fd);
  }
  ASSERT_TRUE(eventually([&] { return p.closed == 50; }));
  EXPECT_TRUE(eventually([&] { return slot_table_size(*e) == 0; }));

  // The first new connection takes slot 0 again, where `old` pointed: the ref must not reach it.
  const int fd = connect_to(bound);
  ASSERT_TRUE(eventually([&] { return e->count_connections() == 1; }));
  EXPECT_EQ(completion_of(old, "stale"), make_error_code(errc::connection_closed));
  const conn_ref fresh = [&] {
    const std::lock_guard lock(p.mutex);
    return p.refs.back();
  }();
  fresh.async_write("fresh");
  EXPECT_EQ(test::recv_exact(fd, 5), "fresh");
  ::close(fd);
}

TEST(engine, idle_release_zero_keeps_the_slot_table) {
  idle_release_server server(std::chrono::milliseconds(0));
  ::close(connect_to(server.bound));
  ASSERT_TRUE(eventually([&] { return server.p.closed == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(slot_table_size(*server.e), 1U);
}

// -- load balancing (main-reactor mode) --

// Opens `n` connections and waits until the engine holds them.
std::vector<int> open_connections(running_engine& e, const address& bound, int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    fds.push_back(connect_to(bound));
    EXPECT_GE(fds.back(), 0);
  }
  EXPECT_TRUE(eventually([&] { return e->count_connections() == static_cast<std::size_t>(n); }));
  return fds;
}

engine_options balanced(std::size_t loops, load_balancing lb) {
  engine_options o = test::small_options(loops);
  o.balancing = lb;
  return o;
}

TEST(engine, least_connections_spreads_and_its_counts_fall_to_zero_when_connections_close) {
  running_engine e(balanced(2, load_balancing::least_connections));
  const address bound = e->listen<echo_connection>("tcp://127.0.0.1:0");
  e.start();
  EXPECT_EQ(e->load_balancer().name(), "least_connections");
  const std::vector<int> fds = open_connections(e, bound, 10);
  EXPECT_EQ(e->load_balancer().connections(0), 5U);
  EXPECT_EQ(e->load_balancer().connections(1), 5U);
  EXPECT_EQ(e->loop(0).connection_count(), 5U);
  EXPECT_EQ(e->loop(1).connection_count(), 5U);
  for (const int fd : fds) {
    ::close(fd);
  }
  EXPECT_TRUE(eventually([&] {
    return e->load_balancer().connections(0) == 0 && e->load_balancer().connections(1) == 0;
  }));
}

TEST(engine, source_addr_hash_puts_one_clients_connections_on_one_loop) {
  running_engine e(balanced(2, load_balancing::source_addr_hash));
  const address bound = e->listen<echo_connection>("tcp://127.0.0.1:0");
  e.start();
  const std::vector<int> fds = open_connections(e, bound, 10);
  const std::size_t target =
      source_addr_hash::hash(bound.data(), bound.size()) % 2;  // the client is 127.0.0.1 too
  EXPECT_EQ(e->loop(target).connection_count(), 10U);
  EXPECT_EQ(e->loop(1 - target).connection_count(), 0U);
  ASSERT_TRUE(test::send_all(fds[0], "still echoes"));
  EXPECT_EQ(test::recv_exact(fds[0], 12), "still echoes");
  for (const int fd : fds) {
    ::close(fd);
  }
}

class last_loop final : public balancer {
 public:
  using balancer::balancer;
  [[nodiscard]] std::string_view name() const noexcept override { return "last_loop"; }

 private:
  std::size_t pick(const sockaddr* /*peer*/, socklen_t /*length*/) noexcept override {
    return targets() - 1;
  }
};

TEST(engine, a_custom_balancer_chooses_the_loop) {
  engine_options o = test::small_options(3);
  o.custom_balancer = [](std::size_t loops) { return std::make_unique<last_loop>(loops); };
  running_engine e(o);
  const address bound = e->listen<echo_connection>("tcp://127.0.0.1:0");
  e.start();
  const std::vector<int> fds = open_connections(e, bound, 4);
  EXPECT_EQ(e->loop(2).connection_count(), 4U);
  for (const int fd : fds) {
    ::close(fd);
  }
}

TEST(engine, a_bad_balancer_option_is_rejected_naming_it) {
  engine_options o = test::small_options(2);
  o.custom_balancer = [](std::size_t) { return std::make_unique<last_loop>(5); };
  expect_rejected(o, "custom_balancer");
  engine_options bad = test::small_options(2);
  bad.balancing = static_cast<load_balancing>(42);
  expect_rejected(bad, "balancing = 42");
}

// -- outside connections and listener handover --

TEST(engine, an_enrolled_socket_becomes_a_connection_on_the_balancers_loop) {
  running_engine e(balanced(2, load_balancing::least_connections));
  (void)e->listen<echo_connection>("tcp://127.0.0.1:0");
  e.start();
  int pair[2] = {-1, -1};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  ASSERT_FALSE(e->enroll<echo_connection>(pair[0]));
  ASSERT_TRUE(test::send_all(pair[1], "from outside"));
  EXPECT_EQ(test::recv_exact(pair[1], 12), "from outside");
  EXPECT_EQ(e->count_connections(), 1U);
  EXPECT_EQ(e->load_balancer().connections(0) + e->load_balancer().connections(1), 1U);
  ::close(pair[1]);
  EXPECT_TRUE(eventually([&] {
    return e->count_connections() == 0 && e->load_balancer().connections(0) == 0 &&
           e->load_balancer().connections(1) == 0;
  }));
}

TEST(engine, a_socket_enrolled_into_an_engine_that_never_runs_is_closed_with_it) {
  int pair[2] = {-1, -1};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  {
    engine e(balanced(2, load_balancing::least_connections));
    ASSERT_FALSE(e.enroll<echo_connection>(pair[0]));
    EXPECT_EQ(e.load_balancer().connections(0) + e.load_balancer().connections(1), 1U);
  }  // the pending adoption (fd and balancer lease) is dropped with the engine
  EXPECT_TRUE(test::peer_closed(pair[1]));
  ::close(pair[1]);
}

TEST(engine, enroll_refuses_what_is_not_a_connected_stream_socket_and_closes_it) {
  running_engine e;
  e.start();
  int pipe_fds[2] = {-1, -1};
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ::close(pipe_fds[1]);
  EXPECT_EQ(e->enroll<echo_connection>(pipe_fds[0]), std::errc::not_a_socket);
  EXPECT_EQ(::fcntl(pipe_fds[0], F_GETFD), -1);  // closed
  const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(e->enroll<echo_connection>(udp), std::errc::wrong_protocol_type);
  const int unconnected = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(e->enroll<echo_connection>(unconnected), std::errc::not_connected);
  EXPECT_EQ(e->count_connections(), 0U);
}

TEST(engine, a_duplicated_listener_keeps_the_port_after_the_engine_is_gone) {
  address bound;
  unique_fd copy;
  {
    engine e(test::small_options());
    bound = e.listen<echo_connection>("tcp://127.0.0.1:0");
    EXPECT_EQ(e.dup_listener(1).error(), std::errc::invalid_argument);
    result<unique_fd> dup = e.dup_listener(0);
    ASSERT_TRUE(dup) << dup.error().message();
    copy = std::move(*dup);
  }
  int listening = 0;
  socklen_t size = sizeof listening;
  ASSERT_EQ(::getsockopt(copy.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &size), 0);
  EXPECT_EQ(listening, 1);
  const int client = connect_to(bound);  // the port is still served, by the copy
  ASSERT_GE(client, 0);
  const int accepted = ::accept4(copy.get(), nullptr, nullptr, SOCK_CLOEXEC);
  EXPECT_GE(accepted, 0);
  ::close(accepted);
  ::close(client);
}

// -- options --

// The CPUs the calling thread may run on.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) {
      cpus.push_back(c);
    }
  }
  return cpus;
}

TEST(engine, cpu_affinity_pins_every_loop_thread) {
  const int last = allowed_cpus().back();
  engine_options o = test::small_options(2);
  o.cpu_affinity = {last};
  running_engine e(o);
  e.start();
  for (std::size_t i = 0; i < 2; ++i) {
    std::promise<std::vector<int>> cpus;
    e->loop(i).post([&cpus](event_loop&) { cpus.set_value(allowed_cpus()); });
    EXPECT_EQ(cpus.get_future().get(), std::vector<int>{last}) << "loop " << i;
  }
  engine_options bad = test::small_options(1);
  bad.cpu_affinity = {100000};
  expect_rejected(bad, "cpu_affinity = 100000");
}

// A loop's back end is torn down on the thread that ran it. An io_uring ring's teardown leaves
// kernel work for the thread that made it, which interrupted that thread's next blocking call
// with EINTR (20 runs of 20 when loop 0 ran on the caller's thread): run() must hand the
// caller back a thread whose blocking calls wait.
TEST(engine, the_thread_that_called_run_blocks_normally_afterwards) {
  for (int round = 0; round < 3; ++round) {
    {
      engine e(test::small_options());
      (void)e.listen<echo_connection>("tcp://127.0.0.1:0");
      int ticks = 0;
      e.on_tick([&ticks](engine& self) {
        if (++ticks == 5) {
          self.stop();
          return std::chrono::nanoseconds(-1);
        }
        return std::chrono::nanoseconds(std::chrono::milliseconds(2));
      });
      e.run();
    }
    std::array<int, 2> pair{};
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair.data()), 0);
    const timeval wait{0, 200'000};
    ::setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char byte = 0;
    const ssize_t got = ::recv(pair[0], &byte, 1, 0);
    const int error = errno;
    ::close(pair[0]);
    ::close(pair[1]);
    EXPECT_EQ(got, -1);
    EXPECT_TRUE(error == EAGAIN || error == EWOULDBLOCK)
        << "round " << round << ": " << std::strerror(error);
  }
}

TEST(engine, listening_on_a_port_in_use_names_the_address) {
  engine first(test::small_options());
  const address bound = first.listen<echo_connection>("tcp://127.0.0.1:0");
  engine_options o = test::small_options();
  o.socket.reuse_addr = false;
  engine second(o);
  try {
    (void)second.listen<echo_connection>(bound.to_string());
    ADD_FAILURE() << "bound twice";
  } catch (const std::system_error& ex) {
    EXPECT_NE(std::string(ex.what()).find(bound.to_string()), std::string::npos) << ex.what();
  }
}

}  // namespace
}  // namespace actnet
