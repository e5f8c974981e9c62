// peers_bench: actors_bench's messaging shapes done with what a user would pick instead of
// actnet's loops: a mutex + condition-variable queue of closures drained by one thread, and CAF
// 0.17's event-based actors (when built with CAF). Same rounds, same checks, same names after
// the prefix (1to1, 4to1, pingpong/...), so the figures compare line by line with actnet's.
#include <benchmark/benchmark.h>

#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if ACTNET_PERF_WITH_CAF
#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#endif

#include "bench_main.hpp"
#include "bench_rounds.hpp"
#include "summary_table.hpp"

namespace {

using actnet::perf::as_double;
using actnet::perf::check_tally;
using actnet::perf::event_count;
using actnet::perf::iterations_of;
using actnet::perf::measure_rallies;
using actnet::perf::messages_per_round;
using actnet::perf::producer_team;
using actnet::perf::report_throughput;
using actnet::perf::round_sum;
using actnet::perf::round_trips_per_rally;
using actnet::perf::run_rounds;
using actnet::perf::tally;

// -- the condition-variable queue --------------------------------------------------------------

// The closure queue a competent engineer writes with the standard library, made a strong
// baseline: the consumer swaps the whole pending batch out under the lock and runs it without
// the lock (one lock per batch on its side, and the two vectors keep their capacity, so a
// steady state allocates nothing; std::function keeps these small closures inline), and a
// producer notifies only when the consumer has said it waits, once per sleep.
class condvar_queue {
 public:
  using job = std::function<void()>;

  condvar_queue() : consumer_([this] { consume(); }) {}
  condvar_queue(const condvar_queue&) = delete;
  condvar_queue& operator=(const condvar_queue&) = delete;
  ~condvar_queue() {
    close();
    join();
  }

  /// Thread-safe: queues `j` for the consumer; dropped once the queue is closed.
  void post(job j) {
    bool wake = false;
    {
      const std::lock_guard lock(mutex_);
      if (closed_) {
        return;
      }
      pending_.push_back(std::move(j));
      if (waiting_) {
        waiting_ = false;  // the next posts find it awake: one notify per sleep
        wake = true;
        ++wakeups_;
      }
    }
    if (wake) {
      ready_.notify_one();
    }
  }

  /// Thread-safe: takes no more posts; the consumer runs what is queued and ends.
  void close() {
    {
      const std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_one();
  }
  /// Once, after close(): waits for the consumer to end.
  void join() {
    if (consumer_.joinable()) {
      consumer_.join();
    }
  }

  /// Thread-safe: how often a producer had to wake the consumer.
  [[nodiscard]] std::uint64_t wakeups() {
    const std::lock_guard lock(mutex_);
    return wakeups_;
  }

 private:
  void consume() {
    std::vector<job> batch;
    std::unique_lock lock(mutex_);
    for (;;) {
      while (pending_.empty() && !closed_) {
        waiting_ = true;
        ready_.wait(lock);
      }
      waiting_ = false;
      if (pending_.empty()) {
        return;  // closed, and everything queued has run
      }
      batch.swap(pending_);
      lock.unlock();
      for (job& j : batch) {
        j();
      }
      batch.clear();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<job> pending_;
  bool waiting_ = false;  // the consumer is (about to be) blocked in ready_.wait
  bool closed_ = false;
  std::uint64_t wakeups_ = 0;
  std::thread consumer_;  // last: it starts once the members it uses exist
};

// -- condvar_queue/1to1, condvar_queue/4to1: producer threads posting closures to one thread ----

// mailbox/1to1 and mailbox/4to1 of actors_bench with the loop replaced by the queue's consumer
// thread: per iteration the producers post messages_per_round closures (each captures a
// pointer and an int); the iteration ends when the consumer has run the last of them.
void condvar_queue_throughput(benchmark::State& state, std::size_t producers) {
  const int share = messages_per_round / static_cast<int>(producers);
  const std::uint64_t per_round = producers * static_cast<std::uint64_t>(share);
  tally sink(per_round);  // outlives the queue, so no closure can outlive it
  std::uint64_t rounds = 0;
  std::uint64_t wakeups = 0;
  {
    condvar_queue queue;
    // Declared last, so its threads are joined before the queue's consumer.
    producer_team team(producers, share,
                       [&queue, to = &sink](int v) { queue.post([to, v] { to->take(v); }); });
    std::uint64_t wakeups_before = 0;
    if (!run_rounds(
            state, [&team] { team.start_round(); }, sink.rounds, rounds,
            [&] { wakeups_before = queue.wakeups(); })) {
      return;
    }
    wakeups = queue.wakeups() - wakeups_before;
  }
  check_tally(state, sink, rounds, per_round, round_sum(producers, share));
  report_throughput(state, per_round, wakeups);
}

// -- pingpong/condvar_queue: round trips between two consumer threads --------------------------

// pingpong/loops with two queues: side 1 posts the ball back to side 0, which counts a round
// trip. Both queues are closed before either is destroyed, so a ball still in flight on a
// failed run lands in a closed queue, not a destroyed one.
struct condvar_rally {
  condvar_rally() = default;
  condvar_rally(const condvar_rally&) = delete;
  condvar_rally& operator=(const condvar_rally&) = delete;
  ~condvar_rally() {
    for (condvar_queue& q : sides) {
      q.close();
    }
    for (condvar_queue& q : sides) {
      q.join();
    }
  }

  std::array<condvar_queue, 2> sides;
  std::uint64_t left = 0;  // round trips to go: side 0's during a rally, the benchmark's between
  event_count done;
};

void to_side_1(condvar_rally* r);

// On side 0: one round trip done.
void back_at_side_0(condvar_rally* r) {
  if (--r->left == 0) {
    r->done.notify();
  } else {
    to_side_1(r);
  }
}

void to_side_1(condvar_rally* r) {
  r->sides[1].post([r] { r->sides[0].post([r] { back_at_side_0(r); }); });
}

void pingpong_condvar_queue(benchmark::State& state) {
  condvar_rally rally;
  measure_rallies(
      state,
      [&rally] {
        rally.left = round_trips_per_rally;
        to_side_1(&rally);
      },
      rally.done, [&rally] { return rally.sides[0].wakeups() + rally.sides[1].wakeups(); });
}

#if ACTNET_PERF_WITH_CAF

// -- CAF 0.17: the same shapes between event-based actors --------------------------------------

using go_atom = caf::atom_constant<caf::atom("go")>;
using serve_atom = caf::atom_constant<caf::atom("serve")>;

// CAF's scheduler (work stealing, its default) on 2 threads: these machines have 2 cores, and
// actnet's runs keep at most 2 threads busy too. The config subclass is CAF's idiom for it.
// Two things differ from actnet's loops by design, and show in the figures: an actor that a
// send wakes goes to the front of the sending worker's own queue (so a ping-pong may run on one
// thread until the other worker steals it), and an idle worker polls its queue for a while
// before it sleeps, where a loop sleeps in epoll_wait at once.
struct caf_config : caf::actor_system_config {
  caf_config() { set("scheduler.max-threads", 2); }
};

// One actor system per run. Its destructor waits for every actor to end, so the actors
// spawned here are told to exit first; once it is gone its threads are joined, and what the
// actors wrote (a tally) is safe to read.
class caf_runtime {
 public:
  caf_runtime() = default;
  caf_runtime(const caf_runtime&) = delete;
  caf_runtime& operator=(const caf_runtime&) = delete;
  ~caf_runtime() {
    for (const caf::actor& a : actors_) {
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
  }

  template <class... Args>
  caf::actor spawn(Args&&... args) {
    return actors_.emplace_back(system_.spawn(std::forward<Args>(args)...));
  }
  /// An actor on a thread of its own (CAF's detached actors), as a loop is.
  template <class... Args>
  caf::actor spawn_detached(Args&&... args) {
    return actors_.emplace_back(system_.spawn<caf::detached>(std::forward<Args>(args)...));
  }

 private:
  caf_config config_;  // the system keeps a reference to it
  caf::actor_system system_{config_};
  std::vector<caf::actor> actors_;
};

// The consumer: adds up every int it gets. (It takes `self` although it does not use it: CAF
// would take a first parameter `tally*` for the self pointer.)
caf::behavior caf_consumer(caf::event_based_actor* /*self*/, tally* sink) {
  return {[sink](int v) { sink->take(v); }};
}

// A producer: at each go, sends 0 .. share - 1 to the consumer from one handler, as a loop of
// loops/* posts its share from one closure.
caf::behavior caf_producer(caf::event_based_actor* self, const caf::actor& consumer, int share) {
  return {[self, consumer, share](go_atom) {
    for (int v = 0; v < share; ++v) {
      self->send(consumer, v);
    }
  }};
}

// -- caf/1to1, caf/4to1: producer actors sending to one actor ----------------------------------

// "Between two actors", the counterpart of loops/1to1 and loops/4to1: the producers are actors
// (not outside threads using anon_send), each started by one go message per round from the
// benchmark thread, as the producer loops are by one closure. CAF counts no wake-ups.
void caf_throughput(benchmark::State& state, std::size_t producers) {
  const int share = messages_per_round / static_cast<int>(producers);
  const std::uint64_t per_round = producers * static_cast<std::uint64_t>(share);
  tally sink(per_round);  // outlives the actor system, so no actor can outlive it
  std::uint64_t rounds = 0;
  {
    caf_runtime runtime;
    const caf::actor consumer = runtime.spawn(caf_consumer, &sink);
    std::vector<caf::actor> team;
    for (std::size_t i = 0; i < producers; ++i) {
      team.push_back(runtime.spawn(caf_producer, consumer, share));
    }
    const auto start_round = [&team] {
      for (const caf::actor& p : team) {
        caf::anon_send(p, go_atom::value);
      }
    };
    if (!run_rounds(state, start_round, sink.rounds, rounds)) {
      return;
    }
  }
  check_tally(state, sink, rounds, per_round, round_sum(producers, share));
  state.SetItemsProcessed(static_cast<std::int64_t>(iterations_of(state) * per_round));
}

// -- pingpong/caf: round trips between two actors ----------------------------------------------

// The ball of pingpong/caf, written by the benchmark between rallies and by ping during one.
struct caf_rally {
  std::uint64_t left = 0;
  event_count done;
};

// Returns every int to its sender: CAF sends a handler's result back, as a plain message when
// the incoming one was (a send, not a request).
caf::behavior caf_pong() {
  return {[](int v) { return v; }};
}

// Serves to pong on `serve`, and counts a round trip for each ball pong returns.
caf::behavior caf_ping(caf::event_based_actor* self, const caf::actor& pong, caf_rally* r) {
  return {
      [self, pong](serve_atom) { self->send(pong, 0); },
      [self, pong, r](int v) {
        if (--r->left == 0) {
          r->done.notify();
        } else {
          self->send(pong, v);
        }
      },
  };
}

// detached: each actor on a thread of its own, so every hop is a hand-over between two
// threads, as between two loops (CAF's default scheduling may run both on one worker).
void pingpong_caf(benchmark::State& state, bool detached) {
  caf_rally rally;
  caf_runtime runtime;
  const caf::actor ping =
      detached ? runtime.spawn_detached(caf_ping, runtime.spawn_detached(caf_pong), &rally)
               : runtime.spawn(caf_ping, runtime.spawn(caf_pong), &rally);
  measure_rallies(
      state,
      [&rally, &ping] {
        rally.left = round_trips_per_rally;
        caf::anon_send(ping, serve_atom::value);
      },
      rally.done);
}

#endif  // ACTNET_PERF_WITH_CAF

// -- registration and the summary --------------------------------------------------------------

void register_all() {
  benchmark::RegisterBenchmark("condvar_queue/1to1", [](benchmark::State& s) {
    condvar_queue_throughput(s, 1);
  })->UseRealTime();
  benchmark::RegisterBenchmark("condvar_queue/4to1", [](benchmark::State& s) {
    condvar_queue_throughput(s, 4);
  })->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/condvar_queue", &pingpong_condvar_queue)->UseRealTime();
#if ACTNET_PERF_WITH_CAF
  benchmark::RegisterBenchmark("caf/1to1", [](benchmark::State& s) {
    caf_throughput(s, 1);
  })->UseRealTime();
  benchmark::RegisterBenchmark("caf/4to1", [](benchmark::State& s) {
    caf_throughput(s, 4);
  })->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/caf", [](benchmark::State& s) {
    pingpong_caf(s, false);
  })->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/caf_detached", [](benchmark::State& s) {
    pingpong_caf(s, true);
  })->UseRealTime();
#else
  std::fprintf(stderr,
               "peers_bench: built without CAF (apt-get install libcaf-dev); caf/* "
               "and pingpong/caf* left out\n");
#endif
}

// Prints the console table as usual, then a summary: throughput in M msgs/s and round trips in
// us, CAF's as a ratio to the condition-variable queue's of the same shape. actnet's figures
// for the same shapes are in actors_bench's summary (loops/*, pingpong/loops).
class summary_reporter : public actnet::perf::summary_table {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nSummary: peers of actors_bench's loops/* and pingpong/loops\n");
    for (const std::string& name : names()) {
      if (name.starts_with("pingpong/")) {
        const double rtt = counter(name, "rtt_us");
        std::printf("%-24s %8.2f us/rtt", name.c_str(), rtt);
        const double base = counter("pingpong/condvar_queue", "rtt_us");
        if (name != "pingpong/condvar_queue" && base > 0) {
          std::printf("   %5.2fx condvar_queue", rtt / base);
        }
      } else {
        const double rate = counter(name, "items_per_second");
        std::printf("%-24s %8.2f M msgs/s", name.c_str(), rate / 1e6);
        const std::string shape = name.substr(name.find('/') + 1);
        const double base = counter("condvar_queue/" + shape, "items_per_second");
        if (!name.starts_with("condvar_queue/") && base > 0) {
          std::printf(" %5.2fx condvar_queue", rate / base);
        }
      }
      std::printf("\n");
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  return actnet::perf::bench_main<summary_reporter>(argc, argv, register_all);
}
