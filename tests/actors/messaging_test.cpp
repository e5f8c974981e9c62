// Messages between actors: ask (request / reply between loops and connections, the reply run on
// the asking loop), broadcast to every connection of a class on every loop, and the ordering
// and dead-actor rules that README.md documents.
#include <gtest/gtest.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::connect_to;
using test::eventually;
using test::running_engine;

/// What the connections of a test share: their addresses by open order, and a log of answers.
struct club {
  std::mutex mutex;
  std::vector<conn_ref> members;
  std::vector<std::string> log;
  std::atomic<int> closed{0};

  void join(conn_ref r) {
    const std::lock_guard lock(mutex);
    members.push_back(r);
  }
  [[nodiscard]] std::size_t size() {
    const std::lock_guard lock(mutex);
    return members.size();
  }
  [[nodiscard]] conn_ref at(std::size_t i) {
    const std::lock_guard lock(mutex);
    return members.at(i);
  }
  void note(std::string s) {
    const std::lock_guard lock(mutex);
    log.push_back(std::move(s));
  }
  [[nodiscard]] std::vector<std::string> notes() {
    const std::lock_guard lock(mutex);
    return log;
  }
};

class member : public connection {
 public:
  explicit member(club* c) : club_(c) {}
  void on_open() override { club_->join(ref()); }
  void on_close(std::error_code /*reason*/) override { club_->closed++; }

  /// Loop-thread only, like every member of a connection.
  [[nodiscard]] std::string describe() const {
    return "loop " + std::to_string(loop().index()) + (loop().in_loop_thread() ? " on" : " off");
  }
  club* club_;
};

class other_member final : public member {
 public:
  using member::member;
};

/// Connects `n` clients and waits until the engine has opened all of them (round-robin puts
/// client i on loop i % loops).
std::vector<int> connect_many(const address& a, club& c, std::size_t n) {
  const std::size_t before = c.size();
  std::vector<int> fds;
  for (std::size_t i = 0; i < n; ++i) {
    fds.push_back(connect_to(a));
    EXPECT_GE(fds.back(), 0);
    EXPECT_TRUE(eventually([&] { return c.size() == before + i + 1; }));
  }
  return fds;
}

void close_all(const std::vector<int>& fds) {
  for (const int fd : fds) {
    ::close(fd);
  }
}

// -- ask --

TEST(ask, a_loop_answers_and_the_reply_runs_on_the_asking_loop) {
  running_engine e(test::small_options(2));
  e.start();
  std::mutex mutex;
  std::vector<std::string> seen;
  e->loop(0).ask(
      e->loop(1),
      [](event_loop& l) {
        return "asked loop " + std::to_string(l.index()) + (l.in_loop_thread() ? " on" : " off");
      },
      [&](result<std::string> answer) {
        const std::lock_guard lock(mutex);
        seen.push_back(answer ? *answer : answer.error().message());
        seen.push_back(e->loop(0).in_loop_thread() ? "reply on loop 0" : "reply elsewhere");
      });
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(mutex);
    return seen.size() == 2;
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"asked loop 1 on", "reply on loop 0"}));
}

TEST(ask, a_connection_answers_as_itself_and_the_asker_hears_as_itself) {
  club c;
  running_engine e(test::small_options(2));
  const address bound = e->listen<member>("tcp://127.0.0.1:0", &c);
  e.start();
  const std::vector<int> fds = connect_many(bound, c, 2);
  const conn_ref asker = c.at(0);
  const conn_ref target = c.at(1);
  ASSERT_NE(asker.loop(), target.loop()) << "round-robin put the two on different loops";
  asker.tell<member>([target](member& m) {
    m.ask<member>(
        target, [](member& t) { return t.describe(); },
        [&m](result<std::string> answer) {
          m.club_->note((answer ? *answer : answer.error().message()) + " -> " + m.describe());
        });
  });
  ASSERT_TRUE(eventually([&] { return c.notes().size() == 1; }));
  EXPECT_EQ(c.notes().at(0), "loop 1 on -> loop 0 on");
  close_all(fds);
}

TEST(ask, a_connection_can_ask_a_loop_and_a_loop_can_ask_a_connection) {
  club c;
  running_engine e(test::small_options(2));
  const address bound = e->listen<member>("tcp://127.0.0.1:0", &c);
  e.start();
  const std::vector<int> fds = connect_many(bound, c, 1);  // on loop 0
  c.at(0).tell<member>([&e](member& m) {
    m.ask(
        e->loop(1), [](event_loop& l) { return l.index(); },
        [&m](result<std::size_t> answer) {
          m.club_->note("loop " + std::to_string(*answer) + " -> " + m.describe());
        });
  });
  e->loop(1).ask<member>(
      c.at(0), [](member& m) { return m.describe(); },
      [&](result<std::string> answer) {
        c.note(*answer + " -> loop 1 " + (e->loop(1).in_loop_thread() ? "on" : "off"));
      });
  ASSERT_TRUE(eventually([&] { return c.notes().size() == 2; }));
  std::vector<std::string> notes = c.notes();
  std::sort(notes.begin(), notes.end());
  EXPECT_EQ(notes, (std::vector<std::string>{"loop 0 on -> loop 1 on", "loop 1 -> loop 0 on"}));
  close_all(fds);
}

TEST(ask, a_connection_that_has_gone_answers_connection_closed) {
  club c;
  running_engine e(test::small_options(2));
  const address bound = e->listen<member>("tcp://127.0.0.1:0", &c);
  e.start();
  const std::vector<int> fds = connect_many(bound, c, 1);
  const conn_ref gone = c.at(0);
  close_all(fds);
  ASSERT_TRUE(eventually([&] { return c.closed.load() == 1; }));
  std::atomic<bool> ran{false};
  e->loop(1).ask<member>(
      gone,
      [&ran](member& /*m*/) {
        ran = true;
        return 1;
      },
      [&c](result<int> answer) { c.note(answer ? "answered" : answer.error().message()); });
  ASSERT_TRUE(eventually([&] { return c.notes().size() == 1; }));
  EXPECT_EQ(c.notes().at(0), std::error_code(errc::connection_closed).message());
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(e->loop(0).dropped_messages(), 1U);
}

TEST(ask, a_handler_that_throws_answers_handler_failed_and_the_next_is_answered) {
  running_engine e(test::small_options(2));
  e.start();
  std::mutex mutex;
  std::vector<std::string> answers;
  const auto note = [&](std::string s) {
    const std::lock_guard lock(mutex);
    answers.push_back(std::move(s));
  };
  e->loop(0).ask(
      e->loop(1),
      [](event_loop& /*l*/) -> int { throw std::runtime_error("no answer, on purpose"); },
      [&](result<int> a) { note(a ? "value" : a.error().message()); });
  std::atomic<int> side_effect{0};
  e->loop(0).ask(
      e->loop(1), [&](event_loop& /*l*/) { side_effect = 7; },
      [&](std::error_code ec) { note(ec ? ec.message() : "done"); });
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(mutex);
    return answers.size() == 2;
  }));
  EXPECT_EQ(answers, (std::vector<std::string>{"the handler threw", "done"}));
  EXPECT_EQ(side_effect.load(), 7);
}

TEST(ask, answers_come_back_in_the_order_the_questions_were_asked) {
  club c;
  running_engine e(test::small_options(2));
  const address bound = e->listen<member>("tcp://127.0.0.1:0", &c);
  e.start();
  const std::vector<int> fds = connect_many(bound, c, 2);
  constexpr int questions = 2000;
  std::vector<int> order;  // written by the asker (loop 0) only, read after the last answer
  std::atomic<int> answered{0};
  c.at(0).tell<member>([&, target = c.at(1)](member& m) {
    for (int i = 0; i < questions; ++i) {
      // Alternate between the connection on loop 1 and loop 1 itself: one queue, one order.
      const auto record = [&order, &answered](result<int> a) {
        order.push_back(a ? *a : -1);
        answered++;
      };
      if (i % 2 == 0) {
        m.ask<member>(
            target, [i](member& /*t*/) { return i; }, record);
      } else {
        m.ask(
            *target.loop(), [i](event_loop& /*l*/) { return i; }, record);
      }
    }
  });
  ASSERT_TRUE(eventually([&] { return answered.load() == questions; }));
  ASSERT_EQ(order.size(), std::size_t{questions});
  for (int i = 0; i < questions; ++i) {
    ASSERT_EQ(order[static_cast<std::size_t>(i)], i);
  }
  close_all(fds);
}

TEST(ask, the_reply_to_an_asker_that_has_gone_is_dropped_and_counted) {
  club c;
  running_engine e(test::small_options(2));
  const address bound = e->listen<member>("tcp://127.0.0.1:0", &c);
  e.start();
  std::vector<int> fds = connect_many(bound, c, 1);  // on loop 0
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> asked{false};
  std::atomic<bool> then_ran{false};
  c.at(0).tell<member>([&](member& m) {
    m.ask(
        e->loop(1),
        [&](event_loop& /*l*/) {  // holds loop 1 until the asker has gone
          asked = true;
          std::unique_lock lock(mutex);
          cv.wait(lock, [&] { return release; });
          return 1;
        },
        [&then_ran](result<int> /*a*/) { then_ran = true; });
  });
  ASSERT_TRUE(eventually([&] { return asked.load(); }));
  close_all(fds);
  ASSERT_TRUE(eventually([&] { return c.closed.load() == 1; }));
  const std::uint64_t dropped = e->loop(0).dropped_messages();
  {
    const std::lock_guard lock(mutex);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(eventually([&] { return e->loop(0).dropped_messages() == dropped + 1; }));
  EXPECT_FALSE(then_ran.load());
}

// -- broadcast --

TEST(broadcast, reaches_every_open_connection_of_the_class_on_every_loop_once) {
  club a;
  club b;
  running_engine e(test::small_options(2));
  const address to_a = e->listen<member>("tcp://127.0.0.1:0", &a);
  const address to_b = e->listen<other_member>("tcp://127.0.0.1:0", &b);
  e.start();
  const std::vector<int> fa = connect_many(to_a, a, 3);
  const std::vector<int> fb = connect_many(to_b, b, 3);
  std::atomic<int> visits{0};
  // other_member derives from member: broadcast<member> reaches all six, <other_member> three.
  e->broadcast<member>([&visits](member& m) {
    visits++;
    (void)m.write("all\n");
  });
  e->broadcast<other_member>([&visits](other_member& m) {
    visits += 100;
    (void)m.write("b\n");
  });
  for (const int fd : fa) {
    EXPECT_EQ(test::recv_exact(fd, 4), "all\n");
  }
  for (const int fd : fb) {
    EXPECT_EQ(test::recv_exact(fd, 6), "all\nb\n");
  }
  EXPECT_TRUE(eventually([&] { return visits.load() == 306; }));
  // Nothing more came to the first class: the next bytes they get are these.
  e->broadcast<member>([](member& m) { (void)m.write("end\n"); });
  for (const int fd : fa) {
    EXPECT_EQ(test::recv_exact(fd, 4), "end\n");
  }
  close_all(fa);
  close_all(fb);
}

TEST(broadcast, one_senders_broadcasts_arrive_in_order_after_its_earlier_messages) {
  club c;
  running_engine e(test::small_options(2));
  const address bound = e->listen<member>("tcp://127.0.0.1:0", &c);
  e.start();
  const std::vector<int> fds = connect_many(bound, c, 4);
  std::string expected;
  c.at(1).async_write("first\n");  // before the broadcasts, from the same thread
  for (int i = 0; i < 300; ++i) {
    const std::string line = std::to_string(i) + "\n";
    expected += line;
    e->broadcast<member>([line](member& m) { (void)m.write(line); });
  }
  for (std::size_t i = 0; i < fds.size(); ++i) {
    EXPECT_EQ(test::recv_exact(fds[i], (i == 1 ? 6 : 0) + expected.size()),
              (i == 1 ? "first\n" : "") + expected)
        << "client " << i;
  }
  close_all(fds);
}

TEST(broadcast, may_close_the_connections_it_visits) {
  club c;
  running_engine e(test::small_options(2));
  const address bound = e->listen<member>("tcp://127.0.0.1:0", &c);
  e.start();
  const std::vector<int> fds = connect_many(bound, c, 6);
  e->broadcast<member>([](member& m) {
    (void)m.write("bye\n");
    m.close();
  });
  for (const int fd : fds) {
    EXPECT_EQ(test::recv_exact(fd, 4), "bye\n");
    EXPECT_TRUE(test::peer_closed(fd));
  }
  EXPECT_TRUE(eventually([&] { return c.closed.load() == 6 && e->count_connections() == 0; }));
  close_all(fds);
}

}  // namespace
}  // namespace actnet
