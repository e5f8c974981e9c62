// dialer: the reconnect backoff grows by the multiplier from the initial delay, stops at the
// longest, and is jittered into [d/2, d]. (Dialing itself: dial_test.cpp.)
#include "actnet/actors/detail/dialer.hpp"

#include <gtest/gtest.h>

#include <actnet/actors/engine.hpp>
#include <chrono>
#include <vector>

namespace actnet::detail {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

reconnect_policy policy(milliseconds first, double multiplier, milliseconds longest) {
  reconnect_policy p;
  p.initial_delay = first;
  p.multiplier = multiplier;
  p.max_delay = longest;
  return p;
}

TEST(dialer, the_backoff_doubles_from_the_initial_delay_up_to_the_longest) {
  const reconnect_policy p = policy(milliseconds(100), 2.0, milliseconds(1000));
  // unit just under 1: no jitter taken off (the top of [d/2, d]).
  const double top = 1.0 - 1e-12;
  std::vector<std::int64_t> got;
  for (std::size_t failures = 0; failures <= 6; ++failures) {
    got.push_back(std::chrono::round<milliseconds>(reconnect_delay(p, failures, top)).count());
  }
  // After a close (0 failures) and after the first failure: the initial delay.
  EXPECT_EQ(got, (std::vector<std::int64_t>{100, 100, 200, 400, 800, 1000, 1000}));
}

TEST(dialer, jitter_takes_the_delay_anywhere_from_half_to_whole) {
  const reconnect_policy p = policy(milliseconds(400), 3.0, milliseconds(60'000));
  EXPECT_EQ(reconnect_delay(p, 2, 0.0), microseconds(600'000));  // 1,200 ms halved
  EXPECT_EQ(reconnect_delay(p, 2, 0.5), microseconds(900'000));
  EXPECT_EQ(reconnect_delay(p, 1, 0.0), microseconds(200'000));
}

TEST(dialer, a_longest_delay_below_the_initial_one_wins) {
  const reconnect_policy p = policy(milliseconds(500), 2.0, milliseconds(50));
  EXPECT_EQ(reconnect_delay(p, 1, 0.0), microseconds(25'000));
  EXPECT_EQ(reconnect_delay(p, 9, 0.0), microseconds(25'000));
}

}  // namespace
}  // namespace actnet::detail
