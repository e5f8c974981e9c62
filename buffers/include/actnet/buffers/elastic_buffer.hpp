// elastic_buffer: the outbound buffer, a ring for the common small backlog that spills into a
// linked list for large ones (gnet's mixed buffer), with a hard cap.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

#include "actnet/buffers/block.hpp"
#include "actnet/buffers/linked_list_buffer.hpp"
#include "actnet/buffers/ring_buffer.hpp"
#include "actnet/defaults.hpp"
#include "actnet/result.hpp"

namespace actnet {

/// Bytes go to the ring while it stays within ring_threshold(); past that, and for as long as
/// the list holds anything, they go to the linked list, so bytes always leave in the order they
/// came. Drained, it holds no memory at all. Capped at max_size() (ring and list together):
/// growth past it is errc::capacity_exceeded with nothing written. Not thread-safe.
///
/// Size: the list is created only while spilling, so an empty buffer is two words and change
/// (the ring's fields plus a pointer).
class elastic_buffer : private ring_buffer {
 public:
  static constexpr std::size_t largest_size = UINT32_MAX;

  elastic_buffer() noexcept
      : ring_buffer(cap_tag{}, defaults::elastic_ring_threshold),
        max_size_(static_cast<std::uint32_t>(defaults::elastic_max_size)) {}
  /// Throws std::invalid_argument unless 0 < ring_threshold <= max_size <= largest_size
  /// (ring_threshold rounds up to a power of two).
  elastic_buffer(std::size_t ring_threshold, std::size_t max_size);

  elastic_buffer(elastic_buffer&& other) noexcept;
  elastic_buffer& operator=(elastic_buffer&& other) noexcept;
  elastic_buffer(const elastic_buffer&) = delete;
  elastic_buffer& operator=(const elastic_buffer&) = delete;
  // In line: most buffers die empty, and their ring gives its own block back.
  ~elastic_buffer() {
    if (list_ != nullptr) [[unlikely]] {
      clear();
    }
  }

  [[nodiscard]] std::size_t size() const noexcept { return ring().size() + list_size(); }
  [[nodiscard]] bool empty() const noexcept {
    return ring().empty() && (list_ == nullptr || list_->empty());
  }
  [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }
  [[nodiscard]] std::size_t ring_threshold() const noexcept { return ring().max_capacity(); }
  /// Bytes in the linked-list part (0 unless spilling).
  [[nodiscard]] std::size_t list_size() const noexcept {
    return list_ == nullptr ? 0 : list_->size();
  }
  /// Bytes of memory held by the ring part (the list's blocks are counted by the pool).
  [[nodiscard]] std::size_t ring_capacity() const noexcept { return ring().capacity(); }

  /// Appends a copy of `bytes`.
  [[nodiscard]] std::error_code write(std::span<const std::byte> bytes);
  [[nodiscard]] std::error_code write(std::string_view text) {
    return write(std::as_bytes(std::span(text.data(), text.size())));
  }
  /// Adopts `b` (left empty) without copying, behind everything buffered. On
  /// capacity_exceeded `b` is untouched.
  [[nodiscard]] std::error_code append(block&& b);

  /// Fills `out` with iovecs over the first bytes (at most `max_bytes`); returns how many.
  [[nodiscard]] std::size_t peek(std::span<iovec> out,
                                 std::size_t max_bytes = SIZE_MAX) const noexcept;
  /// Drops the first `n` bytes; short_buffer (nothing dropped) if fewer are buffered.
  [[nodiscard]] std::error_code discard(std::size_t n) noexcept;
  /// Copies exactly out.size() bytes into `out` and consumes them; short_buffer otherwise.
  [[nodiscard]] std::error_code read(std::span<std::byte> out) noexcept;

  /// Reads once from `fd` into the buffer (the ring's free space plus `spill` while not
  /// spilling, else the list's last block plus `spill`), never past the cap.
  [[nodiscard]] result<std::size_t> fill_from(int fd, std::span<std::byte> spill);
  /// Writes up to linked_list_buffer::max_iovecs iovecs to `fd` with one writev and consumes
  /// what was written. Returns the bytes written (0 when empty, no system call) or the errno.
  [[nodiscard]] result<std::size_t> drain_to(int fd) noexcept;

  /// Drops every byte and gives all memory back.
  void clear() noexcept;

 private:
  [[nodiscard]] const ring_buffer& ring() const noexcept { return *this; }
  [[nodiscard]] ring_buffer& ring() noexcept { return *this; }
  [[nodiscard]] linked_list_buffer& list();
  void drop_list_if_empty() noexcept;

  // The fields sit in the ring's tail padding (the ring is a base, not a member, for that).
  std::uint32_t max_size_;
  linked_list_buffer* list_ = nullptr;
};

}  // namespace actnet
