// Model tests: long random sequences of operations on each buffer, checked byte for byte
// against a std::string that holds what the buffer should hold, with fd I/O through a
// socketpair. Seeds are fixed, so a failure replays exactly.
#include <gtest/gtest.h>

#include <actnet/buffers/elastic_buffer.hpp>
#include <actnet/buffers/linked_list_buffer.hpp>
#include <actnet/buffers/ring_buffer.hpp>
#include <actnet/error.hpp>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "buffers/test_util.hpp"

namespace actnet {
namespace {

using test::socket_pair;

constexpr std::size_t cap = 64 * 1024;

// Each adapter gives the model test one vocabulary over a buffer's own API.
struct ring_adapter {
  static constexpr bool has_append = false;
  ring_buffer buf{cap};

  std::error_code write(const std::string& s) { return buf.write(s); }
  std::error_code append(const std::string&) { return {}; }
  result<std::string> peek(std::size_t n) const {
    const result<byte_views> v = buf.peek(n);
    return v ? result<std::string>(v->to_string()) : result<std::string>(v.error());
  }
  std::string peek_all() const { return buf.peek_all().to_string(); }
  result<std::string> take(std::size_t n) {  // next(): zero-copy views of consumed bytes
    const result<byte_views> v = buf.next(n);
    return v ? result<std::string>(v->to_string()) : result<std::string>(v.error());
  }
  void after_handler() { buf.trim(); }
  bool holds_memory() const { return buf.capacity() > 0; }
};

// linked_list_buffer and elastic_buffer: copy-push, zero-copy append, iovec peeks, read.
template <class Buffer>
struct iovec_adapter {
  static constexpr bool has_append = true;
  Buffer buf;

  std::error_code write(const std::string& s) {
    if constexpr (std::is_same_v<Buffer, linked_list_buffer>) {
      return buf.push(s);
    } else {
      return buf.write(s);
    }
  }
  std::error_code append(const std::string& s) { return buf.append(block::copy_of(s)); }
  result<std::string> peek(std::size_t n) const {
    if (n > buf.size()) {
      return errc::short_buffer;
    }
    return test::peeked(buf, n);
  }
  std::string peek_all() const { return test::peeked(buf); }
  result<std::string> take(std::size_t n) {
    std::string s(n, '\0');
    if (const std::error_code ec = buf.read(std::as_writable_bytes(std::span(s.data(), n)))) {
      return ec;
    }
    return s;
  }
  void after_handler() {}
  bool holds_memory() const {
    if constexpr (std::is_same_v<Buffer, linked_list_buffer>) {
      return buf.block_count() > 0;
    } else {
      return buf.ring_capacity() > 0 || buf.list_size() > 0;
    }
  }
};

struct list_adapter : iovec_adapter<linked_list_buffer> {
  list_adapter() { buf = linked_list_buffer(cap); }
};

struct elastic_adapter : iovec_adapter<elastic_buffer> {
  elastic_adapter() { buf = elastic_buffer(4096, cap); }
};

template <class Adapter>
class buffer_model : public ::testing::Test {};

using adapters = ::testing::Types<ring_adapter, list_adapter, elastic_adapter>;
TYPED_TEST_SUITE(buffer_model, adapters);

template <class Adapter>
void run_model(std::uint32_t seed, int operations) {
  Adapter a;
  std::string model;    // what the buffer must hold
  std::string pending;  // bytes written into the socket that the buffer has not read yet
  socket_pair sp;
  ASSERT_TRUE(sp.ok());
  std::mt19937 rng(seed);
  std::vector<std::byte> spill(65536);
  const auto pick = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  // Mostly small sizes, sometimes large ones, so both wrap-around and caps happen.
  const auto size_for_write = [&] { return pick(0, 9) < 8 ? pick(0, 2048) : pick(2048, 20000); };
  const auto size_to_consume = [&] {
    return pick(0, 9) < 8 ? pick(0, model.size() + 16) : model.size();
  };

  for (int op = 0; op < operations; ++op) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " op " + std::to_string(op));
    switch (pick(0, 9)) {
      case 0:
      case 1: {  // write (copy)
        const std::string s = test::random_text(rng, size_for_write());
        const std::error_code ec = a.write(s);
        if (model.size() + s.size() > cap) {
          ASSERT_EQ(ec, make_error_code(errc::capacity_exceeded));
        } else {
          ASSERT_FALSE(ec) << ec.message();
          model += s;
        }
        break;
      }
      case 2: {  // append an adopted block, or a second write where there is none
        const std::string s = test::random_text(rng, size_for_write());
        const std::error_code ec = Adapter::has_append ? a.append(s) : a.write(s);
        if (model.size() + s.size() > cap) {
          ASSERT_EQ(ec, make_error_code(errc::capacity_exceeded));
        } else {
          ASSERT_FALSE(ec) << ec.message();
          model += s;
        }
        break;
      }
      case 3: {  // peek
        const std::size_t n = size_to_consume();
        const result<std::string> r = a.peek(n);
        if (n > model.size()) {
          ASSERT_EQ(r.error(), make_error_code(errc::short_buffer));
        } else {
          ASSERT_TRUE(r);
          ASSERT_EQ(*r, model.substr(0, n));
        }
        break;
      }
      case 4: {  // next (ring) or read
        const std::size_t n = size_to_consume();
        const result<std::string> r = a.take(n);
        if (n > model.size()) {
          ASSERT_EQ(r.error(), make_error_code(errc::short_buffer));
        } else {
          ASSERT_TRUE(r);
          ASSERT_EQ(*r, model.substr(0, n));
          model.erase(0, n);
        }
        a.after_handler();
        break;
      }
      case 5: {  // discard
        const std::size_t n = size_to_consume();
        const std::error_code ec = a.buf.discard(n);
        if (n > model.size()) {
          ASSERT_EQ(ec, make_error_code(errc::short_buffer));
        } else {
          ASSERT_FALSE(ec);
          model.erase(0, n);
        }
        break;
      }
      case 6:
      case 7: {  // fill from the socket
        if (pending.size() < 50000) {
          const std::string s = test::random_text(rng, size_for_write());
          ASSERT_TRUE(sp.send(s));
          pending += s;
        }
        const std::size_t spill_size = std::array<std::size_t, 4>{0, 16, 4096, 65536}[pick(0, 3)];
        const result<std::size_t> r =
            a.buf.fill_from(sp.near(), std::span(spill).first(spill_size));
        if (model.size() == cap) {
          ASSERT_EQ(r.error(), make_error_code(errc::capacity_exceeded));
        } else if (pending.empty()) {
          ASSERT_EQ(r.error(), std::errc::resource_unavailable_try_again);
        } else {
          ASSERT_TRUE(r) << r.error().message();
          ASSERT_GT(*r, 0U);
          ASSERT_LE(*r, std::min(pending.size(), cap - model.size()));
          model += pending.substr(0, *r);
          pending.erase(0, *r);
        }
        break;
      }
      case 8: {  // drain to the socket
        const result<std::size_t> r = a.buf.drain_to(sp.near());
        ASSERT_TRUE(r) << r.error().message();
        const std::string got = sp.receive();
        ASSERT_EQ(got.size(), *r);
        ASSERT_EQ(got, model.substr(0, *r));
        model.erase(0, *r);
        break;
      }
      case 9: {  // rarely clear; otherwise a full comparison
        if (pick(0, 99) == 0) {
          a.buf.clear();
          model.clear();
        }
        ASSERT_EQ(a.peek_all(), model);
        break;
      }
    }
    ASSERT_EQ(a.buf.size(), model.size());
    if (model.empty()) {
      a.after_handler();
      ASSERT_FALSE(a.holds_memory()) << "an empty buffer must give its memory back";
    }
  }
  ASSERT_EQ(a.peek_all(), model);
}

TYPED_TEST(buffer_model, random_operations_match_a_string_model_seed_1) {
  run_model<TypeParam>(1, 100000);
}

TYPED_TEST(buffer_model, random_operations_match_a_string_model_seed_2) {
  run_model<TypeParam>(20261121, 100000);
}

TYPED_TEST(buffer_model, a_drained_buffer_returns_all_pool_memory) {
  const std::int64_t base = test::pool_in_use();
  run_model<TypeParam>(3, 5000);
  EXPECT_EQ(test::pool_in_use(), base);
}

}  // namespace
}  // namespace actnet
