// linked_list_buffer: copying push, zero-copy append, iovec peeks, caps, writev over many blocks.
#include "actnet/buffers/linked_list_buffer.hpp"

#include <gtest/gtest.h>

#include <actnet/error.hpp>
#include <cstring>
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

TEST(linked_list_buffer, an_empty_buffer_holds_no_memory) {
  const auto allocations = block_pool::stats().allocations;
  const linked_list_buffer l;
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.block_count(), 0U);
  EXPECT_EQ(l.max_size(), defaults::list_max_size);
  EXPECT_EQ(block_pool::stats().allocations, allocations);
  EXPECT_THROW(linked_list_buffer(0), std::invalid_argument);
}

TEST(linked_list_buffer, small_pushes_share_a_block) {
  linked_list_buffer l;
  ASSERT_FALSE(l.push("abc"));
  ASSERT_FALSE(l.push("def"));
  EXPECT_EQ(l.size(), 6U);
  EXPECT_EQ(l.block_count(), 1U);
  EXPECT_EQ(peeked(l), "abcdef");
}

TEST(linked_list_buffer, a_large_push_spans_blocks_in_order) {
  linked_list_buffer l;
  std::mt19937 rng(11);
  const std::string payload = test::random_text(rng, 300000);
  ASSERT_FALSE(l.push(payload));
  EXPECT_EQ(l.size(), payload.size());
  EXPECT_GE(l.block_count(), payload.size() / defaults::list_max_block);
  EXPECT_EQ(peeked(l), payload);
}

TEST(linked_list_buffer, append_adopts_a_block_without_copying) {
  linked_list_buffer l;
  ASSERT_FALSE(l.push("head:"));
  block b = block::copy_of("adopted");
  const std::byte* where = b.data().data();
  ASSERT_FALSE(l.append(std::move(b)));
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move): adoption empties the handle
  std::vector<iovec> iov(4);
  ASSERT_EQ(l.peek(iov), 2U);
  EXPECT_EQ(iov[1].iov_base, where);
  EXPECT_EQ(peeked(l), "head:adopted");
}

TEST(linked_list_buffer, a_caller_filled_block_is_appended_as_committed) {
  block b = block::allocate(100);
  EXPECT_GE(b.capacity(), 100U);
  std::memcpy(b.space().data(), "partly", 6);
  b.commit(4);
  linked_list_buffer l;
  ASSERT_FALSE(l.append(std::move(b)));
  EXPECT_EQ(peeked(l), "part");
}

TEST(linked_list_buffer, appending_an_empty_block_changes_nothing) {
  linked_list_buffer l;
  ASSERT_FALSE(l.append(block::allocate(10)));
  ASSERT_FALSE(l.append(block{}));
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.block_count(), 0U);
}

TEST(linked_list_buffer, growth_past_the_cap_writes_nothing) {
  linked_list_buffer l(10);
  ASSERT_FALSE(l.push("12345678"));
  EXPECT_EQ(l.push("abc"), make_error_code(errc::capacity_exceeded));
  block b = block::copy_of("xyz");
  EXPECT_EQ(l.append(std::move(b)), make_error_code(errc::capacity_exceeded));
  EXPECT_TRUE(b);  // NOLINT(bugprone-use-after-move): a refused block stays with the caller
  EXPECT_EQ(b.size(), 3U);
  ASSERT_FALSE(l.push("90"));  // exactly full
  EXPECT_EQ(peeked(l), "1234567890");
}

TEST(linked_list_buffer, peek_stops_at_max_bytes_and_at_the_iovec_array) {
  linked_list_buffer l;
  for (const char* part : {"aaaa", "bbbb", "cccc"}) {
    ASSERT_FALSE(l.append(block::copy_of(part)));
  }
  EXPECT_EQ(peeked(l, 6), "aaaabb");
  std::vector<iovec> two(2);
  ASSERT_EQ(l.peek(two), 2U);
  EXPECT_EQ(two[1].iov_len, 4U);
  EXPECT_EQ(l.peek(two, 0), 0U);
}

TEST(linked_list_buffer, discard_frees_consumed_blocks_and_all_memory_when_drained) {
  const std::int64_t base = pool_in_use();
  linked_list_buffer l;
  for (const char* part : {"aaaa", "bbbb", "cccc"}) {
    ASSERT_FALSE(l.append(block::copy_of(part)));
  }
  ASSERT_FALSE(l.discard(6));
  EXPECT_EQ(l.block_count(), 2U);
  EXPECT_EQ(peeked(l), "bbcccc");
  EXPECT_EQ(l.discard(7), make_error_code(errc::short_buffer));
  EXPECT_EQ(l.size(), 6U);
  ASSERT_FALSE(l.discard(6));
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(pool_in_use(), base);
}

TEST(linked_list_buffer, read_copies_across_blocks_or_fails_without_consuming) {
  linked_list_buffer l;
  ASSERT_FALSE(l.append(block::copy_of("abc")));
  ASSERT_FALSE(l.append(block::copy_of("defg")));
  char out[5];
  ASSERT_FALSE(l.read(std::as_writable_bytes(std::span(out))));
  EXPECT_EQ(std::string_view(out, 5), "abcde");
  char more[3];
  EXPECT_EQ(l.read(std::as_writable_bytes(std::span(more))), make_error_code(errc::short_buffer));
  EXPECT_EQ(peeked(l), "fg");
  EXPECT_FALSE(l.read({}));
}

TEST(linked_list_buffer, fill_from_reads_into_the_last_block_and_spill) {
  socket_pair sp;
  std::mt19937 rng(5);
  const std::string payload = test::random_text(rng, 20000);
  ASSERT_TRUE(sp.send(payload));
  linked_list_buffer l;
  ASSERT_FALSE(l.push("x"));
  std::byte spill[65536];
  const result<std::size_t> n = l.fill_from(sp.near(), spill);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, payload.size());
  EXPECT_EQ(peeked(l), "x" + payload);
}

TEST(linked_list_buffer, fill_from_respects_the_cap_and_max_bytes) {
  socket_pair sp;
  ASSERT_TRUE(sp.send(std::string(1000, 'r')));
  linked_list_buffer l(100);
  std::byte spill[4096];
  result<std::size_t> n = l.fill_from(sp.near(), spill, 30);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 30U);
  n = l.fill_from(sp.near(), spill);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 70U);
  EXPECT_EQ(l.fill_from(sp.near(), spill).error(), make_error_code(errc::capacity_exceeded));
}

TEST(linked_list_buffer, fill_from_without_data_leaves_no_memory_behind) {
  const std::int64_t base = pool_in_use();
  socket_pair sp;
  linked_list_buffer l;
  EXPECT_EQ(l.fill_from(sp.near(), {}).error(), std::errc::resource_unavailable_try_again);
  EXPECT_EQ(pool_in_use(), base);
  sp.close_far();
  const result<std::size_t> eof = l.fill_from(sp.near(), {});
  ASSERT_TRUE(eof);
  EXPECT_EQ(*eof, 0U);
  EXPECT_EQ(pool_in_use(), base);
}

TEST(linked_list_buffer, drain_to_sends_at_most_iov_max_blocks_per_call_in_order) {
  socket_pair sp;
  linked_list_buffer l;
  std::string expected;
  for (int i = 0; i < 1500; ++i) {
    const std::string part = std::to_string(i) + ",";
    expected += part;
    ASSERT_FALSE(l.append(block::copy_of(part)));
  }
  ASSERT_EQ(l.block_count(), 1500U);
  const result<std::size_t> first = l.drain_to(sp.near());
  ASSERT_TRUE(first);
  EXPECT_EQ(l.block_count(), 1500U - linked_list_buffer::max_iovecs);
  std::string received = sp.receive();
  while (!l.empty()) {
    ASSERT_TRUE(l.drain_to(sp.near()));
    received += sp.receive();
  }
  EXPECT_EQ(received, expected);
}

TEST(linked_list_buffer, drain_to_on_an_empty_buffer_makes_no_system_call) {
  linked_list_buffer l;
  const result<std::size_t> n = l.drain_to(-1);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0U);
}

TEST(linked_list_buffer, moves_transfer_the_chain) {
  linked_list_buffer a(500);
  ASSERT_FALSE(a.push("chain"));
  linked_list_buffer b(std::move(a));
  EXPECT_EQ(peeked(b), "chain");
  EXPECT_EQ(b.max_size(), 500U);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
  linked_list_buffer c;
  ASSERT_FALSE(c.push("old"));
  c = std::move(b);
  EXPECT_EQ(peeked(c), "chain");
}

}  // namespace
}  // namespace actnet
