// Coroutine handlers (task.hpp): co_await ask, offload and sleep from connections and service
// actors resume on the actor's loop, as the actor; errors and exceptions reach the awaiting
// code; a coroutine whose actor has gone is destroyed at its next resumption, never resumed.
#include "actnet/actors/task.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "actnet/actors/actor.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/error.hpp"
#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::eventually;
using test::running_engine;
using namespace std::chrono_literals;

class store final : public actor {
 public:
  int next() { return ++last_; }

 private:
  int last_ = 0;
};

// Sets a flag when destroyed: a coroutine's local, to see its frame go.
struct witness {
  std::atomic<int>* destroyed;
  explicit witness(std::atomic<int>* d) : destroyed(d) {}
  witness(const witness&) = delete;
  witness& operator=(const witness&) = delete;
  ~witness() { (*destroyed)++; }
};

// For each line, two answers in turn from the store, then a reply: "a b\n".
class two_step_connection final : public connection {
 public:
  explicit two_step_connection(actor_ref<store>* s) : store_(*s) {}
  void on_data() override {
    while (next(1)) {
      (void)serve();
    }
  }

 private:
  task serve() {
    const result<int> a = co_await ask(store_, [](store& s) { return s.next(); });
    EXPECT_TRUE(loop().in_loop_thread());
    const result<int> b = co_await ask(store_, [](store& s) { return s.next(); });
    (void)write(std::to_string(a ? *a : -1) + " " + std::to_string(b ? *b : -1) + "\n");
  }
  actor_ref<store> store_;
};

TEST(task, a_connection_awaits_two_answers_in_turn) {
  running_engine e(test::small_options(2));
  actor_ref<store> s = e->spawn_on<store>(1);
  const address bound = e->listen<two_step_connection>("tcp://127.0.0.1:0", &s);
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "x"));
  EXPECT_EQ(test::recv_exact(fd, 4), "1 2\n");
  ASSERT_TRUE(test::send_all(fd, "x"));
  EXPECT_EQ(test::recv_exact(fd, 4), "3 4\n");
  ::close(fd);
}

// A service actor whose coroutine asks, sleeps and offloads, checking after each await that it
// runs on its own loop, as itself.
class worker_actor final : public actor {
 public:
  explicit worker_actor(actor_ref<store> s) : store_(s) {}
  task run(std::promise<std::vector<std::string>>* done) {
    std::vector<std::string> seen;
    const result<int> a = co_await ask(store_, [](store& s) { return s.next(); });
    seen.push_back("ask " + std::to_string(a ? *a : -1) + (here() ? " here" : " elsewhere"));
    const auto before = std::chrono::steady_clock::now();
    co_await sleep(5ms);
    seen.push_back(
        std::string("slept") +
        (std::chrono::steady_clock::now() - before >= 5ms ? " long enough" : " too little") +
        (here() ? " here" : " elsewhere"));
    const std::thread::id me = std::this_thread::get_id();
    const result<std::string> worked = co_await offload([me] {
      return std::string(std::this_thread::get_id() != me ? "on a worker" : "on the loop");
    });
    seen.push_back("offload " + (worked ? *worked : worked.error().message()) +
                   (here() ? " here" : " elsewhere"));
    try {
      (void)co_await offload([]() -> int { throw std::runtime_error("bad input"); });
      seen.push_back("no exception");
    } catch (const std::runtime_error& e) {
      seen.push_back(std::string("caught ") + e.what() + (here() ? " here" : " elsewhere"));
    }
    const result<int> failed =
        co_await ask(store_, [](store&) -> int { throw std::logic_error("no"); });
    seen.push_back("ask failed: " + failed.error().message());
    // A lambda that owns a string, its awaitable named first (README: g++ 12 and temporaries
    // in a co_await expression).
    const std::string word = "a string the lambda owns";
    auto named = ask(store_, [word](store&) { return word.size(); });
    const result<std::size_t> size = co_await named;
    seen.push_back("named " + std::to_string(size ? *size : 0));
    const result<std::size_t> index =
        co_await ask(owner().loop(1), [](event_loop& l) { return l.index(); });
    seen.push_back("loop " + std::to_string(index ? *index : 99) +
                   (here() ? " here" : " elsewhere"));
    done->set_value(seen);
  }

 private:
  [[nodiscard]] bool here() const { return is_running() && loop().in_loop_thread(); }
  actor_ref<store> store_;
};

TEST(task, a_service_actor_awaits_an_ask_a_sleep_and_offloads_on_its_own_loop) {
  running_engine e(test::small_options(2));
  const actor_ref<store> s = e->spawn_on<store>(1);
  const actor_ref<worker_actor> w = e->spawn_on<worker_actor>(0, s);
  e.start();
  std::promise<std::vector<std::string>> done;
  ASSERT_FALSE(w.tell([&done](worker_actor& a) { (void)a.run(&done); }));
  EXPECT_EQ(done.get_future().get(),
            (std::vector<std::string>{"ask 1 here", "slept long enough here",
                                      "offload on a worker here", "caught bad input here",
                                      "ask failed: the handler threw", "named 24", "loop 1 here"}));
}

// Sleeps in a coroutine per connection; the client leaves meanwhile.
class sleeper_connection final : public connection {
 public:
  struct counts {
    std::atomic<int> started{0};
    std::atomic<int> destroyed{0};
    std::atomic<int> resumed{0};
  };
  explicit sleeper_connection(counts* c) : counts_(c) {}
  void on_open() override { (void)nap(); }

 private:
  task nap() {
    const witness w(&counts_->destroyed);
    counts_->started++;
    co_await sleep(100ms);
    counts_->resumed++;  // never: the connection has closed by then
    (void)write("late\n");
  }
  counts* counts_;
};

TEST(task, a_coroutine_whose_connection_closes_is_destroyed_without_running_further) {
  sleeper_connection::counts counts;
  running_engine e(test::small_options(1));
  const address bound = e->listen<sleeper_connection>("tcp://127.0.0.1:0", &counts);
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return counts.started == 1; }));
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return counts.destroyed == 1; }));  // when its timer came
  EXPECT_EQ(counts.resumed, 0);
}

// Awaits an answer that never comes back to it: it stops while the question is out.
class quitter final : public actor {
 public:
  quitter(actor_ref<store> s, std::atomic<int>* destroyed, std::atomic<int>* resumed)
      : store_(s), destroyed_(destroyed), resumed_(resumed) {}
  task ask_and_quit() {
    const witness w(destroyed_);
    stop();  // (on_stop comes next, from the mailbox: before the answer can)
    (void)co_await ask(store_, [](store& s) { return s.next(); });
    (*resumed_)++;  // never: its actor stopped before the answer came
  }

 private:
  actor_ref<store> store_;
  std::atomic<int>* destroyed_;
  std::atomic<int>* resumed_;
};

TEST(task, a_coroutine_whose_actor_stops_is_destroyed_when_its_answer_comes) {
  std::atomic<int> destroyed{0};
  std::atomic<int> resumed{0};
  running_engine e(test::small_options(2));
  const actor_ref<store> s = e->spawn_on<store>(1);
  const actor_ref<quitter> q = e->spawn_on<quitter>(0, s, &destroyed, &resumed);
  e.start();
  ASSERT_FALSE(q.tell([](quitter& a) { (void)a.ask_and_quit(); }));
  ASSERT_TRUE(eventually([&] { return destroyed == 1; }));
  EXPECT_EQ(resumed, 0);
  const std::uint64_t dropped = e->loop(0).dropped_messages();
  EXPECT_GE(dropped, 1U);  // the answer, dropped at the stopped asker
}

// The engine stops with coroutines still suspended: each is destroyed, none resumed.
class waiter_actor final : public actor {
 public:
  explicit waiter_actor(std::atomic<int>* destroyed) : destroyed_(destroyed) {}
  void on_start() override { (void)wait_long(); }

 private:
  task wait_long() {
    const witness w(destroyed_);
    co_await sleep(1h);
    ADD_FAILURE() << "resumed after the engine stopped";
  }
  std::atomic<int>* destroyed_;
};

TEST(task, coroutines_still_waiting_at_the_engine_stop_are_destroyed) {
  std::atomic<int> destroyed{0};
  {
    running_engine e(test::small_options(2));
    (void)e->spawn_sharded<waiter_actor>(&destroyed);
    e.start();
    ASSERT_TRUE(eventually([&] { return e->count_actors() == 2; }));
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(destroyed, 2);
}

// An exception that leaves a coroutine's body is logged and ends it; the actor goes on.
class thrower final : public actor {
 public:
  task fail() {
    co_await sleep(1ms);
    throw std::runtime_error("out of the coroutine");
  }
  int alive() const { return 1; }
};

TEST(task, an_exception_out_of_a_coroutine_ends_it_and_its_actor_goes_on) {
  running_engine e(test::small_options(1));
  const actor_ref<thrower> t = e->spawn<thrower>();
  e.start();
  ASSERT_FALSE(t.tell([](thrower& a) { (void)a.fail(); }));
  std::this_thread::sleep_for(10ms);
  std::promise<int> alive;
  ASSERT_FALSE(t.ask([](thrower& a) { return a.alive(); },
                     [&alive](result<int> r) { alive.set_value(r ? *r : -1); }));
  EXPECT_EQ(alive.get_future().get(), 1);
}

}  // namespace
}  // namespace actnet
