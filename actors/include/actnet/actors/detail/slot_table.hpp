// slot_table: a loop's actors by (slot, generation), so an address held by another thread can
// be checked for "still the same actor" without a pointer crossing threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "actnet/actors/detail/io_key.hpp"

namespace actnet::detail {

/// Slots are reused; generations are not (for 2^30 - 1 installs), so a stale (slot, generation)
/// finds nothing. Generation 0 is never given: it marks a free slot, and an address with it
/// names no actor. Loop-thread only.
template <class T>
class slot_table {
 public:
  struct entry {
    T* item = nullptr;
    std::uint32_t generation = 0;  // 0: free
  };
  struct place {
    std::uint32_t slot;
    std::uint32_t generation;
  };

  slot_table() noexcept = default;
  /// A table whose first generation is `first` (1 to max_generation): for tests of the wrap.
  explicit slot_table(std::uint32_t first) noexcept : next_generation_(first) {}

  /// A free slot with the next generation, empty until fill(); give it back with release().
  /// Throws std::bad_alloc when the table cannot grow.
  place reserve() {
    std::uint32_t slot = 0;
    if (free_.empty()) {
      slot = static_cast<std::uint32_t>(entries_.size());
      entries_.emplace_back();
      free_.reserve(entries_.capacity());  // so that release() never allocates
    } else {
      slot = free_.back();
      free_.pop_back();
    }
    const std::uint32_t generation = next_generation_;
    next_generation_ = next_generation_ == io_key::max_generation ? 1 : next_generation_ + 1;
    entries_[slot].generation = generation;
    return {slot, generation};
  }
  void fill(std::uint32_t slot, T* item) noexcept { entries_[slot].item = item; }
  /// Frees the slot: its (slot, generation) finds nothing from now on.
  void release(std::uint32_t slot) noexcept {
    entries_[slot] = entry{};
    free_.push_back(slot);  // has room: reserve() made it
  }

  [[nodiscard]] T* find(std::uint32_t slot, std::uint32_t generation) const noexcept {
    if (slot >= entries_.size() || entries_[slot].generation != generation) {
      return nullptr;
    }
    return entries_[slot].item;
  }
  /// Entries, free or not (the high-water mark since the last shrink).
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool all_free() const noexcept { return free_.size() == entries_.size(); }
  /// The item in slot `i` (null when free): for walks by index, which stay valid if the table
  /// grows during them.
  [[nodiscard]] T* at(std::size_t i) const noexcept { return entries_[i].item; }
  /// Gives the memory back when every slot is free (an idle loop); false otherwise.
  bool shrink() noexcept {
    if (!all_free()) {
      return false;
    }
    std::vector<entry>().swap(entries_);
    std::vector<std::uint32_t>().swap(free_);
    return true;
  }

 private:
  std::vector<entry> entries_;
  std::vector<std::uint32_t> free_;
  std::uint32_t next_generation_ = 1;
};

}  // namespace actnet::detail
