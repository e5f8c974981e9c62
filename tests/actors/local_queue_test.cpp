// local_queue: FIFO across its chunks, entries that never move while handled, every entry
// destroyed once, memory given back.
#include "actnet/actors/detail/local_queue.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <vector>

namespace actnet {
namespace {

// Counts its lives, so a test sees each entry made and destroyed exactly once.
struct tracked {
  static inline int alive = 0;
  int value;
  std::unique_ptr<int> owned;  // a member with a destructor of its own
  explicit tracked(int v) : value(v), owned(std::make_unique<int>(v)) { ++alive; }
  tracked(tracked&& other) noexcept : value(other.value), owned(std::move(other.owned)) { ++alive; }
  tracked(const tracked&) = delete;
  tracked& operator=(const tracked&) = delete;
  tracked& operator=(tracked&&) = delete;
  ~tracked() { --alive; }
};

using small_queue = detail::local_queue<tracked, 4, 2>;  // small chunks: many boundaries

TEST(local_queue, keeps_fifo_order_across_many_chunks) {
  tracked::alive = 0;
  {
    small_queue q;
    for (int round = 0; round < 3; ++round) {  // the chunks are used again
      for (int i = 0; i < 37; ++i) {
        q.emplace_with([i] { return tracked(i); });
      }
      EXPECT_EQ(q.size(), 37U);
      EXPECT_EQ(tracked::alive, 37);
      for (int i = 0; i < 37; ++i) {
        ASSERT_FALSE(q.empty());
        EXPECT_EQ(q.front().value, i);
        EXPECT_EQ(*q.front().owned, i);
        q.pop();
      }
      EXPECT_TRUE(q.empty());
      EXPECT_EQ(tracked::alive, 0);
    }
  }
  EXPECT_EQ(tracked::alive, 0);
}

TEST(local_queue, the_front_stays_in_place_while_more_are_queued_behind_it) {
  tracked::alive = 0;
  small_queue q;
  q.emplace_with([] { return tracked(0); });
  int next = 1;
  std::vector<int> order;
  while (!q.empty()) {
    tracked& front = q.front();
    const tracked* where = &front;
    // A handler sending more: three new entries each, crossing chunk boundaries, until 50.
    for (int k = 0; k < 3 && next < 50; ++k) {
      const int v = next++;
      q.emplace_with([v] { return tracked(v); });
    }
    EXPECT_EQ(&q.front(), where) << "the entry being handled moved";
    order.push_back(front.value);
    q.pop();
  }
  ASSERT_EQ(order.size(), 50U);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(order[i], i);
  }
  EXPECT_EQ(tracked::alive, 0);
}

TEST(local_queue, destroys_the_entries_left_at_its_destruction) {
  tracked::alive = 0;
  {
    small_queue q;
    for (int i = 0; i < 11; ++i) {
      q.emplace_with([i] { return tracked(i); });
    }
    q.pop();
    EXPECT_EQ(tracked::alive, 10);
  }
  EXPECT_EQ(tracked::alive, 0);
}

TEST(local_queue, works_on_after_giving_its_memory_back) {
  tracked::alive = 0;
  small_queue q;
  q.release_memory();  // before any use: nothing to free
  for (int i = 0; i < 9; ++i) {
    q.emplace_with([i] { return tracked(i); });
  }
  q.release_memory();  // not empty: only the spares go, the entries stay
  for (int i = 0; i < 9; ++i) {
    ASSERT_EQ(q.front().value, i);
    q.pop();
  }
  q.release_memory();  // empty: every chunk goes
  q.emplace_with([] { return tracked(42); });
  EXPECT_EQ(q.front().value, 42);
  q.pop();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(tracked::alive, 0);
}

TEST(local_queue, a_make_that_throws_queues_nothing) {
  tracked::alive = 0;
  small_queue q;
  q.emplace_with([] { return tracked(1); });
  EXPECT_THROW(q.emplace_with([]() -> tracked { throw std::runtime_error("no"); }),
               std::runtime_error);
  EXPECT_EQ(q.size(), 1U);
  q.emplace_with([] { return tracked(2); });
  EXPECT_EQ(q.front().value, 1);
  q.pop();
  EXPECT_EQ(q.front().value, 2);
  q.pop();
  EXPECT_EQ(tracked::alive, 0);
}

}  // namespace
}  // namespace actnet
