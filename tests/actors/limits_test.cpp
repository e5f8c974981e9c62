// Backpressure and limits on a live engine: outbound watermarks and on_writable_changed, pausing
// and resuming reads (the default backpressure of an echo whose peer does not read), the
// connection limit, idle / read / write timeouts, close()'s drain timeout, and stop() delivering
// what was queued before it. The cases about a connection's bytes run over TCP and TLS.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "actors/test_util.hpp"
#include "actors/transports.hpp"

namespace actnet {
namespace {

using namespace std::chrono_literals;
using test::connect_to;
using test::eventually;
using test::over;
using test::pattern_bytes;
using test::raise_to;
using test::read_to_end;
using test::running_engine;
using test::stream_end;
using test::target;

// Over TCP and TLS.
class over_transport : public ::testing::TestWithParam<over> {};

// What the server side saw, read by the test thread.
struct probe {
  std::mutex mutex;
  std::vector<bool> writable_events;  // on_writable_changed's arguments, in order
  std::vector<std::error_code> closes;
  std::atomic<std::size_t> outbound_at_false{0};  // outbound_buffered() when it went false
  std::atomic<std::size_t> largest_outbound{0};
  std::atomic<std::size_t> received{0};
  std::atomic<bool> paused{false};
  conn_ref last;  // the latest connection opened (under mutex)

  void set_last(conn_ref r) {
    const std::lock_guard lock(mutex);
    last = r;
  }
  conn_ref last_ref() {
    const std::lock_guard lock(mutex);
    return last;
  }

  void note_writable(bool w, std::size_t outbound) {
    const std::lock_guard lock(mutex);
    writable_events.push_back(w);
    if (!w) {
      outbound_at_false = outbound;
    }
  }
  void note_close(std::error_code reason) {
    const std::lock_guard lock(mutex);
    closes.push_back(reason);
  }
  std::vector<bool> events() {
    const std::lock_guard lock(mutex);
    return writable_events;
  }
  std::vector<std::error_code> closed() {
    const std::lock_guard lock(mutex);
    return closes;
  }
  std::size_t close_count() { return closed().size(); }
};

engine_options limit_options() {
  engine_options o = test::small_options();
  o.outbound_high_watermark = 256 * 1024;
  o.outbound_low_watermark = 64 * 1024;
  o.socket.send_buffer = 16 * 1024;  // so the kernel takes little and the buffer fills
  return o;
}

// Writes 64 KiB pieces on open until it is no longer writable, 8 MiB at most; when writable
// again, writes "END" and closes.
class pusher : public connection {
 public:
  explicit pusher(probe* p) : p_(p) {}
  void on_open() override {
    for (int i = 0; i < 128 && writable(); ++i) {
      (void)write(pattern_bytes(sent_, piece));
      sent_ += piece;
    }
  }
  void on_writable_changed(bool writable) override {
    p_->note_writable(writable, outbound_buffered());
    if (writable) {
      (void)write(std::string_view("END"));
      close();
    }
  }
  void on_close(std::error_code reason) override { p_->note_close(reason); }

  static constexpr std::size_t piece = 64 * 1024;

 private:
  probe* p_;
  std::size_t sent_ = 0;
};

TEST_P(over_transport, the_high_watermark_says_not_writable_and_the_low_one_writable_again) {
  probe p;
  const engine_options opts = limit_options();
  running_engine e(opts);
  const target bound = test::listen_over<pusher>(*e, GetParam(), &p);
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(eventually([&] { return !p.events().empty(); }));
  EXPECT_GE(p.outbound_at_false.load(), opts.outbound_high_watermark);
  const std::string got = test::read_to_end(end);  // draining it brings the low watermark
  end.close();
  ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
  EXPECT_EQ(p.events(), (std::vector<bool>{false, true}));
  ASSERT_GE(got.size(), 3U);
  const std::size_t body = got.size() - 3;
  EXPECT_EQ(body % pusher::piece, 0U);
  EXPECT_EQ(got.substr(0, body), pattern_bytes(0, body)) << "every byte, in order";
  EXPECT_EQ(got.substr(body), "END");
  EXPECT_EQ(p.closed().front(), std::error_code{});
}

// Echoes everything, with the default on_writable_changed (reading pauses while not writable).
class echo : public connection {
 public:
  explicit echo(probe* p) : p_(p) {}
  void on_open() override { p_->set_last(ref()); }
  void on_data() override {
    const byte_views all = next_all();
    p_->received += all.size();
    (void)write(all);
    raise_to(p_->largest_outbound, outbound_buffered());
  }
  void on_writable_changed(bool writable) override {
    connection::on_writable_changed(writable);
    p_->paused = reading_paused();
    p_->note_writable(writable, outbound_buffered());
  }
  void on_close(std::error_code reason) override { p_->note_close(reason); }

 private:
  probe* p_;
};

TEST(limits, an_echo_whose_peer_does_not_read_stops_reading_and_loses_no_byte) {
  probe p;
  engine_options opts = limit_options();
  opts.outbound_cap = 4 << 20;  // the backlog must stay far below it
  running_engine e(opts);
  const address bound = e->listen<echo>("tcp://127.0.0.1:0", &p);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  const int small = 16 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  // Send without reading until the server has paused and the kernel's buffers are full.
  std::size_t sent = 0;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  int blocked_in_a_row = 0;
  // (Until the server has paused too: a loop starved of CPU can be slow to take what the
  // kernel holds for it, and the client's sends block before the server's backlog has grown.)
  while ((blocked_in_a_row < 50 || !p.paused.load()) &&
         std::chrono::steady_clock::now() < give_up) {
    const std::string chunk = pattern_bytes(sent, 16 * 1024);
    const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      blocked_in_a_row = 0;
    } else {
      ASSERT_EQ(errno, EAGAIN);
      ++blocked_in_a_row;
      std::this_thread::sleep_for(2ms);
    }
  }
  ASSERT_EQ(blocked_in_a_row, 50) << "the client's sends were never pushed back";
  EXPECT_TRUE(p.paused.load());
  EXPECT_EQ(p.events(), std::vector<bool>{false});
  EXPECT_LT(p.largest_outbound.load(), opts.outbound_high_watermark + opts.read_buffer_size)
      << "the backlog stops growing at the high watermark";
  EXPECT_EQ(p.close_count(), 0U) << "not closed: paused";

  // Now read everything back: reading resumes, and every byte sent comes back in order.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const std::string back = test::recv_exact(fd, sent);
  EXPECT_EQ(back.size(), sent);
  EXPECT_TRUE(back == pattern_bytes(0, sent)) << "a byte was lost or reordered";
  EXPECT_EQ(p.received.load(), sent);
  // Reading the backlog may fill the outbound buffer again: pause and resume alternate,
  // ending writable and reading.
  ASSERT_TRUE(eventually([&] { return !p.paused.load(); }));
  const std::vector<bool> events = p.events();
  ASSERT_EQ(events.size() % 2, 0U);
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i], i % 2 == 1) << "event " << i;
  }
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
}

// Pauses its reads on open; on_data counts what arrives.
class paused_reader : public connection {
 public:
  explicit paused_reader(probe* p) : p_(p) {}
  void on_open() override {
    pause_reading();
    p_->paused = reading_paused();
    p_->set_last(ref());
  }
  void on_data() override {
    p_->received += inbound_buffered();
    (void)write(next_all());
  }
  void on_close(std::error_code reason) override { p_->note_close(reason); }

 private:
  probe* p_;
};

// Edge-triggered or not, over TCP and TLS.
class pause_modes : public ::testing::TestWithParam<std::tuple<bool, over>> {
 protected:
  static engine_options options() {
    engine_options o = test::small_options();
    o.edge_triggered = std::get<0>(GetParam());
    return o;
  }
};

TEST_P(pause_modes, a_paused_connection_reads_nothing_until_resumed_then_everything) {
  probe p;
  running_engine e(options());
  const target bound = test::listen_over<paused_reader>(*e, std::get<1>(GetParam()), &p);
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(eventually([&] { return p.paused.load(); }));
  ASSERT_TRUE(end.send_all("hello, paused"));
  // Nothing may arrive while paused. (A wait, not a timing assertion: a read would show here.)
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(p.received.load(), 0U);
  p.last_ref().tell<paused_reader>([](paused_reader& c) { c.resume_reading(); });
  EXPECT_EQ(end.recv_exact(13), "hello, paused");
  ASSERT_TRUE(end.send_all("more"));
  EXPECT_EQ(end.recv_exact(4), "more");
  ASSERT_TRUE(end.shut_write());  // (TLS: a close_notify, then the FIN)
  ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
  EXPECT_EQ(p.closed().front(), errc::end_of_stream);
}

TEST_P(pause_modes, a_reset_closes_a_paused_connection_once) {
  probe p;
  running_engine e(options());
  const target bound = test::listen_over<paused_reader>(*e, std::get<1>(GetParam()), &p);
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(eventually([&] { return p.paused.load(); }));
  ASSERT_TRUE(end.send_all("unread"));  // unread data makes the close a reset anyway
  end.reset_on_close();
  end.close();
  ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
  EXPECT_EQ(p.closed().front(), std::errc::connection_reset);
  EXPECT_EQ(p.received.load(), 0U);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(p.close_count(), 1U);
}

INSTANTIATE_TEST_SUITE_P(level_and_edge, pause_modes,
                         ::testing::Combine(::testing::Bool(),
                                            ::testing::Values(over::tcp, over::tls)),
                         [](const auto& param) {
                           return std::string(std::get<0>(param.param) ? "edge" : "level") +
                                  (std::get<1>(param.param) == over::tls ? "_tls" : "");
                         });

TEST(limits, max_connections_refuses_the_one_too_many_and_admits_again_after_a_close) {
  probe p;
  engine_options opts = test::small_options(2);
  opts.max_connections = 3;
  running_engine e(opts);
  const address bound = e->listen<echo>("tcp://127.0.0.1:0", &p);
  e.start();
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    fds.push_back(connect_to(bound));
    ASSERT_GE(fds.back(), 0);
    ASSERT_TRUE(test::send_all(fds.back(), "ping"));
    ASSERT_EQ(test::recv_exact(fds.back(), 4), "ping") << "connection " << i << " served";
  }
  const int extra = connect_to(bound);  // the kernel completes it; the engine closes it
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(test::peer_closed(extra));
  ::close(extra);
  EXPECT_EQ(e->refused_connections(), 1U);
  EXPECT_EQ(e->count_connections(), 3U);
  for (const int fd : fds) {  // the three are still served
    ASSERT_TRUE(test::send_all(fd, "again"));
    EXPECT_EQ(test::recv_exact(fd, 5), "again");
  }
  ::close(fds.back());
  fds.pop_back();
  ASSERT_TRUE(eventually([&] { return e->count_connections() == 2; }));
  const int next = connect_to(bound);
  ASSERT_GE(next, 0);
  ASSERT_TRUE(test::send_all(next, "welcome"));
  EXPECT_EQ(test::recv_exact(next, 7), "welcome") << "a place freed by a close is taken again";
  ::close(next);
  for (const int fd : fds) {
    ::close(fd);
  }
  ASSERT_TRUE(eventually([&] { return p.close_count() == 4; }));
  EXPECT_EQ(e->refused_connections(), 1U);
}

// Records how it closed; `keep_reading` reads and echoes, `ticking` writes a byte every 20 ms.
class timed : public connection {
 public:
  timed(probe* p, bool ticking) : p_(p), ticking_(ticking) {}
  void on_open() override {
    p_->set_last(ref());
    if (ticking_) {
      tick();
    }
  }
  void on_data() override { (void)write(next_all()); }
  void on_close(std::error_code reason) override { p_->note_close(reason); }

 private:
  void tick() {
    (void)write(std::string_view("."));
    (void)after(20ms, [](connection& c) { static_cast<timed&>(c).tick(); });
  }
  probe* p_;
  bool ticking_;
};

TEST(limits, an_idle_connection_is_closed_and_a_busy_one_is_not) {
  probe idle_probe;
  probe busy_probe;
  engine_options opts = test::small_options();
  opts.connection_timeouts.idle = 600ms;
  running_engine e(opts);
  const address idle_at = e->listen<timed>("tcp://127.0.0.1:0", &idle_probe, false);
  const address busy_at = e->listen<timed>("tcp://127.0.0.1:0", &busy_probe, false);
  e.start();
  const int idle = connect_to(idle_at);
  const int busy = connect_to(busy_at);
  ASSERT_GE(idle, 0);
  ASSERT_GE(busy, 0);
  // The busy one talks every 40 ms for 1.6 s, well past the idle limit.
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(test::send_all(busy, "x"));
    ASSERT_EQ(test::recv_exact(busy, 1), "x") << "still open after " << i * 40 << " ms";
    std::this_thread::sleep_for(40ms);
  }
  ASSERT_TRUE(eventually([&] { return idle_probe.close_count() == 1; }));
  EXPECT_EQ(idle_probe.closed().front(), errc::idle_timeout);
  EXPECT_TRUE(test::peer_closed(idle));
  EXPECT_EQ(busy_probe.close_count(), 0U);
  ASSERT_TRUE(eventually([&] { return busy_probe.close_count() == 1; }));  // now idle too
  EXPECT_EQ(busy_probe.closed().front(), errc::idle_timeout);
  ::close(idle);
  ::close(busy);
}

TEST(limits, the_read_timeout_closes_a_connection_that_only_writes) {
  probe p;
  engine_options opts = test::small_options();
  opts.connection_timeouts.read = 300ms;
  running_engine e(opts);
  const address bound = e->listen<timed>("tcp://127.0.0.1:0", &p, true);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
  EXPECT_EQ(p.closed().front(), errc::read_timeout) << "its writes do not count as reads";
  EXPECT_FALSE(read_to_end(fd).empty()) << "it was writing";
  ::close(fd);
}

TEST(limits, the_write_timeout_closes_a_connection_whose_peer_stopped_reading) {
  probe p;
  engine_options opts = limit_options();
  opts.outbound_high_watermark = opts.outbound_cap;  // never fires: only the timeout acts
  opts.connection_timeouts.write = 300ms;
  running_engine e(opts);
  const address bound = e->listen<pusher>("tcp://127.0.0.1:0", &p);
  e.start();
  const int fd = connect_to(bound);  // never reads
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
  EXPECT_EQ(p.closed().front(), errc::write_timeout);
  ::close(fd);
}

TEST(limits, a_slow_reader_is_not_a_stalled_one_for_the_write_timeout) {
  probe p;
  engine_options opts = limit_options();
  opts.outbound_high_watermark = opts.outbound_cap;  // the pusher writes its 8 MiB at once
  opts.connection_timeouts.write = 1s;
  running_engine e(opts);
  const address bound = e->listen<pusher>("tcp://127.0.0.1:0", &p);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  // Reads 64 KiB every 25 ms: about 3 s for the 8 MiB, three times the write timeout, with
  // progress all along.
  constexpr std::size_t total = 128 * pusher::piece;
  std::size_t got = 0;
  std::string chunk(pusher::piece, '\0');
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (got < total && std::chrono::steady_clock::now() < give_up) {
    const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
    if (n > 0) {
      ASSERT_TRUE(chunk.substr(0, static_cast<std::size_t>(n)) ==
                  pattern_bytes(got, static_cast<std::size_t>(n)));
      got += static_cast<std::size_t>(n);
    }
    ASSERT_EQ(p.close_count(), 0U) << "closed after " << got << " bytes";
    std::this_thread::sleep_for(25ms);
  }
  EXPECT_EQ(got, total);
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
  EXPECT_EQ(p.closed().front(), errc::end_of_stream);
}

// On open: sets a 200 ms idle timeout of its own.
class own_timeout : public connection {
 public:
  explicit own_timeout(probe* p) : p_(p) {}
  void on_open() override {
    EXPECT_THROW(set_timeouts({.idle = -1ms}), std::invalid_argument);
    set_timeouts({.idle = 200ms});
    EXPECT_EQ(current_timeouts().idle, 200ms);
  }
  void on_close(std::error_code reason) override { p_->note_close(reason); }

 private:
  probe* p_;
};

TEST(limits, a_connection_sets_its_own_timeouts_and_bad_values_are_rejected) {
  probe p;
  running_engine e;
  const address bound = e->listen<own_timeout>("tcp://127.0.0.1:0", &p);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
  EXPECT_EQ(p.closed().front(), errc::idle_timeout);
  ::close(fd);

  engine_options bad = test::small_options();
  bad.connection_timeouts.read = -5ms;
  EXPECT_THROW(engine{bad}, std::invalid_argument);
  bad = test::small_options();
  bad.outbound_low_watermark = bad.outbound_high_watermark + 1;
  EXPECT_THROW(engine{bad}, std::invalid_argument);
}

// Writes 8 MiB, then close().
class closer : public connection {
 public:
  explicit closer(probe* p) : p_(p) {}
  void on_open() override {
    (void)write(pattern_bytes(0, 8 << 20));
    close();
  }
  void on_close(std::error_code reason) override { p_->note_close(reason); }

 private:
  probe* p_;
};

TEST_P(over_transport,
       close_sends_the_buffered_output_to_a_reader_and_cuts_off_one_that_never_reads) {
  probe p;
  engine_options opts = test::small_options();
  opts.outbound_cap = 16 << 20;
  {
    running_engine e(opts);  // the default drain timeout, 30 s
    const target bound = test::listen_over<closer>(*e, GetParam(), &p);
    e.start();
    stream_end reader = test::open_end(bound);
    ASSERT_TRUE(reader.ok());
    const std::string got = test::read_to_end(reader);
    EXPECT_EQ(got.size(), std::size_t{8} << 20);
    EXPECT_TRUE(got == pattern_bytes(0, 8 << 20));
    reader.close();
    ASSERT_TRUE(eventually([&] { return p.close_count() == 1; }));
    EXPECT_EQ(p.closed().front(), std::error_code{});
  }
  opts.drain_timeout = 300ms;
  opts.socket.send_buffer = 16 * 1024;
  running_engine e(opts);
  const target bound = test::listen_over<closer>(*e, GetParam(), &p);
  e.start();
  const stream_end stuck = test::open_end(bound);  // never reads
  ASSERT_TRUE(stuck.ok());
  ASSERT_TRUE(eventually([&] { return p.close_count() == 2; }));
  EXPECT_EQ(p.closed().back(), errc::drain_timeout);
}

TEST_P(over_transport, stop_delivers_the_async_writes_sent_before_it) {
  probe p;
  engine_options opts = limit_options();
  opts.outbound_cap = 16 << 20;
  running_engine e(opts);
  const target bound = test::listen_over<echo>(*e, GetParam(), &p);
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(eventually([&] { return p.last_ref().valid(); }));
  std::atomic<int> done_ok{0};
  constexpr std::size_t pieces = 64;
  constexpr std::size_t piece = 64 * 1024;  // 4 MiB in all, far more than the socket takes
  for (std::size_t i = 0; i < pieces; ++i) {
    p.last_ref().async_write(pattern_bytes(i * piece, piece), [&](std::error_code ec) {
      if (!ec) {
        ++done_ok;
      }
    });
  }
  std::thread stopper([&] { e.stop(); });
  const std::string got = test::read_to_end(end);  // until the server's end
  stopper.join();
  EXPECT_EQ(done_ok.load(), static_cast<int>(pieces));
  EXPECT_EQ(got.size(), pieces * piece);
  EXPECT_TRUE(got == pattern_bytes(0, pieces * piece)) << "every queued byte, in order";
  ASSERT_EQ(p.close_count(), 1U);
  EXPECT_EQ(p.closed().front(), errc::engine_stopped);
}

TEST_P(over_transport, stop_gives_up_on_a_peer_that_does_not_read_at_the_shutdown_timeout) {
  probe p;
  engine_options opts = limit_options();
  opts.outbound_high_watermark = opts.outbound_cap;
  opts.shutdown_timeout = 300ms;
  running_engine e(opts);
  const target bound = test::listen_over<pusher>(*e, GetParam(), &p);
  e.start();
  const stream_end end = test::open_end(bound);  // never reads
  ASSERT_TRUE(end.ok());
  // Opened (over TLS, the client's handshake may end before the server's), then not writable.
  ASSERT_TRUE(eventually([&] { return e->metrics().total.opened == 1; }));
  ASSERT_TRUE(eventually([&] { return p.events().empty() && e->count_connections() == 1; }));
  e.stop();  // returns: the drain ends at the deadline
  ASSERT_EQ(p.close_count(), 1U);
  EXPECT_EQ(p.closed().front(), errc::engine_stopped);
}

// Holds `loop` in a handler until `release`; returns once it is held.
void hold(event_loop& loop, std::atomic<bool>& release) {
  std::atomic<bool> held{false};
  ASSERT_FALSE(loop.post([&held, &release](event_loop&) {
    held = true;
    while (!release) {
      std::this_thread::sleep_for(1ms);
    }
  }));
  ASSERT_TRUE(eventually([&] { return held.load(); }));
}

TEST(limits, a_full_mailbox_refuses_sends_with_queue_full_and_accepts_again_once_drained) {
  probe p;
  engine_options opts = test::small_options();
  opts.mailbox_cap = 1000;
  running_engine e(opts);
  const address bound = e->listen<echo>("tcp://127.0.0.1:0", &p);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return p.last_ref().valid(); }));
  const conn_ref target = p.last_ref();
  event_loop& loop = e->loop(0);

  // Hold the loop in a handler, so nothing drains, and send far more than the cap.
  std::atomic<bool> release{false};
  hold(loop, release);
  std::atomic<int> ran{0};
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::error_code ec = loop.post([&](event_loop&) { ++ran; });
    if (ec) {
      EXPECT_EQ(ec, errc::queue_full);
      ++refused;
    } else {
      ++accepted;
    }
  }
  EXPECT_GE(accepted, 1000 - 256) << "refused before the cap";
  EXPECT_LE(accepted, 1000 + 256) << "one sending thread overshoots by at most 256";
  EXPECT_EQ(refused, 5000 - accepted);
  std::atomic<int> writes_done{0};
  EXPECT_EQ(target.async_write(std::string_view("x"), [&](std::error_code) { ++writes_done; }),
            errc::queue_full);
  EXPECT_EQ(target.tell<echo>([](echo&) {}), errc::queue_full);
  EXPECT_EQ(e->broadcast<echo>([](echo&) {}), errc::queue_full);
  EXPECT_EQ(loop.refused_messages(), static_cast<std::uint64_t>(refused) + 3);

  release = true;  // the loop drains: every accepted message runs, once
  ASSERT_TRUE(eventually([&] { return ran.load() == accepted; }));
  EXPECT_EQ(writes_done.load(), 0) << "a refused write's callback never runs";
  EXPECT_FALSE(target.async_write(std::string_view("back"), [&](std::error_code ec) {
    EXPECT_FALSE(ec);
    ++writes_done;
  })) << "accepted again once drained";
  EXPECT_EQ(test::recv_exact(fd, 4), "back");
  ASSERT_TRUE(eventually([&] { return writes_done.load() == 1; }));
  ::close(fd);
}

TEST(limits, a_thread_sending_to_several_loops_in_turn_is_held_to_each_ones_cap) {
  engine_options opts = test::small_options(2);
  opts.mailbox_cap = 1000;
  running_engine e(opts);
  e.start();
  std::atomic<bool> release{false};
  hold(e->loop(0), release);
  hold(e->loop(1), release);
  // Strictly in turn: a counter the two mailboxes shared would count the queue of only one.
  std::array<int, 2> accepted{};
  std::atomic<int> ran{0};
  for (int i = 0; i < 10000; ++i) {
    if (!e->loop(i % 2).post([&ran](event_loop&) { ++ran; })) {
      ++accepted.at(i % 2);
    }
  }
  for (const int a : accepted) {
    EXPECT_GE(a, 1000 - 256) << "refused before the cap";
    EXPECT_LE(a, 1000 + 256) << "one sending thread overshoots each cap by at most 256";
  }
  release = true;
  EXPECT_TRUE(eventually([&] { return ran.load() == accepted[0] + accepted[1]; }));
}

TEST(limits, a_full_mailbox_does_not_refuse_the_engines_own_messages_enroll_and_dial) {
  probe p;
  engine_options opts = test::small_options();
  opts.mailbox_cap = 1000;
  running_engine e(opts);
  const address bound = e->listen<echo>("tcp://127.0.0.1:0", &p);
  e.start();
  std::atomic<bool> release{false};
  hold(e->loop(0), release);
  int refused = 0;
  for (int i = 0; i < 2000; ++i) {
    refused += e->loop(0).post([](event_loop&) {}) ? 1 : 0;
  }
  ASSERT_GT(refused, 0) << "the mailbox is full";
  // A connected socket to enroll, and a dial: both must reach the held loop.
  const int client = connect_to(bound);  // accepted (and echoed) once the loop runs again
  ASSERT_GE(client, 0);
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  EXPECT_FALSE(e->enroll<echo>(pair[0], &p));
  std::promise<result<conn_ref>> dialed;
  e->dial<echo>(
      bound.to_string(), {}, [&dialed](result<conn_ref> r) { dialed.set_value(r); }, &p);
  release = true;
  auto answer = dialed.get_future();
  ASSERT_EQ(answer.wait_for(20s), std::future_status::ready);
  const result<conn_ref> r = answer.get();
  EXPECT_TRUE(r) << r.error().message() << ": the dial was dropped with the full mailbox";
  // The enrolled socket echoes.
  timeval tv{5, 0};
  ::setsockopt(pair[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ASSERT_TRUE(test::send_all(pair[1], "enrolled"));
  EXPECT_EQ(test::recv_exact(pair[1], 8), "enrolled");
  ::close(pair[1]);
  ::close(client);
}

INSTANTIATE_TEST_SUITE_P(limits, over_transport, ::testing::Values(over::tcp, over::tls),
                         [](const auto& param) {
                           return std::string(param.param == over::tls ? "tls" : "tcp");
                         });

}  // namespace
}  // namespace actnet
