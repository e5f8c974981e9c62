// local_queue: a loop's mail from its own thread, a FIFO that no other thread touches, so a send
// from one of the loop's handlers to one of its actors costs no atomic and no shared queue.
#pragma once

#include <cstddef>
#include <new>
#include <utility>

namespace actnet::detail {

/// Single-threaded FIFO in chunks of ChunkSize entries. An entry never moves once queued: the
/// consumer handles front() where it lies (and may push more meanwhile), then pop()s it. When it
/// empties it starts again at the front of the chunk it is in; it keeps up to MaxSpares emptied
/// chunks for reuse, so a steady flow allocates nothing and a burst little (release_memory
/// frees them). Loop-thread only (or after the loop's thread has been joined).
template <class T, std::size_t ChunkSize = 128, std::size_t MaxSpares = 8>
class local_queue {
 public:
  local_queue() noexcept = default;
  local_queue(const local_queue&) = delete;
  local_queue& operator=(const local_queue&) = delete;
  ~local_queue() {
    while (!empty()) {
      pop();
    }
    release_memory();
  }

  /// Queues the T that `make()` returns, made in place. Throws std::bad_alloc when a chunk
  /// cannot be had (nothing queued then), or what make() throws.
  template <class Make>
  void emplace_with(Make&& make) {
    if (tail_ == tail_end_) [[unlikely]] {
      grow();
    }
    ::new (static_cast<void*>(tail_)) T(std::forward<Make>(make)());
    ++tail_;
    ++size_;
  }

  /// The oldest entry. Not empty().
  [[nodiscard]] T& front() noexcept { return *std::launder(head_); }
  /// Destroys the oldest entry. Not empty().
  void pop() noexcept {
    std::launder(head_)->~T();
    if (--size_ == 0) {
      head_ = tail_ = tail_chunk_->first();  // the last entry was in the tail chunk, which stays
      return;
    }
    if (++head_ == head_chunk_->last()) {
      chunk* done = head_chunk_;
      head_chunk_ = done->next;
      head_ = head_chunk_->first();
      keep_spare(done);
    }
  }

  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// Frees the spare chunks, and the last one when empty (an idle loop's memory release).
  void release_memory() noexcept {
    while (spare_ != nullptr) {
      delete std::exchange(spare_, spare_->next);
    }
    spares_ = 0;
    if (empty() && head_chunk_ != nullptr) {
      delete head_chunk_;
      head_chunk_ = tail_chunk_ = nullptr;
      head_ = tail_ = tail_end_ = nullptr;
    }
  }

 private:
  // Raw storage, never zeroed: entries are made in it one by one.
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init)
  struct chunk {
    alignas(T) std::byte bytes[ChunkSize * sizeof(T)];  // NOLINT(cppcoreguidelines-avoid-c-arrays)
    chunk* next = nullptr;
    [[nodiscard]] T* first() noexcept {
      return reinterpret_cast<T*>(bytes);  // NOLINT(*-reinterpret-cast)
    }
    [[nodiscard]] T* last() noexcept { return first() + ChunkSize; }  // one past the end
  };

  void grow() {
    chunk* c = nullptr;
    if (spare_ != nullptr) {
      c = std::exchange(spare_, spare_->next);
      --spares_;
    } else {
      c = new chunk;
    }
    c->next = nullptr;
    if (tail_chunk_ != nullptr) {
      tail_chunk_->next = c;
    } else {
      head_chunk_ = c;
      head_ = c->first();
    }
    tail_chunk_ = c;
    tail_ = c->first();
    tail_end_ = c->last();
  }
  void keep_spare(chunk* c) noexcept {
    if (spares_ < MaxSpares) {
      c->next = std::exchange(spare_, c);
      ++spares_;
    } else {
      delete c;
    }
  }

  // Cursors rather than indices: no multiplication by sizeof(T) at each use.
  T* head_ = nullptr;      // the oldest entry (when not empty), in head_chunk_
  T* tail_ = nullptr;      // where the next entry goes, in tail_chunk_
  T* tail_end_ = nullptr;  // tail_chunk_'s end: null or full, the next emplace takes a chunk
  chunk* head_chunk_ = nullptr;
  chunk* tail_chunk_ = nullptr;
  std::size_t size_ = 0;
  chunk* spare_ = nullptr;  // a list through next
  std::size_t spares_ = 0;
};

}  // namespace actnet::detail
