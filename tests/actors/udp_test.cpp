// UDP on the engine: socket actors (a datagram per on_data, replies to its sender, send_to),
// sessions (an actor per peer, idle close, max_sessions), multicast and broadcast, several
// listeners of mixed kinds, and the options that came with them (bind_device, logger).
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::eventually;
using test::running_engine;
using test::udp_client;

std::string random_bytes(std::size_t n, std::mt19937& rng) {
  std::string s(n, '\0');
  for (char& c : s) {
    c = static_cast<char>(rng());
  }
  return s;
}

class udp_echo : public connection {
  void on_data() override { (void)write(next_all()); }
};

// -- socket actors --

TEST(udp, socket_actor_echoes_each_datagram_to_its_sender_on_one_and_several_loops) {
  for (const std::size_t loops : {1, 3}) {
    running_engine e(test::small_options(loops));
    const address bound = e->listen<udp_echo>("udp://127.0.0.1:0");
    EXPECT_EQ(bound.transport(), transport::udp);
    EXPECT_NE(bound.port(), 0);
    e.start();
    std::mt19937 rng(static_cast<unsigned>(loops));
    std::vector<std::unique_ptr<udp_client>> clients;
    for (int i = 0; i < 6; ++i) {
      clients.push_back(std::make_unique<udp_client>(bound));
    }
    for (int round = 0; round < 20; ++round) {
      for (const auto& c : clients) {
        const std::string msg = random_bytes(1 + rng() % 1024, rng);
        ASSERT_TRUE(c->send(msg));
        ASSERT_EQ(c->receive(), msg) << "loops " << loops << " round " << round;
      }
    }
    EXPECT_EQ(e->count_connections(), 0U) << "socket actors are not connections";
  }
}

struct datagram_log {
  std::mutex mutex;
  std::vector<std::size_t> buffered;  // inbound_buffered() at each on_data
  std::vector<std::string> peers;
  std::error_code write_outside_on_data;
  std::error_code peer_outside_on_data;
  std::error_code send_to_tcp_address;
  std::error_code shutdown_write;
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};
  std::error_code close_reason;

  void note_close(std::error_code reason) {
    const std::lock_guard lock(mutex);
    close_reason = reason;
    closed++;
  }
};

// Replies with the first 3 bytes of each datagram and leaves the rest unconsumed.
class taking_three : public connection {
 public:
  explicit taking_three(datagram_log* log) : log_(log) {}
  void on_open() override {
    const std::lock_guard lock(log_->mutex);
    log_->write_outside_on_data = write(std::string_view("x"));
    log_->peer_outside_on_data = remote_address().error();
    log_->send_to_tcp_address = send_to(address::parse("tcp://127.0.0.1:9"), std::string_view("x"));
    log_->shutdown_write = shutdown_write();
    log_->opened++;
  }
  void on_data() override {
    {
      const std::lock_guard lock(log_->mutex);
      log_->buffered.push_back(inbound_buffered());
      log_->peers.push_back(remote_address()->to_string());
    }
    if (const result<byte_views> head = next(3)) {
      (void)write(*head);
    }
  }
  void on_close(std::error_code reason) override { log_->note_close(reason); }

 private:
  datagram_log* log_;
};

TEST(udp, a_datagram_is_one_on_data_and_its_unconsumed_bytes_end_with_it) {
  datagram_log log;
  {
    running_engine e;
    const address bound = e->listen<taking_three>("udp://127.0.0.1:0", &log);
    e.start();
    const udp_client client(bound);
    ASSERT_TRUE(client.send("abcdefgh"));
    EXPECT_EQ(client.receive(), "abc");
    ASSERT_TRUE(client.send("12345"));
    EXPECT_EQ(client.receive(), "123");
    e.stop();
    const std::lock_guard lock(log.mutex);
    EXPECT_EQ(log.buffered, (std::vector<std::size_t>{8, 5})) << "nothing carried over";
    ASSERT_EQ(log.peers.size(), 2U);
    EXPECT_EQ(log.peers[0], client.local().to_string());
    EXPECT_EQ(log.write_outside_on_data, std::errc::destination_address_required);
    EXPECT_EQ(log.peer_outside_on_data, std::errc::not_connected);
    EXPECT_EQ(log.send_to_tcp_address, std::errc::invalid_argument);
    EXPECT_EQ(log.shutdown_write, std::errc::operation_not_supported) << "a datagram has no FIN";
  }
  EXPECT_EQ(log.opened.load(), 1);
  EXPECT_EQ(log.closed.load(), 1);
  EXPECT_EQ(log.close_reason, errc::engine_stopped);
}

// Forwards each datagram "host:port|text" to that address, and answers "sent" to the sender.
class forwarder : public connection {
  void on_data() override {
    const byte_views all = next_all();
    const std::string text(reinterpret_cast<const char*>(all.first.data()), all.first.size());
    const std::size_t bar = text.find('|');
    const std::error_code ec = send_to(address::parse(text.substr(0, bar)), text.substr(bar + 1));
    (void)write(ec ? std::string_view("failed") : std::string_view("sent"));
  }
};

TEST(udp, send_to_reaches_any_address) {
  running_engine e;
  const address bound = e->listen<forwarder>("udp://127.0.0.1:0");
  e.start();
  const udp_client sender(bound);
  const udp_client target(bound);
  ASSERT_TRUE(sender.send(target.local().to_string() + "|hello there"));
  EXPECT_EQ(sender.receive(), "sent");
  EXPECT_EQ(target.receive(), "hello there");
}

class send_to_on_stream : public connection {
 public:
  explicit send_to_on_stream(std::promise<std::error_code>* result) : result_(result) {}
  void on_open() override {
    result_->set_value(send_to(address::parse("udp://127.0.0.1:9"), std::string_view("x")));
    close();
  }

 private:
  std::promise<std::error_code>* result_;
};

TEST(udp, send_to_on_a_stream_is_not_supported) {
  std::promise<std::error_code> result;
  running_engine e;
  const address bound = e->listen<send_to_on_stream>("tcp://127.0.0.1:0", &result);
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(result.get_future().get(), std::errc::operation_not_supported);
  ::close(fd);
}

class closing_on_quit : public connection {
 public:
  explicit closing_on_quit(datagram_log* log) : log_(log) {}
  void on_data() override {
    const byte_views all = next_all();
    if (std::string_view(reinterpret_cast<const char*>(all.first.data()), all.first.size()) ==
        "quit") {
      close();
    } else {
      (void)write(all);
    }
  }
  void on_close(std::error_code reason) override { log_->note_close(reason); }

 private:
  datagram_log* log_;
};

TEST(udp, closing_a_socket_actor_closes_its_socket_once) {
  datagram_log log;
  running_engine e;
  const address bound = e->listen<closing_on_quit>("udp://127.0.0.1:0", &log);
  e.start();
  const udp_client client(bound, 300);
  ASSERT_TRUE(client.send("ping"));
  EXPECT_EQ(client.receive(), "ping");
  ASSERT_TRUE(client.send("quit"));
  ASSERT_TRUE(eventually([&] { return log.closed.load() == 1; }));
  EXPECT_FALSE(log.close_reason) << log.close_reason.message();
  e.stop();
  EXPECT_EQ(log.closed.load(), 1) << "on_close runs once, not again at stop";
}

TEST(udp, edge_triggered_engines_serve_udp_level_triggered) {
  engine_options o = test::small_options(2);
  o.edge_triggered = true;
  o.edge_triggered_chunk = 1024;
  running_engine e(o);
  const address bound = e->listen<udp_echo>("udp://127.0.0.1:0");
  e.start();
  const udp_client client(bound);
  // A burst larger than one batch: every datagram is still answered.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(client.send("datagram " + std::to_string(i)));
  }
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(client.receive(), "datagram " + std::to_string(i));
  }
}

TEST(udp, a_datagram_longer_than_the_read_buffer_is_dropped_and_counted_never_cut) {
  engine_options o = test::small_options();
  o.read_buffer_size = 1024;
  running_engine e(o);
  const address bound = e->listen<udp_echo>("udp://127.0.0.1:0");
  e.start();
  const udp_client client(bound);
  ASSERT_TRUE(client.send(std::string(2000, 'L')));
  ASSERT_TRUE(client.send("short"));
  EXPECT_EQ(client.receive(), "short") << "the long one is not echoed, cut or whole";
  EXPECT_EQ(e->loop(0).datagrams_dropped(), 1U);
}

// Pauses at its first datagram and resumes 30 ms later: the datagrams sent meanwhile (some of
// them received before the pause took effect, on io_uring) reach on_data at the resume, in
// order, none lost.
class pauses_at_first : public connection {
  void on_data() override {
    (void)write(next_all());
    if (!paused_once_) {
      paused_once_ = true;
      pause_reading();
      (void)after(std::chrono::milliseconds(30), [](connection& self) { self.resume_reading(); });
    }
  }
  bool paused_once_ = false;
};

TEST(udp, datagrams_that_come_while_a_socket_actor_is_paused_wait_for_the_resume_in_order) {
  running_engine e(test::small_options());
  const address bound = e->listen<pauses_at_first>("udp://127.0.0.1:0");
  e.start();
  const udp_client client(bound);
  constexpr int count = 50;
  for (int i = 0; i < count; ++i) {
    ASSERT_TRUE(client.send("datagram " + std::to_string(i)));
  }
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(client.receive(), "datagram " + std::to_string(i));
  }
  EXPECT_EQ(e->loop(0).datagrams_dropped(), 0U);
}

// Answers one datagram with `burst` of its own (on io_uring, all queued on the ring before the
// loop's next wait).
class answers_with_a_burst : public connection {
 public:
  static constexpr int burst = 100;

 private:
  void on_data() override {
    (void)next_all();
    for (int i = 0; i < burst; ++i) {
      EXPECT_FALSE(write("reply " + std::to_string(i)));
    }
  }
};

TEST(udp, many_replies_from_one_on_data_all_arrive) {
  running_engine e(test::small_options());
  const address bound = e->listen<answers_with_a_burst>("udp://127.0.0.1:0");
  e.start();
  const udp_client client(bound);
  for (int round = 0; round < 3; ++round) {  // (the ring's send slots are reused)
    ASSERT_TRUE(client.send("go"));
    std::vector<std::string> got;
    for (int i = 0; i < answers_with_a_burst::burst; ++i) {
      got.push_back(client.receive());
    }
    std::vector<std::string> want;
    for (int i = 0; i < answers_with_a_burst::burst; ++i) {
      want.push_back("reply " + std::to_string(i));
    }
    std::sort(got.begin(), got.end());  // (UDP promises no order)
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << "round " << round;
  }
  EXPECT_EQ(e->loop(0).datagrams_dropped(), 0U);
}

TEST(udp, a_second_server_on_the_same_udp_port_is_refused) {
  engine first(test::small_options());
  const address bound = first.listen<udp_echo>("udp://127.0.0.1:0");
  engine second(test::small_options());
  try {
    (void)second.listen<udp_echo>(bound.to_string());
    ADD_FAILURE() << "a second socket bound " << bound.to_string();
  } catch (const std::system_error& ex) {
    EXPECT_EQ(ex.code(), std::errc::address_in_use) << ex.what();
  }
}

TEST(udp, a_closed_socket_actor_gives_its_port_back) {
  datagram_log log;
  running_engine e;
  const address bound = e->listen<closing_on_quit>("udp://127.0.0.1:0", &log);
  e.start();
  const udp_client client(bound);
  ASSERT_TRUE(client.send("quit"));
  ASSERT_TRUE(eventually([&] { return log.closed.load() == 1; }));
  // No socket keeps the port: the engine's own copy closes with loop 0's actor (just after its
  // on_close, on the loop's thread).
  EXPECT_TRUE(
      eventually([&] { return e->dup_listener(0).error() == std::errc::bad_file_descriptor; }));
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::bind(fd, bound.data(), bound.size()), 0) << std::strerror(errno);
  ::close(fd);
}

class publishing_socket : public connection {
 public:
  explicit publishing_socket(std::promise<conn_ref>* p) : p_(p) {}
  void on_open() override { p_->set_value(ref()); }
  void on_close(std::error_code /*reason*/) override { closed++; }
  static inline std::atomic<int> closed{0};

 private:
  std::promise<conn_ref>* p_;
};

class plain : public connection {};

TEST(udp, a_socket_actor_closed_in_the_same_timer_batch_as_the_idle_release_still_closes) {
  // The idle release (due once the TCP client leaves) and a timer that closes the UDP socket
  // actor run in one batch, because a third timer holds the loop until both are due. The
  // release must not drop the pending close (socket actors are not counted as connections).
  publishing_socket::closed = 0;
  std::promise<conn_ref> socket_ref;
  engine_options o = test::small_options();
  o.idle_release = std::chrono::milliseconds(60);
  running_engine e(o);
  const address tcp = e->listen<plain>("tcp://127.0.0.1:0");
  (void)e->listen<publishing_socket>("udp://127.0.0.1:0", &socket_ref);
  e.start();
  const conn_ref udp_socket = socket_ref.get_future().get();
  const int fd = test::connect_to(tcp);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] { return e->count_connections() == 1; }));
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return e->count_connections() == 0; }));
  udp_socket.tell<connection>([](connection& c) {
    (void)c.loop().after(std::chrono::milliseconds(5),
                         [] { std::this_thread::sleep_for(std::chrono::milliseconds(150)); });
    (void)c.after(std::chrono::milliseconds(20), [](connection& self) { self.close(); });
  });
  EXPECT_TRUE(eventually([&] { return publishing_socket::closed.load() == 1; }));
}

// -- sessions --

struct session_log {
  std::mutex mutex;
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};
  std::vector<std::error_code> reasons;
  std::vector<std::string> peers;  // at on_open
  std::vector<conn_ref> refs;
};

// Echoes, prefixed with how many datagrams this session has seen; "bye" closes it.
class counting_session : public connection {
 public:
  explicit counting_session(session_log* log) : log_(log) {}
  void on_open() override {
    const std::lock_guard lock(log_->mutex);
    log_->peers.push_back(remote_address()->to_string());
    log_->refs.push_back(ref());
    log_->opened++;
  }
  void on_data() override {
    const byte_views all = next_all();
    const std::string text(reinterpret_cast<const char*>(all.first.data()), all.first.size());
    if (text == "bye") {
      close();
      return;
    }
    (void)write(std::to_string(++seen_) + ":" + text);
  }
  void on_close(std::error_code reason) override {
    const std::lock_guard lock(log_->mutex);
    log_->reasons.push_back(reason);
    log_->closed++;
  }

 private:
  session_log* log_;
  int seen_ = 0;
};

listen_options sessions(std::chrono::milliseconds idle = std::chrono::seconds(30),
                        std::size_t max = defaults::udp_max_sessions) {
  listen_options o;
  o.udp_sessions = true;
  o.session_idle_timeout = idle;
  o.max_sessions = max;
  return o;
}

TEST(udp, sessions_give_each_peer_its_own_actor) {
  session_log log;
  running_engine e(test::small_options(2));
  const address bound = e->listen<counting_session>(sessions(), "udp://127.0.0.1:0", &log);
  e.start();
  std::vector<std::unique_ptr<udp_client>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<udp_client>(bound));
  }
  for (int round = 1; round <= 3; ++round) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      const std::string text = "c" + std::to_string(i);
      ASSERT_TRUE(clients[i]->send(text));
      EXPECT_EQ(clients[i]->receive(), std::to_string(round) + ":" + text);
    }
  }
  EXPECT_EQ(log.opened.load(), 4);
  EXPECT_EQ(e->count_connections(), 4U) << "sessions count as connections";
  {
    const std::lock_guard lock(log.mutex);
    std::vector<std::string> expected;
    for (const auto& c : clients) {
      expected.push_back(c->local().to_string());
    }
    std::vector<std::string> peers = log.peers;
    std::sort(peers.begin(), peers.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(peers, expected);
  }
  // A session's address works from another thread: an async write reaches its peer.
  conn_ref first;
  {
    const std::lock_guard lock(log.mutex);
    first = log.refs.front();
  }
  const std::string first_peer = log.peers.front();
  first.async_write(std::string_view("pushed"));
  bool pushed = false;
  for (const auto& c : clients) {
    if (c->local().to_string() == first_peer) {
      pushed = c->receive() == "pushed";
    }
  }
  EXPECT_TRUE(pushed);
  e.stop();
  EXPECT_EQ(log.closed.load(), 4);
  const std::lock_guard lock(log.mutex);
  for (const std::error_code& reason : log.reasons) {
    EXPECT_EQ(reason, errc::engine_stopped);
  }
}

TEST(udp, an_idle_session_closes_with_timed_out_and_a_new_datagram_opens_another) {
  session_log log;
  running_engine e;
  const address bound = e->listen<counting_session>(sessions(std::chrono::milliseconds(150)),
                                                    "udp://127.0.0.1:0", &log);
  e.start();
  const udp_client client(bound);
  ASSERT_TRUE(client.send("a"));
  EXPECT_EQ(client.receive(), "1:a");
  ASSERT_TRUE(eventually([&] { return log.closed.load() == 1; }));
  // (on_close runs before the loop counts the session out: wait for both.)
  EXPECT_TRUE(eventually([&] { return e->count_connections() == 0; }));
  {
    const std::lock_guard lock(log.mutex);
    EXPECT_EQ(log.reasons.at(0), std::errc::timed_out);
  }
  ASSERT_TRUE(client.send("b"));
  EXPECT_EQ(client.receive(), "1:b") << "a new session counts from 1";
  EXPECT_EQ(log.opened.load(), 2);
}

TEST(udp, a_session_that_keeps_talking_stays_open_past_the_idle_timeout) {
  session_log log;
  running_engine e;
  const address bound = e->listen<counting_session>(sessions(std::chrono::milliseconds(500)),
                                                    "udp://127.0.0.1:0", &log);
  e.start();
  const udp_client client(bound);
  for (int i = 1; i <= 24; ++i) {  // over 1.2 s of traffic, a datagram every 50 ms
    ASSERT_TRUE(client.send("x"));
    ASSERT_EQ(client.receive(), std::to_string(i) + ":x");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(log.opened.load(), 1);
  EXPECT_EQ(log.closed.load(), 0);
}

TEST(udp, a_session_closed_by_its_handler_is_replaced_by_the_next_datagram) {
  session_log log;
  running_engine e;
  const address bound = e->listen<counting_session>(sessions(), "udp://127.0.0.1:0", &log);
  e.start();
  const udp_client client(bound);
  ASSERT_TRUE(client.send("one"));
  EXPECT_EQ(client.receive(), "1:one");
  ASSERT_TRUE(client.send("bye"));
  ASSERT_TRUE(client.send("two"));  // may arrive in the same batch as "bye"
  EXPECT_EQ(client.receive(), "1:two");
  EXPECT_EQ(log.opened.load(), 2);
  ASSERT_TRUE(eventually([&] { return log.closed.load() == 1; }));
  const std::lock_guard lock(log.mutex);
  EXPECT_FALSE(log.reasons.at(0));
}

TEST(udp, past_max_sessions_datagrams_from_new_peers_are_dropped_and_counted) {
  session_log log;
  running_engine e;
  const address bound =
      e->listen<counting_session>(sessions(std::chrono::seconds(30), 2), "udp://127.0.0.1:0", &log);
  e.start();
  const udp_client a(bound);
  const udp_client b(bound);
  const udp_client c(bound);
  ASSERT_TRUE(a.send("a"));
  EXPECT_EQ(a.receive(), "1:a");
  ASSERT_TRUE(b.send("b"));
  EXPECT_EQ(b.receive(), "1:b");
  ASSERT_TRUE(c.send("c"));
  ASSERT_TRUE(eventually([&] { return e->loop(0).datagrams_dropped() == 1; }));
  EXPECT_EQ(log.opened.load(), 2);
  ASSERT_TRUE(a.send("a"));  // the sessions it has are served on
  EXPECT_EQ(a.receive(), "2:a");
}

TEST(udp, session_options_are_checked) {
  engine e(test::small_options());
  EXPECT_THROW(e.listen<udp_echo>(sessions(), "tcp://127.0.0.1:0"), std::invalid_argument);
  EXPECT_THROW(e.listen<udp_echo>(sessions(std::chrono::milliseconds(0)), "udp://127.0.0.1:0"),
               std::invalid_argument);
  EXPECT_THROW(e.listen<udp_echo>(sessions(std::chrono::milliseconds::max()), "udp://127.0.0.1:0"),
               std::invalid_argument)
      << "a timeout past a year would overflow the timer";
  try {
    e.listen<udp_echo>(sessions(std::chrono::seconds(1), 0), "udp://127.0.0.1:0");
    ADD_FAILURE() << "max_sessions 0 accepted";
  } catch (const std::invalid_argument& ex) {
    EXPECT_NE(std::string(ex.what()).find("max_sessions"), std::string::npos) << ex.what();
  }
}

// -- several listeners of mixed kinds, each with its own class --

class tagged_echo : public connection {
 public:
  explicit tagged_echo(std::string tag) : tag_(std::move(tag)) {}
  void on_data() override {
    const byte_views all = next_all();
    const std::string text(reinterpret_cast<const char*>(all.first.data()), all.first.size());
    (void)write(tag_ + ":" + text);
  }

 private:
  std::string tag_;
};

class other_tagged_echo : public tagged_echo {
 public:
  other_tagged_echo() : tagged_echo("second tcp") {}
};

TEST(udp, one_engine_serves_tcp_udp_and_unix_each_with_its_class) {
  const std::string path = "/tmp/actnet-mixed-" + std::to_string(::getpid()) + ".sock";
  for (const bool reuse_port : {false, true}) {
    engine_options o = test::small_options(2);
    o.reuse_port = reuse_port;
    running_engine e(o);
    const address tcp = e->listen<tagged_echo>("tcp://127.0.0.1:0", std::string("tcp"));
    const address tcp2 = e->listen<other_tagged_echo>("tcp://127.0.0.1:0");
    const address udp = e->listen<tagged_echo>("udp://127.0.0.1:0", std::string("udp"));
    const address unix_socket = e->listen<tagged_echo>("unix://" + path, std::string("unix"));
    const address udp_sessions =
        e->listen<tagged_echo>(sessions(), "udp://127.0.0.1:0", std::string("session"));
    EXPECT_EQ(e->addresses().size(), 5U);
    e.start();
    for (const auto& [a, tag] :
         {std::pair{tcp, "tcp"}, std::pair{tcp2, "second tcp"}, std::pair{unix_socket, "unix"}}) {
      const int fd = test::connect_to(a);
      ASSERT_GE(fd, 0) << a.to_string();
      ASSERT_TRUE(test::send_all(fd, "hi"));
      const std::string expected = std::string(tag) + ":hi";
      EXPECT_EQ(test::recv_exact(fd, expected.size()), expected);
      ::close(fd);
    }
    for (const auto& [a, tag] : {std::pair{udp, "udp"}, std::pair{udp_sessions, "session"}}) {
      const udp_client client(a);
      ASSERT_TRUE(client.send("hi"));
      EXPECT_EQ(client.receive(), std::string(tag) + ":hi");
    }
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file goes with the engine";
}

// -- multicast and broadcast --

class counting_datagrams : public connection {
 public:
  explicit counting_datagrams(std::atomic<int>* count) : count_(count) {}
  void on_data() override {
    (void)next_all();
    (*count_)++;
  }

 private:
  std::atomic<int>* count_;
};

class multicast : public ::testing::TestWithParam<bool> {};

TEST_P(multicast, a_group_is_joined_and_each_datagram_arrives_once) {
  const unsigned lo = ::if_nametoindex("lo");
  ASSERT_NE(lo, 0U);
  std::atomic<int> received{0};
  engine_options o = test::small_options(2);
  o.socket.multicast_interface = lo;
  o.reuse_port = GetParam();
  running_engine e(o);
  const address group = e->listen<counting_datagrams>("udp4://239.255.42.99:0", &received);
  e.start();
  const udp_client sender(group);
  ip_mreqn on_lo{};
  on_lo.imr_ifindex = static_cast<int>(lo);
  ASSERT_EQ(::setsockopt(sender.fd(), IPPROTO_IP, IP_MULTICAST_IF, &on_lo, sizeof on_lo), 0);
  constexpr int count = 5;
  for (int i = 0; i < count; ++i) {
    ASSERT_TRUE(sender.send("to the group"));
  }
  ASSERT_TRUE(eventually([&] { return received.load() >= count; }));
  // One socket (loop 0's) serves a group, so no loop gets a second copy: a unicast datagram
  // sent after them, through the same path, arrives after any copy would have.
  ASSERT_TRUE(sender.send("marker"));
  ASSERT_TRUE(eventually([&] { return received.load() >= count + 1; }));
  EXPECT_EQ(received.load(), count + 1);
}

INSTANTIATE_TEST_SUITE_P(udp, multicast, ::testing::Bool(),
                         [](const auto& p) { return p.param ? "reuse_port" : "main_reactor"; });

TEST(udp, an_ipv6_multicast_group_is_joined_on_the_interface) {
  const unsigned lo = ::if_nametoindex("lo");
  engine_options o = test::small_options();
  o.socket.multicast_interface = lo;
  engine e(o);
  std::atomic<int> received{0};
  // Joining is what listen() does; delivery over IPv6 multicast depends on the host's routes.
  const address group = e.listen<counting_datagrams>("udp6://[ff02::1:3%lo]:0", &received);
  EXPECT_TRUE(group.multicast());
  EXPECT_NE(group.port(), 0);
}

TEST(udp, ipv4_udp_sockets_may_broadcast_unless_told_not_to) {
  for (const bool broadcast : {true, false}) {
    engine_options o = test::small_options();
    o.socket.broadcast = broadcast;
    engine e(o);
    e.listen<udp_echo>("udp://127.0.0.1:0");
    const result<unique_fd> fd = e.dup_listener(0);
    ASSERT_TRUE(fd);
    int on = -1;
    socklen_t size = sizeof on;
    ASSERT_EQ(::getsockopt(fd->get(), SOL_SOCKET, SO_BROADCAST, &on, &size), 0);
    EXPECT_EQ(on != 0, broadcast);
  }
}

// -- bind_device and multicast_interface --

TEST(udp, bind_device_binds_listeners_to_the_interface) {
  engine_options o = test::small_options();
  o.socket.bind_device = "lo";
  running_engine e(o);
  const address tcp = e->listen<udp_echo>("tcp://127.0.0.1:0");
  const address udp = e->listen<udp_echo>("udp://127.0.0.1:0");
  for (std::size_t i = 0; i < 2; ++i) {
    const result<unique_fd> fd = e->dup_listener(i);
    ASSERT_TRUE(fd);
    std::array<char, IFNAMSIZ> name{};
    socklen_t size = name.size();
    ASSERT_EQ(::getsockopt(fd->get(), SOL_SOCKET, SO_BINDTODEVICE, name.data(), &size), 0);
    EXPECT_STREQ(name.data(), "lo");
  }
  e.start();
  const int fd = test::connect_to(tcp);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "over lo"));
  EXPECT_EQ(test::recv_exact(fd, 7), "over lo");
  ::close(fd);
  const udp_client client(udp);
  ASSERT_TRUE(client.send("over lo"));
  EXPECT_EQ(client.receive(), "over lo");
}

void expect_rejected(const engine_options& o, std::string_view needle) {
  try {
    const engine e(o);
    ADD_FAILURE() << "accepted; expected a rejection naming " << needle;
  } catch (const std::invalid_argument& ex) {
    EXPECT_NE(std::string(ex.what()).find(needle), std::string::npos) << ex.what();
  }
}

TEST(udp, unknown_interfaces_are_rejected_naming_the_option) {
  engine_options o = test::small_options();
  o.socket.bind_device = "nosuchdev0";
  expect_rejected(o, "socket.bind_device = \"nosuchdev0\"");
  o.socket.bind_device = std::string(IFNAMSIZ, 'x');
  expect_rejected(o, "socket.bind_device");
  o.socket.bind_device.clear();
  o.socket.multicast_interface = 99999;
  expect_rejected(o, "socket.multicast_interface = 99999");
}

// -- logger --

class throwing_on_data : public connection {
  void on_data() override { throw std::runtime_error("handler failed on purpose"); }
};

std::shared_ptr<spdlog::logger> string_logger(std::ostringstream& out) {
  return std::make_shared<spdlog::logger>("test",
                                          std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
}

void provoke_a_logged_error(running_engine& e) {
  const address bound = e->listen<throwing_on_data>("tcp://127.0.0.1:0");
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "x"));
  EXPECT_TRUE(test::peer_closed(fd));  // the engine closed it after logging
  ::close(fd);
  e.stop();
}

TEST(logger, an_engine_logs_to_the_given_logger) {
  std::ostringstream out;
  engine_options o = test::small_options();
  o.logger = string_logger(out);
  running_engine e(o);
  EXPECT_EQ(&e->logger(), o.logger.get());
  provoke_a_logged_error(e);
  EXPECT_NE(out.str().find("on_data threw: handler failed on purpose"), std::string::npos)
      << out.str();
}

TEST(logger, log_level_silences_the_given_logger) {
  std::ostringstream out;
  engine_options o = test::small_options();
  o.logger = string_logger(out);
  o.log_level = spdlog::level::off;
  running_engine e(o);
  provoke_a_logged_error(e);
  EXPECT_EQ(out.str(), "");
}

TEST(logger, a_level_alone_applies_to_this_engine_only) {
  engine_options quiet = test::small_options();
  quiet.log_level = spdlog::level::critical;
  const engine a(quiet);
  const engine b(test::small_options());
  EXPECT_EQ(a.logger().level(), spdlog::level::critical);
  EXPECT_NE(b.logger().level(), spdlog::level::critical);
  EXPECT_NE(&a.logger(), &b.logger());
}

TEST(logger, a_bad_level_is_rejected) {
  engine_options o = test::small_options();
  o.log_level = static_cast<spdlog::level::level_enum>(42);
  expect_rejected(o, "log_level = 42");
}

}  // namespace
}  // namespace actnet
