// Metrics: every counter against a scripted workload with exact numbers (connections by what
// became of them, bytes, mail, timers, paused connections, offloads, TLS handshakes, loop
// time), and the stall detector: a handler past the threshold is a stall, one under it is not,
// and the watchdog names a handler while it is still stuck. Deadlines only; nothing is timed.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/actors/metrics.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "actors/stream_end.hpp"
#include "actors/test_util.hpp"
#include "actors/tls_certs.hpp"

namespace actnet {
namespace {

using test::eventually;
using test::running_engine;

std::uint64_t closed_by(const loop_metrics& m, close_cause c) {
  return m.closed_by[static_cast<std::size_t>(c)];
}

using test::gate;

// Each line is a command: "echo TEXT" writes the line back, "close" closes, "pause" pauses
// reading, "sleep MS" holds the loop that long, "offload" runs a job that waits on the gate;
// "read_timeout MS" and "write_timeout MS" set that limit, "fill" writes until 256 KiB wait
// in the outbound buffer, "fill_close" does and closes, "overflow" writes past the outbound cap.
class scripted : public connection {
 public:
  explicit scripted(gate* g = nullptr) : gate_(g) {}
  void on_data() override {
    for (;;) {
      const std::string buffered = peek_all().to_string();
      const std::size_t end = buffered.find('\n');
      if (end == std::string::npos || !is_open()) {
        return;
      }
      (void)discard(end + 1);
      const std::string line = buffered.substr(0, end);
      if (line.rfind("echo ", 0) == 0) {
        (void)write(line + "\n");
      } else if (line == "close") {
        close();
      } else if (line == "pause") {
        pause_reading();
        return;
      } else if (line.rfind("sleep ", 0) == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(line.substr(6))));
      } else if (line.rfind("read_timeout ", 0) == 0) {
        set_timeouts({.read = std::chrono::milliseconds(std::stoi(line.substr(13)))});
      } else if (line.rfind("write_timeout ", 0) == 0) {
        set_timeouts({.write = std::chrono::milliseconds(std::stoi(line.substr(14)))});
      } else if (line == "fill" || line == "fill_close") {
        const std::string chunk(64 * 1024, 'f');
        for (int i = 0; i < 1024 && outbound_buffered() < 256 * 1024; ++i) {
          (void)write(chunk);
        }
        if (line == "fill_close") {
          close();
        }
      } else if (line == "overflow") {
        const std::string chunk(64 * 1024, 'o');
        for (int i = 0; i < 1024 && is_open() && !write(chunk); ++i) {
        }
      } else if (line == "offload") {
        (void)offload(
            [g = gate_] {
              g->wait();
              return 1;
            },
            [this](int) { (void)write("done\n"); });
      }
    }
  }

 private:
  gate* gate_;
};

engine_options one_loop() {
  return test::small_options(1);  // (on the back end ACTNET_BACKEND names, as every suite)
}

TEST(metrics, connections_are_counted_by_what_became_of_them_and_bytes_exactly) {
  engine_options o = one_loop();
  o.max_connections = 4;
  o.connection_timeouts.idle = std::chrono::milliseconds(300);
  o.count_io = true;
  running_engine e(o);
  const address bound = e->listen<scripted>("tcp://127.0.0.1:0");
  e.start();

  // Four open at once; a fifth is refused.
  const int ends_cleanly = test::connect_to(bound);
  const int resets = test::connect_to(bound);
  const int closed_by_server = test::connect_to(bound);
  const int idles = test::connect_to(bound);
  ASSERT_TRUE(eventually([&] { return e->metrics().total.opened == 4; }));
  const int refused = test::connect_to(bound);
  ASSERT_TRUE(eventually([&] { return e->metrics().total.refused == 1; }));
  EXPECT_TRUE(test::peer_closed(refused));
  ::close(refused);

  ASSERT_TRUE(test::send_all(ends_cleanly, "echo hello\n"));  // 11 bytes in and out
  EXPECT_EQ(test::recv_exact(ends_cleanly, 11), "echo hello\n");
  ::close(ends_cleanly);
  const linger reset{1, 0};
  ::setsockopt(resets, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(resets);
  ASSERT_TRUE(test::send_all(closed_by_server, "close\n"));  // 6 bytes in
  EXPECT_TRUE(test::peer_closed(closed_by_server));
  ::close(closed_by_server);
  // The last one says nothing until its idle timeout closes it.
  ASSERT_TRUE(eventually([&] { return e->metrics().total.closed == 4; }));
  EXPECT_TRUE(test::peer_closed(idles));
  ::close(idles);

  const engine_metrics m = e->metrics();
  ASSERT_EQ(m.loops.size(), 1U);
  const loop_metrics& t = m.total;
  EXPECT_EQ(t.accepted, 4U);
  EXPECT_EQ(t.refused, 1U);
  EXPECT_EQ(e->refused_connections(), 1U);
  EXPECT_EQ(t.opened, 4U);
  EXPECT_EQ(t.open, 0U);
  EXPECT_EQ(closed_by(t, close_cause::end_of_stream), 1U);
  EXPECT_EQ(closed_by(t, close_cause::reset), 1U);
  EXPECT_EQ(closed_by(t, close_cause::local), 1U);
  EXPECT_EQ(closed_by(t, close_cause::idle_timeout), 1U);
  EXPECT_EQ(std::accumulate(t.closed_by.begin(), t.closed_by.end(), std::uint64_t{0}), 4U);
  EXPECT_EQ(t.bytes_in, 17U);
  EXPECT_EQ(t.bytes_out, 11U);
  EXPECT_GE(t.reads, 2U);  // at least the two with bytes (ends and resets read too)
  EXPECT_GE(t.writes, 1U);
  EXPECT_EQ(t.paused, 0U);
  // The same in Prometheus's text format, per loop and as loop="all".
  const std::string text = e->metrics_text();
  for (const char* line : {"actnet_connections_accepted_total{loop=\"0\"} 4\n",
                           "actnet_connections_refused_total{loop=\"all\"} 1\n",
                           "actnet_connections_closed_total{cause=\"reset\",loop=\"all\"} 1\n",
                           "actnet_connections_closed_total{cause=\"idle_timeout\",loop=\"0\"} 1\n",
                           "actnet_connections_open{loop=\"all\"} 0\n",
                           "actnet_received_bytes_total{loop=\"all\"} 17\n",
                           "actnet_sent_bytes_total{loop=\"0\"} 11\n",
                           "# TYPE actnet_loop_iteration_seconds histogram\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " not in\n" << text;
  }
}

TEST(metrics, each_timeout_and_each_cap_is_its_own_close_cause) {
  engine_options o = one_loop();
  o.inbound_cap = 64 * 1024;
  o.outbound_cap = 1024 * 1024;
  o.drain_timeout = std::chrono::milliseconds(200);
  running_engine e(o);
  const address bound = e->listen<scripted>("tcp://127.0.0.1:0");
  e.start();
  // None of these clients reads: the server's output waits.
  const int read_times_out = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(read_times_out, "read_timeout 100\n"));
  const int write_times_out = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(write_times_out, "write_timeout 100\nfill\n"));
  const int drain_times_out = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(drain_times_out, "fill_close\n"));
  const int overflows = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(overflows, "overflow\n"));
  const int floods = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(floods, std::string(100 * 1024, 'x')));  // no line end: held
  ASSERT_TRUE(eventually([&] { return e->metrics().total.closed == 5; }));
  const loop_metrics t = e->metrics().total;
  EXPECT_EQ(closed_by(t, close_cause::read_timeout), 1U);
  EXPECT_EQ(closed_by(t, close_cause::write_timeout), 1U);
  EXPECT_EQ(closed_by(t, close_cause::drain_timeout), 1U);
  EXPECT_EQ(closed_by(t, close_cause::outbound_cap), 1U);
  EXPECT_EQ(closed_by(t, close_cause::inbound_cap), 1U);
  EXPECT_EQ(to_string(close_cause::inbound_cap), "inbound_cap");
  EXPECT_NE(e->metrics_text().find(
                "actnet_connections_closed_total{cause=\"outbound_cap\",loop=\"0\"} 1\n"),
            std::string::npos);
  for (const int fd : {read_times_out, write_times_out, drain_times_out, overflows, floods}) {
    ::close(fd);
  }
}

TEST(metrics, without_count_io_bytes_and_system_calls_are_not_counted) {
  running_engine e(one_loop());
  const address bound = e->listen<scripted>("tcp://127.0.0.1:0");
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(fd, "echo x\n"));
  EXPECT_EQ(test::recv_exact(fd, 7), "echo x\n");
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return e->metrics().total.closed == 1; }));
  const loop_metrics t = e->metrics().total;
  EXPECT_EQ(t.opened, 1U);
  EXPECT_EQ(t.bytes_in + t.bytes_out + t.reads + t.writes, 0U);
}

TEST(metrics, the_mailbox_counts_what_it_handled_refused_and_held_at_once) {
  engine_options o = one_loop();
  o.mailbox_cap = 8;
  running_engine e(o);
  e.start();
  event_loop& loop = e->loop(0);
  gate held;
  std::atomic<bool> blocking{false};
  ASSERT_FALSE(loop.post([](event_loop&) {}));  // the first, counted once its drain is done
  ASSERT_TRUE(eventually([&] { return e->metrics().total.messages == 1; }));
  const std::uint64_t before = 1;
  ASSERT_FALSE(loop.post([&](event_loop&) {
    blocking = true;
    held.wait();
  }));
  ASSERT_TRUE(eventually([&] { return blocking.load(); }));
  // The loop is held: sends pile up to the cap (looked at every 256 sends), then are refused.
  std::atomic<int> ran{0};
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    if (loop.post([&](event_loop&) { ran++; })) {
      ++refused;
    } else {
      ++accepted;
    }
  }
  ASSERT_GT(refused, 0);
  loop_metrics t = e->metrics().total;
  EXPECT_EQ(t.messages_refused, static_cast<std::uint64_t>(refused));
  EXPECT_EQ(t.mailbox_depth, static_cast<std::uint64_t>(accepted));  // exact: nobody posts now
  held.open();
  ASSERT_TRUE(eventually([&] { return ran.load() == accepted; }));
  ASSERT_TRUE(eventually([&] {
    return e->metrics().total.messages - before == static_cast<std::uint64_t>(accepted) + 1;
  })) << e->metrics().total.messages - before
      << " handled for " << accepted + 1 << " sent";
  t = e->metrics().total;
  EXPECT_GE(t.mailbox_high, static_cast<std::uint64_t>(accepted));
  EXPECT_EQ(t.mailbox_depth, 0U);
}

TEST(metrics, messages_a_loops_handlers_send_count_on_that_loop) {
  running_engine e(test::small_options(2));
  e.start();
  std::atomic<int> ran{0};
  engine* owner = &*e;
  // From the test's thread (no loop's): counted on none. From loop 0's handler: on loop 0.
  ASSERT_FALSE(e->loop(0).post([&ran, owner](event_loop&) {
    for (int i = 0; i < 5; ++i) {
      (void)owner->loop(1).post([&ran](event_loop&) { ran++; });
    }
  }));
  ASSERT_TRUE(eventually([&] { return ran.load() == 5; }));
  EXPECT_TRUE(eventually([&] {
    const engine_metrics m = e->metrics();
    return m.loops[0].messages == 1 && m.loops[1].messages == 5;
  }));
  const engine_metrics m = e->metrics();
  EXPECT_EQ(m.loops[0].messages_sent, 5U);
  EXPECT_EQ(m.loops[1].messages_sent, 0U);
  EXPECT_EQ(m.total.messages_sent, 5U);
}

TEST(metrics, a_message_for_a_closed_connection_is_counted_as_dropped) {
  running_engine e(one_loop());
  std::atomic<int> opens{0};
  std::mutex m;
  conn_ref gone;
  class remember : public connection {
   public:
    remember(std::atomic<int>* opens, std::mutex* m, conn_ref* out)
        : opens_(opens), m_(m), out_(out) {}
    void on_open() override {
      const std::lock_guard lock(*m_);
      *out_ = ref();
      (*opens_)++;
    }
    void on_data() override { (void)discard(inbound_buffered()); }

   private:
    std::atomic<int>* opens_;
    std::mutex* m_;
    conn_ref* out_;
  };
  const address bound = e->listen<remember>("tcp://127.0.0.1:0", &opens, &m, &gone);
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_TRUE(eventually([&] { return opens.load() == 1; }));
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return e->metrics().total.closed == 1; }));
  const std::lock_guard lock(m);
  (void)gone.tell<remember>([](remember&) {});
  EXPECT_TRUE(eventually([&] { return e->metrics().total.messages_dropped == 1; }));
}

TEST(metrics, timers_paused_connections_and_offloads_are_gauges) {
  engine_options o = one_loop();
  o.workers = 1;
  running_engine e(o);
  gate jobs;
  const address bound = e->listen<scripted>("tcp://127.0.0.1:0", &jobs);
  e.start();
  event_loop& loop = e->loop(0);
  ASSERT_FALSE(loop.post([](event_loop& l) {
    for (int i = 0; i < 3; ++i) {
      (void)l.after(std::chrono::hours(1), [] {});
    }
  }));
  EXPECT_TRUE(eventually([&] { return e->metrics().total.timers == 3; }));

  const int paused = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(paused, "pause\n"));
  EXPECT_TRUE(eventually([&] { return e->metrics().total.paused == 1; }));
  // A reset closes it, paused as it is (a FIN would wait for the resume): no longer counted.
  const linger reset{1, 0};
  ::setsockopt(paused, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(paused);
  EXPECT_TRUE(eventually([&] {
    const loop_metrics t = e->metrics().total;
    return t.closed == 1 && t.paused == 0;
  }));

  const int offloading = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(offloading, "offload\noffload\noffload\n"));
  // One worker: one job runs (held at the gate), two wait in its queue.
  EXPECT_TRUE(eventually([&] {
    const engine_metrics m = e->metrics();
    return m.total.offloads_in_flight == 3 && m.worker_queue == 2;
  }));
  jobs.open();
  EXPECT_EQ(test::recv_exact(offloading, 15), "done\ndone\ndone\n");
  EXPECT_TRUE(eventually([&] {
    const engine_metrics m = e->metrics();
    return m.total.offloads_in_flight == 0 && m.worker_queue == 0;
  }));
  ::close(offloading);
}

TEST(metrics, tls_handshakes_done_and_failed_are_counted_per_loop) {
  test::test_pki pki;
  const test::test_pki::files server = pki.issue("server", "localhost", {"localhost"});
  running_engine e(one_loop());
  listen_options lo;
  tls_options tls;
  tls.cert_file = server.cert;
  tls.key_file = server.key;
  lo.tls = tls;
  const address bound = e->listen<scripted>(lo, "tls://127.0.0.1:0");
  e.start();
  const test::tls_client_context client(pki.ca_file());
  test::stream_end good(test::connect_to(bound), client.get());
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(good.send_all("echo secret\n"));
  EXPECT_EQ(good.recv_exact(12), "echo secret\n");
  const int plaintext = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(plaintext, "GET / HTTP/1.1\r\n\r\n"));
  EXPECT_TRUE(eventually([&] {
    const loop_metrics t = e->metrics().total;
    return t.tls_handshakes == 1 && t.tls_failures == 1;
  }));
  ::close(plaintext);
  const loop_metrics t = e->metrics().total;
  EXPECT_EQ(t.opened, 1U) << "a failed handshake never opens";
  EXPECT_EQ(t.accepted, 2U);
}

TEST(metrics, loop_time_is_split_into_busy_and_waiting_and_each_iteration_is_in_a_bucket) {
  running_engine e(test::small_options(2));
  const address bound = e->listen<scripted>("tcp://127.0.0.1:0");
  e.start();
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) {
    fds.push_back(test::connect_to(bound));
    for (int k = 0; k < 20; ++k) {
      ASSERT_TRUE(test::send_all(fds.back(), "echo ping\n"));
      ASSERT_EQ(test::recv_exact(fds.back(), 10), "echo ping\n");
    }
  }
  for (const int fd : fds) {
    ::close(fd);
  }
  ASSERT_TRUE(eventually([&] { return e->metrics().total.closed == 4; }));
  const engine_metrics m = e->metrics();
  ASSERT_EQ(m.loops.size(), 2U);
  for (const loop_metrics& l : m.loops) {
    EXPECT_GT(l.iterations, 0U);
    EXPECT_EQ(std::accumulate(l.iteration_time.begin(), l.iteration_time.end(), std::uint64_t{0}),
              l.iterations);
    EXPECT_GT(l.wait_ns, 0U);
    EXPECT_GT(l.utilisation(), 0.0);
    EXPECT_LT(l.utilisation(), 1.0);
  }
  EXPECT_EQ(m.total.iterations, m.loops[0].iterations + m.loops[1].iterations);
  EXPECT_EQ(m.total.opened, 4U);
  EXPECT_EQ(iteration_bucket_bound(0), 1e-6);
  EXPECT_EQ(iteration_bucket_bound(10), 1024e-6);
}

TEST(metrics, are_read_while_the_loops_are_busy) {  // (for ThreadSanitizer)
  running_engine e(test::small_options(2));
  const address bound = e->listen<scripted>("tcp://127.0.0.1:0");
  e.start();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      const engine_metrics m = e->metrics();
      EXPECT_LE(m.total.closed, m.total.opened);
    }
  });
  for (int i = 0; i < 50; ++i) {
    const int fd = test::connect_to(bound);
    ASSERT_TRUE(test::send_all(fd, "echo busy\n"));
    EXPECT_EQ(test::recv_exact(fd, 10), "echo busy\n");
    ::close(fd);
  }
  done = true;
  reader.join();
  EXPECT_TRUE(eventually([&] { return e->metrics().total.closed == 50; }));
}

// -- GET /metrics --

// Sends `request` on a new connection to `at` and reads until the server closes (or 20 s).
std::string http_exchange(const address& at, const std::string& request) {
  const int fd = test::connect_to(at);
  if (fd < 0 || !test::send_all(fd, request)) {
    return {};
  }
  std::string reply = test::read_to_end(fd);
  ::close(fd);
  return reply;
}

TEST(serve_metrics, answers_get_and_head_keeps_alive_and_refuses_the_rest) {
  running_engine e(test::small_options(2));
  const address bound = e->serve_metrics("tcp://127.0.0.1:0");
  e.start();
  // Two requests in one write, the second asking to close: two answers, in order, then the end.
  const std::string two = http_exchange(bound,
                                        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                                        "HEAD /metrics?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(two.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << two;
  EXPECT_NE(two.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  const std::size_t second = two.find("HTTP/1.1 200 OK\r\n", 1);
  ASSERT_NE(second, std::string::npos) << two;
  const std::string body = two.substr(two.find("\r\n\r\n") + 4, second - two.find("\r\n\r\n") - 4);
  EXPECT_NE(body.find("actnet_connections_opened_total{loop=\"all\"} 1\n"), std::string::npos)
      << body;
  const std::size_t length_at = two.find("Content-Length: ") + 16;
  EXPECT_EQ(std::stoul(two.substr(length_at)), body.size());
  EXPECT_NE(two.find("Connection: close\r\n\r\n", second), std::string::npos);
  EXPECT_EQ(two.find("# HELP", second), std::string::npos) << "HEAD has no body";

  EXPECT_EQ(http_exchange(bound, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .rfind("HTTP/1.1 404 Not Found\r\n", 0),
            0U);
  const std::string post = http_exchange(bound, "POST /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0U) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(http_exchange(bound, "GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
                .rfind("HTTP/1.1 400 Bad Request\r\n", 0),
            0U);
  EXPECT_EQ(http_exchange(bound, "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a'))
                .rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0),
            0U);
  EXPECT_EQ(http_exchange(bound, "nonsense\r\n\r\n").rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0U);
  // HTTP/1.0 closes after its answer unless it asks to keep alive.
  EXPECT_EQ(http_exchange(bound, "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200 OK\r\n", 0),
            0U);
}

// -- the stall detector --

struct captured_log {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
  std::shared_ptr<spdlog::logger> logger = std::make_shared<spdlog::logger>("metrics_test", sink);
  [[nodiscard]] std::string lines_with(std::string_view what) const {
    std::string found;
    for (const std::string& line : sink->last_formatted()) {
      if (line.find(what) != std::string::npos) {
        found += line;
      }
    }
    return found;
  }
};

class sleepy_conn : public scripted {
 public:
  using scripted::scripted;
};

TEST(stall_detector, a_handler_past_the_threshold_is_a_stall_and_one_under_it_is_not) {
  captured_log log;
  engine_options o = one_loop();
  o.stall_threshold = std::chrono::milliseconds(60);
  o.logger = log.logger;
  running_engine e(o);
  const address bound = e->listen<sleepy_conn>("tcp://127.0.0.1:0");
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(fd, "sleep 10\necho a\n"));
  EXPECT_EQ(test::recv_exact(fd, 7), "echo a\n");
  EXPECT_EQ(e->metrics().total.stalls, 0U) << log.lines_with("stall");
  ASSERT_TRUE(test::send_all(fd, "sleep 200\necho b\n"));
  EXPECT_EQ(test::recv_exact(fd, 7), "echo b\n");
  EXPECT_TRUE(eventually([&] { return e->metrics().total.stalls == 1; }));
  // (Counted, then logged: the line may follow the count.)
  EXPECT_TRUE(eventually([&] { return !log.lines_with("stall:").empty(); }));
  const std::string report = log.lines_with("stall:");
  EXPECT_NE(report.find("sleepy_conn"), std::string::npos) << report;
  EXPECT_NE(report.find("I/O handler"), std::string::npos) << report;
  ::close(fd);
}

TEST(stall_detector, the_watchdog_names_a_stuck_handler_while_it_is_stuck) {
  captured_log log;
  engine_options o = one_loop();
  o.stall_threshold = std::chrono::milliseconds(20);
  o.logger = log.logger;
  running_engine e(o);
  gate freed;
  class stuck_conn : public connection {
   public:
    explicit stuck_conn(gate* g) : g_(g) {}
    void on_data() override {
      (void)discard(inbound_buffered());
      g_->wait();  // (as a handler in an endless loop would, until the test frees it)
      (void)write("free\n");
    }

   private:
    gate* g_;
  };
  const address bound = e->listen<stuck_conn>("tcp://127.0.0.1:0", &freed);
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(fd, "x"));
  // The watchdog reports while on_data still waits: the test frees it only after the report.
  const bool named = eventually([&] { return !log.lines_with("is stuck").empty(); });
  freed.open();
  ASSERT_TRUE(named);
  const std::string report = log.lines_with("is stuck");
  EXPECT_NE(report.find("stuck_conn"), std::string::npos) << report;
  EXPECT_NE(report.find("loop 0"), std::string::npos) << report;
  EXPECT_EQ(test::recv_exact(fd, 5), "free\n");
  EXPECT_TRUE(eventually([&] { return e->metrics().total.stalls == 1; }));
  EXPECT_TRUE(eventually([&] { return !log.lines_with("stall:").empty(); }));
  EXPECT_NE(log.lines_with("stall:").find("stuck_conn"), std::string::npos)
      << log.lines_with("stall:");
  ::close(fd);
}

TEST(stall_detector, a_zero_threshold_turns_it_off) {
  engine_options o = one_loop();
  o.stall_threshold = std::chrono::milliseconds(0);
  running_engine e(o);
  const address bound = e->listen<scripted>("tcp://127.0.0.1:0");
  e.start();
  const int fd = test::connect_to(bound);
  ASSERT_TRUE(test::send_all(fd, "sleep 50\necho z\n"));
  EXPECT_EQ(test::recv_exact(fd, 7), "echo z\n");
  ::close(fd);
  EXPECT_EQ(e->metrics().total.stalls, 0U);
}

}  // namespace
}  // namespace actnet
