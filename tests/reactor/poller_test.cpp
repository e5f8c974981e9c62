// poller: readiness reports, level vs edge triggering, wake-ups from other threads, growth.
#include "actnet/reactor/poller.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <thread>
#include <vector>

namespace actnet {
namespace {

struct pair_fds {
  int fds[2] = {-1, -1};
  pair_fds() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0); }
  ~pair_fds() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

TEST(poller, reports_a_readable_fd_with_its_data) {
  poller p;
  pair_fds s;
  ASSERT_FALSE(p.add(s.fds[0], io::readable, 42));
  ASSERT_EQ(::write(s.fds[1], "x", 1), 1);
  const auto ready = p.wait(1000);
  ASSERT_TRUE(ready);
  ASSERT_EQ(ready->size(), 1U);
  EXPECT_EQ(std::uint64_t{(*ready)[0].data.u64}, 42U);
  EXPECT_NE((*ready)[0].events & io::readable, 0U);
}

TEST(poller, a_zero_timeout_returns_at_once_with_nothing_ready) {
  poller p;
  const auto ready = p.wait(0);
  ASSERT_TRUE(ready);
  EXPECT_TRUE(ready->empty());
}

TEST(poller, level_triggered_reports_again_until_drained_edge_triggered_once) {
  poller p;
  pair_fds level;
  pair_fds edge;
  ASSERT_FALSE(p.add(level.fds[0], io::readable, 1));
  ASSERT_FALSE(p.add(edge.fds[0], io::readable | io::edge, 2));
  ASSERT_EQ(::write(level.fds[1], "x", 1), 1);
  ASSERT_EQ(::write(edge.fds[1], "x", 1), 1);
  ASSERT_EQ(p.wait(1000)->size(), 2U);
  const auto again = p.wait(0);  // nothing was read
  ASSERT_EQ(again->size(), 1U);
  EXPECT_EQ(std::uint64_t{(*again)[0].data.u64}, 1U);
}

TEST(poller, modify_switches_interest_to_writable) {
  poller p;
  pair_fds s;
  ASSERT_FALSE(p.add(s.fds[0], io::readable, 7));
  EXPECT_TRUE(p.wait(0)->empty());
  ASSERT_FALSE(p.modify(s.fds[0], io::writable, 8));
  const auto ready = p.wait(1000);
  ASSERT_EQ(ready->size(), 1U);
  EXPECT_EQ(std::uint64_t{(*ready)[0].data.u64}, 8U);
  EXPECT_NE((*ready)[0].events & io::writable, 0U);
  ASSERT_FALSE(p.remove(s.fds[0]));
  EXPECT_TRUE(p.wait(0)->empty());
  EXPECT_EQ(p.remove(s.fds[0]), std::errc::no_such_file_or_directory);
}

TEST(poller, a_peer_close_is_reported_as_hangup) {
  poller p;
  pair_fds s;
  ASSERT_FALSE(p.add(s.fds[0], io::readable, 3));
  ::shutdown(s.fds[1], SHUT_WR);
  const auto ready = p.wait(1000);
  ASSERT_EQ(ready->size(), 1U);
  EXPECT_NE((*ready)[0].events & io::hangup, 0U);
}

TEST(poller, wake_from_another_thread_ends_a_blocking_wait_with_the_wake_key) {
  poller p;
  std::thread waker([&p] { p.wake(); });
  const auto ready = p.wait(-1);  // would block forever without the wake
  waker.join();
  ASSERT_TRUE(ready);
  ASSERT_EQ(ready->size(), 1U);
  EXPECT_EQ(std::uint64_t{(*ready)[0].data.u64}, poller::wake_key);
  p.consume_wake();
  EXPECT_TRUE(p.wait(0)->empty());  // edge-triggered: reported once
  p.wake();
  p.wake();
  EXPECT_EQ(p.wait(0)->size(), 1U);  // wakes before a consume come as one report
}

TEST(poller, the_event_array_grows_when_a_wait_fills_it) {
  poller p;
  std::vector<pair_fds> pairs(poller::initial_events + 10);
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    ASSERT_FALSE(p.add(pairs[i].fds[0], io::writable, i));
  }
  EXPECT_EQ(p.wait(0)->size(), poller::initial_events);
  EXPECT_EQ(p.wait(0)->size(), pairs.size());  // grown before this wait
  EXPECT_EQ(p.capacity(), 2 * poller::initial_events);
}

}  // namespace
}  // namespace actnet
