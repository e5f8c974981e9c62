// slot_table: a loop's actors by (slot, generation), so an address held by another thread can
// be checked for "still the same actor" without a pointer crossing threads.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "actnet/actors/detail/io_key.hpp"

namespace actnet::detail {

/// Slots are reused; generations are not (for 2^30 - 1 installs), so a stale (slot, generation)
/// finds nothing. Generation 0 is never given: an address with it names no actor. A slot holds
/// only the item's pointer (8 bytes an actor); the item keeps its own generation, which
/// `GenerationOf(item)` reads. Loop-thread only.
template <class T, class GenerationOf>
class slot_table {
 public:
  struct place {
    std::uint32_t slot;
    std::uint32_t generation;
  };
  /// Entries the table reserves at its first use: address space only, touched as slots are
  /// taken, so that growing to this many never copies the table (a copy leaves the old one's
  /// pages resident in the heap: about 26 bytes a connection at 10,000).
  static constexpr std::size_t initial_reserve = 65536;

  slot_table() noexcept = default;
  /// A table whose first generation is `first` (1 to max_generation): for tests of the wrap.
  explicit slot_table(std::uint32_t first) noexcept : next_generation_(first) {}

  /// A free slot and the next generation, for an item to be filled in with fill(); give it
  /// back with release(). Throws std::bad_alloc when the table cannot grow.
  place reserve() {
    std::uint32_t slot = 0;
    if (free_.empty()) {
      if (items_.capacity() == 0) {
        items_.reserve(initial_reserve);
      }
      slot = static_cast<std::uint32_t>(items_.size());
      items_.push_back(nullptr);
      if (free_.capacity() < items_.capacity()) {
        free_.reserve(items_.capacity());  // so that release() never allocates
      }
    } else {
      slot = free_.back();
      free_.pop_back();
    }
    const std::uint32_t generation = next_generation_;
    next_generation_ = next_generation_ == io_key::max_generation ? 1 : next_generation_ + 1;
    return {slot, generation};
  }
  /// Puts `item` (whose generation is the one reserve() gave) in its slot.
  void fill(std::uint32_t slot, T* item) noexcept { items_[slot] = item; }
  /// Frees the slot: its (slot, generation) finds nothing from now on.
  void release(std::uint32_t slot) noexcept {
    items_[slot] = nullptr;
    free_.push_back(slot);  // has room: reserve() made it
  }

  [[nodiscard]] T* find(std::uint32_t slot, std::uint32_t generation) const noexcept {
    if (slot >= items_.size()) {
      return nullptr;
    }
    T* item = items_[slot];
    return item != nullptr && GenerationOf{}(*item) == generation ? item : nullptr;
  }
  /// find() for a slot known to be in the table: one the back end reports an event for. Every
  /// fd leaves the back end before its slot is freed, and the table shrinks only between
  /// waits, so such a slot is in range (debug builds check); this saves the bounds test on the
  /// per-message path.
  [[nodiscard]] T* find_registered(std::uint32_t slot, std::uint32_t generation) const noexcept {
    assert(slot < items_.size());
    T* item = items_[slot];
    return item != nullptr && GenerationOf{}(*item) == generation ? item : nullptr;
  }
  /// Entries, free or not (the high-water mark since the last shrink).
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] bool all_free() const noexcept { return free_.size() == items_.size(); }
  /// The item in slot `i` (null when free): for walks by index, which stay valid if the table
  /// grows during them.
  [[nodiscard]] T* at(std::size_t i) const noexcept { return items_[i]; }
  /// Gives the memory back when every slot is free (an idle loop); false otherwise.
  bool shrink() noexcept {
    if (!all_free()) {
      return false;
    }
    std::vector<T*>().swap(items_);
    std::vector<std::uint32_t>().swap(free_);
    return true;
  }

 private:
  std::vector<T*> items_;
  std::vector<std::uint32_t> free_;
  std::uint32_t next_generation_ = 1;
};

}  // namespace actnet::detail
