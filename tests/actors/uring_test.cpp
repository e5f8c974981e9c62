// The io_uring back end's own edges, beyond the behaviour suites (which run on it as
// io_uring.*): its options, a buffer ring that runs dry mid-stream, completions for
// connections closed in the same batch, sends in flight at close, abort and stop, datagrams
// longer than a ring buffer, and ACTNET_BACKEND. A kernel that cannot run io_uring
// skips the ones that need it (the samples' test checks the refusal itself).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/engine.hpp"
#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::connect_to;
using test::eventually;
using test::running_engine;

engine_options uring_options() {
  engine_options o = test::small_options();
  o.backend = io_backend::io_uring;
  return o;
}

// Whether this kernel runs io_uring: an engine on it can be made (the reason otherwise).
std::string uring_missing() {
  try {
    const engine e(uring_options());
    return {};
  } catch (const std::system_error& ex) {
    return ex.what();
  }
}

class echo : public connection {
  void on_data() override { (void)write(next_all()); }
};

TEST(uring, its_options_are_checked_and_named) {
  engine_options o = uring_options();
  o.uring_buffers = 3;
  EXPECT_THROW({ const engine e(o); }, std::invalid_argument) << "not a power of two";
  o.uring_buffers = 65536;
  EXPECT_THROW({ const engine e(o); }, std::invalid_argument) << "past the kernel's 32768";
  o = uring_options();
  o.uring_buffer_size = 100;
  try {
    const engine e(o);
    ADD_FAILURE() << "a 100-byte buffer was accepted";
  } catch (const std::invalid_argument& ex) {
    EXPECT_NE(std::string(ex.what()).find("uring_buffer_size"), std::string::npos) << ex.what();
  }
  o = uring_options();
  o.backend = static_cast<io_backend>(7);
  EXPECT_THROW({ const engine e(o); }, std::invalid_argument);
}

TEST(uring, actnet_backend_names_a_back_end_or_is_refused) {
  const char* before = std::getenv("ACTNET_BACKEND");
  const std::string saved = before != nullptr ? before : "";
  ::setenv("ACTNET_BACKEND", "kqueue", 1);
  try {
    const engine e(test::small_options());
    ADD_FAILURE() << "ACTNET_BACKEND=kqueue was accepted";
  } catch (const std::invalid_argument& ex) {
    EXPECT_NE(std::string(ex.what()).find("ACTNET_BACKEND"), std::string::npos) << ex.what();
  }
  // epoll overrides an engine that asked for io_uring: the option is the default, the
  // environment the operator's choice.
  ::setenv("ACTNET_BACKEND", "epoll", 1);
  {
    running_engine e(uring_options());
    EXPECT_EQ(e->options().backend, io_backend::epoll);
  }
  if (before != nullptr) {
    ::setenv("ACTNET_BACKEND", saved.c_str(), 1);
  } else {
    ::unsetenv("ACTNET_BACKEND");
  }
}

TEST(uring, automatic_settles_on_a_back_end_that_serves) {
  engine_options o = test::small_options();
  o.backend = io_backend::automatic;
  running_engine e(o);
  const io_backend chosen = e->options().backend;
  EXPECT_TRUE(chosen == io_backend::epoll || chosen == io_backend::io_uring);
  if (std::getenv("ACTNET_BACKEND") == nullptr) {
    EXPECT_EQ(chosen == io_backend::io_uring, uring_missing().empty()) << uring_missing();
  }
  const address bound = e->listen<echo>("tcp://127.0.0.1:0");
  e.start();
  const int fd = connect_to(bound);
  ASSERT_TRUE(test::send_all(fd, "automatic"));
  EXPECT_EQ(test::recv_exact(fd, 9), "automatic");
  ::close(fd);
}

// Two buffers of 1 KiB for twenty connections sending 256 KiB each at once: the ring runs dry
// again and again, each receive ends with ENOBUFS and is re-armed, and every byte still comes
// back in order.
TEST(uring, a_buffer_ring_run_dry_mid_stream_loses_and_reorders_nothing) {
  if (const std::string why = uring_missing(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  engine_options o = uring_options();
  o.uring_buffers = 2;
  o.uring_buffer_size = 1024;
  running_engine e(o);
  const address bound = e->listen<echo>("tcp://127.0.0.1:0");
  e.start();
  constexpr std::size_t conns = 20;
  constexpr std::size_t bytes = std::size_t{256} << 10;
  std::vector<std::thread> clients;
  std::atomic<std::size_t> intact{0};
  for (std::size_t i = 0; i < conns; ++i) {
    clients.emplace_back([&, i] {
      const int fd = connect_to(bound);
      if (fd < 0) {
        return;
      }
      const std::string sent = test::pattern_bytes(i * 7, bytes);
      std::thread writer([&] { (void)test::send_all(fd, sent); });
      const std::string got = test::recv_exact(fd, bytes);
      writer.join();
      if (got == sent) {
        ++intact;
      }
      ::close(fd);
    });
  }
  for (std::thread& t : clients) {
    t.join();
  }
  EXPECT_EQ(intact.load(), conns);
}

// The first connection to speak closes every other one from its on_data, while their bytes
// are (most runs) in the same batch of completions: those completions find no connection and
// are dropped, nothing runs on a closed actor, and each on_close runs once (ASan: nothing
// completes into freed memory).
class udp_echo : public connection {
  void on_data() override { (void)write(next_all()); }
};

TEST(uring, a_datagram_longer_than_a_ring_buffer_is_dropped_and_counted_never_cut) {
  if (const std::string why = uring_missing(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  engine_options o = uring_options();
  o.uring_buffer_size = 1024;  // room for 1024 - 144 bytes: the sender's address comes first
  running_engine e(o);
  const address bound = e->listen<udp_echo>("udp://127.0.0.1:0");
  e.start();
  const test::udp_client client(bound);
  ASSERT_TRUE(client.send(std::string(1024 - 144 + 1, 'L')));
  ASSERT_TRUE(client.send(std::string(1024 - 144, 'F')));
  EXPECT_EQ(client.receive(), std::string(1024 - 144, 'F')) << "the one that fits, whole";
  EXPECT_EQ(e->loop(0).datagrams_dropped(), 1U) << "the long one: not echoed, cut or whole";
}

struct batch_log {
  std::mutex mutex;
  std::vector<conn_ref> open;
  std::atomic<int> data_after_close{0};
  std::atomic<int> closes{0};
};

class closes_the_rest : public connection {
 public:
  explicit closes_the_rest(batch_log* log) : log_(log) {}
  void on_open() override {
    const std::lock_guard lock(log_->mutex);
    log_->open.push_back(ref());
  }
  void on_data() override {
    if (closed_) {
      ++log_->data_after_close;
    }
    (void)next_all();
    std::vector<conn_ref> others;
    {
      const std::lock_guard lock(log_->mutex);
      others.swap(log_->open);
    }
    for (const conn_ref& r : others) {
      if (r != ref()) {
        r.close();
      }
    }
  }
  void on_close(std::error_code /*reason*/) override {
    closed_ = true;
    ++log_->closes;
  }

 private:
  batch_log* log_;
  bool closed_ = false;
};

TEST(uring, completions_for_connections_closed_in_the_same_batch_are_dropped) {
  if (const std::string why = uring_missing(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  batch_log log;
  running_engine e(uring_options());
  const address bound = e->listen<closes_the_rest>("tcp://127.0.0.1:0", &log);
  e.start();
  constexpr int conns = 50;
  std::vector<int> fds;
  for (int i = 0; i < conns; ++i) {
    fds.push_back(connect_to(bound));
    ASSERT_GE(fds.back(), 0);
  }
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(log.mutex);
    return log.open.size() == conns;
  }));
  for (const int fd : fds) {
    (void)::send(fd, "x", 1, MSG_NOSIGNAL);
  }
  ASSERT_TRUE(eventually([&] { return log.closes.load() >= conns - 1; }));
  for (const int fd : fds) {
    ::close(fd);
  }
  ASSERT_TRUE(eventually([&] { return log.closes.load() == conns; }));
  EXPECT_EQ(log.data_after_close.load(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(log.closes.load(), conns) << "on_close once each";
}

// A send in flight at close(), abort() and the engine's stop. The server writes 2 MiB at once
// into a 64 KiB socket buffer: a ring send is in flight (short, then resubmitted) and the rest
// waits in the outbound buffer when the handler ends the connection. close() lets all of it go,
// then the FIN; abort() and the stop cancel the send, whose buffer is freed only once the
// kernel is done with it (ASan: nothing completes into freed memory), and on_close runs once.
constexpr std::size_t flood_bytes = std::size_t{2} << 20;

struct ending_log {
  std::atomic<int> opens{0};
  std::atomic<int> closes{0};
  std::mutex mutex;
  std::error_code reason;
};

class writes_then_ends : public connection {
 public:
  enum class ending : std::uint8_t { close, abort_soon, stay };
  writes_then_ends(ending how, ending_log* log) : how_(how), log_(log) {}
  void on_open() override {
    ++log_->opens;
    (void)write(test::pattern_bytes(0, flood_bytes));
    if (how_ == ending::close) {
      close();
    } else if (how_ == ending::abort_soon) {  // (reading is paused: the output is past its mark)
      (void)after(std::chrono::milliseconds(20), [](connection& self) { self.abort(); });
    }
  }
  void on_close(std::error_code reason) override {
    const std::lock_guard lock(log_->mutex);
    log_->reason = reason;
    ++log_->closes;
  }

 private:
  ending how_;
  ending_log* log_;
};

engine_options small_send_buffer() {
  engine_options o = uring_options();
  o.socket.send_buffer = 64 * 1024;
  return o;
}

TEST(uring, a_send_in_flight_at_close_goes_out_whole_before_the_fin) {
  if (const std::string why = uring_missing(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  ending_log log;
  running_engine e(small_send_buffer());
  const address bound =
      e->listen<writes_then_ends>("tcp://127.0.0.1:0", writes_then_ends::ending::close, &log);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  // Not reading yet: the close() is made while the send is in flight and the rest waits.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(log.closes.load(), 0) << "closed before its output had gone";
  const std::string got = test::read_to_end(fd);
  ::close(fd);
  EXPECT_EQ(got.size(), flood_bytes);
  EXPECT_TRUE(got == test::pattern_bytes(0, flood_bytes)) << "the bytes arrive in order";
  ASSERT_TRUE(eventually([&] { return log.closes.load() == 1; }));
  const std::lock_guard lock(log.mutex);
  EXPECT_FALSE(log.reason) << log.reason.message();
}

TEST(uring, a_send_in_flight_at_abort_is_cancelled_and_its_buffer_outlives_it) {
  if (const std::string why = uring_missing(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  ending_log log;
  running_engine e(small_send_buffer());
  const address bound =
      e->listen<writes_then_ends>("tcp://127.0.0.1:0", writes_then_ends::ending::abort_soon, &log);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return log.closes.load() == 1; }));
  const std::string got = test::read_to_end(fd);  // up to the reset
  ::close(fd);
  EXPECT_LT(got.size(), flood_bytes) << "abort() dropped the buffered output";
  EXPECT_TRUE(got == test::pattern_bytes(0, got.size())) << "what came is a prefix";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(log.closes.load(), 1) << "on_close once";
}

TEST(uring, sends_in_flight_at_the_engines_stop_end_with_it) {
  if (const std::string why = uring_missing(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  ending_log log;
  constexpr int conns = 8;
  std::vector<int> fds;
  engine_options o = small_send_buffer();
  o.shutdown_timeout = std::chrono::milliseconds(100);  // the output never drains
  {
    running_engine e(o);
    const address bound =
        e->listen<writes_then_ends>("tcp://127.0.0.1:0", writes_then_ends::ending::stay, &log);
    e.start();
    for (int i = 0; i < conns; ++i) {
      fds.push_back(connect_to(bound));
      ASSERT_GE(fds.back(), 0);
    }
    ASSERT_TRUE(eventually([&] { return log.opens.load() == conns; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // every socket full
    e.stop();
  }
  EXPECT_EQ(log.closes.load(), conns) << "on_close once each, at the stop";
  for (const int fd : fds) {
    const std::string got = test::read_to_end(fd);
    EXPECT_TRUE(got == test::pattern_bytes(0, got.size())) << "what came is a prefix";
    ::close(fd);
  }
}

}  // namespace
}  // namespace actnet
