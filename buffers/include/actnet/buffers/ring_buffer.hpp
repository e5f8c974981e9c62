// ring_buffer: the elastic inbound buffer, a power-of-two ring that holds memory only while
// it holds bytes.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <system_error>

#include "actnet/buffers/byte_views.hpp"
#include "actnet/defaults.hpp"
#include "actnet/error.hpp"
#include "actnet/result.hpp"

namespace actnet {

/// A circular byte buffer whose capacity is a power of two. It allocates nothing until the
/// first write, grows on demand (doubling) up to max_capacity(), and gives its block back to
/// block_pool as soon as it is drained, so an idle connection holds no buffer memory. The next
/// block after a drain starts at half the size of the last one (or what the write needs).
///
/// Bad use is an error, never a truncation: asking for more bytes than are buffered returns
/// errc::short_buffer and consumes nothing; growing past the cap returns errc::capacity_exceeded
/// and writes nothing. Not thread-safe: one owner (a loop) uses it.
class ring_buffer {
 public:
  static constexpr std::size_t largest_capacity = std::size_t{1} << 31;

  /// A buffer capped at defaults::ring_max_capacity.
  ring_buffer() noexcept : ring_buffer(cap_tag{}, defaults::ring_max_capacity) {}
  /// A buffer capped at `max_capacity` rounded up to a power of two. Throws
  /// std::invalid_argument when it is 0 or over largest_capacity.
  explicit ring_buffer(std::size_t max_capacity);

  ring_buffer(ring_buffer&& other) noexcept;
  ring_buffer& operator=(ring_buffer&& other) noexcept;
  ring_buffer(const ring_buffer&) = delete;
  ring_buffer& operator=(const ring_buffer&) = delete;
  // In line: most rings die without a block.
  ~ring_buffer() {
    if (data_ != nullptr) {
      release_block();
    }
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// Bytes the ring holds room for: 0 while nothing is allocated; never over max_capacity().
  [[nodiscard]] std::size_t capacity() const noexcept {
    return data_ == nullptr ? 0 : std::size_t{1} << capacity_log2_;
  }
  [[nodiscard]] std::size_t max_capacity() const noexcept {
    return std::size_t{1} << max_capacity_log2_;
  }
  /// Whether a block is allocated (capacity() > 0), in one test.
  [[nodiscard]] bool holds_block() const noexcept { return data_ != nullptr; }

  /// Appends `bytes`, growing as needed; capacity_exceeded (nothing written) past the cap.
  [[nodiscard]] std::error_code write(std::span<const std::byte> bytes) {
    // Inline fast path: the used run does not wrap and the bytes fit after it.
    const std::size_t end = std::size_t{head_} + size_;
    if (data_ != nullptr && !bytes.empty() && end + bytes.size() <= capacity()) [[likely]] {
      std::memcpy(data_ + end, bytes.data(), bytes.size());
      size_ += static_cast<std::uint32_t>(bytes.size());
      return {};
    }
    return write_slow(bytes);
  }
  [[nodiscard]] std::error_code write(std::string_view text) {
    return write(std::as_bytes(std::span(text.data(), text.size())));
  }

  /// The first `n` bytes without consuming them; short_buffer if fewer are buffered.
  /// The views are valid until the next non-const call.
  [[nodiscard]] result<byte_views> peek(std::size_t n) const noexcept;
  /// Every buffered byte without consuming it.
  [[nodiscard]] byte_views peek_all() const noexcept;

  /// Consumes `n` bytes and returns views of them (zero-copy); short_buffer if fewer are
  /// buffered. The views stay valid until the next non-const call: a buffer drained by next()
  /// keeps its block for them, to be reused by the next write or given back by trim().
  [[nodiscard]] result<byte_views> next(std::size_t n) noexcept;
  /// As discard(), but a drained ring keeps its block (views from next() stay valid) until
  /// trim() or the next write.
  [[nodiscard]] std::error_code skip(std::size_t n) noexcept {
    if (n > size_) {
      return make_error_code(errc::short_buffer);
    }
    consume(n);
    return {};
  }
  /// As write(), but never writes over memory that views from next() may point into: when
  /// `move` is true (such views exist) the bytes go to a new block even if they would fit, and
  /// whenever the ring changes block the old one is not given back but handed to the caller in
  /// `retired` (empty otherwise), to give back to block_pool once those views are dead.
  [[nodiscard]] std::error_code write_keeping_views(std::span<const std::byte> bytes,
                                                    std::span<std::byte>& retired, bool move);
  /// Drops the first `n` bytes; short_buffer (nothing dropped) if fewer are buffered.
  [[nodiscard]] std::error_code discard(std::size_t n) noexcept {
    if (n < size_) [[likely]] {  // inline fast path: bytes remain, so the block stays
      head_ = static_cast<std::uint32_t>((head_ + n) & mask());
      size_ -= static_cast<std::uint32_t>(n);
      return {};
    }
    return discard_slow(n);
  }
  /// Copies exactly out.size() bytes into `out` and consumes them; short_buffer if fewer are
  /// buffered.
  [[nodiscard]] std::error_code read(std::span<std::byte> out) noexcept;

  /// Reads once from `fd` with readv into the free space plus `spill` (a caller's scratch
  /// area, e.g. on the loop's stack); bytes that land in `spill` are appended, growing the
  /// ring. Reads at most the room left under the cap; capacity_exceeded when there is none.
  /// Returns the bytes read (0 at end of stream) or the errno of readv (EAGAIN included).
  [[nodiscard]] result<std::size_t> fill_from(int fd, std::span<std::byte> spill);
  /// Writes what is buffered to `fd` with one writev and consumes what was written. Returns the
  /// bytes written (0 when empty, without a system call) or the errno of writev.
  [[nodiscard]] result<std::size_t> drain_to(int fd) noexcept;

  /// Drops every byte and gives the block back.
  void clear() noexcept;
  /// Gives the block back if the buffer is empty (after next() drained it).
  void trim() noexcept {
    if (data_ != nullptr && size_ == 0) {  // (most rings have no block: one test)
      release();
    }
  }

 protected:
  struct cap_tag {};
  // In line, so that the default limits fold to constants (a connection makes two buffers).
  constexpr ring_buffer(cap_tag /*unused*/, std::size_t max_capacity) noexcept
      : max_capacity_log2_(
            static_cast<std::uint8_t>(std::countr_zero(std::bit_ceil(max_capacity)))) {}

 private:
  [[nodiscard]] std::size_t mask() const noexcept { return capacity() - 1; }
  // Makes room for `extra` more bytes; false (nothing changed) past the cap.
  [[nodiscard]] bool reserve(std::size_t extra, std::span<std::byte>* retired = nullptr,
                             bool move = false);
  void consume(std::size_t n) noexcept;
  void release() noexcept;
  void release_block() noexcept;
  void copy_in(std::span<const std::byte> bytes) noexcept;
  [[nodiscard]] std::error_code write_slow(std::span<const std::byte> bytes);
  [[nodiscard]] std::error_code discard_slow(std::size_t n) noexcept;

  std::byte* data_ = nullptr;
  std::uint32_t head_ = 0;
  std::uint32_t size_ = 0;
  std::uint8_t capacity_log2_ = 0;
  std::uint8_t max_capacity_log2_ = 0;
  // Half the capacity of the last block given back: where the next block starts, so a ring
  // that drains between bursts does not re-grow by doubling every time, and a one-off spike
  // decays by half per drain. Costs no memory while idle (it sits in padding).
  std::uint8_t hint_log2_ = 0;
};

}  // namespace actnet
