// timer_queue: deadline order, cancellation, timeouts, timers added by timers.
#include "actnet/reactor/timer_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace actnet {
namespace {

using std::chrono::milliseconds;

TEST(timer_queue, runs_due_timers_in_deadline_order_and_ties_in_insertion_order) {
  timer_queue q;
  const auto t0 = timer_clock::now();
  std::string order;
  q.add(t0 + milliseconds(20), [&] { order += 'c'; });
  q.add(t0 + milliseconds(10), [&] { order += 'a'; });
  q.add(t0 + milliseconds(10), [&] { order += 'b'; });
  q.add(t0 + milliseconds(30), [&] { order += 'd'; });
  EXPECT_EQ(q.run_due(t0 + milliseconds(25)), 3U);
  EXPECT_EQ(order, "abc");
  EXPECT_EQ(q.size(), 1U);
}

TEST(timer_queue, clear_drops_pending_timers_unrun_and_destroys_their_closures) {
  timer_queue q;
  const auto t0 = timer_clock::now();
  // A closure that says when it is destroyed, and adds a timer as it goes (dropped too).
  struct witness {
    int* destroyed;
    timer_queue* queue;
    explicit witness(int* d, timer_queue* q) : destroyed(d), queue(q) {}
    witness(witness&& other) noexcept
        : destroyed(std::exchange(other.destroyed, nullptr)), queue(other.queue) {}
    witness& operator=(witness&&) = delete;
    witness(const witness&) = delete;
    witness& operator=(const witness&) = delete;
    ~witness() {
      if (destroyed != nullptr) {
        ++*destroyed;
        queue->add(timer_clock::now(), [] {});
      }
    }
  };
  int destroyed = 0;
  bool ran = false;
  q.add(t0, [w = witness(&destroyed, &q), &ran] { ran = true; });
  q.add(t0 + milliseconds(5), [w = witness(&destroyed, &q), &ran] { ran = true; });
  q.clear();
  EXPECT_EQ(destroyed, 2);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.run_due(t0 + milliseconds(10)), 0U);
  EXPECT_FALSE(ran);
  EXPECT_EQ(q.next_timeout_ms(t0), -1);
}

TEST(timer_queue, a_cancelled_timer_never_runs) {
  timer_queue q;
  const auto t0 = timer_clock::now();
  bool ran = false;
  const timer_id id = q.add(t0, [&] { ran = true; });
  EXPECT_TRUE(q.cancel(id));
  EXPECT_FALSE(q.cancel(id));
  EXPECT_EQ(q.run_due(t0 + milliseconds(1)), 0U);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(q.empty());
}

TEST(timer_queue, next_timeout_rounds_up_and_skips_cancelled_timers) {
  timer_queue q;
  const auto t0 = timer_clock::now();
  EXPECT_EQ(q.next_timeout_ms(t0), -1);
  const timer_id soon = q.add(t0 + std::chrono::microseconds(1500), [] {});
  q.add(t0 + milliseconds(50), [] {});
  EXPECT_EQ(q.next_timeout_ms(t0), 2);
  q.cancel(soon);
  EXPECT_EQ(q.next_timeout_ms(t0), 50);
  EXPECT_EQ(q.next_timeout_ms(t0 + milliseconds(60)), 0);
}

TEST(timer_queue, a_timer_may_add_and_cancel_timers) {
  timer_queue q;
  const auto t0 = timer_clock::now();
  std::vector<int> ran;
  timer_id victim = 0;
  q.add(t0, [&] {
    ran.push_back(1);
    q.add(t0, [&] { ran.push_back(2); });                      // due: runs in this pass
    q.add(t0 + milliseconds(100), [&] { ran.push_back(3); });  // not due
    q.cancel(victim);
  });
  victim = q.add(t0 + milliseconds(1), [&] { ran.push_back(4); });
  EXPECT_EQ(q.run_due(t0 + milliseconds(1)), 2U);
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  EXPECT_EQ(q.size(), 1U);
}

}  // namespace
}  // namespace actnet
