// offload_order: results run in submission order whatever order they arrive in, and an actor
// that has gone takes none.
#include "actnet/actors/detail/offload_order.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace actnet::detail {
namespace {

// Runs each result as it comes due, recording its number; `open` says whether the actor still
// takes results after one ran.
struct recorder {
  std::vector<int> ran;
  bool open = true;
  bool operator()(unique_function<void()>& deliver) {
    deliver();
    return open;
  }
};

unique_function<void()> result_of(recorder& r, int n) {
  return [&r, n] { r.ran.push_back(n); };
}

TEST(offload_order, results_arriving_out_of_order_run_in_submission_order) {
  offload_order order;
  recorder r;
  const std::uint64_t id = 42;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(order.next(id), static_cast<std::uint64_t>(i));
  }
  order.arrived(id, 2, result_of(r, 2), r);
  order.arrived(id, 1, result_of(r, 1), r);
  EXPECT_TRUE(r.ran.empty());  // 0 has not come
  order.arrived(id, 0, result_of(r, 0), r);
  EXPECT_EQ(r.ran, (std::vector<int>{0, 1, 2}));
  order.arrived(id, 3, result_of(r, 3), r);
  EXPECT_EQ(r.ran, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(order.size(), 0U);  // nothing in flight: no entry
}

TEST(offload_order, an_empty_result_passes_its_turn) {
  offload_order order;
  recorder r;
  (void)order.next(1);
  (void)order.next(1);
  order.arrived(1, 1, result_of(r, 1), r);
  order.arrived(1, 0, nullptr, r);  // its job threw: nothing to run, but 1 is due now
  EXPECT_EQ(r.ran, (std::vector<int>{1}));
}

TEST(offload_order, actors_are_sequenced_apart) {
  offload_order order;
  recorder r;
  (void)order.next(1);
  (void)order.next(2);
  (void)order.next(2);
  order.arrived(2, 1, result_of(r, 21), r);
  order.arrived(1, 0, result_of(r, 10), r);
  order.arrived(2, 0, result_of(r, 20), r);
  EXPECT_EQ(r.ran, (std::vector<int>{10, 20, 21}));
}

TEST(offload_order, a_failed_submission_gives_its_number_back) {
  offload_order order;
  recorder r;
  (void)order.next(7);
  const std::uint64_t failed = order.next(7);
  order.unused(7, failed);
  EXPECT_EQ(order.next(7), failed);  // the next submission takes it
  order.arrived(7, 0, result_of(r, 0), r);
  order.arrived(7, 1, result_of(r, 1), r);
  EXPECT_EQ(r.ran, (std::vector<int>{0, 1}));
  EXPECT_EQ(order.size(), 0U);
  const std::uint64_t only = order.next(8);
  order.unused(8, only);
  EXPECT_EQ(order.size(), 0U);  // nothing in flight: the entry goes
}

TEST(offload_order, an_actor_that_closes_takes_no_more_and_a_forgotten_one_none) {
  offload_order order;
  recorder r;
  for (int i = 0; i < 3; ++i) {
    (void)order.next(5);
  }
  order.arrived(5, 1, result_of(r, 1), r);
  order.arrived(5, 2, result_of(r, 2), r);
  r.open = false;  // the first result closes the actor
  order.arrived(5, 0, result_of(r, 0), r);
  EXPECT_EQ(r.ran, (std::vector<int>{0}));
  order.forget(5);  // reaped
  order.arrived(5, 3, result_of(r, 3), r);
  EXPECT_EQ(r.ran, (std::vector<int>{0}));
  EXPECT_EQ(order.size(), 0U);
}

TEST(offload_order, a_result_may_offload_again_while_it_runs) {
  offload_order order;
  std::vector<int> ran;
  std::uint64_t again = 0;
  (void)order.next(3);
  auto run = [&](unique_function<void()>& d) {
    d();
    return true;
  };
  order.arrived(
      3, 0,
      [&] {
        ran.push_back(0);
        again = order.next(3);  // the same entry, while arrived() walks it
      },
      run);
  EXPECT_EQ(again, 1U);
  EXPECT_EQ(order.size(), 1U);
  order.arrived(
      3, again, [&] { ran.push_back(1); }, run);
  EXPECT_EQ(ran, (std::vector<int>{0, 1}));
  EXPECT_EQ(order.size(), 0U);
}

}  // namespace
}  // namespace actnet::detail
