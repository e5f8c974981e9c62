// connection actors: the inbound API across reads (framing split at every byte), short reads,
// writes of every kind, half-closes both ways (these over TCP and TLS), timers, tell, and
// socket options.
#include "actnet/actors/connection.hpp"

#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "actors/test_util.hpp"
#include "actors/transports.hpp"

namespace actnet {
namespace {

using test::connect_to;
using test::eventually;
using test::over;
using test::running_engine;
using test::stream_end;
using test::target;

std::string over_name(const ::testing::TestParamInfo<over>& p) {
  return test::name_of(p.param);
}

// A length-prefixed protocol: 2-byte big-endian length, then the body; replies with the body.
// peek() the header and next() the body, leaving partial frames buffered for the next read.
class framed_connection : public connection {
  void on_data() override {
    for (;;) {
      const result<byte_views> header = peek(2);
      if (!header) {
        EXPECT_EQ(header.error(), make_error_code(errc::short_buffer));
        return;
      }
      unsigned char h[2];
      header->copy_to(std::as_writable_bytes(std::span(h)));
      const std::size_t length = (std::size_t{h[0]} << 8) | h[1];
      if (inbound_buffered() < 2 + length) {
        EXPECT_EQ(next(2 + length).error(), make_error_code(errc::short_buffer));
        return;  // nothing consumed: wait for the rest
      }
      EXPECT_FALSE(discard(2));
      const result<byte_views> body = next(length);
      EXPECT_TRUE(body);
      (void)write(body->to_string() + "|");
    }
  }
};

std::string frame(const std::string& body) {
  std::string f;
  f += static_cast<char>(body.size() >> 8);
  f += static_cast<char>(body.size() & 0xff);
  return f + body;
}

// The stream cases run over TCP, over TLS (whose layer holds bytes between the socket and the
// actor) and over KCP (whose conversation does: the client speaks first in each).
class stream : public ::testing::TestWithParam<over> {};

TEST_P(stream, frames_split_at_every_byte_position_are_reassembled_in_order) {
  running_engine e;
  const target bound = test::listen_over<framed_connection>(*e, GetParam());
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  const std::string frames =
      frame("alpha") + frame(std::string(300, 'b')) + frame("") + frame("gamma");
  const std::string expected = "alpha|" + std::string(300, 'b') + "||gamma|";
  for (std::size_t cut = 1; cut < frames.size(); cut += 7) {
    ASSERT_TRUE(end.send_all(frames.substr(0, cut)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // two reads, most of the time
    ASSERT_TRUE(end.send_all(frames.substr(cut)));
    ASSERT_EQ(end.recv_exact(expected.size()), expected) << "cut at " << cut;
  }
}

class reading_connection : public connection {
 public:
  static inline std::mutex mutex;
  static inline std::vector<std::string> seen;
  void on_data() override {
    if (inbound_buffered() < 10) {
      char too_many[11];
      EXPECT_EQ(read(std::as_writable_bytes(std::span(too_many))),
                make_error_code(errc::short_buffer));
      return;
    }
    char ten[10];
    ASSERT_FALSE(read(std::as_writable_bytes(std::span(ten))));
    const std::lock_guard lock(mutex);
    seen.emplace_back(ten, 10);
  }
};

// Each byte from the client starts a round of writes of every kind and size: small ones (on
// io_uring, staged for the ring), large ones (sent at once when nothing is ahead of them),
// writev and a whole block, each kind first in some round, so every path meets every other with
// output ahead of it or none. The socket's small send buffer makes sends short.
class writes_every_way : public connection {
 public:
  static std::vector<std::size_t> sizes(std::size_t round) {
    std::vector<std::size_t> all{100, 20000, 3, 70000, 9000, 1, 200000, 8192};
    std::rotate(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(round * 2), all.end());
    return all;
  }
  static std::size_t round_bytes(std::size_t round) {
    std::size_t n = 0;
    for (const std::size_t size : sizes(round)) {
      n += size;
    }
    return n;
  }

 private:
  void on_data() override {
    const std::size_t starts = inbound_buffered();
    (void)discard(starts);
    for (std::size_t i = 0; i < starts; ++i) {
      const std::vector<std::size_t> round = sizes(round_++);
      for (std::size_t k = 0; k < round.size(); ++k) {
        const std::string bytes = test::pattern_bytes(at_, round[k]);
        at_ += round[k];
        const auto all = std::as_bytes(std::span(bytes.data(), bytes.size()));
        std::error_code ec;
        switch ((k + round_) % 3) {
          case 0:
            ec = write(all);
            break;
          case 1: {
            const std::array parts{all.first(all.size() / 3), all.subspan(all.size() / 3)};
            ec = writev(parts);
            break;
          }
          default:
            ec = write(block::copy_of(all));
        }
        EXPECT_FALSE(ec) << ec.message();
      }
    }
  }
  std::size_t round_ = 0;
  std::size_t at_ = 0;
};

TEST_P(stream, writes_of_every_kind_and_size_arrive_whole_and_in_order) {
  engine_options o = test::small_options();
  o.socket.send_buffer = 32 * 1024;
  running_engine e(o);
  const target bound = test::listen_over<writes_every_way>(*e, GetParam());
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  std::size_t at = 0;
  std::size_t round = 0;
  for (const std::size_t together : {1, 2, 1}) {  // the second batch: two rounds at once
    std::size_t n = 0;
    for (std::size_t i = 0; i < together; ++i) {
      ASSERT_TRUE(end.send_all("r"));
      n += writes_every_way::round_bytes(round++);
    }
    const std::string got = end.recv_exact(n);
    ASSERT_EQ(got.size(), n) << "up to round " << round;
    ASSERT_TRUE(got == test::pattern_bytes(at, n)) << "up to round " << round << ": out of order";
    at += n;
  }
}

TEST_P(stream, a_short_read_consumes_nothing_and_the_bytes_wait_for_more) {
  {
    const std::lock_guard lock(reading_connection::mutex);
    reading_connection::seen.clear();
  }
  running_engine e;
  const target bound = test::listen_over<reading_connection>(*e, GetParam());
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.send_all("01234"));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(end.send_all("56789"));
  ASSERT_TRUE(eventually([] {
    const std::lock_guard lock(reading_connection::mutex);
    return !reading_connection::seen.empty();
  }));
  const std::lock_guard lock(reading_connection::mutex);
  EXPECT_EQ(reading_connection::seen.front(), "0123456789");
}

INSTANTIATE_TEST_SUITE_P(connection, stream, ::testing::Values(over::tcp, over::tls, over::kcp),
                         over_name);

// Timers: one that fires writes "tick", one cancelled never fires, one outliving its
// connection never runs.
class timed_connection : public connection {
 public:
  static inline std::atomic<int> fired{0};
  void on_open() override {
    after(std::chrono::milliseconds(5), [](connection& c) {
      fired++;
      (void)c.write("tick");
    });
    const timer_id never = after(std::chrono::milliseconds(1), [](connection&) { fired += 100; });
    EXPECT_TRUE(cancel_timer(never));
    EXPECT_FALSE(cancel_timer(never));
  }
  void on_data() override {
    // A timer set for after the close must not run.
    after(std::chrono::milliseconds(50), [](connection&) { fired += 1000; });
    close();
  }
};

TEST(connection, timers_fire_on_the_loop_can_be_cancelled_and_die_with_the_connection) {
  running_engine e;
  const address bound = e->listen<timed_connection>("tcp://127.0.0.1:0");
  e.start();
  const int fd = connect_to(bound);
  EXPECT_EQ(test::recv_exact(fd, 4), "tick");
  ASSERT_TRUE(test::send_all(fd, "bye"));
  EXPECT_TRUE(test::peer_closed(fd));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // past the orphaned timer
  EXPECT_EQ(timed_connection::fired, 1);
  ::close(fd);
}

class greeter : public connection {
 public:
  static inline std::mutex mutex;
  static inline std::vector<conn_ref> refs;
  void on_open() override {
    const std::lock_guard lock(mutex);
    refs.push_back(ref());
  }
  void greet(const std::string& who) { (void)write("hello " + who); }
};

TEST(connection, tell_runs_a_function_as_the_actor_on_its_loop) {
  running_engine e(test::small_options(2));
  const address bound = e->listen<greeter>("tcp://127.0.0.1:0");
  e.start();
  const int fd = connect_to(bound);
  ASSERT_TRUE(eventually([] {
    const std::lock_guard lock(greeter::mutex);
    return !greeter::refs.empty();
  }));
  conn_ref r;
  {
    const std::lock_guard lock(greeter::mutex);
    r = greeter::refs.front();
  }
  std::atomic<bool> on_loop{false};
  r.tell<greeter>([&on_loop](greeter& g) {
    on_loop = g.loop().in_loop_thread();
    g.greet("actor");
  });
  EXPECT_EQ(test::recv_exact(fd, 11), "hello actor");
  EXPECT_TRUE(on_loop);
  ::close(fd);
}

struct options_probe : connection {
  static inline std::atomic<int> ok{0};
  void on_open() override {
    EXPECT_FALSE(set_nodelay(false));
    int v = 1;
    socklen_t len = sizeof v;
    ::getsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &v, &len);
    EXPECT_EQ(v, 0);
    EXPECT_FALSE(set_keepalive({true, std::chrono::seconds(60), std::chrono::seconds(10), 5}));
    EXPECT_EQ(set_keepalive({true, std::chrono::seconds(0), std::chrono::seconds(0), 0}),
              std::errc::invalid_argument);
    EXPECT_FALSE(set_linger(std::chrono::seconds(1)));
    EXPECT_FALSE(set_recv_buffer(1 << 20));
    EXPECT_FALSE(set_send_buffer(1 << 20));
    const result<address> local = local_address();
    const result<address> remote = remote_address();
    EXPECT_TRUE(local && remote);
    EXPECT_NE(local->port(), remote->port());
    ok++;
  }
};

TEST(connection, socket_options_apply_to_the_connection) {
  running_engine e;
  const address bound = e->listen<options_probe>("tcp://127.0.0.1:0");
  e.start();
  const int fd = connect_to(bound);
  EXPECT_TRUE(eventually([] { return options_probe::ok == 1; }));
  ::close(fd);
}

TEST(connection, small_closures_travel_in_messages_without_a_heap_allocation) {
  struct small {
    void* a;
    void* b;
    int c;
  };
  auto closure = [s = small{}](event_loop&, connection*, std::error_code) { (void)s; };
  EXPECT_TRUE(detail::message_fn::stored_inline<decltype(closure)>);
  struct big {
    char bytes[64];
  };
  auto heavy = [b = big{}](event_loop&, connection*, std::error_code) { (void)b; };
  EXPECT_FALSE(detail::message_fn::stored_inline<decltype(heavy)>);
}

// -- the peer's half-close --

// What a half-close test's server saw, read by the test thread.
struct half_close_log {
  std::atomic<int> peer_fins{0};  // on_peer_shutdown calls
  std::atomic<int> closes{0};
  std::mutex mutex;
  std::error_code reason;                // on_close's
  std::string after_shut;                // what was read after shutdown_write
  std::vector<std::error_code> refused;  // what writes after shutdown_write returned
  std::error_code shut;                  // what shutdown_write returned

  void note_close(std::error_code r) {
    const std::lock_guard lock(mutex);
    reason = r;
    closes++;
  }
};

// Collects the request; when the peer's FIN comes, answers it `delay` later with "reply:" and
// the request, then `filler` bytes of pattern (enough to fill the socket and go out over
// several writable events), then closes.
class late_replier : public connection {
 public:
  late_replier(half_close_log* log, std::size_t filler) : log_(log), filler_(filler) {}
  void on_data() override {
    const byte_views in = next_all();
    request_.append(reinterpret_cast<const char*>(in.first.data()), in.first.size());
    request_.append(reinterpret_cast<const char*>(in.second.data()), in.second.size());
  }
  void on_peer_shutdown() override {
    log_->peer_fins++;
    EXPECT_TRUE(peer_shut_down());
    (void)after(std::chrono::milliseconds(30), [](connection& c) {
      auto& self = static_cast<late_replier&>(c);
      EXPECT_FALSE(self.write("reply:" + self.request_));
      EXPECT_FALSE(self.write(test::pattern_bytes(0, self.filler_)));
      self.close();
    });
  }
  void on_close(std::error_code reason) override { log_->note_close(reason); }

 private:
  half_close_log* log_;
  std::size_t filler_;
  std::string request_;
};

// Edge-triggered or not, over TCP and TLS (where a half-close is a close_notify, then the FIN).
class half_close : public ::testing::TestWithParam<std::tuple<bool, over>> {
 protected:
  [[nodiscard]] static engine_options options() {
    engine_options o = test::small_options();
    o.edge_triggered = std::get<0>(GetParam());
    return o;
  }
  template <class Conn, class... Args>
  static target listen(running_engine& e, Args&&... args) {
    return test::listen_over<Conn>(*e, std::get<1>(GetParam()), std::forward<Args>(args)...);
  }
};

TEST_P(half_close, a_reply_made_after_the_peers_fin_still_reaches_it) {
  half_close_log log;
  running_engine e(options());
  constexpr std::size_t filler = 8 * 1024 * 1024;
  const target bound = listen<late_replier>(e, &log, filler);
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(end.send_all("hello"));
  ASSERT_TRUE(end.shut_write());
  // Not read at once: the reply fills the socket and the rest goes out on writable events,
  // each of which also reports the FIN again under edge triggering.
  ASSERT_TRUE(eventually([&] { return log.peer_fins > 0; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string got = test::read_to_end(end);
  end.close();
  ASSERT_EQ(got.size(), 11 + filler);
  EXPECT_EQ(got.substr(0, 11), "reply:hello");
  EXPECT_TRUE(got.substr(11) == test::pattern_bytes(0, filler)) << "the filler arrived altered";
  ASSERT_TRUE(eventually([&] { return log.closes > 0; }));
  EXPECT_EQ(log.peer_fins, 1);
  EXPECT_EQ(log.closes, 1);
  const std::lock_guard lock(log.mutex);
  EXPECT_EQ(log.reason, errc::end_of_stream) << log.reason.message();
}

TEST_P(half_close, pausing_and_resuming_after_the_peers_fin_reads_nothing_more) {
  half_close_log log;
  running_engine e(options());
  const target bound = listen<late_replier>(e, &log, std::size_t{0});
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(end.send_all("ping"));
  ASSERT_TRUE(end.shut_write());
  ASSERT_TRUE(eventually([&] { return log.peer_fins > 0; }));
  // A pause and a resume from outside: the FIN is not read (nor reported) a second time.
  std::atomic<int> toggled{0};
  ASSERT_FALSE(e->broadcast<late_replier>([&toggled](late_replier& c) {
    c.pause_reading();
    EXPECT_TRUE(c.reading_paused());
    c.resume_reading();
    EXPECT_FALSE(c.reading_paused());
    toggled++;
  }));
  ASSERT_TRUE(eventually([&] { return toggled > 0; }));
  EXPECT_EQ(test::read_to_end(end), "reply:ping");
  end.close();
  ASSERT_TRUE(eventually([&] { return log.closes > 0; }));
  EXPECT_EQ(log.peer_fins, 1);
}

// -- this side's half-close --

// At the first bytes, writes `filler` bytes of pattern (more than the socket takes: most of it
// waits in the outbound buffer) and shuts its writing; then reads on, keeping what it reads.
class fin_sender : public connection {
 public:
  fin_sender(half_close_log* log, std::size_t filler) : log_(log), filler_(filler) {}
  void on_data() override {
    const std::string in = next_all().to_string();
    const std::lock_guard lock(log_->mutex);
    if (!write_shut_down()) {
      EXPECT_FALSE(write(test::pattern_bytes(0, filler_)));
      log_->shut = shutdown_write();
      EXPECT_TRUE(write_shut_down());
      EXPECT_EQ(shutdown_write(), std::error_code()) << "a second call does nothing";
      return;
    }
    log_->after_shut += in;
    // Every way of writing is refused now, and nothing of them reaches the peer.
    log_->refused.push_back(write(in));
    log_->refused.push_back(write(std::string_view()));
    const std::array parts{std::as_bytes(std::span(in.data(), in.size()))};
    log_->refused.push_back(writev(parts));
    log_->refused.push_back(write(block::copy_of(in)));
  }
  void on_peer_shutdown() override {
    log_->peer_fins++;
    connection::on_peer_shutdown();
  }
  void on_close(std::error_code reason) override { log_->note_close(reason); }

 private:
  half_close_log* log_;
  std::size_t filler_;
};

TEST_P(half_close, shutdown_write_sends_the_output_then_a_fin_and_reading_goes_on) {
  half_close_log log;
  running_engine e(options());
  constexpr std::size_t filler = 8 * 1024 * 1024;
  const target bound = listen<fin_sender>(e, &log, filler);
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  timeval tv{5, 0};  // a missing FIN fails in 5 s
  ::setsockopt(end.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ASSERT_TRUE(end.send_all("go"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the output waits, buffered
  const std::string got = end.recv_exact(filler);
  ASSERT_EQ(got.size(), filler);
  EXPECT_TRUE(got == test::pattern_bytes(0, filler)) << "the output arrived altered";
  EXPECT_TRUE(end.peer_closed()) << "no FIN after the output";
  {
    const std::lock_guard lock(log.mutex);
    EXPECT_EQ(log.shut, std::error_code()) << log.shut.message();
  }
  // The server still reads.
  ASSERT_TRUE(end.send_all("still heard"));
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(log.mutex);
    return log.after_shut == "still heard";
  }));
  EXPECT_EQ(log.closes, 0) << "open until the peer's FIN";
  {
    const std::lock_guard lock(log.mutex);
    ASSERT_EQ(log.refused.size(), 4U);
    for (const std::error_code& ec : log.refused) {
      EXPECT_EQ(ec, errc::connection_closed) << ec.message();
    }
  }
  ASSERT_TRUE(end.shut_write());
  ASSERT_TRUE(eventually([&] { return log.closes > 0; }));
  EXPECT_EQ(log.peer_fins, 1);
  EXPECT_EQ(log.closes, 1);
  const std::lock_guard lock(log.mutex);
  EXPECT_EQ(log.reason, errc::end_of_stream) << log.reason.message();
}

// Keeps the connection open at the peer's FIN; shuts its own writing a little later.
class lingering_fin : public connection {
 public:
  explicit lingering_fin(half_close_log* log) : log_(log) {}
  void on_data() override { (void)write(next_all()); }
  void on_peer_shutdown() override {
    log_->peer_fins++;
    (void)after(std::chrono::milliseconds(20), [](connection& c) {
      EXPECT_FALSE(c.write("bye"));
      EXPECT_FALSE(c.shutdown_write());
    });
  }
  void on_close(std::error_code reason) override { log_->note_close(reason); }

 private:
  half_close_log* log_;
};

TEST_P(half_close, with_both_directions_shut_the_connection_closes_with_end_of_stream) {
  half_close_log log;
  running_engine e(options());
  const target bound = listen<lingering_fin>(e, &log);
  e.start();
  stream_end end = test::open_end(bound);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(end.send_all("echo me"));
  ASSERT_TRUE(end.shut_write());
  EXPECT_EQ(test::read_to_end(end), "echo mebye");
  ASSERT_TRUE(eventually([&] { return log.closes > 0; }))
      << "on_peer_shutdown kept it open, but nothing can pass either way";
  EXPECT_EQ(log.peer_fins, 1);
  const std::lock_guard lock(log.mutex);
  EXPECT_EQ(log.reason, errc::end_of_stream) << log.reason.message();
}

// Echoes the first bytes and shuts its writing (pausing its reading too, if asked); keeps what
// it reads after that. Its on_peer_shutdown does not close.
class shuts_first : public connection {
 public:
  shuts_first(half_close_log* log, bool pause) : log_(log), pause_(pause) {}
  void on_data() override {
    const std::string in = next_all().to_string();
    const std::lock_guard lock(log_->mutex);
    if (!write_shut_down()) {
      EXPECT_FALSE(write(in));
      EXPECT_FALSE(shutdown_write());
      if (pause_) {
        pause_reading();
      }
      return;
    }
    log_->after_shut += in;
  }
  void on_peer_shutdown() override { log_->peer_fins++; }
  void on_close(std::error_code reason) override { log_->note_close(reason); }

 private:
  half_close_log* log_;
  bool pause_;
};

// Connects, sends "first", expects it back and then the server's FIN.
stream_end first_exchange(const target& bound) {
  stream_end end = test::open_end(bound);
  if (!end.ok()) {
    return end;
  }
  timeval tv{5, 0};  // a missing FIN fails in 5 s
  ::setsockopt(end.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_TRUE(end.send_all("first"));
  EXPECT_EQ(end.recv_exact(5), "first");
  EXPECT_TRUE(end.peer_closed()) << "no FIN from the server";
  return end;
}

// The server heard the peer's "last words" after its own FIN, then closed once with
// end_of_stream.
void expect_heard_out(half_close_log& log, const char* if_open) {
  ASSERT_TRUE(eventually([&] { return log.closes > 0; })) << if_open;
  EXPECT_EQ(log.peer_fins, 1);
  EXPECT_EQ(log.closes, 1);
  const std::lock_guard lock(log.mutex);
  EXPECT_EQ(log.after_shut, "last words");
  EXPECT_EQ(log.reason, errc::end_of_stream) << log.reason.message();
}

TEST_P(half_close, after_shutdown_write_the_peers_fin_closes_with_end_of_stream) {
  half_close_log log;
  running_engine e(options());
  const target bound = listen<shuts_first>(e, &log, false);
  e.start();
  stream_end end = first_exchange(bound);
  ASSERT_TRUE(end.ok());
  ASSERT_TRUE(end.send_all("last words"));
  ASSERT_TRUE(end.shut_write());
  expect_heard_out(log, "on_peer_shutdown kept it open, but nothing can pass either way");
}

TEST_P(half_close, a_paused_connection_with_its_writing_shut_reads_the_peers_last_bytes_at_resume) {
  half_close_log log;
  running_engine e(options());
  const target bound = listen<shuts_first>(e, &log, true);
  e.start();
  stream_end end = first_exchange(bound);
  ASSERT_TRUE(end.ok());
  // Bytes and a FIN while the server does not read: its socket hangs up both ways with data
  // still in it, which is not a reset.
  ASSERT_TRUE(end.send_all("last words"));
  ASSERT_TRUE(end.shut_write());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the hang-up is seen, paused
  EXPECT_EQ(log.closes, 0) << "closed while paused";
  ASSERT_FALSE(e->broadcast<shuts_first>([](shuts_first& c) { c.resume_reading(); }));
  expect_heard_out(log, "never closed");
}

INSTANTIATE_TEST_SUITE_P(modes, half_close,
                         ::testing::Combine(::testing::Bool(),
                                            ::testing::Values(over::tcp, over::tls)),
                         [](const ::testing::TestParamInfo<std::tuple<bool, over>>& p) {
                           return std::string(std::get<0>(p.param) ? "edge" : "level") +
                                  (std::get<1>(p.param) == over::tls ? "_tls" : "");
                         });

}  // namespace
}  // namespace actnet
