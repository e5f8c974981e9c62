// block: a pooled chunk of memory that the caller fills and a linked_list_buffer adopts
// without copying (zero-copy append of a prepared reply, or an async write's payload).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace actnet {

class linked_list_buffer;

namespace detail {

// The header at the start of every linked-list block; the payload follows it.
struct list_node {
  list_node* next;
  std::uint32_t begin;     // first unread payload byte
  std::uint32_t end;       // one past the last written payload byte
  std::uint32_t capacity;  // payload bytes
  std::uint32_t reserved;

  static constexpr std::size_t header_size = 32;  // keeps the payload 16-byte aligned
  [[nodiscard]] std::byte* payload() noexcept {
    return reinterpret_cast<std::byte*>(this) + header_size;
  }
  [[nodiscard]] const std::byte* payload() const noexcept {
    return reinterpret_cast<const std::byte*>(this) + header_size;
  }
  [[nodiscard]] std::size_t size() const noexcept { return end - begin; }
  [[nodiscard]] std::size_t room() const noexcept { return capacity - end; }

  // A node with room for at least `capacity` payload bytes, from block_pool.
  static list_node* make(std::size_t capacity);
  static void destroy(list_node* node) noexcept;
};
static_assert(sizeof(list_node) <= list_node::header_size);

}  // namespace detail

/// An owned, pooled block: write into space(), commit() what was written, then hand it to
/// linked_list_buffer::append (or elastic_buffer::append). Move-only; frees itself if dropped.
class block {
 public:
  block() noexcept = default;
  /// A block with room for at least `capacity` bytes (the pool rounds the block up).
  [[nodiscard]] static block allocate(std::size_t capacity);
  /// A block holding a copy of `bytes`.
  [[nodiscard]] static block copy_of(std::span<const std::byte> bytes);
  [[nodiscard]] static block copy_of(std::string_view text) {
    return copy_of(std::as_bytes(std::span(text.data(), text.size())));
  }

  block(block&& other) noexcept : node_(other.node_) { other.node_ = nullptr; }
  block& operator=(block&& other) noexcept;
  block(const block&) = delete;
  block& operator=(const block&) = delete;
  ~block() {
    if (node_ != nullptr) {
      detail::list_node::destroy(node_);
    }
  }

  [[nodiscard]] explicit operator bool() const noexcept { return node_ != nullptr; }
  /// The room not yet written.
  [[nodiscard]] std::span<std::byte> space() noexcept;
  /// Marks the first `n` bytes of space() as written; n must not exceed space().size().
  void commit(std::size_t n) noexcept;
  [[nodiscard]] std::span<const std::byte> data() const noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return node_ == nullptr ? 0 : node_->size(); }
  [[nodiscard]] std::size_t capacity() const noexcept {
    return node_ == nullptr ? 0 : node_->capacity;
  }

 private:
  friend class linked_list_buffer;
  detail::list_node* node_ = nullptr;
};

}  // namespace actnet
