// linked_list_buffer: the chain of blocks, consumed from the head and filled at the tail.
#include "actnet/buffers/linked_list_buffer.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "actnet/error.hpp"

namespace actnet {

using detail::list_node;

linked_list_buffer::linked_list_buffer(std::size_t max_size) : max_size_(max_size) {
  if (max_size == 0) {
    throw std::invalid_argument("actnet::linked_list_buffer: max size 0");
  }
}

linked_list_buffer::linked_list_buffer(linked_list_buffer&& other) noexcept
    : head_(std::exchange(other.head_, nullptr)),
      tail_(std::exchange(other.tail_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      max_size_(other.max_size_) {}

linked_list_buffer& linked_list_buffer::operator=(linked_list_buffer&& other) noexcept {
  if (this != &other) {
    clear();
    head_ = std::exchange(other.head_, nullptr);
    tail_ = std::exchange(other.tail_, nullptr);
    size_ = std::exchange(other.size_, 0);
    max_size_ = other.max_size_;
  }
  return *this;
}

std::size_t linked_list_buffer::block_count() const noexcept {
  std::size_t n = 0;
  for (const list_node* node = head_; node != nullptr; node = node->next) {
    n += node->size() > 0 ? 1 : 0;
  }
  return n;
}

void linked_list_buffer::clear() noexcept {
  while (head_ != nullptr) {
    list_node::destroy(std::exchange(head_, head_->next));
  }
  tail_ = nullptr;
  size_ = 0;
}

void linked_list_buffer::link(list_node* node) noexcept {
  node->next = nullptr;
  (tail_ != nullptr ? tail_->next : head_) = node;
  tail_ = node;
}

std::error_code linked_list_buffer::push(std::span<const std::byte> bytes) {
  if (bytes.size() > max_size_ - size_) {
    return errc::capacity_exceeded;
  }
  while (!bytes.empty()) {
    if (tail_ == nullptr || tail_->room() == 0) {
      const std::size_t want = std::clamp(std::bit_ceil(bytes.size() + list_node::header_size),
                                          defaults::list_min_block, defaults::list_max_block);
      link(list_node::make(want - list_node::header_size));
    }
    const std::size_t n = std::min(bytes.size(), tail_->room());
    std::memcpy(tail_->payload() + tail_->end, bytes.data(), n);
    tail_->end += static_cast<std::uint32_t>(n);
    size_ += n;
    bytes = bytes.subspan(n);
  }
  return {};
}

std::error_code linked_list_buffer::append(block&& b) noexcept {
  if (b.size() > max_size_ - size_) {
    return errc::capacity_exceeded;
  }
  if (b.size() == 0) {
    b = block{};
    return {};
  }
  size_ += b.size();
  link(std::exchange(b.node_, nullptr));
  return {};
}

std::size_t linked_list_buffer::peek(std::span<iovec> out, std::size_t max_bytes) const noexcept {
  std::size_t count = 0;
  for (list_node* node = head_; node != nullptr && count < out.size() && max_bytes > 0;
       node = node->next) {
    const std::size_t n = std::min(node->size(), max_bytes);
    if (n > 0) {
      out[count++] = {node->payload() + node->begin, n};
      max_bytes -= n;
    }
  }
  return count;
}

std::error_code linked_list_buffer::discard(std::size_t n) noexcept {
  if (n > size_) {
    return errc::short_buffer;
  }
  size_ -= n;
  while (n > 0) {
    const std::size_t take = std::min(n, head_->size());
    head_->begin += static_cast<std::uint32_t>(take);
    n -= take;
    if (head_->size() == 0) {  // consumed (or an empty block left by fill_from)
      list_node::destroy(std::exchange(head_, head_->next));
    }
  }
  if (size_ == 0) {
    clear();
  }
  return {};
}

std::error_code linked_list_buffer::read(std::span<std::byte> out) noexcept {
  if (out.size() > size_) {
    return errc::short_buffer;
  }
  std::size_t copied = 0;
  for (const list_node* node = head_; copied < out.size(); node = node->next) {
    const std::size_t n = std::min(node->size(), out.size() - copied);
    std::memcpy(out.data() + copied, node->payload() + node->begin, n);
    copied += n;
  }
  return discard(out.size());
}

result<std::size_t> linked_list_buffer::fill_from(int fd, std::span<std::byte> spill,
                                                  std::size_t max_bytes) {
  const std::size_t room = std::min(max_size_ - size_, max_bytes);
  if (room == 0) {
    return errc::capacity_exceeded;
  }
  if (spill.empty() && (tail_ == nullptr || tail_->room() == 0)) {
    link(list_node::make(defaults::list_min_block - list_node::header_size));
  }
  std::array<iovec, 2> iov{};
  int count = 0;
  std::size_t in_tail = 0;
  if (tail_ != nullptr && tail_->room() > 0) {
    in_tail = std::min(tail_->room(), room);
    iov[count++] = {tail_->payload() + tail_->end, in_tail};
  }
  const std::size_t in_spill = std::min(spill.size(), room - in_tail);
  if (in_spill > 0) {
    iov[count++] = {spill.data(), in_spill};
  }
  const ssize_t n = ::readv(fd, iov.data(), count);
  if (n <= 0) {
    const std::error_code ec =
        n < 0 ? std::error_code(errno, std::system_category()) : std::error_code();
    if (size_ == 0) {
      clear();  // a block made for this read that got nothing goes back at once
    }
    return ec ? result<std::size_t>(ec) : std::size_t{0};
  }
  const auto got = static_cast<std::size_t>(n);
  const std::size_t tail_got = std::min(got, in_tail);
  if (tail_got > 0) {
    tail_->end += static_cast<std::uint32_t>(tail_got);
    size_ += tail_got;
  }
  if (got > tail_got) {
    if (const std::error_code ec = push(spill.first(got - tail_got))) {
      return ec;  // unreachable: readv was offered no more than the room
    }
  }
  return got;
}

result<std::size_t> linked_list_buffer::drain_to(int fd) noexcept {
  if (size_ == 0) {
    return std::size_t{0};
  }
  std::array<iovec, max_iovecs> iov;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  const std::size_t count = peek(iov);
  const ssize_t n = ::writev(fd, iov.data(), static_cast<int>(count));
  if (n < 0) {
    return std::error_code(errno, std::system_category());
  }
  (void)discard(static_cast<std::size_t>(n));
  return static_cast<std::size_t>(n);
}

}  // namespace actnet
