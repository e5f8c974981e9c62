// actors_bench: the loop actor's mailbox and cross-loop latency: how many closures one loop takes
// from one or four producer threads (and how well their wake-ups coalesce), the bare queue under
// it as a reference point, and the round trip between two loops and between two connections.
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "actnet/actors/conn_ref.hpp"
#include "actnet/actors/connection.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/actors/mailbox.hpp"
#include "actnet/defaults.hpp"
#include "actnet/reactor/address.hpp"
#include "actnet/reactor/unique_fd.hpp"
#include "bench_main.hpp"

namespace {

using namespace std::chrono_literals;

// Messages per iteration of the mailbox runs: enough that the hand-off at the start and end of a
// round (one condition variable each way) is noise, few enough that a round takes milliseconds.
constexpr int messages_per_round = 1 << 14;

// Round trips per iteration of the ping-pong runs. The serve from outside and the final "done"
// add about one more round trip's worth of wake-ups to each iteration: 0.2% at this count.
constexpr std::uint64_t round_trips_per_rally = 500;

// A round that takes longer than this is stuck (a lost message or wake-up looks like that): the
// run fails with an error instead of hanging the whole suite.
constexpr auto stuck_after = 10s;

double as_double(std::uint64_t v) noexcept {
  return static_cast<double>(v);
}

std::uint64_t iterations_of(const benchmark::State& state) noexcept {
  return static_cast<std::uint64_t>(state.iterations());
}

// The default options with `n` loops. (A designated initializer would be shorter, but g++ 12's
// -Wmissing-field-initializers flags the members it leaves to their defaults.)
actnet::engine_options with_loops(std::size_t n) {
  actnet::engine_options o;
  o.loops = n;
  return o;
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
bool finished(benchmark::State& state, event_count& done, std::uint64_t n) {
  if (done.wait_for(n, stuck_after)) {
    return true;
  }
  state.SkipWithError("a round did not finish within 10 s (a lost message or wake-up?)");
  return false;
}

// Runs an engine on a thread of its own (run() takes the calling thread for loop 0); stops it
// and joins on destruction, so every way out of a benchmark leaves no thread or socket behind.
class running_engine {
 public:
  explicit running_engine(actnet::engine& e) : engine_(e), thread_([&e] { e.run(); }) {}
  running_engine(const running_engine&) = delete;
  running_engine& operator=(const running_engine&) = delete;
  ~running_engine() {
    engine_.stop();
    thread_.join();
  }

 private:
  actnet::engine& engine_;
  std::thread thread_;
};

// What the consumer does with each message: adds it up and, when a round's worth has arrived,
// tells the benchmark thread. Counting (rather than "the last message posted") is what makes
// the end of a round exact with several producers, whose messages have no order among them.
// Touched only by the consuming thread until that thread is joined.
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
std::uint64_t round_sum(std::size_t producers, int share) noexcept {
  const auto n = static_cast<std::uint64_t>(share);
  return producers * (n * (n - 1) / 2);
}

// Every message handled exactly once, in the untimed round and the timed ones.
void check_tally(benchmark::State& state, const tally& t, std::uint64_t rounds,
                 std::uint64_t per_round, std::uint64_t sum_per_round) {
  if (t.handled() != rounds * per_round || t.sum() != rounds * sum_per_round) {
    state.SkipWithError("the consumer did not handle every message exactly once");
  }
}

// -- mailbox/1to1, mailbox/4to1: producer threads posting closures to one loop -----------------

// Per iteration: the producers post messages_per_round closures between them (each captures a
// pointer and an int); the iteration ends when the loop has run the last of them.
void mailbox_loop(benchmark::State& state, std::size_t producers) {
  const int share = messages_per_round / static_cast<int>(producers);
  const std::uint64_t per_round = producers * static_cast<std::uint64_t>(share);
  tally sink(per_round);  // outlives the engine, so no closure can outlive it
  std::uint64_t rounds = 0;
  std::uint64_t wakeups = 0;
  {
    actnet::engine e(with_loops(1));
    const running_engine running(e);
    actnet::event_loop& loop = e.loop(0);
    // Declared last, so its threads are joined before the engine stops.
    producer_team team(producers, share, [&loop, to = &sink](int v) {
      loop.post([to, v](actnet::event_loop&) { to->take(v); });
    });
    // One untimed round: the queue grows its blocks, the loop falls asleep as between rounds.
    team.start_round();
    if (!finished(state, sink.rounds, ++rounds)) {
      return;
    }
    const std::uint64_t wakeups_before = loop.wakeups();
    for (auto _ : state) {
      team.start_round();
      if (!finished(state, sink.rounds, ++rounds)) {
        return;
      }
    }
    wakeups = loop.wakeups() - wakeups_before;  // before stop(), whose message may wake it
  }
  check_tally(state, sink, rounds, per_round, round_sum(producers, share));
  const std::uint64_t messages = iterations_of(state) * per_round;
  state.SetItemsProcessed(static_cast<std::int64_t>(messages));
  // At best one wake-up per round (the loop sleeps between rounds): 1 / messages_per_round.
  state.counters["wakeups/msg"] = as_double(wakeups) / as_double(messages);
  state.counters["wakeups/round"] = as_double(wakeups) / as_double(iterations_of(state));
}

// -- mailbox/raw_queue/1to1: the queue alone, without the loop ---------------------------------

// Never called: the consumer below never announces that it sleeps.
struct no_waker {
  void operator()() const noexcept {}
};

// The same rounds straight through actnet::mailbox<int>: one producer thread, one consumer
// thread spinning on drain(). The gap to mailbox/1to1 is what the loop adds (closures in
// messages, epoll_wait between batches, sleeping and waking). On a busy two-core machine the
// figure is bimodal: a spinning consumer is fast while it has a core to itself and an order of
// magnitude slower when it shares one, where the loop, which sleeps, degrades far less.
void mailbox_raw_queue(benchmark::State& state) {
  constexpr std::size_t producers = 1;
  const std::uint64_t per_round = messages_per_round;
  actnet::mailbox<int, no_waker> box{no_waker{}};
  tally sink(per_round);
  std::uint64_t rounds = 0;
  {
    // Yields when the queue is empty, so between rounds it leaves the second core to others.
    const std::jthread consumer([&box, &sink](const std::stop_token& stop) {
      while (!stop.stop_requested()) {
        if (box.drain([&sink](int v) { sink.take(v); }, actnet::defaults::mailbox_budget) == 0) {
          std::this_thread::yield();
        }
      }
    });
    producer_team team(producers, messages_per_round, [&box](int v) { box.post(int{v}); });
    team.start_round();
    if (!finished(state, sink.rounds, ++rounds)) {
      return;
    }
    for (auto _ : state) {
      team.start_round();
      if (!finished(state, sink.rounds, ++rounds)) {
        return;
      }
    }
  }
  check_tally(state, sink, rounds, per_round, round_sum(producers, messages_per_round));
  state.SetItemsProcessed(static_cast<std::int64_t>(iterations_of(state) * per_round));
}

// -- ping-pong: round trips between two loops --------------------------------------------------

// Per iteration: one rally of round_trips_per_rally round trips, served from outside. Reports
// the mean round trip and the wake-ups per round trip (two when each side sleeps in between).
template <class Serve, class Wakeups>
void measure_rallies(benchmark::State& state, Serve serve, event_count& done, Wakeups wakeups) {
  std::uint64_t rallies = 0;
  serve();  // untimed: both loops have run once and are asleep, as between rallies
  if (!finished(state, done, ++rallies)) {
    return;
  }
  const std::uint64_t wakeups_before = wakeups();
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
  state.counters["wakeups/rtt"] = as_double(wakeups() - wakeups_before) / as_double(trips);
}

// The ball of pingpong/loops. Its closures carry a pointer to it; it is declared before the
// engine, so it outlives every closure.
struct loop_rally {
  actnet::engine* court = nullptr;
  std::uint64_t left = 0;  // round trips to go: loop 0's during a rally, the benchmark's between
  event_count done;
};

void to_loop_1(loop_rally* r);

// On loop 0: one round trip done.
void back_at_loop_0(loop_rally* r) {
  if (--r->left == 0) {
    r->done.notify();
  } else {
    to_loop_1(r);
  }
}

void to_loop_1(loop_rally* r) {
  r->court->loop(1).post([r](actnet::event_loop& far) {
    far.owner().loop(0).post([r](actnet::event_loop&) { back_at_loop_0(r); });
  });
}

void pingpong_loops(benchmark::State& state) {
  loop_rally rally;
  actnet::engine e(with_loops(2));
  rally.court = &e;
  const running_engine running(e);
  measure_rallies(
      state,
      [&rally] {
        rally.left = round_trips_per_rally;
        to_loop_1(&rally);
      },
      rally.done, [&e] { return e.loop(0).wakeups() + e.loop(1).wakeups(); });
}

// -- ping-pong: round trips between two connection actors (conn_ref::tell) ---------------------

// What the two connections of pingpong/conn_tell share. Declared before the engine, so it
// outlives the connections that point at it.
struct conn_rally {
  std::mutex mutex;
  std::array<actnet::conn_ref, 2> sides;  // by loop index; written in on_open, then only read
  bool same_loop = false;                 // two connections landed on one loop
  event_count opened;
  std::uint64_t left = 0;  // round trips to go: loop 0's during a rally, the benchmark's between
  event_count done;

  void enrol(std::size_t loop, actnet::conn_ref ref) {
    {
      const std::lock_guard lock(mutex);
      if (loop >= sides.size() || sides[loop].valid()) {
        same_loop = true;
      } else {
        sides[loop] = ref;
      }
    }
    opened.notify();
  }
};

class paddle final : public actnet::connection {
 public:
  explicit paddle(conn_rally* rally) : rally_(rally) {}

  void on_open() override { rally_->enrol(loop().index(), ref()); }

  // As the actor, on its loop: loop 1 returns the ball, loop 0 counts a round trip.
  void strike() {
    if (loop().index() == 1) {
      hit_to(*rally_, 0);
    } else if (--rally_->left == 0) {
      rally_->done.notify();
    } else {
      hit_to(*rally_, 1);
    }
  }

  // Thread-safe: sends the ball to the paddle on loop `side`.
  static void hit_to(conn_rally& rally, std::size_t side) {
    rally.sides.at(side).tell<paddle>([](paddle& p) { p.strike(); });
  }

 private:
  conn_rally* rally_;
};

// A blocking loopback client; the engine's listener queues it until loop 0 accepts.
actnet::unique_fd connect_to(const actnet::address& a) {
  actnet::unique_fd fd(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd && ::connect(fd.get(), a.data(), a.size()) != 0) {
    fd.reset();
  }
  return fd;
}

void pingpong_conn_tell(benchmark::State& state) {
  conn_rally rally;
  actnet::engine e(with_loops(2));
  const actnet::address bound = e.listen<paddle>("tcp://127.0.0.1:0", &rally);
  const running_engine running(e);
  // Loop 0 accepts and deals connections round-robin, starting with itself: one per loop.
  // Declared after the engine thread, so they are closed before the engine is destroyed.
  const std::array<actnet::unique_fd, 2> clients{connect_to(bound), connect_to(bound)};
  if (!clients[0] || !clients[1]) {
    state.SkipWithError("cannot connect to the engine's loopback listener");
    return;
  }
  if (!rally.opened.wait_for(2, stuck_after)) {
    state.SkipWithError("the two connections did not open within 10 s");
    return;
  }
  bool same_loop = false;
  {
    const std::lock_guard lock(rally.mutex);
    same_loop = rally.same_loop;
  }
  if (same_loop) {
    state.SkipWithError("both connections landed on one loop");
    return;
  }
  measure_rallies(
      state,
      [&rally] {
        rally.left = round_trips_per_rally;
        paddle::hit_to(rally, 1);
      },
      rally.done, [&e] { return e.loop(0).wakeups() + e.loop(1).wakeups(); });
  if (e.loop(0).dropped_messages() + e.loop(1).dropped_messages() != 0) {
    state.SkipWithError("a tell found its connection gone");
  }
}

// -- registration and the summary --------------------------------------------------------------

void register_all() {
  benchmark::RegisterBenchmark("mailbox/1to1", [](benchmark::State& s) {
    mailbox_loop(s, 1);
  })->UseRealTime();
  benchmark::RegisterBenchmark("mailbox/4to1", [](benchmark::State& s) {
    mailbox_loop(s, 4);
  })->UseRealTime();
  benchmark::RegisterBenchmark("mailbox/raw_queue/1to1", &mailbox_raw_queue)->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/loops", &pingpong_loops)->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/conn_tell", &pingpong_conn_tell)->UseRealTime();
}

// Prints the console table as usual, then a summary: each loop run's throughput as a ratio to
// the bare queue, and conn_tell's round trip as a ratio to the loops', from the same run (the
// median of the repetitions when there are several), since ratios survive machine noise where
// absolute figures do not.
class summary_reporter : public actnet::perf::summary_reporter_base {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      bool median = false;
      if (!summarised(run, median)) {
        continue;
      }
      const std::string& name = run.run_name.function_name;
      if (!results_.contains(name)) {
        order_.push_back(name);
      }
      entry& e = results_[name];
      if (median || !e.from_median) {
        e.from_median = median;
        for (const auto& [counter, value] : run.counters) {
          e.counters[counter] = value.value;
        }
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf(
        "\nSummary: mailbox throughput against the bare queue, round trips against loops\n");
    for (const std::string& name : order_) {
      const std::map<std::string, double>& c = results_.at(name).counters;
      if (name.starts_with("mailbox/")) {
        const double rate = value(c, "items_per_second");
        std::printf("%-24s %8.2f M msgs/s", name.c_str(), rate / 1e6);
        const double base = rate_of("mailbox/raw_queue/1to1");
        if (name != "mailbox/raw_queue/1to1" && base > 0) {
          std::printf("  %5.2fx raw_queue  %.2e wakeups/msg", rate / base, value(c, "wakeups/msg"));
        }
      } else if (name.starts_with("pingpong/")) {
        const double rtt = value(c, "rtt_us");
        std::printf("%-24s %8.2f us/rtt      %.2f wakeups/rtt", name.c_str(), rtt,
                    value(c, "wakeups/rtt"));
        const double base = rtt_of("pingpong/loops");
        if (name != "pingpong/loops" && base > 0) {
          std::printf("  %5.2fx loops", rtt / base);
        }
      } else {
        continue;
      }
      std::printf("\n");
    }
  }

 private:
  struct entry {
    std::map<std::string, double> counters;
    bool from_median = false;
  };

  static double value(const std::map<std::string, double>& counters, const std::string& name) {
    const auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }
  [[nodiscard]] double rate_of(const std::string& name) const {
    const auto it = results_.find(name);
    return it == results_.end() ? 0 : value(it->second.counters, "items_per_second");
  }
  [[nodiscard]] double rtt_of(const std::string& name) const {
    const auto it = results_.find(name);
    return it == results_.end() ? 0 : value(it->second.counters, "rtt_us");
  }

  std::map<std::string, entry> results_;
  std::vector<std::string> order_;  // as the benchmarks ran
};

}  // namespace

int main(int argc, char** argv) {
  return actnet::perf::bench_main<summary_reporter>(argc, argv, register_all);
}
