// ring_buffer: growth, wrap-around copies, and readv/writev against the free and used spans.
#include "actnet/buffers/ring_buffer.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "actnet/buffers/block_pool.hpp"
#include "actnet/error.hpp"

namespace actnet {
namespace {

std::uint8_t log2_of_cap(std::size_t max_capacity) {
  if (max_capacity == 0 || max_capacity > ring_buffer::largest_capacity) {
    throw std::invalid_argument("actnet::ring_buffer: max capacity " +
                                std::to_string(max_capacity) + " is not in [1, 2 GiB]");
  }
  return static_cast<std::uint8_t>(std::countr_zero(std::bit_ceil(max_capacity)));
}

iovec as_iovec(std::span<std::byte> s) noexcept {
  return {s.data(), s.size()};
}
iovec as_iovec(std::span<const std::byte> s) noexcept {
  return {const_cast<std::byte*>(s.data()), s.size()};  // NOLINT: writev takes non-const iovecs
}

}  // namespace

ring_buffer::ring_buffer(std::size_t max_capacity)
    : max_capacity_log2_(log2_of_cap(max_capacity)) {}

ring_buffer::ring_buffer(ring_buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      head_(std::exchange(other.head_, 0)),
      size_(std::exchange(other.size_, 0)),
      capacity_log2_(std::exchange(other.capacity_log2_, 0)),
      max_capacity_log2_(other.max_capacity_log2_),
      hint_log2_(other.hint_log2_) {}

ring_buffer& ring_buffer::operator=(ring_buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    head_ = std::exchange(other.head_, 0);
    size_ = std::exchange(other.size_, 0);
    capacity_log2_ = std::exchange(other.capacity_log2_, 0);
    max_capacity_log2_ = other.max_capacity_log2_;
    hint_log2_ = other.hint_log2_;
  }
  return *this;
}

void ring_buffer::release_block() noexcept {
  if (data_ != nullptr) {
    block_pool::deallocate({data_, block_pool::block_size(capacity())});
    data_ = nullptr;
    hint_log2_ = capacity_log2_ > 0 ? capacity_log2_ - 1 : 0;
  }
}

void ring_buffer::release() noexcept {
  release_block();
  head_ = 0;
  size_ = 0;
  capacity_log2_ = 0;
}

void ring_buffer::clear() noexcept {
  release();
}

bool ring_buffer::reserve(std::size_t extra, std::span<std::byte>* retired, bool move) {
  const std::size_t needed = size_ + extra;
  if (needed > max_capacity()) {
    return false;
  }
  if (needed <= capacity() && !move) {
    return true;
  }
  const std::size_t floor = data_ == nullptr ? std::size_t{1} << hint_log2_ : 0;
  const std::size_t cap = std::min(
      max_capacity(), std::max({std::bit_ceil(needed), defaults::ring_initial_capacity, floor}));
  // The pool may hand out more than `cap` (its smallest block is 64 bytes); the ring uses
  // `cap` of it, so capacity() never exceeds max_capacity().
  const std::span<std::byte> block = block_pool::allocate(cap);
  // Unwrap into the new block: the used bytes start at offset 0.
  peek_all().copy_to(block.first(size_));
  if (retired != nullptr && data_ != nullptr) {
    *retired = {data_, block_pool::block_size(capacity())};
    data_ = nullptr;
  }
  release_block();
  data_ = block.data();
  head_ = 0;
  capacity_log2_ = static_cast<std::uint8_t>(std::countr_zero(cap));
  return true;
}

void ring_buffer::copy_in(std::span<const std::byte> bytes) noexcept {
  const std::size_t tail = (head_ + size_) & mask();
  const std::size_t first = std::min(bytes.size(), capacity() - tail);
  std::memcpy(data_ + tail, bytes.data(), first);
  std::memcpy(data_, bytes.data() + first, bytes.size() - first);
  size_ += static_cast<std::uint32_t>(bytes.size());
}

std::error_code ring_buffer::write_keeping_views(std::span<const std::byte> bytes,
                                                 std::span<std::byte>& retired, bool move) {
  retired = {};
  if (bytes.empty()) {
    return {};
  }
  if (!reserve(bytes.size(), &retired, move)) {
    return errc::capacity_exceeded;
  }
  copy_in(bytes);
  return {};
}

std::error_code ring_buffer::write_slow(std::span<const std::byte> bytes) {
  if (bytes.empty()) {
    return {};
  }
  if (!reserve(bytes.size())) {
    return errc::capacity_exceeded;
  }
  copy_in(bytes);
  return {};
}

byte_views ring_buffer::peek_all() const noexcept {
  if (size_ == 0) {
    return {};
  }
  const std::size_t first = std::min<std::size_t>(size_, capacity() - head_);
  return {{data_ + head_, first}, {data_, size_ - first}};
}

result<byte_views> ring_buffer::peek(std::size_t n) const noexcept {
  if (n > size_) {
    return errc::short_buffer;
  }
  const byte_views all = peek_all();
  if (n <= all.first.size()) {
    return byte_views{all.first.first(n), {}};
  }
  return byte_views{all.first, all.second.first(n - all.first.size())};
}

void ring_buffer::consume(std::size_t n) noexcept {
  size_ -= static_cast<std::uint32_t>(n);
  head_ = size_ == 0 ? 0 : static_cast<std::uint32_t>((head_ + n) & mask());
}

result<byte_views> ring_buffer::next(std::size_t n) noexcept {
  result<byte_views> views = peek(n);
  if (views) {
    consume(n);  // the block stays, even when drained: the views point into it
  }
  return views;
}

std::error_code ring_buffer::discard_slow(std::size_t n) noexcept {
  if (n > size_) {
    return errc::short_buffer;
  }
  consume(n);
  trim();
  return {};
}

std::error_code ring_buffer::read(std::span<std::byte> out) noexcept {
  const result<byte_views> views = peek(out.size());
  if (!views) {
    return views.error();
  }
  views->copy_to(out);
  consume(out.size());
  trim();
  return {};
}

result<std::size_t> ring_buffer::fill_from(int fd, std::span<std::byte> spill) {
  const std::size_t room = max_capacity() - size_;
  if (room == 0) {
    return errc::capacity_exceeded;
  }
  if (spill.empty() && capacity() == size_ && !reserve(1)) {
    return errc::capacity_exceeded;  // unreachable: room > 0 means one more byte fits
  }
  std::array<iovec, 3> iov{};
  int count = 0;
  std::size_t offered = 0;
  const auto offer = [&](std::span<std::byte> s) {
    const std::size_t take = std::min(s.size(), room - offered);
    if (take > 0) {
      iov[count++] = as_iovec(s.first(take));
      offered += take;
    }
  };
  const std::size_t free_space = capacity() - size_;
  if (free_space > 0) {
    const std::size_t tail = (head_ + size_) & mask();
    const std::size_t first = std::min(free_space, capacity() - tail);
    offer({data_ + tail, first});
    offer({data_, free_space - first});
  }
  offer(spill);
  const ssize_t n = ::readv(fd, iov.data(), count);
  if (n <= 0) {
    const std::error_code ec =
        n < 0 ? std::error_code(errno, std::system_category()) : std::error_code();
    trim();  // a block reserved for this read that got nothing goes back at once
    return ec ? result<std::size_t>(ec) : std::size_t{0};
  }
  const auto got = static_cast<std::size_t>(n);
  const std::size_t in_ring = std::min(got, free_space);
  size_ += static_cast<std::uint32_t>(in_ring);
  if (got > in_ring) {
    const std::span<const std::byte> rest = spill.first(got - in_ring);
    if (!reserve(rest.size())) {
      return errc::capacity_exceeded;  // unreachable: readv was offered no more than the room
    }
    copy_in(rest);
  }
  return got;
}

result<std::size_t> ring_buffer::drain_to(int fd) noexcept {
  if (size_ == 0) {
    return std::size_t{0};
  }
  const byte_views views = peek_all();
  const std::array<iovec, 2> iov{as_iovec(views.first), as_iovec(views.second)};
  const ssize_t n = ::writev(fd, iov.data(), views.second.empty() ? 1 : 2);
  if (n < 0) {
    return std::error_code(errno, std::system_category());
  }
  consume(static_cast<std::size_t>(n));
  trim();
  return static_cast<std::size_t>(n);
}

}  // namespace actnet
