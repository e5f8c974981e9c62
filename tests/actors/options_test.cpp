// Engine options, each shown doing what it says on a live engine: the read buffer bounds one
// on_data, the outbound and inbound caps close a connection with capacity_exceeded, and
// accepted sockets carry the listener's socket options.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <string>

#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::connect_to;
using test::eventually;
using test::raise_to;
using test::running_engine;

struct observed {
  std::atomic<std::size_t> largest_delivery{0};
  std::atomic<std::size_t> total{0};
  std::atomic<std::size_t> largest_outbound{0};
  std::mutex mutex;
  std::error_code write_error;
  std::error_code close_reason;
  std::atomic<int> closed{0};

  void note_close(std::error_code reason) {
    const std::lock_guard lock(mutex);
    close_reason = reason;
    closed++;
  }
};

// Consumes everything, noting the most one on_data saw.
class measuring : public connection {
 public:
  explicit measuring(observed* o) : o_(o) {}
  void on_data() override {
    const std::size_t n = inbound_buffered();
    raise_to(o_->largest_delivery, n);
    o_->total += n;
    (void)discard(n);
  }

 private:
  observed* o_;
};

TEST(options, read_buffer_size_bounds_what_one_on_data_receives) {
  observed o;
  engine_options opts = test::small_options();
  opts.read_buffer_size = 4096;
  running_engine e(opts);
  const address bound = e->listen<measuring>("tcp://127.0.0.1:0", &o);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, std::string(std::size_t{1} << 20, 'x')));
  ASSERT_TRUE(eventually([&] { return o.total.load() == (std::size_t{1} << 20); }));
  EXPECT_LE(o.largest_delivery.load(), 4096U);
  EXPECT_GT(o.largest_delivery.load(), 0U);
  ::close(fd);
}

// Writes 16 KiB blocks at a peer that never reads, until a write fails.
class flooding : public connection {
 public:
  explicit flooding(observed* o) : o_(o) {}
  void on_open() override {
    const std::string block(16 * 1024, 'y');
    for (int i = 0; i < 4096; ++i) {
      const std::error_code ec = write(block);
      raise_to(o_->largest_outbound, outbound_buffered());
      if (ec) {
        const std::lock_guard lock(o_->mutex);
        o_->write_error = ec;
        return;
      }
    }
  }
  void on_close(std::error_code reason) override { o_->note_close(reason); }

 private:
  observed* o_;
};

TEST(options, outbound_cap_closes_a_connection_whose_peer_does_not_read) {
  observed o;
  engine_options opts = test::small_options();
  opts.outbound_ring_threshold = 4096;
  opts.outbound_cap = 256 * 1024;
  opts.socket.send_buffer = 4096;  // so the kernel takes little and the cap is reached
  running_engine e(opts);
  const address bound = e->listen<flooding>("tcp://127.0.0.1:0", &o);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return o.closed.load() == 1; }));
  const std::lock_guard lock(o.mutex);
  EXPECT_EQ(o.write_error, errc::capacity_exceeded);
  EXPECT_EQ(o.close_reason, errc::capacity_exceeded);
  EXPECT_LE(o.largest_outbound.load(), opts.outbound_cap) << "never above the cap";
  ::close(fd);
}

// Consumes nothing: inbound bytes pile up.
class hoarding : public connection {
 public:
  explicit hoarding(observed* o) : o_(o) {}
  void on_data() override { raise_to(o_->largest_delivery, inbound_buffered()); }
  void on_close(std::error_code reason) override { o_->note_close(reason); }

 private:
  observed* o_;
};

TEST(options, inbound_cap_closes_a_connection_that_piles_up_unconsumed_bytes) {
  observed o;
  engine_options opts = test::small_options();
  opts.inbound_cap = 16 * 1024;
  running_engine e(opts);
  const address bound = e->listen<hoarding>("tcp://127.0.0.1:0", &o);
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  (void)test::send_all(fd, std::string(256 * 1024, 'z'));  // may fail once the server closes
  ASSERT_TRUE(eventually([&] { return o.closed.load() == 1; }));
  const std::lock_guard lock(o.mutex);
  EXPECT_EQ(o.close_reason, errc::capacity_exceeded);
  // The ring holds at most the cap (rounded up to its power of two) plus one read.
  EXPECT_LE(o.largest_delivery.load(), 16U * 1024 + opts.read_buffer_size);
  ::close(fd);
}

struct socket_readings {
  int keepalive = -1;
  int idle = -1;
  int interval = -1;
  int count = -1;
  int nodelay = -1;
  int recv_buffer = -1;
  int send_buffer = -1;
};

int read_int(int fd, int level, int name) {
  int value = -1;
  socklen_t size = sizeof value;
  return ::getsockopt(fd, level, name, &value, &size) == 0 ? value : -1;
}

class reading_options : public connection {
 public:
  explicit reading_options(std::promise<socket_readings>* p) : p_(p) {}
  void on_open() override {
    socket_readings r;
    r.keepalive = read_int(fd(), SOL_SOCKET, SO_KEEPALIVE);
    r.idle = read_int(fd(), IPPROTO_TCP, TCP_KEEPIDLE);
    r.interval = read_int(fd(), IPPROTO_TCP, TCP_KEEPINTVL);
    r.count = read_int(fd(), IPPROTO_TCP, TCP_KEEPCNT);
    r.nodelay = read_int(fd(), IPPROTO_TCP, TCP_NODELAY);
    r.recv_buffer = read_int(fd(), SOL_SOCKET, SO_RCVBUF);
    r.send_buffer = read_int(fd(), SOL_SOCKET, SO_SNDBUF);
    p_->set_value(r);
  }

 private:
  std::promise<socket_readings>* p_;
};

TEST(options, accepted_connections_carry_the_socket_options) {
  for (const bool nodelay : {true, false}) {
    std::promise<socket_readings> readings;
    engine_options opts = test::small_options(2);
    opts.socket.keepalive = {true, std::chrono::seconds(60), std::chrono::seconds(10), 5};
    opts.socket.tcp_nodelay = nodelay;
    opts.socket.recv_buffer = 64 * 1024;
    opts.socket.send_buffer = 32 * 1024;
    running_engine e(opts);
    const address bound = e->listen<reading_options>("tcp://127.0.0.1:0", &readings);
    e.start();
    const int fd = connect_to(bound);
    ASSERT_GE(fd, 0);
    const socket_readings r = readings.get_future().get();
    EXPECT_EQ(r.keepalive, 1);
    EXPECT_EQ(r.idle, 60);
    EXPECT_EQ(r.interval, 10);
    EXPECT_EQ(r.count, 5);
    EXPECT_EQ(r.nodelay != 0, nodelay);
    EXPECT_GE(r.recv_buffer, 64 * 1024) << "the kernel doubles what it is given";
    EXPECT_GE(r.send_buffer, 32 * 1024);
    ::close(fd);
  }
}

}  // namespace
}  // namespace actnet
