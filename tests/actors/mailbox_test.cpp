// mailbox: delivery exactly once, FIFO per producer, coalesced wake-ups that are never lost.
#include "actnet/actors/detail/mailbox.hpp"

#include <gtest/gtest.h>

#include <actnet/actors/engine.hpp>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace actnet {
namespace {

struct counting_waker {
  std::atomic<int>* wakes;
  void operator()() const noexcept { ++*wakes; }
};

TEST(mailbox, a_post_wakes_the_owner_only_when_it_sleeps) {
  std::atomic<int> wakes{0};
  detail::mailbox<int, counting_waker> box(counting_waker{&wakes});
  box.post(1);  // awake owner: no wake
  EXPECT_EQ(wakes, 0);
  EXPECT_FALSE(box.prepare_to_sleep());  // mail is waiting: must not sleep
  std::vector<int> got;
  box.drain([&](int&& v) { got.push_back(v); }, 10);
  ASSERT_TRUE(box.prepare_to_sleep());
  box.post(2);
  box.post(3);  // coalesced: the owner was woken once
  EXPECT_EQ(wakes, 1);
  box.awake();
  box.drain([&](int&& v) { got.push_back(v); }, 10);
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(box.wakeups(), 1U);
}

TEST(mailbox, drain_stops_at_its_budget) {
  std::atomic<int> wakes{0};
  detail::mailbox<int, counting_waker> box(counting_waker{&wakes});
  for (int i = 0; i < 1000; ++i) {
    box.post(int{i});
  }
  int seen = 0;
  EXPECT_EQ(box.drain([&](int&&) { ++seen; }, 256), 256U);
  EXPECT_EQ(seen, 256);
  EXPECT_EQ(box.drain([&](int&&) { ++seen; }, 10000), 744U);
}

// Four threads post a million closures each to a loop that sleeps with no timeout (no timers,
// no sockets): only the wake-up protocol can get each message delivered; more than the mailbox
// may hold at once, so a producer that meets queue_full tries again. The test waits on a
// condition the last message sets, so a lost wake-up shows as a hang the ctest timeout ends.
TEST(mailbox, four_producers_a_million_messages_each_to_a_sleeping_loop) {
  constexpr int producers = 4;
  constexpr int per_producer = 1'000'000;
  engine_options o;
  o.loops = 1;
  o.mail_linger = std::chrono::microseconds(0);  // the loop sleeps as soon as it runs dry
  engine e(o);
  std::thread runner([&e] { e.run(); });

  std::array<int, producers> next{};  // loop thread only
  bool in_order = true;               // loop thread only
  int delivered = 0;                  // loop thread only
  std::mutex mutex;
  std::condition_variable all_done;
  bool finished = false;

  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) {
        // A full mailbox (mailbox_cap) refuses the message: the producer tries it again, so
        // the order per producer must survive refusals too.
        while (e.loop(0).post([&, p, i](event_loop&) {
          auto& expected = next[static_cast<std::size_t>(p)];
          in_order = in_order && expected == i;
          expected = i + 1;
          if (++delivered == producers * per_producer) {
            const std::lock_guard lock(mutex);
            finished = true;
            all_done.notify_one();
          }
        })) {
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  {
    std::unique_lock lock(mutex);
    all_done.wait(lock, [&] { return finished; });
  }
  e.stop();
  runner.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(delivered, producers * per_producer);
  EXPECT_EQ(next,
            (std::array<int, producers>{per_producer, per_producer, per_producer, per_producer}));
  EXPECT_LT(e.loop(0).wakeups(), std::uint64_t{producers} * per_producer);  // coalesced
}

}  // namespace
}  // namespace actnet
