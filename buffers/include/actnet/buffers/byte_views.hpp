// byte_views: up to two spans that together hold a run of buffered bytes, in order.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace actnet {

/// Bytes as they sit in a ring: `first`, then `second` (empty unless the run wraps around).
struct byte_views {
  std::span<const std::byte> first;
  std::span<const std::byte> second;

  [[nodiscard]] std::size_t size() const noexcept { return first.size() + second.size(); }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] bool contiguous() const noexcept { return second.empty(); }

  /// Copies the bytes into `out`, which must hold size() bytes.
  void copy_to(std::span<std::byte> out) const noexcept;
  /// The bytes as a string (a copy; for tests, logs and slow paths).
  [[nodiscard]] std::string to_string() const;
};

}  // namespace actnet
