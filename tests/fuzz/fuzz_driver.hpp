// fuzz_driver: the one libFuzzer driver behind every buffer target. It decodes the input into
// operations on a buffer and checks every result against a std::string model, byte for byte.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <actnet/buffers/block.hpp>
#include <actnet/buffers/block_pool.hpp>
#include <actnet/buffers/byte_views.hpp>
#include <actnet/buffers/elastic_buffer.hpp>
#include <actnet/buffers/linked_list_buffer.hpp>
#include <actnet/buffers/ring_buffer.hpp>
#include <actnet/defaults.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "fuzz_check.hpp"

namespace actnet::fuzz {

// drain_to writes into a peer that may have shut its reading side; that must come back as
// EPIPE, not kill the fuzzer.
inline const bool sigpipe_ignored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// No single write is larger, so an input against a 64 MiB default cap stays fast.
inline constexpr std::size_t max_write = std::size_t{1} << 20;
inline constexpr std::size_t spill_size = defaults::read_spill_size;

// The situations the targets exist to reach. Counting each one is also a branch in this
// (instrumented) code, so libFuzzer keeps an input that first reaches it even when the library
// code it runs is covered already. The counts are printed at exit, as evidence.
struct milestones {
  std::uint64_t caps_hit = 0;             // write, append or fill_from refused at the cap
  std::uint64_t short_reads = 0;          // read, peek, next or discard past the end
  std::uint64_t wrapped_views = 0;        // ring: peek or next bytes crossing the ring's end
  std::uint64_t grown_while_wrapped = 0;  // a ring grown while its bytes wrap around
  std::uint64_t spills = 0;               // elastic: bytes sent to the list behind the ring
  std::uint64_t cut_short_fills = 0;      // fill_from stopped by a cap, bytes left behind
  std::uint64_t drained_to_zero = 0;      // discard, read or drain_to that emptied it
  std::uint64_t broken_pipes = 0;         // drain_to into a peer that stopped reading
  std::uint64_t iovec_limits = 0;         // drain_to offered max_iovecs, not every byte

  milestones() = default;
  milestones(const milestones&) = delete;
  milestones& operator=(const milestones&) = delete;
  ~milestones() {
    std::fprintf(stderr,
                 "actnet fuzz milestones: caps_hit=%llu short_reads=%llu wrapped_views=%llu "
                 "grown_while_wrapped=%llu spills=%llu cut_short_fills=%llu "
                 "drained_to_zero=%llu broken_pipes=%llu iovec_limits=%llu\n",
                 as_ull(caps_hit), as_ull(short_reads), as_ull(wrapped_views),
                 as_ull(grown_while_wrapped), as_ull(spills), as_ull(cut_short_fills),
                 as_ull(drained_to_zero), as_ull(broken_pipes), as_ull(iovec_limits));
  }

 private:
  static unsigned long long as_ull(std::uint64_t v) { return v; }
};
inline milestones reached;

// Content for writes longer than the input can supply: a fixed pseudo-random pattern read at
// varying offsets, so a byte out of place shows up in the comparison.
inline std::span<const std::byte> pattern() {
  static const std::vector<std::byte> bytes = [] {
    std::vector<std::byte> v(2 * max_write);
    std::uint64_t x = 0x9e3779b97f4a7c15U;
    for (std::byte& b : v) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b = static_cast<std::byte>(x >> 56);
    }
    return v;
  }();
  return bytes;
}

// Reads the fuzz input front to back; past its end every number is 0, so decoding never fails.
class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  [[nodiscard]] bool empty() const { return pos_ == size_; }

  std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint16_t u16() {
    const std::uint16_t low = u8();
    return static_cast<std::uint16_t>(low | (u8() << 8));
  }
  std::uint32_t u32() {
    const std::uint32_t low = u16();
    return low | (std::uint32_t{u16()} << 16);
  }

  // Fills `out`: a few leading bytes come from the input, the rest from pattern().
  void fill(std::span<std::byte> out) {
    if (out.empty()) {
      return;
    }
    const std::size_t from_input = std::min({out.size(), size_ - pos_, std::size_t{8}});
    std::memcpy(out.data(), data_ + pos_, from_input);
    pos_ += from_input;
    const std::size_t offset = u32() % max_write;
    std::memcpy(out.data() + from_input, pattern().data() + offset, out.size() - from_input);
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Memory that every input reuses: allocating megabytes afresh for each input costs more than
// the operations on them (page faults, with ASan's allocator).
struct workspace {
  std::string model;            // the bytes the buffer must hold, in order
  std::string pending;          // written into the peer, not yet read by the buffer
  std::string received;         // read out of the peer after drain_to
  std::vector<std::byte> data;  // bytes of the current write
  std::vector<std::byte> out;   // bytes read back
  std::array<std::byte, spill_size> spill{};
  std::array<iovec, linked_list_buffer::max_iovecs> iov{};

  static workspace& get() {
    static workspace w;
    return w;
  }
};

// The far end of a non-blocking AF_UNIX stream pair, with the bytes written into it that the
// buffer has not read yet. Closes both ends on destruction.
class socket_peer {
 public:
  explicit socket_peer(workspace& ws) : pending_(ws.pending), received_(ws.received) {
    pending_.clear();
    ACTNET_FUZZ_CHECK(
        ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_.data()) == 0);
  }
  socket_peer(const socket_peer&) = delete;
  socket_peer& operator=(const socket_peer&) = delete;
  ~socket_peer() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  // The end the buffer reads from and writes to.
  [[nodiscard]] int near() const { return fds_[0]; }

  // Writes what the socket takes of `bytes` into the far end; it then waits for fill_from.
  void send(std::span<const std::byte> bytes) {
    if (write_shut_ || bytes.empty()) {
      return;
    }
    const ssize_t n = ::write(fds_[1], bytes.data(), bytes.size());
    if (n < 0) {
      ACTNET_FUZZ_CHECK(errno == EAGAIN);  // the socket buffer is full
      return;
    }
    pending_.append(reinterpret_cast<const char*>(bytes.data()), static_cast<std::size_t>(n));
  }

  // Everything drain_to put into the socket, read out of the far end.
  const std::string& receive_all() {
    received_.clear();
    std::array<char, 16384> chunk{};
    for (;;) {
      const ssize_t n = ::read(fds_[1], chunk.data(), chunk.size());
      if (n <= 0) {
        ACTNET_FUZZ_CHECK(n < 0 && errno == EAGAIN);
        return received_;
      }
      received_.append(chunk.data(), static_cast<std::size_t>(n));
    }
  }

  // The far end stops writing: once pending() is read, fill_from sees end of stream.
  void shut_write() {
    ACTNET_FUZZ_CHECK(::shutdown(fds_[1], SHUT_WR) == 0);
    write_shut_ = true;
  }
  // The far end stops reading: drain_to then fails with EPIPE.
  void shut_read() {
    ACTNET_FUZZ_CHECK(::shutdown(fds_[1], SHUT_RD) == 0);
    read_shut_ = true;
  }

  [[nodiscard]] std::string& pending() { return pending_; }
  [[nodiscard]] bool write_shut() const { return write_shut_; }
  [[nodiscard]] bool read_shut() const { return read_shut_; }

 private:
  std::array<int, 2> fds_{-1, -1};
  std::string& pending_;
  std::string& received_;
  bool write_shut_ = false;
  bool read_shut_ = false;
};

inline bool same_bytes(const void* a, const void* b, std::size_t n) {
  return n == 0 || std::memcmp(a, b, n) == 0;
}

inline std::int64_t pool_in_use() {
  return block_pool::stats().bytes_in_use;
}

// Runs one input against one Buffer (ring_buffer, linked_list_buffer or elastic_buffer).
template <class Buffer>
class driver {
  static constexpr bool is_ring = std::is_same_v<Buffer, ring_buffer>;
  static constexpr bool is_list = std::is_same_v<Buffer, linked_list_buffer>;
  static constexpr bool is_elastic = std::is_same_v<Buffer, elastic_buffer>;
  static_assert(is_ring || is_list || is_elastic);

 public:
  driver(input& in, workspace& ws)
      : in_(in),
        buf_(make_buffer()),
        model_(ws.model),
        peer_(ws),
        data_(ws.data),
        out_(ws.out),
        spill_(ws.spill),
        iov_(ws.iov) {
    model_.clear();
    check_shape();
  }

  void run() {
    while (!in_.empty()) {
      const std::uint8_t op = in_.u8();
      switch (op % 16) {
        case 0:
        case 1:
        case 2:
          write();
          break;
        case 3:
          if constexpr (is_ring) {
            next();
          } else {
            append();
          }
          break;
        case 4:
        case 5:
          peek();
          break;
        case 6:
          discard();
          break;
        case 7:
        case 8:
          read();
          break;
        case 9:
        case 10:
          fill();
          break;
        case 11:
        case 12:
          drain();
          break;
        case 13:
          clear_or_trim();
          break;
        case 14:
          move_out_and_back();
          break;
        default:
          drive_peer();
          break;
      }
      check_invariants();
    }
    read_everything();
  }

 private:
  // -- construction: small caps, so inputs reach them --

  Buffer make_buffer() {
    if constexpr (is_ring) {
      std::size_t asked = 0;
      switch (in_.u8() % 5) {
        case 0:
          cap_ = defaults::ring_max_capacity;
          return ring_buffer{};
        case 1:
          asked = 1 + in_.u8() % 64u;
          break;
        case 2:
          asked = 1 + in_.u16() % 4096u;
          break;
        case 3:
          asked = std::size_t{1} << (in_.u8() % 21u);
          break;
        default:
          expect_invalid([] { return ring_buffer(0); });
          expect_invalid([] { return ring_buffer(ring_buffer::largest_capacity + 1); });
          asked = 2048;
          break;
      }
      cap_ = std::bit_ceil(asked);
      return ring_buffer(asked);
    } else if constexpr (is_list) {
      switch (in_.u8() % 5) {
        case 0:
          cap_ = defaults::list_max_size;
          return linked_list_buffer{};
        case 1:
          cap_ = 1 + in_.u8() % 64u;
          break;
        case 2:
          cap_ = 1 + in_.u16() % 8192u;
          break;
        case 3:
          cap_ = 1 + in_.u32() % 300000u;
          break;
        default:
          expect_invalid([] { return linked_list_buffer(0); });
          cap_ = 4096;
          break;
      }
      return linked_list_buffer(cap_);
    } else {
      std::size_t threshold = 0;
      switch (in_.u8() % 5) {
        case 0:
          cap_ = defaults::elastic_max_size;
          threshold_ = defaults::elastic_ring_threshold;
          return elastic_buffer{};
        case 1:
        case 2:
          threshold = 1 + in_.u16() % 1024u;
          cap_ = std::bit_ceil(threshold) + in_.u16() % 8192u;
          break;
        case 3:  // the ring alone can fill the whole cap
          threshold = 1 + in_.u16() % 1024u;
          cap_ = std::bit_ceil(threshold);
          break;
        default:
          expect_invalid([] { return elastic_buffer(0, 4096); });
          expect_invalid([] { return elastic_buffer(65, 127); });  // 65 rounds up to 128
          expect_invalid([] { return elastic_buffer(64, elastic_buffer::largest_size + 1); });
          threshold = 64 + in_.u8() % 64u;
          cap_ = 128 + in_.u16() % 4096u;
          break;
      }
      threshold_ = std::bit_ceil(threshold);
      return elastic_buffer(threshold, cap_);
    }
  }

  template <class Make>
  static void expect_invalid(Make make) {
    bool thrown = false;
    try {
      (void)make();
    } catch (const std::invalid_argument&) {
      thrown = true;
    }
    ACTNET_FUZZ_CHECK(thrown);
  }

  // The caps as constructed, and (moved or not) as they stay.
  void check_shape() const {
    if constexpr (is_ring) {
      ACTNET_FUZZ_CHECK(buf_.max_capacity() == cap_);
    } else if constexpr (is_list) {
      ACTNET_FUZZ_CHECK(buf_.max_size() == cap_);
    } else {
      ACTNET_FUZZ_CHECK(buf_.max_size() == cap_);
      ACTNET_FUZZ_CHECK(buf_.ring_threshold() == threshold_);
    }
  }

  // -- decoding --

  // A length: small, medium, large, or within two bytes of `edge` (the room left under the
  // cap for writes, the bytes buffered for reads), where the errors begin.
  std::size_t pick_length(std::size_t edge) {
    const std::uint8_t mode = in_.u8();
    switch (mode % 4) {
      case 0:
        return mode >> 2u;
      case 1:
        return in_.u16() % 8192u;
      case 2:
        return in_.u32() % (std::size_t{1} << 18);
      default: {
        const std::size_t delta = (mode >> 2u) % 5u;  // edge - 2 .. edge + 2
        return edge + delta < 2 ? 0 : edge + delta - 2;
      }
    }
  }

  std::span<const std::byte> make_bytes(std::size_t n) {
    data_.resize(n);
    in_.fill(data_);
    return data_;
  }

  [[nodiscard]] std::size_t room() const { return cap_ - model_.size(); }

  // -- operations --

  void write() {
    const std::size_t n = std::min(pick_length(room()), max_write);
    const std::span<const std::byte> bytes = make_bytes(n);
    const std::size_t capacity_before = ring_capacity();
    const bool wrapped = ring_wrapped();
    std::error_code ec;
    if constexpr (is_list) {
      ec = buf_.push(bytes);
    } else {
      ec = buf_.write(bytes);
    }
    if (n > room()) {
      ++reached.caps_hit;
      ACTNET_FUZZ_CHECK(ec == errc::capacity_exceeded);
      ACTNET_FUZZ_CHECK(ring_capacity() == capacity_before);
      return;
    }
    ACTNET_FUZZ_CHECK(!ec);
    if (wrapped && ring_capacity() > capacity_before) {
      ++reached.grown_while_wrapped;
    }
    if constexpr (is_ring) {
      // Grows only when the bytes do not fit; an empty write allocates nothing.
      if (model_.size() + n <= capacity_before) {
        ACTNET_FUZZ_CHECK(buf_.capacity() == capacity_before);
      }
    }
    if constexpr (is_elastic) {
      if (list_part() == 0 && ring_part_ + n <= threshold_) {
        ring_part_ += n;
      } else if (list_part() == 0 && ring_part_ > 0 && n > 0) {
        ++reached.spills;
      }
    }
    model_.append(reinterpret_cast<const char*>(bytes.data()), n);
  }

  // A block filled in one of the ways a caller would, or a burst of tiny ones: more blocks
  // than one writev takes.
  void append() requires(!is_ring) {
    const std::uint8_t how = in_.u8();
    if (how % 4 == 3) {
      const std::size_t count = 1 + in_.u16() % 1536u;
      const std::span<const std::byte> bytes = make_bytes(count * 8);
      for (std::size_t i = 0; i < count; ++i) {
        const std::span<const std::byte> part = bytes.subspan(i * 8, 1 + (i + how) % 8);
        if (!adopt(block::copy_of(part), part)) {
          break;  // at the cap: the rest would be refused the same way
        }
      }
      return;
    }
    const std::size_t n = std::min(pick_length(room()), max_write);
    std::span<const std::byte> bytes = make_bytes(n);
    block b;
    switch (how % 4) {
      case 0:
        b = block::copy_of(bytes);
        break;
      case 1: {  // committed in two steps into a block with room to spare
        b = block::allocate(n + how / 4u);
        ACTNET_FUZZ_CHECK(b.space().size() >= n);
        const std::size_t half = n / 2;
        if (n > 0) {
          std::memcpy(b.space().data(), bytes.data(), half);
          b.commit(half);
          std::memcpy(b.space().data(), bytes.data() + half, n - half);
          b.commit(n - half);
        }
        break;
      }
      default:  // empty: none, or allocated and never written
        if (how % 8 == 2) {
          b = block::allocate(how);
        }
        bytes = {};
        break;
    }
    (void)adopt(std::move(b), bytes);
  }

  // Appends `b`, which must hold `bytes`; false if the cap refused it.
  bool adopt(block b, std::span<const std::byte> bytes) requires(!is_ring) {
    const std::size_t in_block = b.size();
    ACTNET_FUZZ_CHECK(in_block == bytes.size());
    ACTNET_FUZZ_CHECK(same_bytes(b.data().data(), bytes.data(), in_block));
    const std::error_code ec = buf_.append(std::move(b));
    if (in_block > room()) {
      ++reached.caps_hit;
      ACTNET_FUZZ_CHECK(ec == errc::capacity_exceeded);
      ACTNET_FUZZ_CHECK(b.size() == in_block);  // NOLINT(bugprone-use-after-move): untouched
      ACTNET_FUZZ_CHECK(same_bytes(b.data().data(), bytes.data(), in_block));
      return false;
    }
    ACTNET_FUZZ_CHECK(!ec);
    ACTNET_FUZZ_CHECK(!b && b.size() == 0);  // NOLINT(bugprone-use-after-move): adopted
    model_.append(reinterpret_cast<const char*>(bytes.data()), in_block);
    return true;
  }

  void next() requires is_ring {
    const std::size_t n = pick_length(model_.size());
    const std::size_t capacity_before = buf_.capacity();
    const result<byte_views> views = buf_.next(n);
    ACTNET_FUZZ_CHECK(buf_.capacity() == capacity_before);  // the views point into the block
    if (n > model_.size()) {
      ++reached.short_reads;
      ACTNET_FUZZ_CHECK(!views && views.error() == errc::short_buffer);
      return;
    }
    ACTNET_FUZZ_CHECK(views.has_value());
    check_prefix(*views, n);
    if (!views->second.empty()) {
      ++reached.wrapped_views;
    }
    consume(n);
  }

  void peek() {
    if constexpr (is_ring) {
      if (in_.u8() % 4 == 0) {
        const byte_views all = buf_.peek_all();
        check_prefix(all, model_.size());
        return;
      }
      const std::size_t n = pick_length(model_.size());
      const result<byte_views> views = buf_.peek(n);
      if (n > model_.size()) {
        ++reached.short_reads;
        ACTNET_FUZZ_CHECK(!views && views.error() == errc::short_buffer);
        return;
      }
      ACTNET_FUZZ_CHECK(views.has_value());
      check_prefix(*views, n);
      if (!views->second.empty()) {
        ++reached.wrapped_views;
      }
    } else {
      static constexpr std::array<std::size_t, 8> counts = {
          0, 1, 2, 3, 5, 8, 64, linked_list_buffer::max_iovecs};
      const std::size_t count = counts[in_.u8() % counts.size()];
      const std::size_t max_bytes = in_.u8() % 2 == 0 ? SIZE_MAX : pick_length(model_.size());
      const std::size_t filled = buf_.peek(std::span(iov_).first(count), max_bytes);
      ACTNET_FUZZ_CHECK(filled <= count);
      const std::size_t total = check_iovecs(filled);
      ACTNET_FUZZ_CHECK(total <= max_bytes);
      // Only running out of iovecs stops a peek short of everything it may show.
      if (filled < count) {
        ACTNET_FUZZ_CHECK(total == std::min(model_.size(), max_bytes));
      }
    }
  }

  void discard() {
    const std::size_t n = pick_length(model_.size());
    const std::error_code ec = buf_.discard(n);
    if (n > model_.size()) {
      ++reached.short_reads;
      ACTNET_FUZZ_CHECK(ec == errc::short_buffer);
      return;
    }
    ACTNET_FUZZ_CHECK(!ec);
    consume(n);
    check_memory_after_consuming();
  }

  void read() {
    const std::size_t n = pick_length(model_.size());
    out_.resize(n);
    const std::error_code ec = buf_.read(out_);
    if (n > model_.size()) {
      ++reached.short_reads;
      ACTNET_FUZZ_CHECK(ec == errc::short_buffer);
      return;
    }
    ACTNET_FUZZ_CHECK(!ec);
    ACTNET_FUZZ_CHECK(same_bytes(out_.data(), model_.data(), n));
    consume(n);
    check_memory_after_consuming();
  }

  // Puts bytes into the peer (sometimes none, so the read would block), then reads once.
  void fill() {
    peer_.send(make_bytes(pick_length(in_.u8())));
    std::size_t spill = 0;
    switch (in_.u8() % 4) {
      case 0:
        break;
      case 1:
        spill = 1 + in_.u8() % 64u;
        break;
      case 2:
        spill = in_.u16() % 4096u;
        break;
      default:
        spill = spill_size;
        break;
    }
    // Stale spill bytes must never pass for data.
    std::memset(spill_.data(), 0xee, spill);
    const std::span<std::byte> spill_span = std::span(spill_).first(spill);

    // How much this read may take: the room under the cap (for a list also under max_bytes;
    // for an elastic buffer still filling its ring, under the threshold).
    std::size_t may_take = room();
    bool into_ring = false;
    const std::int64_t held_before = held();
    const std::size_t capacity_before = ring_capacity();
    const bool wrapped = ring_wrapped();
    result<std::size_t> got = std::size_t{0};
    if constexpr (is_list) {
      const std::size_t max_bytes = in_.u8() % 2 == 0 ? SIZE_MAX : pick_length(room());
      may_take = std::min(may_take, max_bytes);
      got = buf_.fill_from(peer_.near(), spill_span, max_bytes);
    } else {
      if constexpr (is_elastic) {
        into_ring = list_part() == 0 && ring_part_ < threshold_;
      }
      got = buf_.fill_from(peer_.near(), spill_span);
    }
    if (model_.size() == cap_ || may_take == 0) {
      ++reached.caps_hit;
      ACTNET_FUZZ_CHECK(!got && got.error() == errc::capacity_exceeded);
      return;
    }
    if (into_ring) {
      may_take = std::min(may_take, threshold_ - ring_part_);
    }
    std::string& pending = peer_.pending();
    if (pending.empty()) {
      if (peer_.write_shut()) {
        ACTNET_FUZZ_CHECK(got.has_value() && *got == 0);
      } else {
        ACTNET_FUZZ_CHECK(!got && got.error() == std::errc::resource_unavailable_try_again);
      }
      // A read that brought nothing leaves an empty buffer holding no memory.
      if (model_.empty() && held_before == 0) {
        ACTNET_FUZZ_CHECK(held() == 0);
      }
      return;
    }
    ACTNET_FUZZ_CHECK(got.has_value());
    const std::size_t n = *got;
    ACTNET_FUZZ_CHECK(n > 0 && n <= std::min(pending.size(), may_take));
    // readv was offered at least the spill area (within the room), and the socket holds all
    // of `pending`, so a short read means the spill went unused.
    ACTNET_FUZZ_CHECK(n >= std::min({pending.size(), may_take, spill}));
    if (into_ring) {
      ring_part_ += n;
    } else if (is_elastic && list_part() == 0 && ring_part_ > 0) {
      ++reached.spills;
    }
    if (wrapped && ring_capacity() > capacity_before) {
      ++reached.grown_while_wrapped;
    }
    if (n == may_take && n < pending.size()) {
      ++reached.cut_short_fills;
    }
    model_.append(pending, 0, n);
    pending.erase(0, n);
  }

  void drain() {
    // Bytes a single writev is offered: all of them in a ring, the first max_iovecs blocks
    // of a list.
    std::size_t offered = model_.size();
    if constexpr (!is_ring) {
      offered = check_iovecs(buf_.peek(iov_));
      if (offered < model_.size()) {
        ++reached.iovec_limits;
      }
    }
    const result<std::size_t> wrote = buf_.drain_to(peer_.near());
    if (model_.empty()) {
      ACTNET_FUZZ_CHECK(wrote.has_value() && *wrote == 0);
      return;
    }
    if (peer_.read_shut()) {
      ++reached.broken_pipes;
      ACTNET_FUZZ_CHECK(!wrote && wrote.error() == std::errc::broken_pipe);
      return;
    }
    ACTNET_FUZZ_CHECK(wrote.has_value());
    const std::size_t n = *wrote;
    ACTNET_FUZZ_CHECK(n > 0 && n <= offered);
    // An empty socket takes this much whole, so less means an iovec went missing.
    if (offered <= 16384) {
      ACTNET_FUZZ_CHECK(n == offered);
    }
    const std::string& received = peer_.receive_all();
    ACTNET_FUZZ_CHECK(received.size() == n);
    ACTNET_FUZZ_CHECK(same_bytes(received.data(), model_.data(), n));
    consume(n);
    check_memory_after_consuming();
  }

  void clear_or_trim() {
    const std::uint8_t how = in_.u8();
    if (how % 4 != 0) {
      if constexpr (is_ring) {
        const std::size_t capacity_before = buf_.capacity();
        buf_.trim();
        if (!model_.empty()) {
          ACTNET_FUZZ_CHECK(buf_.capacity() == capacity_before);
          return;
        }
        ring_kept_ = false;
        ACTNET_FUZZ_CHECK(buf_.capacity() == 0 && held() == 0);
        return;
      }
    }
    buf_.clear();
    model_.clear();
    ring_part_ = 0;
    ring_kept_ = false;
    ACTNET_FUZZ_CHECK(buf_.size() == 0 && ring_capacity() == 0 && held() == 0);
  }

  // Out into a new buffer and back by assignment: bytes, caps and memory must all follow.
  void move_out_and_back() {
    const std::int64_t held_before = held();
    Buffer other(std::move(buf_));
    ACTNET_FUZZ_CHECK(buf_.size() == 0);  // NOLINT(bugprone-use-after-move): moved-from is empty
    ACTNET_FUZZ_CHECK(other.size() == model_.size());
    buf_ = std::move(other);
    ACTNET_FUZZ_CHECK(other.size() == 0);  // NOLINT(bugprone-use-after-move)
    ACTNET_FUZZ_CHECK(held() == held_before);
    check_shape();
  }

  // Mostly puts bytes into the peer for a later fill; now and then shuts one direction.
  void drive_peer() {
    const std::uint8_t how = in_.u8();
    if (how == 0) {
      peer_.shut_write();
    } else if (how == 1) {
      peer_.shut_read();
    } else {
      peer_.send(make_bytes(pick_length(how)));
    }
  }

  // At the end every byte must still come out, in order.
  void read_everything() {
    out_.resize(model_.size());
    ACTNET_FUZZ_CHECK(!buf_.read(out_));
    ACTNET_FUZZ_CHECK(same_bytes(out_.data(), model_.data(), model_.size()));
    consume(model_.size());
    ACTNET_FUZZ_CHECK(ring_capacity() == 0 && held() == 0);
  }

  // -- checks --

  // The bytes in `views` are exactly the model's first n.
  void check_prefix(const byte_views& views, std::size_t n) const {
    ACTNET_FUZZ_CHECK(views.size() == n);
    ACTNET_FUZZ_CHECK(same_bytes(views.first.data(), model_.data(), views.first.size()));
    ACTNET_FUZZ_CHECK(
        same_bytes(views.second.data(), model_.data() + views.first.size(), views.second.size()));
    ACTNET_FUZZ_CHECK(!views.first.empty() || views.second.empty());
  }

  // The first `filled` iovecs are non-empty and spell a prefix of the model; returns its length.
  std::size_t check_iovecs(std::size_t filled) const {
    std::size_t total = 0;
    for (std::size_t i = 0; i < filled; ++i) {
      const iovec& v = iov_[i];
      ACTNET_FUZZ_CHECK(v.iov_len > 0 && total + v.iov_len <= model_.size());
      ACTNET_FUZZ_CHECK(same_bytes(v.iov_base, model_.data() + total, v.iov_len));
      total += v.iov_len;
    }
    return total;
  }

  void consume(std::size_t n) {
    model_.erase(0, n);
    ring_part_ -= std::min(n, ring_part_);
    if constexpr (is_ring) {
      ring_kept_ = model_.empty() && buf_.capacity() > 0;
    }
  }

  // discard, read and drain_to give memory back as soon as it holds no bytes (an elastic
  // buffer's ring as soon as the ring part is drained).
  void check_memory_after_consuming() {
    if constexpr (is_elastic) {
      if (ring_part_ == 0) {
        ACTNET_FUZZ_CHECK(buf_.ring_capacity() == 0);
      }
    }
    if (model_.empty()) {
      ++reached.drained_to_zero;
      ring_kept_ = false;
      ACTNET_FUZZ_CHECK(ring_capacity() == 0 && held() == 0);
    }
  }

  void check_invariants() const {
    ACTNET_FUZZ_CHECK(buf_.size() == model_.size());
    ACTNET_FUZZ_CHECK(buf_.empty() == model_.empty());
    ACTNET_FUZZ_CHECK(model_.size() <= cap_);
    if constexpr (is_ring) {
      const std::size_t capacity = buf_.capacity();
      ACTNET_FUZZ_CHECK(capacity == 0 || std::has_single_bit(capacity));
      // Even under caps smaller than the pool's smallest block (a bug the fuzzer found).
      ACTNET_FUZZ_CHECK(capacity <= buf_.max_capacity());
      ACTNET_FUZZ_CHECK(capacity >= model_.size());
      // Empty, it holds memory only for the views of the next() that drained it.
      ACTNET_FUZZ_CHECK(model_.empty() ? capacity == 0 || ring_kept_ : capacity > 0);
    } else if constexpr (is_list) {
      ACTNET_FUZZ_CHECK((buf_.block_count() == 0) == model_.empty());
    } else {
      ACTNET_FUZZ_CHECK(buf_.list_size() == list_part());
      ACTNET_FUZZ_CHECK(buf_.ring_capacity() <= buf_.ring_threshold());
      ACTNET_FUZZ_CHECK(buf_.ring_capacity() >= ring_part_);
    }
  }

  [[nodiscard]] std::size_t ring_capacity() const {
    if constexpr (is_ring) {
      return buf_.capacity();
    } else if constexpr (is_elastic) {
      return buf_.ring_capacity();
    } else {
      return 0;
    }
  }

  // Whether the buffered bytes run past the end of the ring (of an elastic buffer's ring part).
  [[nodiscard]] bool ring_wrapped() {
    if constexpr (is_ring) {
      return !buf_.peek_all().second.empty();
    } else if constexpr (is_elastic) {
      return ring_part_ > 0 && buf_.peek(std::span(iov_).first(1)) == 1 &&
             iov_[0].iov_len < ring_part_;
    } else {
      return false;
    }
  }

  [[nodiscard]] std::size_t list_part() const { return model_.size() - ring_part_; }

  // Pool bytes the buffer holds (nothing else in this process takes blocks between inputs).
  [[nodiscard]] std::int64_t held() const { return pool_in_use() - baseline_; }

  input& in_;
  std::int64_t baseline_ = pool_in_use();
  std::size_t cap_ = 0;        // ring: max_capacity(); list and elastic: max_size()
  std::size_t threshold_ = 0;  // elastic: ring_threshold()
  Buffer buf_;
  std::string& model_;
  std::size_t ring_part_ = 0;  // elastic: how many of model_'s first bytes sit in the ring
  bool ring_kept_ = false;     // ring: drained by next(), which keeps the block for its views
  socket_peer peer_;
  std::vector<std::byte>& data_;
  std::vector<std::byte>& out_;
  std::array<std::byte, spill_size>& spill_;
  std::array<iovec, linked_list_buffer::max_iovecs>& iov_;
};

// The body of LLVMFuzzerTestOneInput: runs the input, then checks nothing outlived it.
template <class Buffer>
int run(const std::uint8_t* data, std::size_t size) {
  const std::int64_t before = pool_in_use();
  {
    input in(data, size);
    driver<Buffer> d(in, workspace::get());
    d.run();
  }
  ACTNET_FUZZ_CHECK(pool_in_use() == before);
  return 0;
}

}  // namespace actnet::fuzz
