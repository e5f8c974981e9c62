// block_pool: size classes, thread-cache reuse and bounds, counters across threads.
#include "actnet/buffers/block_pool.hpp"

#include <gtest/gtest.h>

#include <actnet/defaults.hpp>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

namespace actnet {
namespace {

TEST(block_pool, blocks_are_powers_of_two_of_at_least_the_minimum) {
  EXPECT_EQ(block_pool::block_size(0), block_pool::min_block);
  EXPECT_EQ(block_pool::block_size(1), 64U);
  EXPECT_EQ(block_pool::block_size(64), 64U);
  EXPECT_EQ(block_pool::block_size(65), 128U);
  EXPECT_EQ(block_pool::block_size(4096), 4096U);
  EXPECT_EQ(block_pool::block_size(4097), 8192U);
}

TEST(block_pool, an_allocation_is_writable_and_counted_until_returned) {
  const pool_stats before = block_pool::stats();
  const std::span<std::byte> b = block_pool::allocate(1000);
  ASSERT_EQ(b.size(), 1024U);
  std::memset(b.data(), 0xab, b.size());
  const pool_stats during = block_pool::stats();
  EXPECT_EQ(during.bytes_in_use - before.bytes_in_use, 1024);
  EXPECT_EQ(during.allocations - before.allocations, 1U);
  block_pool::deallocate(b);
  EXPECT_EQ(block_pool::stats().bytes_in_use, before.bytes_in_use);
}

TEST(block_pool, a_returned_block_is_reused_without_going_upstream) {
  block_pool::deallocate(block_pool::allocate(2048));  // warm this thread's cache
  const pool_stats before = block_pool::stats();
  const std::span<std::byte> b = block_pool::allocate(2048);
  EXPECT_EQ(block_pool::stats().upstream_allocations, before.upstream_allocations);
  EXPECT_EQ(block_pool::stats().bytes_cached, before.bytes_cached - 2048);
  block_pool::deallocate(b);
  EXPECT_EQ(block_pool::stats().bytes_cached, before.bytes_cached);
}

TEST(block_pool, trimming_gives_the_thread_cache_back) {
  std::vector<std::span<std::byte>> blocks;
  for (int i = 0; i < 8; ++i) {
    blocks.push_back(block_pool::allocate(4096));
  }
  for (const auto b : blocks) {
    block_pool::deallocate(b);
  }
  EXPECT_GE(block_pool::stats().bytes_cached, 8 * 4096);
  block_pool::trim_thread_cache();
  EXPECT_EQ(block_pool::stats().bytes_cached, 0);  // the only thread with a cache is this one
}

TEST(block_pool, a_thread_cache_keeps_at_most_its_per_class_budget) {
  block_pool::trim_thread_cache();
  constexpr std::size_t size = 64 * 1024;
  const std::size_t count = 2 * defaults::pool_cache_bytes_per_class / size;
  std::vector<std::span<std::byte>> blocks;
  for (std::size_t i = 0; i < count; ++i) {
    blocks.push_back(block_pool::allocate(size));
  }
  for (const auto b : blocks) {
    block_pool::deallocate(b);
  }
  EXPECT_EQ(block_pool::stats().bytes_cached,
            static_cast<std::int64_t>(defaults::pool_cache_bytes_per_class));
  block_pool::trim_thread_cache();
}

TEST(block_pool, blocks_over_the_largest_cached_size_go_straight_back) {
  block_pool::trim_thread_cache();
  const std::span<std::byte> b = block_pool::allocate(defaults::pool_max_cached_block * 2);
  block_pool::deallocate(b);
  EXPECT_EQ(block_pool::stats().bytes_cached, 0);
}

TEST(block_pool, a_request_over_the_largest_block_throws) {
  EXPECT_THROW((void)block_pool::allocate(block_pool::max_block + 1), std::length_error);
}

TEST(block_pool, a_block_returned_on_another_thread_is_accounted) {
  const std::int64_t base = block_pool::stats().bytes_in_use;
  const std::span<std::byte> b = block_pool::allocate(512);
  std::thread other([b] { block_pool::deallocate(b); });
  other.join();
  EXPECT_EQ(block_pool::stats().bytes_in_use, base);
}

TEST(block_pool, counters_return_to_zero_after_concurrent_churn) {
  const pool_stats before = block_pool::stats();
  constexpr int threads = 4;
  constexpr int rounds = 20000;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([t] {
      std::vector<std::span<std::byte>> held;
      for (int i = 0; i < rounds; ++i) {
        held.push_back(block_pool::allocate(std::size_t{64} << ((i + t) % 10)));
        if (held.size() > 16) {
          block_pool::deallocate(held.front());
          held.erase(held.begin());
        }
        (void)block_pool::stats();  // readers race with writers by design
      }
      for (const auto b : held) {
        block_pool::deallocate(b);
      }
    });
  }
  for (auto& w : workers) {
    w.join();
  }
  const pool_stats after = block_pool::stats();
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  EXPECT_EQ(after.allocations - before.allocations, std::uint64_t{threads} * rounds);
}

}  // namespace
}  // namespace actnet
