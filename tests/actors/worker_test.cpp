// The worker-pool actor group: a bounded queue that never blocks its submitter, cancellation at
// stop, and connection::offload and actor::offload: results back on the loop, in submission
// order per connection or actor, dropped and counted when it has gone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/actors/worker_pool.hpp>
#include <actnet/error.hpp>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::connect_to;
using test::eventually;
using test::running_engine;

using test::gate;

/// A client that connects and sends one byte (the server's cue); -1 on failure.
int poke(const address& a) {
  const int fd = connect_to(a);
  if (fd >= 0 && !test::send_all(fd, "x")) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// -- the pool on its own --

TEST(worker_pool, runs_jobs_on_its_own_threads) {
  worker_pool pool(3);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::atomic<int> ran{0};
  for (int i = 0; i < 300; ++i) {
    ASSERT_FALSE(pool.submit([&] {
      {
        const std::lock_guard lock(mutex);
        threads.insert(std::this_thread::get_id());
      }
      ran++;
    }));
  }
  ASSERT_TRUE(eventually([&] { return ran.load() == 300; }));
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0U);
  EXPECT_LE(threads.size(), 3U);
  EXPECT_EQ(pool.completed(), 300U);
}

TEST(worker_pool, a_full_queue_is_reported_at_once_and_nothing_is_queued) {
  worker_pool pool(1, 2);
  gate g;
  std::atomic<bool> busy{false};
  ASSERT_FALSE(pool.submit([&] {
    busy = true;
    g.wait();
  }));
  ASSERT_TRUE(eventually([&] { return busy.load(); }));  // the worker holds it; 0 waiting
  std::atomic<int> ran{0};
  EXPECT_FALSE(pool.submit([&] { ran++; }));
  EXPECT_FALSE(pool.submit([&] { ran++; }));
  EXPECT_EQ(pool.submit([&] { ran++; }), errc::queue_full);
  EXPECT_EQ(pool.rejected(), 1U);
  g.open();
  ASSERT_TRUE(eventually([&] { return ran.load() == 2; }));
  EXPECT_FALSE(pool.submit([&] { ran++; })) << "room again once the queue drained";
  ASSERT_TRUE(eventually([&] { return ran.load() == 3; }));
}

TEST(worker_pool, stop_lets_running_jobs_finish_and_cancels_the_rest) {
  worker_pool pool(1);
  gate g;
  std::atomic<bool> busy{false};
  std::atomic<bool> finished{false};
  ASSERT_FALSE(pool.submit([&] {
    busy = true;
    g.wait();
    finished = true;
  }));
  ASSERT_TRUE(eventually([&] { return busy.load(); }));
  std::atomic<int> ran{0};
  std::atomic<int> cancelled{0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(pool.submit([&] { ran++; }, [&] { cancelled++; }));
  }
  std::thread stopper([&] { pool.stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  g.open();
  stopper.join();
  EXPECT_TRUE(finished.load()) << "the running job finished";
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(cancelled.load(), 3);
  EXPECT_EQ(pool.cancelled(), 3U);
  EXPECT_EQ(pool.submit([] {}), errc::engine_stopped);
}

TEST(worker_pool, bad_sizes_are_rejected) {
  EXPECT_THROW(worker_pool(1, 0), std::invalid_argument);
  EXPECT_THROW(worker_pool(2000), std::invalid_argument);
  engine_options o = test::small_options();
  o.worker_queue_cap = 0;
  EXPECT_THROW(engine{o}, std::invalid_argument);
}

// -- offload from connections --

// Each 4-byte number received is offloaded (a random short wait on a worker) and written back
// when its result returns: replies must come in the order the numbers came.
class offloading : public connection {
 public:
  explicit offloading(std::atomic<int>* errors) : errors_(errors) {}
  void on_data() override {
    while (inbound_buffered() >= 4) {
      std::array<std::byte, 4> number{};
      (void)read(number);
      const std::error_code ec = offload(
          [number] {
            thread_local std::mt19937 rng(std::random_device{}());
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50));
            return number;
          },
          [this](std::array<std::byte, 4> result) { (void)write(std::span(result)); });
      if (ec) {
        (*errors_)++;
      }
    }
  }

 private:
  std::atomic<int>* errors_;
};

TEST(offload, four_workers_100000_jobs_from_100_connections_in_order_each_once) {
  std::atomic<int> errors{0};
  engine_options o = test::small_options(2);
  o.workers = 4;
  running_engine e(o);
  const address bound = e->listen<offloading>("tcp://127.0.0.1:0", &errors);
  e.start();
  constexpr int conns = 100;
  constexpr std::uint32_t per_conn = 1000;
  constexpr std::uint32_t window = 100;  // in flight per connection, well under the queue cap
  std::vector<std::future<std::string>> clients;
  for (int k = 0; k < conns; ++k) {
    clients.push_back(std::async(std::launch::async, [bound]() -> std::string {
      const int fd = connect_to(bound);
      if (fd < 0) {
        return "connect failed";
      }
      std::string error;
      for (std::uint32_t base = 0; base < per_conn && error.empty(); base += window) {
        std::string batch;
        for (std::uint32_t i = base; i < base + window; ++i) {
          batch.append(reinterpret_cast<const char*>(&i), 4);
        }
        if (!test::send_all(fd, batch)) {
          error = "send failed";
        } else if (test::recv_exact(fd, batch.size()) != batch) {
          error = "replies out of order or missing in window " + std::to_string(base);
        }
      }
      ::close(fd);
      return error;
    }));
  }
  for (auto& c : clients) {
    EXPECT_EQ(c.get(), "");
  }
  EXPECT_EQ(errors.load(), 0);
  // A worker counts its job after the job has posted its result, so the last reply can reach
  // its client a moment before the last count.
  EXPECT_TRUE(test::eventually([&] {
    return e->workers().completed() >= std::uint64_t{conns} * per_conn;
  })) << e->workers().completed();
  EXPECT_EQ(e->workers().workers(), 4U);
}

struct drop_state {
  gate g;
  std::atomic<bool> job_started{false};
  std::atomic<int> then_ran{0};
  std::atomic<int> closed{0};
};

class offloading_then_gone : public connection {
 public:
  explicit offloading_then_gone(drop_state* s) : s_(s) {}
  void on_data() override {
    (void)next_all();
    (void)offload(
        [s = s_] {
          s->job_started = true;
          s->g.wait();
          return 42;
        },
        [s = s_](int) { s->then_ran++; });
  }
  void on_close(std::error_code /*reason*/) override { s_->closed++; }

 private:
  drop_state* s_;
};

TEST(offload, a_result_for_a_connection_that_has_gone_is_dropped_and_counted) {
  drop_state s;
  running_engine e;
  const address bound = e->listen<offloading_then_gone>("tcp://127.0.0.1:0", &s);
  e.start();
  const int fd = poke(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return s.job_started.load(); }));
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return s.closed.load() == 1; }));
  const std::uint64_t dropped_before = e->loop(0).dropped_messages();
  s.g.open();
  ASSERT_TRUE(eventually([&] { return e->loop(0).dropped_messages() == dropped_before + 1; }));
  EXPECT_EQ(s.then_ran.load(), 0);
}

struct full_state {
  gate g;
  std::mutex mutex;
  std::vector<std::error_code> results;
  std::atomic<int> delivered{0};
};

class offloading_three : public connection {
 public:
  explicit offloading_three(full_state* s) : s_(s) {}
  void on_data() override {
    (void)next_all();
    std::vector<std::error_code> codes;
    codes.push_back(offload(
        [s = s_] {
          s->g.wait();
          return 1;
        },
        [s = s_](int) { s->delivered++; }));
    codes.push_back(offload([] { return 2; }, [s = s_](int) { s->delivered++; }));
    codes.push_back(offload([] { return 3; }, [s = s_](int) { s->delivered++; }));
    const std::lock_guard lock(s_->mutex);
    s_->results = codes;
  }

 private:
  full_state* s_;
};

TEST(offload, a_full_queue_is_reported_to_the_handler_and_the_rest_still_arrive) {
  full_state s;
  engine_options o = test::small_options();
  o.workers = 1;
  o.worker_queue_cap = 1;
  running_engine e(o);
  const address bound = e->listen<offloading_three>("tcp://127.0.0.1:0", &s);
  e.start();
  const int fd = poke(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(s.mutex);
    return s.results.size() == 3;
  }));
  {
    const std::lock_guard lock(s.mutex);
    // The first may still wait in the queue (then the second is refused) or already run on
    // the worker (then the second waits and the third is refused): one refusal either way.
    int refused = 0;
    for (const std::error_code& ec : s.results) {
      if (ec) {
        EXPECT_EQ(ec, errc::queue_full);
        ++refused;
      }
    }
    EXPECT_GE(refused, 1);
    s.g.open();
    EXPECT_TRUE(eventually([&] { return s.delivered.load() == 3 - refused; }));
  }
  ::close(fd);
}

struct throw_state {
  std::mutex mutex;
  std::vector<int> order;
};

class offloading_with_a_throw : public connection {
 public:
  explicit offloading_with_a_throw(throw_state* s) : s_(s) {}
  void on_data() override {
    (void)next_all();
    for (int i = 0; i < 5; ++i) {
      (void)offload(
          [i] {
            if (i == 2) {
              throw std::runtime_error("job 2 fails on purpose");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5 - i));  // finish backwards
            return i;
          },
          [s = s_](int v) {
            const std::lock_guard lock(s->mutex);
            s->order.push_back(v);
          });
    }
  }

 private:
  throw_state* s_;
};

// Runs Conn (five offloads, one of which fails) on 4 workers; the four results, in the order
// their continuations ran (empty if they did not all arrive).
template <class Conn>
std::vector<int> four_results() {
  throw_state s;
  engine_options o = test::small_options();
  o.workers = 4;
  running_engine e(o);
  const address bound = e->listen<Conn>("tcp://127.0.0.1:0", &s);
  e.start();
  const int fd = poke(bound);
  const bool arrived = fd >= 0 && eventually([&] {
                         const std::lock_guard lock(s.mutex);
                         return s.order.size() == 4;
                       });
  ::close(fd);
  e.stop();
  return arrived ? s.order : std::vector<int>{};
}

TEST(offload, a_job_that_throws_is_skipped_and_the_others_keep_their_order) {
  EXPECT_EQ(four_results<offloading_with_a_throw>(), (std::vector<int>{0, 1, 3, 4}));
}

// The first continuation throws; the four behind it (finished earlier, so waiting for their
// turn) must still run, in order.
class throwing_continuation : public connection {
 public:
  explicit throwing_continuation(throw_state* s) : s_(s) {}
  void on_data() override {
    (void)next_all();
    for (int i = 0; i < 5; ++i) {
      (void)offload(
          [i] {
            std::this_thread::sleep_for(std::chrono::milliseconds(i == 0 ? 20 : 0));
            return i;
          },
          [s = s_](int v) {
            if (v == 0) {
              throw std::runtime_error("continuation 0 fails on purpose");
            }
            const std::lock_guard lock(s->mutex);
            s->order.push_back(v);
          });
    }
  }

 private:
  throw_state* s_;
};

TEST(offload, a_continuation_that_throws_does_not_hold_up_the_results_behind_it) {
  EXPECT_EQ(four_results<throwing_continuation>(), (std::vector<int>{1, 2, 3, 4}));
}

// A service actor's offloads: five jobs, the first two slowest and the third throwing; the
// results come back in submission order, the third skipped. Then one slow job whose actor stops
// before it ends: its result is dropped and counted.
struct actor_results {
  std::mutex mutex;
  std::vector<int> order;
};

class offloading_actor final : public actor {
 public:
  explicit offloading_actor(actor_results* r) : r_(r) {}
  void on_start() override {
    for (int i = 0; i < 5; ++i) {
      (void)offload(
          [i] {
            std::this_thread::sleep_for(std::chrono::milliseconds(i == 0 ? 40 : i == 1 ? 20 : 0));
            if (i == 2) {
              throw std::runtime_error("job 2 fails on purpose");
            }
            return i;
          },
          [r = r_](int v) {
            const std::lock_guard lock(r->mutex);
            r->order.push_back(v);
          });
    }
  }
  void slow_then_stop(gate* g) {
    (void)offload(
        [g] {
          g->wait();
          return 5;
        },
        [r = r_](int v) {
          const std::lock_guard lock(r->mutex);
          r->order.push_back(v);
        });
    stop();
  }

 private:
  actor_results* r_;
};

TEST(offload, a_service_actors_results_come_in_submission_order_and_not_after_it_stops) {
  actor_results r;
  gate slow;
  engine_options o = test::small_options();
  o.workers = 4;
  running_engine e(o);
  e.start();
  const actor_ref<offloading_actor> a = e->spawn_on<offloading_actor>(0, &r);
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(r.mutex);
    return r.order.size() == 4;
  }));
  {
    const std::lock_guard lock(r.mutex);
    EXPECT_EQ(r.order, (std::vector<int>{0, 1, 3, 4}));
  }
  EXPECT_TRUE(eventually([&] { return e->metrics().total.offloads_in_flight == 0; }));
  ASSERT_FALSE(a.tell([&slow](offloading_actor& x) { x.slow_then_stop(&slow); }));
  EXPECT_TRUE(eventually([&] { return e->metrics().total.offloads_in_flight == 1; }));
  const std::uint64_t dropped_before = e->metrics().total.messages_dropped;
  slow.open();
  EXPECT_TRUE(
      eventually([&] { return e->metrics().total.messages_dropped == dropped_before + 1; }));
  EXPECT_EQ(e->metrics().total.offloads_in_flight, 0U);
  const std::lock_guard lock(r.mutex);
  EXPECT_EQ(r.order.size(), 4U) << "a stopped actor's result is not run";
}

class offload_writing : public connection {
  void on_data() override {
    const byte_views all = next_all();
    std::string text(reinterpret_cast<const char*>(all.first.data()), all.first.size());
    (void)offload_write([text] { return "worked on: " + text; });
  }
};

TEST(offload, offload_write_writes_the_result_bytes) {
  running_engine e;
  const address bound = e->listen<offload_writing>("tcp://127.0.0.1:0");
  e.start();
  const int fd = connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "abc"));
  EXPECT_EQ(test::recv_exact(fd, 14), "worked on: abc");
  ::close(fd);
}

}  // namespace
}  // namespace actnet
