// The round structure that actors_bench and peers_bench share, so actnet and its peers are
// measured the same way: rounds of messages counted by the consumer, producers that live for
// the whole run, rallies of round trips, and a failed run (never a hang) on a lost message.
#pragma once

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace actnet::perf {

// Messages per iteration of the throughput runs: enough that the hand-off at the start and end
// of a round (one condition variable each way) is noise, few enough that a round takes
// milliseconds.
inline constexpr int messages_per_round = 1 << 14;

// Round trips per iteration of the ping-pong runs. The serve from outside and the final "done"
// add about one more round trip's worth of wake-ups to each iteration: 0.2% at this count.
inline constexpr std::uint64_t round_trips_per_rally = 500;

// A round that takes longer than this is stuck (a lost message or wake-up looks like that): the
// run fails with an error instead of hanging the whole suite.
inline constexpr std::chrono::seconds stuck_after{10};

inline double as_double(std::uint64_t v) noexcept {
  return static_cast<double>(v);
}

inline std::uint64_t iterations_of(const benchmark::State& state) noexcept {
  return static_cast<std::uint64_t>(state.iterations());
}

// Counts events that another thread waits for ("round 7 is done"). A mutex and a condition
// variable rather than an atomic wait, because only a wait with a deadline turns a lost message
// into a failed run; it is used once per round, never once per message.
class event_count {
 public:
  void notify() {
    {
      const std::lock_guard lock(mutex_);
      ++count_;
    }
    changed_.notify_all();
  }
  // Until `n` events have happened, or false after `timeout`.
  [[nodiscard]] bool wait_for(std::uint64_t n, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return count_ >= n; });
  }
  void wait(std::uint64_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return count_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t count_ = 0;
};

// Waits for round `n`; marks the run failed when it is stuck.
inline bool finished(benchmark::State& state, event_count& done, std::uint64_t n) {
  if (done.wait_for(n, stuck_after)) {
    return true;
  }
  state.SkipWithError("a round did not finish within 10 s (a lost message or wake-up?)");
  return false;
}

// What the consumer does with each message: adds it up and, when a round's worth has arrived,
// tells the benchmark thread. Counting (rather than "the last message posted") is what makes
// the end of a round exact with several producers, whose messages have no order among them.
// Touched only by the consumer (a thread, or an actor whose runtime orders its turns) until
// that consumer is joined or shut down.
class tally {
 public:
  explicit tally(std::uint64_t per_round) : per_round_(per_round), next_round_(per_round) {}

  void take(int v) {
    sum_ += static_cast<std::uint64_t>(v);
    if (++handled_ == next_round_) {
      next_round_ += per_round_;
      rounds.notify();
    }
  }
  [[nodiscard]] std::uint64_t handled() const noexcept { return handled_; }
  [[nodiscard]] std::uint64_t sum() const noexcept { return sum_; }

  event_count rounds;

 private:
  std::uint64_t per_round_;
  std::uint64_t next_round_;
  std::uint64_t handled_ = 0;
  std::uint64_t sum_ = 0;
};

// Producer threads that each call post(0), post(1), ... post(share - 1) when a round starts.
// They live for the whole run, so thread start-up is not measured, and each keeps its slot in
// the queue (moodycamel's implicit producer) from round to round. The threads run members of
// this object, which joins them before it goes away.
template <class Post>
class producer_team {
 public:
  producer_team(std::size_t threads, int share, Post post) : share_(share), post_(std::move(post)) {
    for (std::size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { work(); });
    }
  }
  producer_team(const producer_team&) = delete;
  producer_team& operator=(const producer_team&) = delete;
  ~producer_team() {
    quit_.store(true);
    start_.notify();
    for (std::thread& t : threads_) {
      t.join();
    }
  }

  void start_round() { start_.notify(); }

 private:
  void work() {
    for (std::uint64_t round = 1;; ++round) {
      start_.wait(round);
      if (quit_.load()) {
        return;
      }
      for (int i = 0; i < share_; ++i) {
        post_(i);
      }
    }
  }

  const int share_;
  const Post post_;  // called by every producer at once: it must only read what it captured
  event_count start_;
  std::atomic<bool> quit_{false};
  std::vector<std::thread> threads_;
};

// The messages of one round add up to this, whoever posted them.
inline std::uint64_t round_sum(std::size_t producers, int share) noexcept {
  const auto n = static_cast<std::uint64_t>(share);
  return producers * (n * (n - 1) / 2);
}

// Every message handled exactly once, in the untimed round and the timed ones.
inline void check_tally(benchmark::State& state, const tally& t, std::uint64_t rounds,
                        std::uint64_t per_round, std::uint64_t sum_per_round) {
  if (t.handled() != rounds * per_round || t.sum() != rounds * sum_per_round) {
    state.SkipWithError("the consumer did not handle every message exactly once");
  }
}

// Does nothing: run_rounds' default for `warmed_up`.
struct no_op {
  void operator()() const noexcept {}
};

// Runs the untimed round, calls warmed_up() (to read counters at the start of the timed part),
// then runs one round per iteration: start_round() sets one going, `done` counts the finished
// ones, `rounds` how many were started. False when a round got stuck (the run is then failed).
template <class StartRound, class WarmedUp = no_op>
bool run_rounds(benchmark::State& state, StartRound start_round, event_count& done,
                std::uint64_t& rounds, WarmedUp warmed_up = {}) {
  start_round();  // untimed: queues have grown their blocks, consumers sleep as between rounds
  if (!finished(state, done, ++rounds)) {
    return false;
  }
  warmed_up();
  for (auto _ : state) {
    start_round();
    if (!finished(state, done, ++rounds)) {
      return false;
    }
  }
  return true;
}

// For measure_rallies: a peer that cannot say how often it woke a sleeping thread.
struct no_wakeup_count {};

// Per iteration: one rally of round_trips_per_rally round trips, served from outside. Reports
// the mean round trip and, when `wakeups` can say, the wake-ups per round trip (two when each
// side sleeps in between).
template <class Serve, class Wakeups = no_wakeup_count>
void measure_rallies(benchmark::State& state, Serve serve, event_count& done,
                     Wakeups wakeups = {}) {
  constexpr bool counts_wakeups = !std::is_same_v<Wakeups, no_wakeup_count>;
  std::uint64_t rallies = 0;
  serve();  // untimed: both sides have run once and are asleep, as between rallies
  if (!finished(state, done, ++rallies)) {
    return;
  }
  std::uint64_t wakeups_before = 0;
  if constexpr (counts_wakeups) {
    wakeups_before = wakeups();
  }
  std::chrono::steady_clock::duration elapsed{};
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    serve();
    if (!finished(state, done, ++rallies)) {
      return;
    }
    elapsed += std::chrono::steady_clock::now() - start;
  }
  const std::uint64_t trips = iterations_of(state) * round_trips_per_rally;
  state.SetItemsProcessed(static_cast<std::int64_t>(trips));
  state.counters["rtt_us"] =
      std::chrono::duration<double, std::micro>(elapsed).count() / as_double(trips);
  if constexpr (counts_wakeups) {
    state.counters["wakeups/rtt"] = as_double(wakeups() - wakeups_before) / as_double(trips);
  }
}

// Per run: messages and wake-ups of the consumer, as every throughput run reports them. At best
// one wake-up per round (the consumer sleeps between rounds): 1 / messages_per_round.
inline void report_throughput(benchmark::State& state, std::uint64_t per_round,
                              std::uint64_t wakeups) {
  const std::uint64_t messages = iterations_of(state) * per_round;
  state.SetItemsProcessed(static_cast<std::int64_t>(messages));
  state.counters["wakeups/msg"] = as_double(wakeups) / as_double(messages);
  state.counters["wakeups/round"] = as_double(wakeups) / as_double(iterations_of(state));
}

}  // namespace actnet::perf
