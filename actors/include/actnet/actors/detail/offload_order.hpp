// offload_order: puts the results of one actor's offloaded jobs back in the order they were
// submitted, whichever worker finished first.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>
#include <utility>

#include "actnet/unique_function.hpp"

namespace actnet::detail {

/// Sequence numbers per actor (by a 64-bit id: its slot and generation), and the results that
/// arrived ahead of their turn. Only actors with an offload in flight have an entry. Loop-thread
/// only.
class offload_order {
 public:
  /// The next submission's number.
  std::uint64_t next(std::uint64_t id) { return actors_[id].next_seq++; }

  /// Whether no actor has an offload in flight.
  [[nodiscard]] bool empty() const noexcept { return actors_.empty(); }

  /// Submission `seq` failed: nothing will arrive for it. Only the latest number can be taken
  /// back (the same thread submits, with no yield between next() and this).
  void unused(std::uint64_t id, std::uint64_t seq) noexcept {
    const auto it = actors_.find(id);
    if (it == actors_.end()) {
      return;
    }
    if (seq + 1 == it->second.next_seq) {
      --it->second.next_seq;
    }
    erase_if_idle(it);
  }

  /// Result `seq` arrived (an empty `deliver`: its job produced nothing, but its turn passes).
  /// Runs it and every result queued behind it that is now due, in order, each through
  /// `run(deliver)`, which returns whether the actor still takes results (false: it closed; the
  /// rest wait until forget()). A result for an id with no entry (forgotten) is dropped.
  template <class Run>
  void arrived(std::uint64_t id, std::uint64_t seq, unique_function<void()> deliver, Run&& run) {
    auto it = actors_.find(id);
    if (it == actors_.end()) {
      return;
    }
    if (seq != it->second.next_due) {
      it->second.early.emplace(seq, std::move(deliver));  // waits for the ones before it
      return;
    }
    for (;;) {
      ++it->second.next_due;
      // It may offload again (the same entry) or forget the actor.
      const bool open = !deliver || run(deliver);
      it = actors_.find(id);
      if (it == actors_.end() || !open) {
        return;
      }
      entry& e = it->second;
      if (e.early.empty() || e.early.begin()->first != e.next_due) {
        erase_if_idle(it);
        return;
      }
      deliver = std::move(e.early.begin()->second);
      e.early.erase(e.early.begin());
    }
  }

  /// The actor has gone: results still to come find no entry.
  void forget(std::uint64_t id) noexcept {
    if (!actors_.empty()) {
      actors_.erase(id);
    }
  }
  /// Actors with offloads in flight.
  [[nodiscard]] std::size_t size() const noexcept { return actors_.size(); }

 private:
  struct entry {
    std::uint64_t next_seq = 0;                              // the next offload's number
    std::uint64_t next_due = 0;                              // the next result to run
    std::map<std::uint64_t, unique_function<void()>> early;  // arrived ahead of their turn
  };
  using iterator = std::unordered_map<std::uint64_t, entry>::iterator;
  void erase_if_idle(iterator it) noexcept {
    if (it->second.next_due == it->second.next_seq && it->second.early.empty()) {
      actors_.erase(it);  // nothing in flight: no entry
    }
  }
  std::unordered_map<std::uint64_t, entry> actors_;
};

}  // namespace actnet::detail
