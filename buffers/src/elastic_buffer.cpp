// elastic_buffer: routing writes between the ring and the list, reads across both.
#include "actnet/buffers/elastic_buffer.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "actnet/buffers/block_pool.hpp"
#include "actnet/error.hpp"

namespace actnet {

static_assert(sizeof(elastic_buffer) <= 32, "an idle connection's outbound buffer stays small");

namespace {

std::size_t checked_threshold(std::size_t ring_threshold, std::size_t max_size) {
  if (ring_threshold == 0 || max_size > elastic_buffer::largest_size ||
      std::bit_ceil(ring_threshold) > max_size) {
    throw std::invalid_argument("actnet::elastic_buffer: ring threshold " +
                                std::to_string(ring_threshold) + " and max size " +
                                std::to_string(max_size) +
                                " must satisfy 0 < bit_ceil(threshold) <= max size <= 4 GiB - 1");
  }
  return ring_threshold;
}

}  // namespace

elastic_buffer::elastic_buffer(std::size_t ring_threshold, std::size_t max_size)
    : ring_buffer(checked_threshold(ring_threshold, max_size)),
      max_size_(static_cast<std::uint32_t>(max_size)) {}

elastic_buffer::elastic_buffer(elastic_buffer&& other) noexcept
    : ring_buffer(std::move(other.ring())),
      max_size_(other.max_size_),
      list_(std::exchange(other.list_, nullptr)) {}

elastic_buffer& elastic_buffer::operator=(elastic_buffer&& other) noexcept {
  if (this != &other) {
    clear();
    ring() = std::move(other.ring());
    max_size_ = other.max_size_;
    list_ = std::exchange(other.list_, nullptr);
  }
  return *this;
}

linked_list_buffer& elastic_buffer::list() {
  if (list_ == nullptr) {
    const std::span<std::byte> mem = block_pool::allocate(sizeof(linked_list_buffer));
    list_ = new (mem.data()) linked_list_buffer(max_size_);
  }
  return *list_;
}

void elastic_buffer::drop_list_if_empty() noexcept {
  if (list_ != nullptr && list_->empty()) {
    list_->~linked_list_buffer();
    block_pool::deallocate({reinterpret_cast<std::byte*>(std::exchange(list_, nullptr)),
                            block_pool::block_size(sizeof(linked_list_buffer))});
  }
}

void elastic_buffer::clear() noexcept {
  ring().clear();
  if (list_ != nullptr) {
    list_->clear();
    drop_list_if_empty();
  }
}

std::error_code elastic_buffer::write(std::span<const std::byte> bytes) {
  if (bytes.size() > max_size_ - size()) {
    return errc::capacity_exceeded;
  }
  if (list_size() == 0 && ring().size() + bytes.size() <= ring_threshold()) {
    return ring().write(bytes);
  }
  const std::error_code ec = list().push(bytes);
  drop_list_if_empty();
  return ec;
}

std::error_code elastic_buffer::append(block&& b) {
  if (b.size() > max_size_ - size()) {
    return errc::capacity_exceeded;
  }
  const std::error_code ec = list().append(std::move(b));
  drop_list_if_empty();
  return ec;
}

std::size_t elastic_buffer::peek(std::span<iovec> out, std::size_t max_bytes) const noexcept {
  std::size_t count = 0;
  const byte_views views = ring().peek_all();
  for (const std::span<const std::byte> s : {views.first, views.second}) {
    const std::size_t n = std::min(s.size(), max_bytes);
    if (n > 0 && count < out.size()) {
      out[count++] = {const_cast<std::byte*>(s.data()), n};  // NOLINT: iovec is non-const
      max_bytes -= n;
    }
  }
  if (list_ != nullptr && count < out.size()) {
    count += list_->peek(out.subspan(count), max_bytes);
  }
  return count;
}

std::error_code elastic_buffer::discard(std::size_t n) noexcept {
  if (n > size()) {
    return errc::short_buffer;
  }
  const std::size_t from_ring = std::min(n, ring().size());
  (void)ring().discard(from_ring);
  if (n > from_ring) {
    (void)list_->discard(n - from_ring);
    drop_list_if_empty();
  }
  return {};
}

std::error_code elastic_buffer::read(std::span<std::byte> out) noexcept {
  if (out.size() > size()) {
    return errc::short_buffer;
  }
  const std::size_t from_ring = std::min(out.size(), ring().size());
  (void)ring().read(out.first(from_ring));
  if (out.size() > from_ring) {
    (void)list_->read(out.subspan(from_ring));
    drop_list_if_empty();
  }
  return {};
}

result<std::size_t> elastic_buffer::fill_from(int fd, std::span<std::byte> spill) {
  const std::size_t room = max_size_ - size();
  if (room == 0) {
    return errc::capacity_exceeded;
  }
  if (list_size() == 0 && ring().size() < ring_threshold()) {
    return ring().fill_from(fd, spill);  // the ring's own cap is the threshold, within room
  }
  result<std::size_t> got = list().fill_from(fd, spill, room);
  drop_list_if_empty();
  return got;
}

result<std::size_t> elastic_buffer::drain_to(int fd) noexcept {
  if (list_size() == 0) {
    return ring().drain_to(fd);
  }
  std::array<iovec, linked_list_buffer::max_iovecs> iov;  // NOLINT: filled by peek
  const std::size_t count = peek(iov);
  const ssize_t n = ::writev(fd, iov.data(), static_cast<int>(count));
  if (n < 0) {
    return std::error_code(errno, std::system_category());
  }
  (void)discard(static_cast<std::size_t>(n));
  return static_cast<std::size_t>(n);
}

}  // namespace actnet
