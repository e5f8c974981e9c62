// actors_bench: the loop actor's mailbox and cross-loop messaging: how many closures one loop
// takes from one or four producer threads or producer loops (and how well their wake-ups
// coalesce), the bare queue under it as a reference point, the round trip between two loops and
// between two connections, and round trips through the worker pool (connection::offload).
// peers_bench measures the same shapes with a condition-variable queue and with CAF.
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "actnet/actors/actor.hpp"
#include "actnet/actors/conn_ref.hpp"
#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/mailbox.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/actors/task.hpp"
#include "actnet/actors/worker_pool.hpp"
#include "actnet/defaults.hpp"
#include "actnet/reactor/address.hpp"
#include "actnet/reactor/unique_fd.hpp"
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
using actnet::perf::stuck_after;
using actnet::perf::tally;

// The default options with `n` loops. (A designated initializer would be shorter, but g++ 12's
// -Wmissing-field-initializers flags the members it leaves to their defaults.)
actnet::engine_options with_loops(std::size_t n) {
  actnet::engine_options o;
  o.loops = n;
  return o;
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
    std::uint64_t wakeups_before = 0;
    if (!run_rounds(
            state, [&team] { team.start_round(); }, sink.rounds, rounds,
            [&] { wakeups_before = loop.wakeups(); })) {
      return;
    }
    wakeups = loop.wakeups() - wakeups_before;  // before stop(), whose message may wake it
  }
  check_tally(state, sink, rounds, per_round, round_sum(producers, share));
  report_throughput(state, per_round, wakeups);
}

// -- loops/1to1, loops/4to1: producer loops posting closures to loop 0 -------------------------

// The same rounds between loops of one engine: loops 1..N each get a closure at the start of a
// round and post their share of closures to loop 0 from it (one loop's handler, so each
// producer's messages go out in one burst, as an actor's would). Only loop 0's wake-ups count,
// as in mailbox/*; the round start wakes the producer loops as well.
void loops_to_loop(benchmark::State& state, std::size_t producers) {
  const int share = messages_per_round / static_cast<int>(producers);
  const std::uint64_t per_round = producers * static_cast<std::uint64_t>(share);
  tally sink(per_round);  // outlives the engine, so no closure can outlive it
  std::uint64_t rounds = 0;
  std::uint64_t wakeups = 0;
  {
    actnet::engine e(with_loops(producers + 1));
    const running_engine running(e);
    const auto start_round = [&e, producers, share, to = &sink] {
      for (std::size_t i = 1; i <= producers; ++i) {
        e.loop(i).post([share, to](actnet::event_loop& self) {
          actnet::event_loop& consumer = self.owner().loop(0);
          for (int v = 0; v < share; ++v) {
            consumer.post([to, v](actnet::event_loop&) { to->take(v); });
          }
        });
      }
    };
    actnet::event_loop& consumer = e.loop(0);
    std::uint64_t wakeups_before = 0;
    if (!run_rounds(state, start_round, sink.rounds, rounds,
                    [&] { wakeups_before = consumer.wakeups(); })) {
      return;
    }
    wakeups = consumer.wakeups() - wakeups_before;  // before stop(), whose message may wake it
  }
  check_tally(state, sink, rounds, per_round, round_sum(producers, share));
  report_throughput(state, per_round, wakeups);
}

// -- actors/1to1, actors/same_loop: a service actor telling another, one message a tell ------

// The consumer: counts what it is told into the benchmark's tally.
class sink_actor final : public actnet::actor {
 public:
  explicit sink_actor(tally* to) : to_(to) {}
  void take(int v) { to_->take(v); }

 private:
  tally* to_;
};

// The producer: at each round's start, `share` tells to the sink (an actor's burst).
class source_actor final : public actnet::actor {
 public:
  explicit source_actor(actnet::actor_ref<sink_actor> to) : to_(to) {}
  void burst(int share) {
    for (int v = 0; v < share; ++v) {
      (void)to_.tell([v](sink_actor& s) { s.take(v); });
    }
  }

 private:
  actnet::actor_ref<sink_actor> to_;
};

// The consumer on loop 0; the producer on loop 1, or on loop 0 as well (`same_loop`).
void actor_to_actor(benchmark::State& state, bool same_loop) {
  const int share = messages_per_round;
  const auto per_round = static_cast<std::uint64_t>(share);
  tally sink(per_round);  // outlives the engine, so no message can outlive it
  std::uint64_t rounds = 0;
  std::uint64_t wakeups = 0;
  {
    actnet::engine e(with_loops(2));
    const actnet::actor_ref<sink_actor> to = e.spawn_on<sink_actor>(0, &sink);
    const actnet::actor_ref<source_actor> from = e.spawn_on<source_actor>(same_loop ? 0 : 1, to);
    const running_engine running(e);
    actnet::event_loop& consumer = e.loop(0);
    std::uint64_t wakeups_before = 0;
    if (!run_rounds(
            state,
            [&from, share] { (void)from.tell([share](source_actor& a) { a.burst(share); }); },
            sink.rounds, rounds, [&] { wakeups_before = consumer.wakeups(); })) {
      return;
    }
    wakeups = consumer.wakeups() - wakeups_before;
  }
  check_tally(state, sink, rounds, per_round, round_sum(1, share));
  report_throughput(state, per_round, wakeups);
}

// -- mailbox/raw_queue/1to1: the queue alone, without the loop ---------------------------------

// Never called: the consumer below never announces that it sleeps.
struct no_waker {
  void operator()() const noexcept {}
};

// The same rounds straight through actnet::detail::mailbox<int>: one producer thread, one consumer
// thread spinning on drain(). The gap to mailbox/1to1 is what the loop adds (closures in
// messages, epoll_wait between batches, sleeping and waking). On a busy two-core machine the
// figure is bimodal: a spinning consumer is fast while it has a core to itself and an order of
// magnitude slower when it shares one, where the loop, which sleeps, degrades far less.
void mailbox_raw_queue(benchmark::State& state) {
  constexpr std::size_t producers = 1;
  const std::uint64_t per_round = messages_per_round;
  actnet::detail::mailbox<int, no_waker> box{no_waker{}};
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
    if (!run_rounds(
            state, [&team] { team.start_round(); }, sink.rounds, rounds)) {
      return;
    }
  }
  check_tally(state, sink, rounds, per_round, round_sum(producers, messages_per_round));
  state.SetItemsProcessed(static_cast<std::int64_t>(iterations_of(state) * per_round));
}

// -- ping-pong: round trips between two loops --------------------------------------------------

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

// -- ping-pong: ask round trips between two service actors on two loops -----------------------

class answering_actor final : public actnet::actor {};

class asking_actor final : public actnet::actor {
 public:
  asking_actor(actnet::actor_ref<answering_actor> peer, event_count* done)
      : peer_(peer), done_(done) {}
  void rally(std::uint64_t trips) {
    left_ = trips;
    serve();
  }

 private:
  void serve() {
    (void)ask(
        peer_, [](answering_actor&) { return 1; },
        [this](actnet::result<int>) {
          if (--left_ == 0) {
            done_->notify();
          } else {
            serve();
          }
        });
  }
  actnet::actor_ref<answering_actor> peer_;
  event_count* done_;
  std::uint64_t left_ = 0;
};

// The same rally written as a coroutine: co_await ask, one round trip after another.
class awaiting_actor final : public actnet::actor {
 public:
  awaiting_actor(actnet::actor_ref<answering_actor> peer, event_count* done)
      : peer_(peer), done_(done) {}
  actnet::task rally(std::uint64_t trips) {
    for (std::uint64_t i = 0; i < trips; ++i) {
      (void)co_await ask(peer_, [](answering_actor&) { return 1; });
    }
    done_->notify();
  }

 private:
  actnet::actor_ref<answering_actor> peer_;
  event_count* done_;
};

void pingpong_actors_await(benchmark::State& state) {
  event_count done;  // before the engine: outlives every actor
  actnet::engine e(with_loops(2));
  const auto peer = e.spawn_on<answering_actor>(1);
  const auto asker = e.spawn_on<awaiting_actor>(0, peer, &done);
  const running_engine running(e);
  measure_rallies(
      state,
      [&asker] {
        (void)asker.tell([](awaiting_actor& a) { (void)a.rally(round_trips_per_rally); });
      },
      done, [&e] { return e.loop(0).wakeups() + e.loop(1).wakeups(); });
}

// `linger`: engine_options::mail_linger on both loops (0: none, so each loop sleeps between
// the halves of every round trip and is woken for the next); `busy_poll` likewise (it polls
// in the linger's place: each loop keeps a core).
void pingpong_actors(benchmark::State& state, std::chrono::microseconds linger,
                     std::chrono::microseconds busy_poll = {}) {
  event_count done;  // before the engine: outlives every actor
  actnet::engine_options o = with_loops(2);
  o.mail_linger = linger;
  o.busy_poll = busy_poll;
  actnet::engine e(o);
  const auto peer = e.spawn_on<answering_actor>(1);
  const auto asker = e.spawn_on<asking_actor>(0, peer, &done);
  const running_engine running(e);
  measure_rallies(
      state,
      [&asker] { (void)asker.tell([](asking_actor& a) { a.rally(round_trips_per_rally); }); }, done,
      [&e] { return e.loop(0).wakeups() + e.loop(1).wakeups(); });
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

// -- offload/roundtrip: a connection, the worker pool, and back ------------------------------

// Offloads per iteration. A window of 64 fills and drains once per rally: 3% of it at this count.
constexpr int offloads_per_rally = 2048;

// What the offloading connection and the benchmark thread share. Declared before the engine,
// so it outlives the connection that points at it.
struct offload_rally {
  explicit offload_rally(std::uint64_t in_flight) : window(in_flight) {}

  const std::uint64_t window;  // offloads in flight
  actnet::conn_ref side;       // written in on_open before `opened`, then only read
  event_count opened;
  tally landed{offloads_per_rally};  // the results, each one its offload's index in the rally
  std::uint64_t out_of_order = 0;    // results that overtook an earlier offload (loop's)
  std::atomic<bool> failed{false};   // an offload was refused (the loop logs why)
};

// Offloads trivial jobs (each returns its index) and counts the results back on its loop.
class offloader final : public actnet::connection {
 public:
  explicit offloader(offload_rally* rally) : rally_(rally) {}

  void on_open() override {
    rally_->side = ref();
    rally_->opened.notify();
  }

  // As the actor, on its loop: a rally of offloads_per_rally offloads, `window` in flight; each
  // result that lands sends the next one out.
  void start() {
    issued_ = 0;
    expected_ = 0;
    if (rally_->failed.load()) {
      rally_->landed.rounds.notify();  // ends the round now rather than after 10 s
      return;
    }
    const auto first = std::min(rally_->window, static_cast<std::uint64_t>(offloads_per_rally));
    while (issued_ < first && issue()) {
    }
  }

 private:
  bool issue() {
    const int v = static_cast<int>(issued_++);
    const std::error_code ec = offload([v] { return v; }, [this](int r) { land(r); });
    if (ec) {
      std::fprintf(stderr, "offload/roundtrip: offload failed: %s\n", ec.message().c_str());
      rally_->failed.store(true);
      rally_->landed.rounds.notify();  // ends the round now rather than after 10 s
      return false;
    }
    return true;
  }

  void land(int r) {
    if (static_cast<std::uint64_t>(r) != expected_) {
      ++rally_->out_of_order;
    }
    ++expected_;
    if (issued_ < static_cast<std::uint64_t>(offloads_per_rally) && !rally_->failed.load()) {
      (void)issue();
    }
    rally_->landed.take(r);  // the rally's last result ends the round
  }

  offload_rally* rally_;
  std::uint64_t issued_ = 0;    // this rally's offloads sent out
  std::uint64_t expected_ = 0;  // the index the next result should carry
};

// Per iteration: one rally of offloads_per_rally round trips from a connection on loop 0
// through the worker pool (state.range(0) workers) and back to it, state.range(1) in flight.
// With one in flight it is the latency of a round trip; with 64 the throughput of the path.
void offload_roundtrip(benchmark::State& state) {
  const auto workers = static_cast<std::size_t>(state.range(0));
  offload_rally rally(static_cast<std::uint64_t>(state.range(1)));
  std::uint64_t rounds = 0;
  std::uint64_t wakeups = 0;
  {
    actnet::engine_options options = with_loops(1);
    options.workers = workers;
    actnet::engine e(options);
    const actnet::address bound = e.listen<offloader>("tcp://127.0.0.1:0", &rally);
    const running_engine running(e);
    // Declared after the engine thread, so it is closed before the engine is destroyed.
    const actnet::unique_fd client = connect_to(bound);
    if (!client) {
      state.SkipWithError("cannot connect to the engine's loopback listener");
      return;
    }
    if (!rally.opened.wait_for(1, stuck_after)) {
      state.SkipWithError("the connection did not open within 10 s");
      return;
    }
    actnet::event_loop& loop = e.loop(0);
    std::uint64_t wakeups_before = 0;
    if (!run_rounds(
            state, [&rally] { rally.side.tell<offloader>([](offloader& o) { o.start(); }); },
            rally.landed.rounds, rounds, [&] { wakeups_before = loop.wakeups(); })) {
      return;
    }
    wakeups = loop.wakeups() - wakeups_before;
  }
  if (rally.failed.load()) {
    state.SkipWithError("an offload was refused (see stderr)");
    return;
  }
  if (rally.out_of_order != 0) {
    state.SkipWithError("results came back out of submission order");
    return;
  }
  const auto per_round = static_cast<std::uint64_t>(offloads_per_rally);
  check_tally(state, rally.landed, rounds, per_round, round_sum(1, offloads_per_rally));
  const std::uint64_t trips = iterations_of(state) * per_round;
  state.SetItemsProcessed(static_cast<std::int64_t>(trips));
  // How often a result had to wake the sleeping loop: 1 when every trip waits for its result.
  state.counters["wakeups/trip"] = as_double(wakeups) / as_double(trips);
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
  benchmark::RegisterBenchmark("loops/1to1", [](benchmark::State& s) {
    loops_to_loop(s, 1);
  })->UseRealTime();
  benchmark::RegisterBenchmark("loops/4to1", [](benchmark::State& s) {
    loops_to_loop(s, 4);
  })->UseRealTime();
  benchmark::RegisterBenchmark("actors/1to1", [](benchmark::State& s) {
    actor_to_actor(s, false);
  })->UseRealTime();
  benchmark::RegisterBenchmark("actors/same_loop", [](benchmark::State& s) {
    actor_to_actor(s, true);
  })->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/loops", &pingpong_loops)->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/actors", [](benchmark::State& s) {
    pingpong_actors(s, std::chrono::microseconds(actnet::defaults::mail_linger_us));
  })->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/actors_asleep", [](benchmark::State& s) {
    pingpong_actors(s, std::chrono::microseconds(0));
  })->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/actors_busy_poll", [](benchmark::State& s) {
    pingpong_actors(s, std::chrono::microseconds(0), std::chrono::microseconds(200));
  })->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/actors_await", &pingpong_actors_await)->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/conn_tell", &pingpong_conn_tell)->UseRealTime();
  benchmark::RegisterBenchmark("offload/roundtrip", &offload_roundtrip)
      ->ArgNames({"workers", "window"})
      ->ArgsProduct({{1, 2}, {1, 64}})
      ->UseRealTime();
}

// Prints the console table as usual, then a summary: each run's message throughput as a ratio
// to the bare queue, conn_tell's round trip as a ratio to the loops', and the offload round
// trips, from the same run (the median of the repetitions when there are several), since
// ratios survive machine noise where absolute figures do not. peers_bench prints the same
// shapes for the condition-variable queue and CAF.
class summary_reporter : public actnet::perf::summary_table {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf(
        "\nSummary: message throughput against the bare queue, round trips against loops\n");
    const double base_rate = counter("mailbox/raw_queue/1to1", "items_per_second");
    const double base_rtt = counter("pingpong/loops", "rtt_us");
    for (const std::string& name : names()) {
      if (name.starts_with("mailbox/") || name.starts_with("loops/") ||
          name.starts_with("actors/")) {
        const double rate = counter(name, "items_per_second");
        std::printf("%-38s %8.2f M msgs/s", name.c_str(), rate / 1e6);
        if (name != "mailbox/raw_queue/1to1" && base_rate > 0) {
          std::printf("  %5.2fx raw_queue  %.2e wakeups/msg", rate / base_rate,
                      counter(name, "wakeups/msg"));
        }
      } else if (name.starts_with("pingpong/")) {
        const double rtt = counter(name, "rtt_us");
        std::printf("%-38s %8.2f us/rtt      %.2f wakeups/rtt", name.c_str(), rtt,
                    counter(name, "wakeups/rtt"));
        if (name != "pingpong/loops" && base_rtt > 0) {
          std::printf("  %5.2fx loops", rtt / base_rtt);
        }
      } else if (name.starts_with("offload/")) {
        std::printf("%-38s %8.1f k trips/s    %.2f wakeups/trip", name.c_str(),
                    counter(name, "items_per_second") / 1e3, counter(name, "wakeups/trip"));
      } else {
        continue;
      }
      std::printf("\n");
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  return actnet::perf::bench_main<summary_reporter>(argc, argv, register_all);
}
