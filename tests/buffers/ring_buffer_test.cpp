// ring_buffer: growth, wrap-around, caps, zero-copy views, fd I/O, and memory given back.
#include "actnet/buffers/ring_buffer.hpp"

#include <gtest/gtest.h>

#include <actnet/error.hpp>
#include <cerrno>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "buffers/test_util.hpp"

namespace actnet {
namespace {

using test::bytes_of;
using test::pool_in_use;
using test::socket_pair;

TEST(ring_buffer, an_empty_buffer_is_small_and_holds_no_memory) {
  static_assert(sizeof(ring_buffer) <= 32);
  const auto allocations = block_pool::stats().allocations;
  ring_buffer rb;
  EXPECT_EQ(rb.size(), 0U);
  EXPECT_TRUE(rb.empty());
  EXPECT_EQ(rb.capacity(), 0U);
  EXPECT_EQ(rb.max_capacity(), defaults::ring_max_capacity);
  EXPECT_EQ(block_pool::stats().allocations, allocations);
}

TEST(ring_buffer, max_capacity_rounds_up_to_a_power_of_two) {
  EXPECT_EQ(ring_buffer(1000).max_capacity(), 1024U);
  EXPECT_EQ(ring_buffer(4096).max_capacity(), 4096U);
  EXPECT_EQ(ring_buffer(1).max_capacity(), 1U);
}

TEST(ring_buffer, a_zero_or_oversized_cap_is_rejected) {
  EXPECT_THROW(ring_buffer(0), std::invalid_argument);
  EXPECT_THROW(ring_buffer(ring_buffer::largest_capacity + 1), std::invalid_argument);
  EXPECT_NO_THROW(ring_buffer{ring_buffer::largest_capacity});
}

TEST(ring_buffer, a_zero_length_write_allocates_nothing) {
  ring_buffer rb;
  EXPECT_FALSE(rb.write(std::string_view{}));
  EXPECT_EQ(rb.capacity(), 0U);
}

TEST(ring_buffer, the_first_write_allocates_the_initial_capacity_or_the_next_power_of_two) {
  ring_buffer small;
  ASSERT_FALSE(small.write("hello"));
  EXPECT_EQ(small.capacity(), defaults::ring_initial_capacity);

  ring_buffer big;
  ASSERT_FALSE(big.write(std::string(3000, 'x')));
  EXPECT_EQ(big.capacity(), 4096U);
}

TEST(ring_buffer, writes_grow_the_capacity_by_powers_of_two_up_to_the_cap) {
  ring_buffer rb(8192);
  ASSERT_FALSE(rb.write(std::string(1000, 'a')));
  EXPECT_EQ(rb.capacity(), 1024U);
  ASSERT_FALSE(rb.write(std::string(1000, 'b')));
  EXPECT_EQ(rb.capacity(), 2048U);
  ASSERT_FALSE(rb.write(std::string(5000, 'c')));
  EXPECT_EQ(rb.capacity(), 8192U);
  EXPECT_EQ(rb.peek_all().to_string(),
            std::string(1000, 'a') + std::string(1000, 'b') + std::string(5000, 'c'));
}

TEST(ring_buffer, after_a_drain_the_next_block_starts_at_half_the_last_one) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write(std::string(5000, 'a')));
  ASSERT_EQ(rb.capacity(), 8192U);
  const std::vector<std::size_t> expected{4096, 2048, 1024, 1024};
  for (const std::size_t capacity : expected) {
    ASSERT_FALSE(rb.discard(rb.size()));
    EXPECT_EQ(rb.capacity(), 0U);  // drained: no memory held
    ASSERT_FALSE(rb.write("small"));
    EXPECT_EQ(rb.capacity(), capacity);
  }
}

TEST(ring_buffer, an_exactly_full_buffer_accepts_no_more_at_its_cap) {
  ring_buffer rb(1024);
  ASSERT_FALSE(rb.write(std::string(1024, 'z')));
  EXPECT_EQ(rb.size(), 1024U);
  EXPECT_EQ(rb.capacity(), 1024U);
  EXPECT_EQ(rb.write("!"), make_error_code(errc::capacity_exceeded));
  EXPECT_EQ(rb.size(), 1024U);
  EXPECT_EQ(rb.peek_all().to_string(), std::string(1024, 'z'));
}

// Found by the fuzzer: the pool's smallest block (64 bytes) is bigger than a tiny cap, and the
// inline write path trusted the block's size over the cap.
TEST(ring_buffer, a_cap_smaller_than_the_smallest_pool_block_still_holds) {
  ring_buffer rb(2);
  ASSERT_FALSE(rb.write("a"));
  EXPECT_EQ(rb.capacity(), 2U);
  EXPECT_EQ(rb.write("bc"), make_error_code(errc::capacity_exceeded));
  ASSERT_FALSE(rb.write("b"));
  EXPECT_EQ(rb.write("c"), make_error_code(errc::capacity_exceeded));
  ASSERT_FALSE(rb.discard(1));
  ASSERT_FALSE(rb.write("c"));  // wraps inside the 2-byte ring
  EXPECT_EQ(rb.peek_all().to_string(), "bc");
}

TEST(ring_buffer, a_write_past_the_cap_writes_nothing) {
  ring_buffer rb(2048);
  ASSERT_FALSE(rb.write(std::string(1500, 'a')));
  EXPECT_EQ(rb.write(std::string(600, 'b')), make_error_code(errc::capacity_exceeded));
  EXPECT_EQ(rb.size(), 1500U);
  EXPECT_EQ(rb.capacity(), 2048U);
}

TEST(ring_buffer, wrapped_bytes_peek_as_two_spans_in_order) {
  ring_buffer rb(1024);
  ASSERT_FALSE(rb.write(std::string(700, 'a')));
  ASSERT_FALSE(rb.discard(600));
  ASSERT_FALSE(rb.write(std::string(400, 'b')));  // 100 'a' + 400 'b' from offset 600: wraps
  EXPECT_EQ(rb.capacity(), 1024U);
  const byte_views all = rb.peek_all();
  EXPECT_FALSE(all.contiguous());
  EXPECT_EQ(all.first.size(), 424U);
  EXPECT_EQ(all.second.size(), 76U);
  EXPECT_EQ(all.to_string(), std::string(100, 'a') + std::string(400, 'b'));

  const result<byte_views> head = rb.peek(50);
  ASSERT_TRUE(head);
  EXPECT_TRUE(head->contiguous());
  EXPECT_EQ(head->to_string(), std::string(50, 'a'));
  const result<byte_views> across = rb.peek(450);
  ASSERT_TRUE(across);
  EXPECT_EQ(across->first.size(), 424U);
  EXPECT_EQ(across->to_string(), std::string(100, 'a') + std::string(350, 'b'));
}

TEST(ring_buffer, growth_while_wrapped_keeps_the_order_and_unwraps) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write(std::string(1000, 'a')));
  ASSERT_FALSE(rb.discard(900));
  ASSERT_FALSE(rb.write(std::string(500, 'b')));  // wraps in 1024
  ASSERT_FALSE(rb.peek_all().contiguous());
  ASSERT_FALSE(rb.write(std::string(2000, 'c')));  // grows to 4096
  EXPECT_EQ(rb.capacity(), 4096U);
  EXPECT_TRUE(rb.peek_all().contiguous());
  EXPECT_EQ(rb.peek_all().to_string(),
            std::string(100, 'a') + std::string(500, 'b') + std::string(2000, 'c'));
}

TEST(ring_buffer, peeking_more_than_is_buffered_is_a_short_buffer_error) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("abc"));
  const result<byte_views> r = rb.peek(4);
  EXPECT_EQ(r.error(), make_error_code(errc::short_buffer));
  EXPECT_EQ(rb.size(), 3U);
  ring_buffer empty;
  EXPECT_EQ(empty.peek(1).error(), make_error_code(errc::short_buffer));
}

TEST(ring_buffer, zero_length_peek_next_discard_and_read_succeed_on_an_empty_buffer) {
  ring_buffer rb;
  EXPECT_TRUE(rb.peek(0));
  EXPECT_TRUE(rb.peek(0)->empty());
  EXPECT_TRUE(rb.next(0));
  EXPECT_FALSE(rb.discard(0));
  EXPECT_FALSE(rb.read({}));
  EXPECT_TRUE(rb.peek_all().empty());
  EXPECT_EQ(rb.capacity(), 0U);
}

TEST(ring_buffer, next_consumes_and_returns_zero_copy_views) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("hello world"));
  const byte_views before = rb.peek_all();
  const result<byte_views> r = rb.next(5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first.data(), before.first.data());  // a view into the ring, not a copy
  EXPECT_EQ(r->to_string(), "hello");
  EXPECT_EQ(rb.size(), 6U);
  EXPECT_EQ(rb.peek_all().to_string(), " world");
}

TEST(ring_buffer, next_past_the_end_consumes_nothing) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("abc"));
  EXPECT_EQ(rb.next(4).error(), make_error_code(errc::short_buffer));
  EXPECT_EQ(rb.peek_all().to_string(), "abc");
}

TEST(ring_buffer, views_from_a_draining_next_stay_valid_until_trim) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("last bytes"));
  const result<byte_views> r = rb.next(10);
  ASSERT_TRUE(r);
  EXPECT_TRUE(rb.empty());
  EXPECT_GT(rb.capacity(), 0U);  // kept for the views
  EXPECT_EQ(r->to_string(), "last bytes");
  rb.trim();
  EXPECT_EQ(rb.capacity(), 0U);
}

TEST(ring_buffer, a_write_after_a_draining_next_reuses_the_block) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("one"));
  ASSERT_TRUE(rb.next(3));
  const auto allocations = block_pool::stats().allocations;
  ASSERT_FALSE(rb.write("two"));
  EXPECT_EQ(block_pool::stats().allocations, allocations);
  EXPECT_EQ(rb.peek_all().to_string(), "two");
}

TEST(ring_buffer, draining_by_discard_or_read_gives_the_memory_back) {
  const std::int64_t base = pool_in_use();
  ring_buffer rb;
  ASSERT_FALSE(rb.write(std::string(5000, 'q')));
  EXPECT_EQ(pool_in_use() - base, 8192);
  ASSERT_FALSE(rb.discard(4000));
  EXPECT_EQ(rb.capacity(), 8192U);  // not drained yet
  std::string rest(1000, '\0');
  ASSERT_FALSE(rb.read(std::as_writable_bytes(std::span(rest.data(), rest.size()))));
  EXPECT_EQ(rest, std::string(1000, 'q'));
  EXPECT_EQ(rb.capacity(), 0U);
  EXPECT_EQ(pool_in_use(), base);
}

TEST(ring_buffer, discard_past_the_end_drops_nothing) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("abc"));
  EXPECT_EQ(rb.discard(4), make_error_code(errc::short_buffer));
  EXPECT_EQ(rb.size(), 3U);
}

TEST(ring_buffer, read_copies_exactly_or_fails_without_consuming) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("abcdef"));
  char out[4];
  ASSERT_FALSE(rb.read(std::as_writable_bytes(std::span(out))));
  EXPECT_EQ(std::string_view(out, 4), "abcd");
  char more[3];
  EXPECT_EQ(rb.read(std::as_writable_bytes(std::span(more))), make_error_code(errc::short_buffer));
  EXPECT_EQ(rb.peek_all().to_string(), "ef");
}

TEST(ring_buffer, read_across_the_wrap_point) {
  ring_buffer rb(1024);
  ASSERT_FALSE(rb.write(std::string(1000, 'a')));
  ASSERT_FALSE(rb.discard(990));
  ASSERT_FALSE(rb.write(std::string(100, 'b')));
  std::string out(110, '\0');
  ASSERT_FALSE(rb.read(std::as_writable_bytes(std::span(out.data(), out.size()))));
  EXPECT_EQ(out, std::string(10, 'a') + std::string(100, 'b'));
}

TEST(ring_buffer, clear_drops_everything_and_the_memory) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("abc"));
  rb.clear();
  EXPECT_TRUE(rb.empty());
  EXPECT_EQ(rb.capacity(), 0U);
}

TEST(ring_buffer, trim_keeps_a_non_empty_buffer) {
  ring_buffer rb;
  ASSERT_FALSE(rb.write("abc"));
  rb.trim();
  EXPECT_EQ(rb.peek_all().to_string(), "abc");
}

TEST(ring_buffer, moves_transfer_the_bytes_and_leave_the_source_empty) {
  ring_buffer a(4096);
  ASSERT_FALSE(a.write("moved"));
  ring_buffer b(std::move(a));
  EXPECT_EQ(b.peek_all().to_string(), "moved");
  EXPECT_EQ(b.max_capacity(), 4096U);
  EXPECT_EQ(a.capacity(), 0U);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  ring_buffer c;
  ASSERT_FALSE(c.write("old"));
  c = std::move(b);
  EXPECT_EQ(c.peek_all().to_string(), "moved");
}

TEST(ring_buffer, fill_from_reads_into_free_space_and_spill) {
  socket_pair sp;
  ASSERT_TRUE(sp.ok());
  ASSERT_TRUE(sp.send("first message"));
  ring_buffer rb;
  std::byte spill[64];
  const result<std::size_t> n = rb.fill_from(sp.near(), spill);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, 13U);
  EXPECT_EQ(rb.peek_all().to_string(), "first message");
}

TEST(ring_buffer, fill_from_uses_the_spill_area_to_read_more_than_the_free_space) {
  socket_pair sp;
  std::mt19937 rng(7);
  const std::string payload = test::random_text(rng, 3000);
  ASSERT_TRUE(sp.send(payload));
  ring_buffer rb;
  ASSERT_FALSE(rb.write("x"));  // 1024 capacity, 1023 free
  std::byte spill[4096];
  const result<std::size_t> n = rb.fill_from(sp.near(), spill);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 3000U);  // one readv: 1023 into the ring, the rest through the spill
  EXPECT_EQ(rb.peek_all().to_string(), "x" + payload);
  EXPECT_EQ(rb.capacity(), 4096U);
}

TEST(ring_buffer, fill_from_with_no_spill_area_reads_into_the_ring) {
  socket_pair sp;
  ASSERT_TRUE(sp.send("no spill"));
  ring_buffer rb;
  const result<std::size_t> n = rb.fill_from(sp.near(), {});
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 8U);
  EXPECT_EQ(rb.peek_all().to_string(), "no spill");
}

TEST(ring_buffer, fill_from_never_reads_past_the_cap) {
  socket_pair sp;
  ASSERT_TRUE(sp.send(std::string(5000, 'k')));
  ring_buffer rb(1024);
  std::byte spill[8192];
  const result<std::size_t> n = rb.fill_from(sp.near(), spill);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1024U);
  EXPECT_EQ(rb.fill_from(sp.near(), spill).error(), make_error_code(errc::capacity_exceeded));
  ASSERT_FALSE(rb.discard(1024));
  const result<std::size_t> again = rb.fill_from(sp.near(), spill);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 1024U);  // the unread bytes were left in the socket, not lost
}

TEST(ring_buffer, fill_from_reports_end_of_stream_as_zero) {
  socket_pair sp;
  sp.close_far();
  ring_buffer rb;
  std::byte spill[64];
  const result<std::size_t> n = rb.fill_from(sp.near(), spill);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0U);
  EXPECT_EQ(rb.capacity(), 0U);
}

TEST(ring_buffer, fill_from_reports_would_block_as_an_error) {
  socket_pair sp;
  ring_buffer rb;
  std::byte spill[64];
  EXPECT_EQ(rb.fill_from(sp.near(), spill).error(), std::errc::resource_unavailable_try_again);
  EXPECT_TRUE(rb.empty());
}

TEST(ring_buffer, drain_to_writes_wrapped_bytes_in_one_writev) {
  socket_pair sp;
  ring_buffer rb(1024);
  ASSERT_FALSE(rb.write(std::string(1000, 'a')));
  ASSERT_FALSE(rb.discard(900));
  ASSERT_FALSE(rb.write(std::string(300, 'b')));
  ASSERT_FALSE(rb.peek_all().contiguous());
  const result<std::size_t> n = rb.drain_to(sp.near());
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 400U);
  EXPECT_EQ(sp.receive(), std::string(100, 'a') + std::string(300, 'b'));
  EXPECT_EQ(rb.capacity(), 0U);
}

TEST(ring_buffer, drain_to_on_an_empty_buffer_makes_no_system_call) {
  ring_buffer rb;
  const result<std::size_t> n = rb.drain_to(-1);  // a bad fd would be EBADF if it were used
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0U);
}

TEST(ring_buffer, drain_to_a_closed_peer_reports_the_error_and_keeps_the_bytes) {
  socket_pair sp;
  sp.close_far();
  ring_buffer rb;
  ASSERT_FALSE(rb.write("unsent"));
  EXPECT_EQ(rb.drain_to(sp.near()).error(), std::errc::broken_pipe);
  EXPECT_EQ(rb.peek_all().to_string(), "unsent");
}

TEST(ring_buffer, drain_to_a_full_socket_consumes_only_what_was_written) {
  socket_pair sp;
  ring_buffer rb;
  std::mt19937 rng(3);
  const std::string payload = test::random_text(rng, 4 << 20);
  ASSERT_FALSE(rb.write(payload));
  const result<std::size_t> n = rb.drain_to(sp.near());
  ASSERT_TRUE(n);
  ASSERT_LT(*n, payload.size());  // the socket buffer is smaller than 4 MiB
  EXPECT_EQ(rb.size(), payload.size() - *n);
  std::string received = sp.receive();
  while (!rb.empty()) {
    const result<std::size_t> more = rb.drain_to(sp.near());
    ASSERT_TRUE(more || more.error() == std::errc::resource_unavailable_try_again);
    received += sp.receive();
  }
  EXPECT_EQ(received, payload);
}

}  // namespace
}  // namespace actnet
