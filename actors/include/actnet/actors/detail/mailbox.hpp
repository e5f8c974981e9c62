// mailbox: a loop actor's inbox, a lock-free multi-producer queue that wakes its loop only
// when the loop is asleep.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace actnet::detail {

/// The per-thread post counters of mailbox::full: each live mailbox takes a counter of its own
/// (while at most 256 live; past that, later ones share, and a sender alternating strictly
/// between two sharing mailboxes counts only one of them). Thread-safe.
struct post_counter {
  std::uint8_t index;
  bool owned;  // given back at destruction
};
post_counter take_post_counter() noexcept;
void give_back_post_counter(post_counter c) noexcept;

/// Many producers (any thread), one consumer (the owning loop). Messages from one producer
/// thread arrive in the order that thread posted them; there is no order across producers.
///
/// Wake-ups coalesce: a producer calls `wake` only when the consumer has announced it is about
/// to block (prepare_to_sleep) and nobody has woken it since. The protocol cannot lose a
/// wake-up: the consumer publishes "asleep" and then re-checks the queue; a producer enqueues
/// and then checks "asleep"; a full fence on each side means at least one of them sees the
/// other's write.
// The padding that keeps asleep_ on its own cache line is deliberate.
template <class Message, class Waker>
class mailbox {  // NOLINT(clang-analyzer-optin.performance.Padding)
 public:
  explicit mailbox(Waker waker) : waker_(std::move(waker)) {}
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;
  ~mailbox() { detail::give_back_post_counter(counter_); }

  /// Thread-safe. Enqueues and, if the owner sleeps, wakes it. Throws std::bad_alloc when the
  /// queue cannot grow.
  void post(Message&& m) {
    if (!queue_.enqueue(std::move(m))) {
      throw std::bad_alloc();
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (asleep_.load(std::memory_order_relaxed) &&
        asleep_.exchange(false, std::memory_order_relaxed)) {
      wakeups_.fetch_add(1, std::memory_order_relaxed);
      waker_();
    }
  }

  /// Thread-safe: whether the mailbox holds about `cap` messages or more (never with cap 0).
  /// Cheap enough for every post: each producer thread counts the queue (moodycamel's
  /// size_approx, a sum over its producers) once every check_every posts to this mailbox (a
  /// counter per thread and mailbox, so sends spread over several mailboxes count each), and on
  /// every post while it was found full; so a mailbox overshoots its cap by at most
  /// check_every messages per producer thread.
  [[nodiscard]] bool full(std::size_t cap) noexcept {
    if (cap == 0) {
      return false;
    }
    // A byte per mailbox: it wraps to 0 every check_every posts.
    thread_local std::array<std::uint8_t, 256> posts{};
    const bool was_full = full_.load(std::memory_order_relaxed);
    if (!was_full && ++posts[counter_.index] != 0) [[likely]] {
      return false;
    }
    const bool now_full = queue_.size_approx() >= cap;
    if (now_full != was_full) {
      full_.store(now_full, std::memory_order_relaxed);
    }
    return now_full;
  }
  static constexpr std::uint32_t check_every = 256;  // where a std::uint8_t wraps

  /// Owner only. Hands up to `budget` messages to `handle`, in bulk, while `go_on()` says so
  /// (asked after each bulk); returns how many.
  template <class Handler, class GoOn>
  std::size_t drain(Handler&& handle, std::size_t budget, GoOn&& go_on) {
    std::size_t done = 0;
    while (done < budget && (done == 0 || go_on())) {
      const std::size_t want = std::min(batch_.size(), budget - done);
      const std::size_t got = queue_.try_dequeue_bulk(token_, batch_.begin(), want);
      if (got == 0) {
        break;
      }
      for (std::size_t i = 0; i < got; ++i) {
        handle(std::move(batch_[i]));
        batch_[i] = Message{};
      }
      done += got;
    }
    return done;
  }
  template <class Handler>
  std::size_t drain(Handler&& handle, std::size_t budget) {
    return drain(std::forward<Handler>(handle), budget, [] { return true; });
  }

  /// Owner only: call before blocking. Returns false when mail is already waiting (then do not
  /// block); true means a post from now on will wake the owner.
  [[nodiscard]] bool prepare_to_sleep() noexcept {
    asleep_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (queue_.size_approx() > 0) {
      asleep_.store(false, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  /// Owner only: call after waking, whatever woke it.
  void awake() noexcept { asleep_.store(false, std::memory_order_relaxed); }

  /// Approximate: exact only when no producer is posting.
  [[nodiscard]] std::size_t size_approx() const noexcept { return queue_.size_approx(); }
  /// How many times a producer had to wake the owner.
  [[nodiscard]] std::uint64_t wakeups() const noexcept {
    return wakeups_.load(std::memory_order_relaxed);
  }

 private:
  moodycamel::ConcurrentQueue<Message> queue_;
  moodycamel::ConsumerToken token_{queue_};
  std::vector<Message> batch_ = std::vector<Message>(64);
  Waker waker_;
  // Written by producers and the owner: its own cache line, away from the owner's fields.
  alignas(64) std::atomic<bool> asleep_{false};
  // Read by every bounded post, written only when the verdict changes: beside asleep_, which
  // every post reads already, so it costs no cache line of its own.
  std::atomic<bool> full_{false};
  const detail::post_counter counter_ = detail::take_post_counter();
  std::atomic<std::uint64_t> wakeups_{0};
};

}  // namespace actnet::detail
