// log_limiter: a storm of events is one line a second, and no event goes uncounted.
#include "actnet/actors/detail/log_limiter.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace actnet::detail {
namespace {

TEST(log_limiter, the_first_event_is_logged_then_one_line_a_second_with_the_count) {
  log_limiter limit;
  const timer_clock::time_point t0 = timer_clock::now();
  EXPECT_EQ(limit.note(t0), 1U);
  EXPECT_EQ(limit.note(t0 + std::chrono::milliseconds(10)), 0U);
  EXPECT_EQ(limit.note(t0 + std::chrono::milliseconds(500)), 0U);
  EXPECT_EQ(limit.note(t0 + std::chrono::milliseconds(999)), 0U);
  // A second after the last line: the three held back and this one.
  EXPECT_EQ(limit.note(t0 + std::chrono::seconds(1)), 4U);
  EXPECT_EQ(limit.note(t0 + std::chrono::milliseconds(1500)), 0U);
  EXPECT_EQ(limit.note(t0 + std::chrono::seconds(5)), 2U);
}

}  // namespace
}  // namespace actnet::detail
