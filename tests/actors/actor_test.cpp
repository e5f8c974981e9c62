// Service actors: spawn, life cycle (on_start / on_stop once each, the engine's stop after the
// connections), tell and ask from threads, loops, connections and other actors, mail that comes
// before on_start, messages to stopped actors dropped and counted, timers, watch.
#include "actnet/actors/actor.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "actnet/actors/engine.hpp"
#include "actnet/error.hpp"
#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::eventually;
using test::running_engine;
using namespace std::chrono_literals;

// What every actor of a test records, from any loop.
struct journal {
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
  std::mutex mutex;
  std::vector<std::string> events;  // in the order they happened, over all threads
  void note(std::string e) {
    const std::lock_guard lock(mutex);
    events.push_back(std::move(e));
  }
  [[nodiscard]] std::vector<std::string> snapshot() {
    const std::lock_guard lock(mutex);
    return events;
  }
};

class counter final : public actor {
 public:
  explicit counter(journal* j) : journal_(j) {}
  void on_start() override {
    started_ = true;
    journal_->started++;
  }
  void on_stop() override {
    EXPECT_TRUE(loop().in_loop_thread());
    journal_->stopped++;
    journal_->note("stop");
  }
  // A message: runs as the actor, after on_start, on its loop.
  void add(int v) {
    EXPECT_TRUE(started_) << "a message ran before on_start";
    EXPECT_TRUE(loop().in_loop_thread());
    seen_.push_back(v);
  }
  [[nodiscard]] const std::vector<int>& seen() const { return seen_; }
  [[nodiscard]] int total() const { return static_cast<int>(seen_.size()); }

 private:
  journal* journal_;
  bool started_ = false;
  std::vector<int> seen_;
};

TEST(actor, each_starts_once_and_stops_once_at_the_engine_stop) {
  journal j;
  running_engine e(test::small_options(2));
  constexpr int actors = 20;
  std::vector<actor_ref<counter>> refs;
  for (int i = 0; i < actors; ++i) {
    refs.push_back(e->spawn<counter>(&j));  // before the engine runs: they start with it
  }
  EXPECT_EQ(e->count_actors(), static_cast<std::size_t>(actors));
  e.start();
  ASSERT_TRUE(eventually([&] { return j.started == actors; }));
  // The balancer spreads them over both loops.
  int on_first = 0;
  for (const auto& r : refs) {
    on_first += r.loop() == &e->loop(0) ? 1 : 0;
  }
  EXPECT_GT(on_first, 0);
  EXPECT_LT(on_first, actors);
  refs[0].stop();
  refs[0].stop();  // a second stop does nothing
  ASSERT_TRUE(eventually([&] { return j.stopped == 1; }));
  EXPECT_EQ(e->count_actors(), static_cast<std::size_t>(actors - 1));
  e.stop();
  EXPECT_EQ(j.started, actors);
  EXPECT_EQ(j.stopped, actors);
  EXPECT_EQ(e->count_actors(), 0U);
}

class noting_connection final : public connection {
 public:
  explicit noting_connection(journal* j) : journal_(j) {}
  void on_open() override { journal_->note("open"); }
  void on_close(std::error_code) override { journal_->note("close"); }

 private:
  journal* journal_;
};

TEST(actor, the_engine_stops_actors_after_its_connections) {
  journal j;
  running_engine e(test::small_options(1));
  const address bound = e->listen<noting_connection>("tcp://127.0.0.1:0", &j);
  (void)e->spawn<counter>(&j);
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return e->count_connections() == 1 && j.started == 1; }));
  e.stop();
  ::close(fd);
  const std::vector<std::string> events = j.snapshot();
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(events[1], "close");
  EXPECT_EQ(events[2], "stop");
}

TEST(actor, tells_from_one_thread_run_in_order_on_the_actors_loop) {
  journal j;
  running_engine e(test::small_options(2));
  const actor_ref<counter> c = e->spawn_on<counter>(1, &j);
  EXPECT_EQ(c.loop(), &e->loop(1));
  e.start();
  constexpr int messages = 20'000;
  for (int i = 0; i < messages; ++i) {
    while (c.tell([i](counter& a) { a.add(i); }) == make_error_code(errc::queue_full)) {
      std::this_thread::yield();
    }
  }
  std::promise<std::vector<int>> seen;
  ASSERT_FALSE(c.tell([&seen](counter& a) { seen.set_value(a.seen()); }));
  const std::vector<int> got = seen.get_future().get();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(messages));
  for (int i = 0; i < messages; ++i) {
    ASSERT_EQ(got[i], i);
  }
}

TEST(actor, mail_sent_before_on_start_waits_for_it) {
  journal j;
  std::atomic<int> total{0};  // (before the engine: its last tells may run until it stops)
  running_engine e(test::small_options(2));
  const actor_ref<counter> c = e->spawn<counter>(&j);
  // Several senders at once, before and while the engine starts: every message runs after
  // on_start (counter::add checks), none is lost.
  constexpr int senders = 4;
  constexpr int each = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < senders; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < each; ++i) {
        // (Refused while the mailbox is full, before the loop runs: sent again.)
        while (c.tell([i](counter& a) { a.add(i); }) == make_error_code(errc::queue_full)) {
          std::this_thread::yield();
        }
      }
    });
  }
  e.start();
  for (std::thread& t : threads) {
    t.join();
  }
  // (A message from this thread may overtake the senders' last ones: no order among senders.)
  ASSERT_TRUE(eventually([&] {
    (void)c.tell([&total](counter& a) { total = a.total(); });
    return total == senders * each;
  }));
}

TEST(actor, messages_to_a_stopped_actor_are_dropped_and_counted) {
  journal j;
  running_engine e(test::small_options(1));
  const actor_ref<counter> c = e->spawn<counter>(&j);
  e.start();
  ASSERT_TRUE(eventually([&] { return j.started == 1; }));
  c.stop();
  ASSERT_TRUE(eventually([&] { return e->count_actors() == 0; }));
  const std::uint64_t before = e->loop(0).dropped_messages();
  bool ran = false;
  ASSERT_FALSE(c.tell([&ran](counter&) { ran = true; }));
  std::promise<std::error_code> answer;
  ASSERT_FALSE(c.ask([](counter& a) { return a.total(); },
                     [&answer](result<int> r) { answer.set_value(r.error()); }));
  EXPECT_EQ(answer.get_future().get(), make_error_code(errc::actor_stopped));
  EXPECT_FALSE(ran);
  EXPECT_EQ(e->loop(0).dropped_messages() - before, 2U);
  // A new actor in the same place is not reached by the old address.
  const actor_ref<counter> again = e->spawn<counter>(&j);
  ASSERT_TRUE(eventually([&] { return j.started == 2; }));
  EXPECT_NE(again, c);
  ASSERT_FALSE(c.tell([&ran](counter&) { ran = true; }));
  std::promise<int> total;
  ASSERT_FALSE(again.tell([&total](counter& a) { total.set_value(a.total()); }));
  EXPECT_EQ(total.get_future().get(), 0);
  EXPECT_FALSE(ran);
  EXPECT_EQ(e->loop(0).dropped_messages() - before, 3U);
}

TEST(actor, an_ask_from_outside_the_loops_is_answered_on_the_actors_loop) {
  journal j;
  running_engine e(test::small_options(2));
  const actor_ref<counter> c = e->spawn_on<counter>(1, &j);
  e.start();
  std::promise<std::pair<int, bool>> answer;
  ASSERT_FALSE(c.ask(
      [](counter& a) {
        a.add(7);
        return a.total();
      },
      [&answer, &e](result<int> r) {
        answer.set_value({r ? *r : -1, e->loop(1).in_loop_thread()});
      }));
  const auto [value, on_its_loop] = answer.get_future().get();
  EXPECT_EQ(value, 1);
  EXPECT_TRUE(on_its_loop);
  // A handler that throws is answered with handler_failed; the actor lives on.
  std::promise<std::error_code> failed;
  ASSERT_FALSE(c.ask([](counter&) -> int { throw std::runtime_error("no"); },
                     [&failed](result<int> r) { failed.set_value(r.error()); }));
  EXPECT_EQ(failed.get_future().get(), make_error_code(errc::handler_failed));
  std::promise<int> total;
  ASSERT_FALSE(c.tell([&total](counter& a) { total.set_value(a.total()); }));
  EXPECT_EQ(total.get_future().get(), 1);
}

// Asks another actor and keeps the answers, as itself.
class asker final : public actor {
 public:
  explicit asker(actor_ref<counter> target) : target_(target) {}
  void ask_twice(std::promise<std::vector<int>>* done) {
    // Two answers in turn: the second question is asked from the first answer's handler.
    (void)ask(
        target_,
        [](counter& c) {
          c.add(1);
          return c.total();
        },
        [this, done](result<int> first) {
          EXPECT_TRUE(is_running());
          EXPECT_TRUE(loop().in_loop_thread());
          answers_.push_back(first ? *first : -1);
          (void)ask(
              target_,
              [](counter& c) {
                c.add(2);
                return c.total();
              },
              [this, done](result<int> second) {
                answers_.push_back(second ? *second : -1);
                done->set_value(answers_);
              });
        });
  }

 private:
  actor_ref<counter> target_;
  std::vector<int> answers_;
};

TEST(actor, an_actor_asks_another_on_another_loop_and_hears_as_itself) {
  journal j;
  running_engine e(test::small_options(2));
  const actor_ref<counter> c = e->spawn_on<counter>(1, &j);
  const actor_ref<asker> a = e->spawn_on<asker>(0, c);
  e.start();
  std::promise<std::vector<int>> done;
  ASSERT_FALSE(a.tell([&done](asker& self) { self.ask_twice(&done); }));
  EXPECT_EQ(done.get_future().get(), (std::vector<int>{1, 2}));
}

// A connection that asks a counter actor for its total for each line and writes it back.
class asking_connection final : public connection {
 public:
  explicit asking_connection(actor_ref<counter>* target) : target_(*target) {}
  void on_data() override {
    while (next(1)) {
      (void)ask(
          target_,
          [](counter& c) {
            c.add(0);
            return c.total();
          },
          [this](result<int> r) { (void)write(std::to_string(r ? *r : -1) + "\n"); });
    }
  }

 private:
  actor_ref<counter> target_;
};

TEST(actor, a_connection_asks_a_service_actor) {
  journal j;
  running_engine e(test::small_options(2));
  actor_ref<counter> c = e->spawn_on<counter>(1, &j);
  const address bound = e->listen<asking_connection>("tcp://127.0.0.1:0", &c);
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "abc"));
  EXPECT_EQ(test::recv_exact(fd, 6), "1\n2\n3\n");
  ::close(fd);
}

// Stops itself from a handler: on_stop must come after that handler, never inside it.
class self_stopper final : public actor {
 public:
  explicit self_stopper(journal* j) : journal_(j) {}
  void on_stop() override { journal_->note("on_stop"); }
  void quit() {
    stop();
    journal_->note("after stop()");
    EXPECT_FALSE(is_running());
  }

 private:
  journal* journal_;
};

TEST(actor, stop_from_its_own_handler_runs_on_stop_after_that_handler) {
  journal j;
  running_engine e(test::small_options(1));
  const actor_ref<self_stopper> s = e->spawn<self_stopper>(&j);
  e.start();
  ASSERT_FALSE(s.tell([](self_stopper& a) { a.quit(); }));
  ASSERT_TRUE(eventually([&] { return e->count_actors() == 0; }));
  EXPECT_EQ(j.snapshot(), (std::vector<std::string>{"after stop()", "on_stop"}));
}

class ticker final : public actor {
 public:
  explicit ticker(std::atomic<int>* ticks) : ticks_(ticks) {}
  void on_start() override { tick(); }

 private:
  void tick() {
    (void)after(1ms, [](actor& self) {
      auto& t = static_cast<ticker&>(self);
      EXPECT_TRUE(t.is_running());
      (*t.ticks_)++;
      t.tick();
    });
  }
  std::atomic<int>* ticks_;
};

TEST(actor, its_timers_run_as_it_until_it_stops) {
  std::atomic<int> ticks{0};
  running_engine e(test::small_options(1));
  const actor_ref<ticker> t = e->spawn<ticker>(&ticks);
  e.start();
  ASSERT_TRUE(eventually([&] { return ticks >= 5; }));
  t.stop();
  ASSERT_TRUE(eventually([&] { return e->count_actors() == 0; }));
  const int at_stop = ticks;
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(ticks, at_stop);  // the pending timer found the actor gone
}

class watcher final : public actor {
 public:
  explicit watcher(journal* j) : journal_(j) {}
  void watch_it(const actor_ref<counter>& target, std::string name) {
    watch(target, [this, name] {
      EXPECT_TRUE(is_running());
      EXPECT_TRUE(loop().in_loop_thread());
      journal_->note("down " + name);
    });
  }

 private:
  journal* journal_;
};

TEST(actor, a_watcher_hears_once_the_watched_actor_stops) {
  journal j;
  running_engine e(test::small_options(2));
  const actor_ref<counter> first = e->spawn_on<counter>(1, &j);
  const actor_ref<counter> second = e->spawn_on<counter>(1, &j);
  const actor_ref<watcher> w = e->spawn_on<watcher>(0, &j);
  const actor_ref<watcher> gone = e->spawn_on<watcher>(0, &j);
  e.start();
  ASSERT_TRUE(eventually([&] { return j.started == 2; }));
  ASSERT_FALSE(w.tell([first](watcher& self) { self.watch_it(first, "first"); }));
  ASSERT_FALSE(gone.tell([second](watcher& self) { self.watch_it(second, "second"); }));
  // Once the watches are in place (a tell on the watched loop after them), stop the targets.
  std::promise<void> placed;
  ASSERT_FALSE(second.tell([&placed](counter&) { placed.set_value(); }));
  placed.get_future().get();
  first.stop();
  ASSERT_TRUE(eventually([&] { return j.snapshot().size() == 2; }));
  EXPECT_EQ(j.snapshot().back(), "down first");
  // A watcher that stopped first hears nothing.
  gone.stop();
  ASSERT_TRUE(eventually([&] { return e->count_actors() == 2; }));
  second.stop();
  ASSERT_TRUE(eventually([&] { return j.stopped == 2; }));
  // Watching an actor that has stopped already is told at once.
  ASSERT_FALSE(w.tell([first](watcher& self) { self.watch_it(first, "late"); }));
  ASSERT_TRUE(eventually([&] { return j.snapshot().size() == 4; }));
  EXPECT_EQ(j.snapshot(), (std::vector<std::string>{"stop", "down first", "stop", "down late"}))
      << "the watchers' own stops are not counters' and note nothing";
}

// A connection that watches a counter from on_open and tells its client when it stops.
class watching_connection final : public connection {
 public:
  explicit watching_connection(actor_ref<counter>* target) : target_(*target) {}
  void on_open() override {
    watch(target_, [this] {
      EXPECT_TRUE(loop().in_loop_thread());
      (void)write("down\n");
    });
    (void)write("watching\n");
  }

 private:
  actor_ref<counter> target_;
};

TEST(actor, a_connection_watches_a_service_actor) {
  journal j;
  running_engine e(test::small_options(2));
  actor_ref<counter> c = e->spawn_on<counter>(1, &j);
  const address bound = e->listen<watching_connection>("tcp://127.0.0.1:0", &c);
  e.start();
  const int watching = test::connect_to(bound);
  const int closing = test::connect_to(bound);
  ASSERT_GE(watching, 0);
  ASSERT_GE(closing, 0);
  EXPECT_EQ(test::recv_exact(watching, 9), "watching\n");
  EXPECT_EQ(test::recv_exact(closing, 9), "watching\n");
  // A watcher that has closed hears nothing: its notice is dropped and counted.
  ::close(closing);
  ASSERT_TRUE(eventually([&] { return e->count_connections() == 1; }));
  const std::uint64_t dropped_before =
      e->loop(0).dropped_messages() + e->loop(1).dropped_messages();
  c.stop();
  EXPECT_EQ(test::recv_exact(watching, 5), "down\n");
  EXPECT_TRUE(eventually([&] {
    return e->loop(0).dropped_messages() + e->loop(1).dropped_messages() == dropped_before + 1;
  }));
  // Watching an actor that has stopped already: told at once.
  const int late = test::connect_to(bound);
  ASSERT_GE(late, 0);
  EXPECT_EQ(test::recv_exact(late, 14), "watching\ndown\n");
  ::close(late);
  ::close(watching);
}

// The README's example: a rate limiter shared by every connection, refilled by its own timer
// (every `period`: a second in the README).
class limiter : public actor {
 public:
  limiter(int per_period, std::chrono::milliseconds period)
      : per_period_(per_period), period_(period) {}
  void on_start() override { refill(); }
  bool take() {
    if (tokens_ == 0) {
      return false;
    }
    --tokens_;
    return true;
  }

 private:
  void refill() {
    tokens_ = per_period_;
    after(period_, [](actor& self) { static_cast<limiter&>(self).refill(); });
  }
  int per_period_;
  std::chrono::milliseconds period_;
  int tokens_ = 0;
};

class limited_connection final : public connection {
 public:
  explicit limited_connection(actor_ref<limiter>* gate) : gate_(*gate) {}
  void on_data() override {
    while (next(1)) {
      (void)ask(
          gate_, [](limiter& l) { return l.take(); },
          [this](result<bool> ok) { (void)write(ok && *ok ? "+" : "-"); });
    }
  }

 private:
  actor_ref<limiter> gate_;
};

TEST(actor, a_rate_limiter_is_shared_by_the_connections_of_every_loop) {
  running_engine e(test::small_options(2));
  actor_ref<limiter> gate = e->spawn<limiter>(4, std::chrono::milliseconds(10'000));
  const address bound = e->listen<limited_connection>("tcp://127.0.0.1:0", &gate);
  e.start();
  // Two clients (one per loop, by the balancer) share the four tokens of the period.
  std::array<int, 2> fds{test::connect_to(bound), test::connect_to(bound)};
  ASSERT_GE(fds[0], 0);
  ASSERT_GE(fds[1], 0);
  ASSERT_TRUE(test::send_all(fds[0], "xxx"));
  const std::string first = test::recv_exact(fds[0], 3);
  ASSERT_TRUE(test::send_all(fds[1], "xxx"));
  const std::string second = test::recv_exact(fds[1], 3);
  EXPECT_EQ(first + second, "++++--");
  for (const int fd : fds) {
    ::close(fd);
  }
}

// -- sharded services --

// One per loop: a tally of what it was told, and the loop it started on.
class shard final : public actor {
 public:
  explicit shard(std::atomic<int>* started) : started_(started) {}
  void on_start() override {
    started_on = static_cast<int>(loop().index());
    (*started_)++;
  }
  int started_on = -1;
  int items = 0;

 private:
  std::atomic<int>* started_;
};

TEST(sharded, one_instance_per_loop_each_on_its_own) {
  std::atomic<int> started{0};
  running_engine e(test::small_options(3));
  const sharded_ref<shard> s = e->spawn_sharded<shard>(&started);
  ASSERT_EQ(s.size(), 3U);
  EXPECT_EQ(e->count_actors(), 3U);
  e.start();
  ASSERT_TRUE(eventually([&] { return started == 3; }));
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(s.on(i).loop(), &e->loop(i));
    std::promise<int> where;
    ASSERT_FALSE(s.on(i).tell([&where](shard& x) { where.set_value(x.started_on); }));
    EXPECT_EQ(where.get_future().get(), static_cast<int>(i));
  }
  EXPECT_THROW((void)s.on(3), std::out_of_range);
  e.stop();
  EXPECT_EQ(e->count_actors(), 0U);
}

TEST(sharded, for_key_places_a_key_by_a_hash_that_every_run_shares) {
  // Pinned (FNV-1a and the mix, computed apart): a change would move every key of a deployment.
  EXPECT_EQ(stable_hash(std::string_view("alice")), 0xcd4d69fee1a888edULL);
  EXPECT_EQ(stable_hash(std::uint64_t{42}), stable_hash(std::string_view("\x2a\0\0\0\0\0\0\0", 8)));
  std::atomic<int> started{0};
  running_engine e(test::small_options(3));
  const sharded_ref<shard> s = e->spawn_sharded<shard>(&started);
  std::array<int, 3> placed{};
  for (int k = 0; k < 300; ++k) {
    const std::string key = "key:" + std::to_string(k);
    const actor_ref<shard>& owner = s.for_key(key);
    EXPECT_EQ(owner, s.on(stable_hash(key) % 3));
    EXPECT_EQ(owner, s.for_key(key));
    placed.at(owner.loop()->index())++;
  }
  for (const int n : placed) {
    EXPECT_GT(n, 60) << "300 keys over 3 shards: about 100 each";
  }
}

TEST(sharded, map_reduce_folds_every_instances_answer) {
  for (const std::size_t loops : {std::size_t{1}, std::size_t{4}}) {
    std::atomic<int> started{0};
    running_engine e(test::small_options(loops));
    const sharded_ref<shard> s = e->spawn_sharded<shard>(&started);
    e.start();
    // Instance i holds i + 1 items.
    ASSERT_FALSE(s.invoke_on_all([](shard& x) { x.items = x.started_on + 1; }));
    std::promise<std::pair<int, bool>> sum;
    ASSERT_FALSE(s.map_reduce([](shard& x) { return x.items; }, [](int a, int b) { return a + b; },
                              [&sum, &e](result<int> total) {
                                sum.set_value({total ? *total : -1, e->loop(0).in_loop_thread()});
                              }));
    const auto [total, on_loop_0] = sum.get_future().get();
    EXPECT_EQ(total, static_cast<int>(loops * (loops + 1) / 2)) << loops << " loops";
    EXPECT_TRUE(on_loop_0) << "called from no loop: answered on instance 0's";
    // An instance that has stopped makes the result its error.
    s.on(loops - 1).stop();
    ASSERT_TRUE(eventually([&] { return e->count_actors() == loops - 1; }));
    std::promise<std::error_code> failed;
    ASSERT_FALSE(s.map_reduce([](shard& x) { return x.items; }, [](int a, int b) { return a + b; },
                              [&failed](result<int> none) { failed.set_value(none.error()); }));
    EXPECT_EQ(failed.get_future().get(), make_error_code(errc::actor_stopped));
  }
}

TEST(sharded, local_is_the_calling_loops_instance_without_a_message) {
  std::atomic<int> started{0};
  running_engine e(test::small_options(2));
  const sharded_ref<shard> s = e->spawn_sharded<shard>(&started);
  e.start();
  ASSERT_TRUE(eventually([&] { return started == 2; }));
  EXPECT_EQ(s.local(), nullptr) << "no loop's thread";
  for (std::size_t i = 0; i < 2; ++i) {
    std::promise<int> seen;
    ASSERT_FALSE(e->loop(i).post([&s, &seen](event_loop&) {
      shard* mine = s.local();
      seen.set_value(mine != nullptr ? mine->started_on : -1);
    }));
    EXPECT_EQ(seen.get_future().get(), static_cast<int>(i));
  }
}

// -- same-loop sends: the loop's local queue --

// Records who sent each message, in the order they ran.
class ledger final : public actor {
 public:
  struct entry {
    int sender;
    int seq;
  };
  void note(int sender, int seq) {
    EXPECT_TRUE(loop().in_loop_thread());
    entries_.push_back({sender, seq});
  }
  [[nodiscard]] const std::vector<entry>& entries() const { return entries_; }

 private:
  std::vector<entry> entries_;
};

// Sends numbered notes to a ledger, `each` a handler (a burst, as an actor's would be).
class note_sender final : public actor {
 public:
  note_sender(actor_ref<ledger> to, int id) : to_(to), id_(id) {}
  void burst(int each) {
    for (int i = 0; i < each; ++i) {
      const int seq = next_++;
      EXPECT_FALSE(to_.tell([id = id_, seq](ledger& l) { l.note(id, seq); }));
    }
  }
  // A note to the ledger, then `go` to the relay on another loop: the relay's note is caused by
  // this one's.
  void note_then_go(const actor_ref<note_sender>& relay) {
    const int seq = next_++;
    EXPECT_FALSE(to_.tell([id = id_, seq](ledger& l) { l.note(id, seq); }));
    EXPECT_FALSE(relay.tell([seq](note_sender& r) { r.note_as(seq); }));
  }
  void note_as(int seq) {
    EXPECT_FALSE(to_.tell([id = id_, seq](ledger& l) { l.note(id, seq); }));
  }

 private:
  actor_ref<ledger> to_;
  int id_;
  int next_ = 0;
};

// Whether the ledger comes to hold `count` entries (asked again until it does, or time runs
// out); `got` is what it held at the last look.
bool ledger_holds(const actor_ref<ledger>& l, int count, std::vector<ledger::entry>& got) {
  return eventually([&] {
    std::promise<std::vector<ledger::entry>> seen;
    EXPECT_FALSE(l.tell([&seen](ledger& x) { seen.set_value(x.entries()); }));
    got = seen.get_future().get();
    return got.size() == static_cast<std::size_t>(count);
  });
}

TEST(actor, a_tell_to_an_actor_of_the_same_loop_runs_after_the_senders_handler) {
  journal j;
  running_engine e(test::small_options(1));
  const actor_ref<counter> c = e->spawn<counter>(&j);
  e.start();
  std::promise<bool> ran_after;
  std::atomic<bool> sender_returned{false};
  ASSERT_FALSE(e->loop(0).post([&](event_loop&) {
    ASSERT_FALSE(c.tell([&](counter& a) {
      a.add(1);
      ran_after.set_value(sender_returned.load());
    }));
    sender_returned = true;  // the tell has not run yet: it waits in the loop's own queue
  }));
  EXPECT_TRUE(ran_after.get_future().get());
}

// Three senders to one ledger at once: an actor of its loop (the local queue), an actor of
// another loop and a thread of no loop (the mailbox). Each one's notes run in the order it sent
// them; none is lost.
TEST(actor, same_loop_tells_keep_their_order_beside_mail_from_other_threads) {
  running_engine e(test::small_options(2));
  const actor_ref<ledger> l = e->spawn_on<ledger>(0);
  const actor_ref<note_sender> near = e->spawn_on<note_sender>(0, l, 1);
  const actor_ref<note_sender> far = e->spawn_on<note_sender>(1, l, 2);
  e.start();
  constexpr int bursts = 50;
  constexpr int each = 100;
  std::thread outside([&l] {
    for (int seq = 0; seq < bursts * each; ++seq) {
      while (l.tell([seq](ledger& x) { x.note(3, seq); }) == make_error_code(errc::queue_full)) {
        std::this_thread::yield();
      }
    }
  });
  for (int b = 0; b < bursts; ++b) {
    ASSERT_FALSE(near.tell([](note_sender& s) { s.burst(each); }));
    ASSERT_FALSE(far.tell([](note_sender& s) { s.burst(each); }));
  }
  outside.join();
  std::vector<ledger::entry> got;
  ASSERT_TRUE(ledger_holds(l, 3 * bursts * each, got));
  std::array<int, 4> next{};
  for (const ledger::entry& n : got) {
    ASSERT_EQ(n.seq, next.at(n.sender)) << "sender " << n.sender << " out of order";
    ++next.at(n.sender);
  }
  EXPECT_EQ(next[1], bursts * each);
  EXPECT_EQ(next[2], bursts * each);
  EXPECT_EQ(next[3], bursts * each);
}

// An actor of loop 1 notes, then has an actor of loop 0 note: the second note goes through
// loop 0's local queue, the first through its mailbox, and the first still runs first.
TEST(actor, a_same_loop_tell_runs_after_the_mail_that_caused_it) {
  running_engine e(test::small_options(2));
  const actor_ref<ledger> l = e->spawn_on<ledger>(0);
  const actor_ref<note_sender> relay = e->spawn_on<note_sender>(0, l, 1);
  const actor_ref<note_sender> first = e->spawn_on<note_sender>(1, l, 2);
  e.start();
  constexpr int rounds = 500;
  for (int r = 0; r < rounds; ++r) {
    ASSERT_FALSE(first.tell([relay](note_sender& s) { s.note_then_go(relay); }));
  }
  std::vector<ledger::entry> got;
  ASSERT_TRUE(ledger_holds(l, 2 * rounds, got));
  std::vector<bool> noted(rounds, false);
  for (const ledger::entry& n : got) {
    if (n.sender == 2) {
      noted.at(n.seq) = true;
    } else {
      ASSERT_TRUE(noted.at(n.seq)) << "the relayed note " << n.seq << " overtook its cause";
    }
  }
}

TEST(actor, the_mailbox_cap_bounds_a_loops_sends_to_itself) {
  journal j;
  engine_options o = test::small_options(1);
  o.mailbox_cap = 100;
  running_engine e(o);
  const actor_ref<counter> c = e->spawn<counter>(&j);
  e.start();
  std::promise<std::pair<int, int>> sent;
  const std::uint64_t refused_before = e->loop(0).refused_messages();
  ASSERT_FALSE(e->loop(0).post([&](event_loop&) {
    int accepted = 0;
    int refused = 0;
    for (int i = 0; i < 150; ++i) {
      const std::error_code ec = c.tell([i](counter& a) { a.add(i); });
      ec == make_error_code(errc::queue_full) ? ++refused : ++accepted;
    }
    sent.set_value({accepted, refused});
  }));
  const auto [accepted, refused] = sent.get_future().get();
  EXPECT_EQ(accepted, 100);
  EXPECT_EQ(refused, 50);
  EXPECT_EQ(e->loop(0).refused_messages() - refused_before, 50U);
  // (This thread's question may run before some of the loop's own messages: no order among
  // senders.)
  std::vector<int> got;
  ASSERT_TRUE(eventually([&] {
    std::promise<std::vector<int>> seen;
    EXPECT_FALSE(c.tell([&seen](counter& a) { seen.set_value(a.seen()); }));
    got = seen.get_future().get();
    return got.size() >= 100U;
  }));
  ASSERT_EQ(got.size(), 100U);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(got[i], i);
  }
}

// Two actors of one loop tell each other without end: the loop still answers a thread's ask
// (its mailbox gets its turn) and runs its timers; the chain ends when told to.
class volley final : public actor {
 public:
  explicit volley(std::atomic<bool>* stop) : stop_(stop) {}
  void set_peer(actor_ref<volley> peer) { peer_ = peer; }
  void hit() {
    ++hits_;
    if (!stop_->load(std::memory_order_relaxed)) {
      EXPECT_FALSE(peer_.tell([](volley& v) { v.hit(); }));
    }
  }
  [[nodiscard]] long hits() const { return hits_; }

 private:
  std::atomic<bool>* stop_;
  actor_ref<volley> peer_;
  long hits_ = 0;
};

TEST(actor, an_endless_chain_of_same_loop_tells_leaves_other_mail_and_timers_their_turn) {
  std::atomic<bool> stop{false};
  running_engine e(test::small_options(1));
  const actor_ref<volley> a = e->spawn<volley>(&stop);
  const actor_ref<volley> b = e->spawn<volley>(&stop);
  e.start();
  ASSERT_FALSE(a.tell([b](volley& v) { v.set_peer(b); }));
  ASSERT_FALSE(b.tell([a](volley& v) { v.set_peer(a); }));
  ASSERT_FALSE(a.tell([](volley& v) { v.hit(); }));
  for (int i = 0; i < 20; ++i) {
    std::promise<long> hits;
    ASSERT_FALSE(a.ask([](volley& v) { return v.hits(); },
                       [&hits](result<long> r) { hits.set_value(r ? *r : -1); }));
    auto answer = hits.get_future();
    ASSERT_EQ(answer.wait_for(10s), std::future_status::ready) << "the chain starved the mailbox";
    EXPECT_GT(answer.get(), 0);
  }
  std::promise<void> timer_ran;
  ASSERT_FALSE(e->loop(0).post(
      [&timer_ran](event_loop& l) { l.after(1ms, [&timer_ran] { timer_ran.set_value(); }); }));
  ASSERT_EQ(timer_ran.get_future().wait_for(10s), std::future_status::ready)
      << "the chain starved the timers";
  stop = true;
}

// Each link of the chain holds the loop 2 ms and tells itself the next: the loop hands the
// chain on to its next iteration once half the stall threshold (10 ms) has gone, so I/O and
// timers get their turn. (A slow machine makes the links longer: more iterations, not fewer.)
class chain final : public actor {
 public:
  explicit chain(std::promise<void>* done) : done_(done) {}
  void link(int left) {
    std::this_thread::sleep_for(2ms);
    if (left == 0) {
      done_->set_value();
      return;
    }
    EXPECT_FALSE(ref<chain>().tell([left](chain& c) { c.link(left - 1); }));
  }

 private:
  std::promise<void>* done_;
};

TEST(actor, a_chain_of_same_loop_tells_is_cut_at_half_the_stall_threshold) {
  std::promise<void> done;
  engine_options o = test::small_options(1);
  o.stall_threshold = 20ms;
  running_engine e(o);
  const actor_ref<chain> c = e->spawn<chain>(&done);
  e.start();
  ASSERT_TRUE(eventually([&] { return e->count_actors() == 1; }));
  const std::uint64_t before = e->metrics().loops.at(0).iterations;
  constexpr int links = 40;
  ASSERT_FALSE(c.tell([](chain& x) { x.link(links - 1); }));
  ASSERT_EQ(done.get_future().wait_for(30s), std::future_status::ready);
  // At most 10 ms of links an iteration (5, and the one that crosses the line): 40 links take
  // 7 iterations or more. Run in one, they would take one or two.
  EXPECT_GE(e->metrics().loops.at(0).iterations - before, 7U);
}

TEST(actor, spawn_on_a_loop_that_does_not_exist_throws) {
  journal j;
  engine e(test::small_options(2));
  EXPECT_THROW((void)e.spawn_on<counter>(2, &j), std::out_of_range);
  EXPECT_EQ(e.count_actors(), 0U);
}

}  // namespace
}  // namespace actnet
