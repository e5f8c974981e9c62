// block and list_node: payload blocks with their header in the first bytes of a pool block.
#include "actnet/buffers/block.hpp"

#include <cassert>
#include <cstring>
#include <new>
#include <utility>

#include "actnet/buffers/block_pool.hpp"

namespace actnet {
namespace detail {

list_node* list_node::make(std::size_t capacity) {
  const std::span<std::byte> mem = block_pool::allocate(header_size + capacity);
  auto* node = new (mem.data())
      list_node{nullptr, 0, 0, static_cast<std::uint32_t>(mem.size() - header_size), 0};
  return node;
}

void list_node::destroy(list_node* node) noexcept {
  if (node != nullptr) {
    const std::size_t bytes = header_size + node->capacity;
    node->~list_node();
    block_pool::deallocate({reinterpret_cast<std::byte*>(node), bytes});
  }
}

}  // namespace detail

block block::allocate(std::size_t capacity) {
  block b;
  b.node_ = detail::list_node::make(capacity);
  return b;
}

block block::copy_of(std::span<const std::byte> bytes) {
  block b = allocate(bytes.size());
  if (!bytes.empty()) {
    std::memcpy(b.space().data(), bytes.data(), bytes.size());
  }
  b.commit(bytes.size());
  return b;
}

block& block::operator=(block&& other) noexcept {
  if (this != &other) {
    detail::list_node::destroy(std::exchange(node_, std::exchange(other.node_, nullptr)));
  }
  return *this;
}

std::span<std::byte> block::space() noexcept {
  if (node_ == nullptr) {
    return {};
  }
  return {node_->payload() + node_->end, node_->room()};
}

void block::commit(std::size_t n) noexcept {
  assert(node_ != nullptr && n <= node_->room());
  node_->end += static_cast<std::uint32_t>(n);
}

std::span<const std::byte> block::data() const noexcept {
  if (node_ == nullptr) {
    return {};
  }
  return {node_->payload() + node_->begin, node_->size()};
}

}  // namespace actnet
