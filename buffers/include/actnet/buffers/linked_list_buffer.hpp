// linked_list_buffer: a chain of pooled blocks for large or adopted outbound data.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

#include "actnet/buffers/block.hpp"
#include "actnet/defaults.hpp"
#include "actnet/result.hpp"

namespace actnet {

/// A FIFO of bytes kept in a chain of block_pool blocks. push() copies into the chain;
/// append() adopts a caller's block without copying. Drains with writev over up to IOV_MAX
/// blocks at once. Every block is given back as soon as it is consumed.
///
/// Capped at max_size(): growing past it is errc::capacity_exceeded with nothing written;
/// consuming more than is buffered is errc::short_buffer with nothing consumed.
/// Not thread-safe: one owner (a loop) uses it.
class linked_list_buffer {
 public:
  /// writev's limit on iovecs in one call (IOV_MAX on Linux).
  static constexpr std::size_t max_iovecs = 1024;

  linked_list_buffer() noexcept : max_size_(defaults::list_max_size) {}
  /// A buffer capped at `max_size` bytes; throws std::invalid_argument when it is 0.
  explicit linked_list_buffer(std::size_t max_size);

  linked_list_buffer(linked_list_buffer&& other) noexcept;
  linked_list_buffer& operator=(linked_list_buffer&& other) noexcept;
  linked_list_buffer(const linked_list_buffer&) = delete;
  linked_list_buffer& operator=(const linked_list_buffer&) = delete;
  ~linked_list_buffer() { clear(); }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }
  /// How many blocks hold the bytes (one iovec each when peeked).
  [[nodiscard]] std::size_t block_count() const noexcept;

  /// Appends a copy of `bytes`, filling the last block first.
  [[nodiscard]] std::error_code push(std::span<const std::byte> bytes);
  [[nodiscard]] std::error_code push(std::string_view text) {
    return push(std::as_bytes(std::span(text.data(), text.size())));
  }
  /// Adopts `b` (left empty) without copying its bytes. On capacity_exceeded `b` is untouched.
  /// An empty block is simply freed.
  [[nodiscard]] std::error_code append(block&& b) noexcept;

  /// Fills `out` with iovecs over the first bytes, at most `max_bytes` of them, one per block.
  /// Returns how many iovecs it filled. Valid until the next non-const call.
  [[nodiscard]] std::size_t peek(std::span<iovec> out,
                                 std::size_t max_bytes = SIZE_MAX) const noexcept;
  /// Drops the first `n` bytes; short_buffer (nothing dropped) if fewer are buffered.
  [[nodiscard]] std::error_code discard(std::size_t n) noexcept;
  /// Copies exactly out.size() bytes into `out` and consumes them; short_buffer otherwise.
  [[nodiscard]] std::error_code read(std::span<std::byte> out) noexcept;

  /// Reads once from `fd` with readv into the last block's room plus `spill`, appending what
  /// landed in `spill`. Reads at most `max_bytes` and never past the cap (capacity_exceeded
  /// when there is no room). Returns the bytes read (0 at end of stream) or readv's errno.
  [[nodiscard]] result<std::size_t> fill_from(int fd, std::span<std::byte> spill,
                                              std::size_t max_bytes = SIZE_MAX);
  /// Writes up to max_iovecs blocks to `fd` with one writev and consumes what was written.
  /// Returns the bytes written (0 when empty, without a system call) or writev's errno.
  [[nodiscard]] result<std::size_t> drain_to(int fd) noexcept;

  /// Drops every byte and gives every block back.
  void clear() noexcept;

 private:
  void link(detail::list_node* node) noexcept;

  detail::list_node* head_ = nullptr;
  detail::list_node* tail_ = nullptr;
  std::size_t size_ = 0;
  std::size_t max_size_;
};

}  // namespace actnet
