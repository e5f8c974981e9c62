// engine::dial: outbound connections made without blocking on the balancer's loop, as the same
// connection actors as accepted ones; refused, timed-out and stopped dials reported once.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::eventually;
using test::running_engine;

class echo : public connection {
  void on_data() override { (void)write(next_all()); }
};

// Says hello on open and reports what comes back.
class greeter : public connection {
 public:
  explicit greeter(std::promise<std::string>* reply) : reply_(reply) {}
  void on_open() override { (void)write(std::string_view("hello from a dial")); }
  void on_data() override {
    const byte_views all = next_all();
    reply_->set_value(
        std::string(reinterpret_cast<const char*>(all.first.data()), all.first.size()));
    close();
  }

 private:
  std::promise<std::string>* reply_;
};

// A dial's outcome, kept for the test thread; counts the completions.
struct outcome {
  std::promise<result<conn_ref>> first;
  std::atomic<int> calls{0};
  dial_done callback() {
    return [this](result<conn_ref> r) {
      if (calls++ == 0) {
        first.set_value(std::move(r));
      }
    };
  }
};

TEST(dial, a_dialed_connection_is_a_connection_actor_on_the_dialing_engine) {
  for (const char* kind : {"tcp", "unix"}) {
    running_engine server;
    const std::string path = "/tmp/actnet-dial-" + std::to_string(::getpid()) + ".sock";
    const address target = std::string_view(kind) == "tcp"
                               ? server->listen<echo>("tcp://127.0.0.1:0")
                               : server->listen<echo>("unix://" + path);
    server.start();
    running_engine client(test::small_options(2));
    client.start();
    std::promise<std::string> reply;
    outcome o;
    client->dial<greeter>(target.to_string(), {}, o.callback(), &reply);
    const result<conn_ref> r = o.first.get_future().get();
    ASSERT_TRUE(r) << kind << ": " << r.error().message();
    EXPECT_TRUE(r->valid());
    EXPECT_EQ(reply.get_future().get(), "hello from a dial") << kind;
    EXPECT_TRUE(eventually([&] { return client->count_connections() == 0; }));
    EXPECT_EQ(o.calls.load(), 1);
  }
}

TEST(dial, a_closed_port_is_refused_once) {
  // A port nobody listens on: bind one, note it, close it.
  const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const address any = address::parse("tcp://127.0.0.1:0");
  ASSERT_EQ(::bind(probe, any.data(), any.size()), 0);
  const address closed = *local_address(probe, transport::tcp);
  ::close(probe);
  running_engine client;
  client.start();
  outcome o;
  client->dial<echo>(closed.to_string(), {}, o.callback());
  const result<conn_ref> r = o.first.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::connection_refused) << r.error().message();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(o.calls.load(), 1);
  EXPECT_EQ(client->count_connections(), 0U);
}

// A loopback listener with a backlog of 1 that nobody accepts on, filled by non-blocking
// connects: the kernel leaves further handshakes pending.
struct stuck_listener {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  address at;
  std::vector<int> fillers;
  stuck_listener() {
    const address any = address::parse("tcp://127.0.0.1:0");
    if (::bind(fd, any.data(), any.size()) != 0 || ::listen(fd, 1) != 0) {
      return;
    }
    at = *local_address(fd, transport::tcp);
    for (int i = 0; i < 8; ++i) {
      fillers.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      (void)::connect(fillers.back(), at.data(), at.size());
    }
  }
  stuck_listener(const stuck_listener&) = delete;
  stuck_listener& operator=(const stuck_listener&) = delete;
  ~stuck_listener() {
    for (const int f : fillers) {
      ::close(f);
    }
    ::close(fd);
  }
};

TEST(dial, a_listener_that_never_accepts_times_the_dial_out) {
  const stuck_listener target;
  ASSERT_TRUE(target.at.valid());
  running_engine client;
  client.start();
  outcome o;
  dial_options options;
  options.timeout = std::chrono::milliseconds(300);
  client->dial<echo>(target.at.to_string(), options, o.callback());
  const result<conn_ref> r = o.first.get_future().get();
  if (r) {
    GTEST_SKIP() << "this kernel completed the handshake past a full backlog; no timeout to see";
  }
  EXPECT_EQ(r.error(), std::errc::timed_out) << r.error().message();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(o.calls.load(), 1);
}

TEST(dial, a_dial_the_engine_never_ran_reports_engine_stopped) {
  outcome o;
  {
    engine never_run(test::small_options());
    never_run.dial<echo>("tcp://127.0.0.1:9", {}, o.callback());
  }
  const result<conn_ref> r = o.first.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::engine_stopped);
  EXPECT_EQ(o.calls.load(), 1);
}

TEST(dial, a_dial_pending_at_stop_reports_engine_stopped) {
  const stuck_listener target;
  ASSERT_TRUE(target.at.valid());
  outcome o;
  {
    running_engine client;
    client.start();
    client->dial<echo>(target.at.to_string(), {}, o.callback());  // the default 10 s timeout
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }  // stopped here
  const result<conn_ref> r = o.first.get_future().get();
  if (r) {
    GTEST_SKIP() << "this kernel completed the handshake past a full backlog";
  }
  EXPECT_EQ(r.error(), errc::engine_stopped);
  EXPECT_EQ(o.calls.load(), 1);
}

TEST(dial, bad_targets_are_rejected_at_once) {
  engine e(test::small_options());
  EXPECT_THROW(e.dial<echo>("tulip://x", {}, [](result<conn_ref>) {}), std::invalid_argument);
  dial_options negative;
  negative.timeout = std::chrono::milliseconds(-1);
  EXPECT_THROW(e.dial<echo>("tcp://127.0.0.1:9", negative, [](result<conn_ref>) {}),
               std::invalid_argument);
}

}  // namespace
}  // namespace actnet
