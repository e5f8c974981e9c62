// elastic_buffer: ring first, spill to the list past the threshold, order kept, caps, memory.
#include "actnet/buffers/elastic_buffer.hpp"

#include <gtest/gtest.h>

#include <actnet/error.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "buffers/test_util.hpp"

namespace actnet {
namespace {

using test::peeked;
using test::pool_in_use;
using test::socket_pair;

TEST(elastic_buffer, an_empty_buffer_is_small_and_holds_no_memory) {
  static_assert(sizeof(elastic_buffer) <= 32);
  const auto allocations = block_pool::stats().allocations;
  const elastic_buffer e;
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e.ring_capacity(), 0U);
  EXPECT_EQ(e.ring_threshold(), defaults::elastic_ring_threshold);
  EXPECT_EQ(e.max_size(), defaults::elastic_max_size);
  EXPECT_EQ(block_pool::stats().allocations, allocations);
}

TEST(elastic_buffer, bad_limits_are_rejected_at_construction) {
  EXPECT_THROW(elastic_buffer(0, 100), std::invalid_argument);
  EXPECT_THROW(elastic_buffer(200, 100), std::invalid_argument);
  EXPECT_THROW(elastic_buffer(1024, elastic_buffer::largest_size + std::size_t{1}),
               std::invalid_argument);
  EXPECT_NO_THROW(elastic_buffer(1000, 1024));
}

TEST(elastic_buffer, writes_within_the_threshold_stay_in_the_ring) {
  elastic_buffer e(1024, 1 << 20);
  ASSERT_FALSE(e.write(std::string(1000, 'a')));
  ASSERT_FALSE(e.write(std::string(24, 'b')));
  EXPECT_EQ(e.list_size(), 0U);
  EXPECT_EQ(e.ring_capacity(), 1024U);
  EXPECT_EQ(e.size(), 1024U);
}

TEST(elastic_buffer, past_the_threshold_writes_spill_to_the_list_and_keep_their_order) {
  elastic_buffer e(1024, 1 << 20);
  ASSERT_FALSE(e.write(std::string(1000, 'a')));
  ASSERT_FALSE(e.write(std::string(100, 'b')));  // would pass 1024: to the list
  EXPECT_EQ(e.list_size(), 100U);
  ASSERT_FALSE(e.discard(990));  // the ring has room again...
  ASSERT_FALSE(e.write("c"));    // ...but the list is not empty, so this goes behind it
  EXPECT_EQ(e.list_size(), 101U);
  EXPECT_EQ(peeked(e), std::string(10, 'a') + std::string(100, 'b') + "c");
}

TEST(elastic_buffer, writes_return_to_the_ring_once_the_list_drains) {
  elastic_buffer e(1024, 1 << 20);
  ASSERT_FALSE(e.write(std::string(2000, 'a')));  // straight to the list
  EXPECT_EQ(e.list_size(), 2000U);
  ASSERT_FALSE(e.discard(2000));
  EXPECT_EQ(e.list_size(), 0U);
  ASSERT_FALSE(e.write("small"));
  EXPECT_EQ(e.list_size(), 0U);
  EXPECT_EQ(e.ring_capacity(), 1024U);
}

TEST(elastic_buffer, an_appended_block_goes_behind_the_ring_bytes_without_a_copy) {
  elastic_buffer e;
  ASSERT_FALSE(e.write("ring,"));
  block b = block::copy_of("block");
  const std::byte* where = b.data().data();
  ASSERT_FALSE(e.append(std::move(b)));
  std::vector<iovec> iov(4);
  ASSERT_EQ(e.peek(iov), 2U);
  EXPECT_EQ(iov[1].iov_base, where);
  EXPECT_EQ(peeked(e), "ring,block");
}

TEST(elastic_buffer, growth_past_the_cap_writes_nothing) {
  elastic_buffer e(64, 100);
  ASSERT_FALSE(e.write(std::string(60, 'a')));
  ASSERT_FALSE(e.write(std::string(40, 'b')));  // exactly full, 40 in the list
  EXPECT_EQ(e.write("c"), make_error_code(errc::capacity_exceeded));
  block b = block::copy_of("d");
  EXPECT_EQ(e.append(std::move(b)), make_error_code(errc::capacity_exceeded));
  EXPECT_EQ(b.size(), 1U);  // NOLINT(bugprone-use-after-move): refused, still the caller's
  EXPECT_EQ(e.size(), 100U);
}

TEST(elastic_buffer, discard_and_read_cross_from_ring_to_list) {
  elastic_buffer e(64, 4096);
  ASSERT_FALSE(e.write(std::string(50, 'a')));
  ASSERT_FALSE(e.write(std::string(50, 'b')));
  char out[60];
  ASSERT_FALSE(e.read(std::as_writable_bytes(std::span(out))));
  EXPECT_EQ(std::string_view(out, 60), std::string(50, 'a') + std::string(10, 'b'));
  EXPECT_EQ(e.discard(41), make_error_code(errc::short_buffer));
  EXPECT_EQ(e.read(std::as_writable_bytes(std::span(out, 41))),
            make_error_code(errc::short_buffer));
  EXPECT_EQ(e.size(), 40U);
  ASSERT_FALSE(e.discard(40));
  EXPECT_TRUE(e.empty());
}

TEST(elastic_buffer, peek_respects_max_bytes_across_both_parts) {
  elastic_buffer e(64, 4096);
  ASSERT_FALSE(e.write(std::string(40, 'a')));
  ASSERT_FALSE(e.write(std::string(40, 'b')));
  EXPECT_EQ(peeked(e, 50), std::string(40, 'a') + std::string(10, 'b'));
  EXPECT_EQ(peeked(e, 30), std::string(30, 'a'));
}

TEST(elastic_buffer, drained_it_gives_every_byte_of_memory_back) {
  const std::int64_t base = pool_in_use();
  socket_pair sp;
  elastic_buffer e;
  std::mt19937 rng(9);
  const std::string payload = test::random_text(rng, 200000);  // ring full, then the list
  ASSERT_FALSE(e.write(payload));
  ASSERT_FALSE(e.write(payload));
  EXPECT_GT(e.list_size(), 0U);
  std::string received;
  while (!e.empty()) {
    const result<std::size_t> n = e.drain_to(sp.near());
    ASSERT_TRUE(n || n.error() == std::errc::resource_unavailable_try_again);
    received += sp.receive();
  }
  EXPECT_EQ(received, payload + payload);
  EXPECT_EQ(e.ring_capacity(), 0U);
  EXPECT_EQ(pool_in_use(), base);
}

TEST(elastic_buffer, fill_from_reads_into_the_ring_then_into_the_list) {
  socket_pair sp;
  std::mt19937 rng(13);
  const std::string payload = test::random_text(rng, 3000);
  ASSERT_TRUE(sp.send(payload));
  elastic_buffer e(1024, 1 << 20);
  std::byte spill[512];
  std::size_t total = 0;
  while (total < payload.size()) {
    const result<std::size_t> n = e.fill_from(sp.near(), spill);
    ASSERT_TRUE(n) << n.error().message();
    total += *n;
  }
  EXPECT_GT(e.list_size(), 0U);
  EXPECT_EQ(peeked(e), payload);
}

TEST(elastic_buffer, fill_from_stops_at_the_cap) {
  socket_pair sp;
  ASSERT_TRUE(sp.send(std::string(500, 'f')));
  elastic_buffer e(64, 100);
  std::byte spill[1024];
  std::size_t total = 0;
  for (;;) {
    const result<std::size_t> n = e.fill_from(sp.near(), spill);
    if (!n) {
      EXPECT_EQ(n.error(), make_error_code(errc::capacity_exceeded));
      break;
    }
    total += *n;
  }
  EXPECT_EQ(total, 100U);
  EXPECT_EQ(e.size(), 100U);
}

TEST(elastic_buffer, moves_transfer_ring_and_list) {
  elastic_buffer a(64, 4096);
  ASSERT_FALSE(a.write(std::string(60, 'a')));
  ASSERT_FALSE(a.write(std::string(60, 'b')));
  elastic_buffer b(std::move(a));
  EXPECT_EQ(peeked(b), std::string(60, 'a') + std::string(60, 'b'));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
  elastic_buffer c;
  ASSERT_FALSE(c.write("old"));
  c = std::move(b);
  EXPECT_EQ(c.size(), 120U);
  EXPECT_EQ(c.max_size(), 4096U);
}

}  // namespace
}  // namespace actnet
