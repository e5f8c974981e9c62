// No request can stall a loop: the worst input found for each sample handler whose cost depends
// on what a client sends, while another client on the same loop keeps being answered and the
// stall detector (its threshold scaled for slow builds) sees no iteration past it.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

std::string command(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  }
  return out;
}

// Reads until `expected` bytes came or the receive timeout; what came.
std::string reply(int fd, std::size_t expected) {
  return test::recv_exact(fd, expected);
}

// SETs key:0 .. key:N-1 to "v", by MSETs of 1,000 keys; false if one was not answered +OK.
bool load_keys(int fd, int n) {
  for (int i = 0; i < n; i += 1000) {
    std::vector<std::string> args{"MSET"};
    for (int k = i; k < i + 1000 && k < n; ++k) {
      args.push_back("key:" + std::to_string(k));
      args.emplace_back("v");
    }
    if (!test::send_all(fd, command(args)) || reply(fd, 5) != "+OK\r\n") {
      return false;
    }
  }
  return true;
}

// Reads one RESP reply's first line (up to \r\n).
std::string first_line(int fd) {
  std::string line;
  char c = 0;
  while (::recv(fd, &c, 1, 0) == 1) {
    line += c;
    if (line.size() >= 2 && line.ends_with("\r\n")) {
      break;
    }
  }
  return line;
}

// Reads one HTTP/1.1 response (head, then its Content-Length body); "" on the end or timeout.
std::string http_response(int fd) {
  std::string head;
  char c = 0;
  while (!head.ends_with("\r\n\r\n")) {
    if (::recv(fd, &c, 1, 0) != 1) {
      return "";
    }
    head += c;
  }
  const std::size_t at = head.find("Content-Length: ");
  const std::size_t length = at == std::string::npos ? 0 : std::stoul(head.substr(at + 16));
  return head + test::recv_exact(fd, length);
}

// A sample server with one loop (every client on it), the stall detector at 20 ms (times the
// build's slowness) and its metrics; a client that asks its cheapest question on its own thread
// (`ping`, answered when `answered(fd)` says so) until stopped.
class one_loop_server : public ::testing::Test {
 protected:
  one_loop_server(const char* binary, std::string ping, std::function<bool(int)> answered)
      : server_(binary, {"--listen", "tcp://127.0.0.1:0", "--loops", "1", "--stall-ms",
                         std::to_string(20 * test::time_factor), "--metrics", "tcp://127.0.0.1:0"}),
        ping_(std::move(ping)),
        answered_(std::move(answered)) {
    char line[256] = {};
    if (server_.out != nullptr && std::fgets(line, sizeof line, server_.out) != nullptr) {
      const std::string text = line;  // "metrics on tcp://HOST:PORT/metrics"
      metrics_ = address::parse(text.substr(11, text.find("/metrics") - 11));
    }
  }

  // Runs `attack` while a second connection PINGs and is answered; the PINGs answered.
  template <class Attack>
  int while_pinging(Attack&& attack) {
    const int pinger = test::connect_to(server_.bound);
    std::atomic<bool> done{false};
    std::atomic<int> answered{0};
    std::thread pings([&] {
      while (!done.load()) {
        if (!test::send_all(pinger, ping_) || !answered_(pinger)) {
          return;
        }
        answered++;
      }
    });
    attack();
    done = true;
    pings.join();
    ::close(pinger);
    return answered.load();
  }

  // The server's stalls so far, from its /metrics (-1: none read).
  long stalls() {
    const int fd = test::connect_to(metrics_);
    (void)test::send_all(fd, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    const std::string text = test::read_to_end(fd);
    ::close(fd);
    const std::string name = "actnet_loop_stalls_total{loop=\"all\"} ";
    const std::size_t at = text.find(name);
    return at == std::string::npos ? -1 : std::stol(text.substr(at + name.size()));
  }

  test::sample_process server_;
  address metrics_;
  std::string ping_;
  std::function<bool(int)> answered_;
};

class one_loop_redis : public one_loop_server {
 protected:
  one_loop_redis()
      : one_loop_server(ACTNET_REDIS_SERVER, "PING\r\n",
                        [](int fd) { return reply(fd, 7) == "+PONG\r\n"; }) {}
};

class one_loop_http : public one_loop_server {
 protected:
  one_loop_http()
      : one_loop_server(ACTNET_HTTP_SERVER, "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
                        [](int fd) { return http_response(fd).ends_with("Hello, World!"); }) {}
};

TEST_F(one_loop_redis, keys_with_a_pattern_of_many_stars_is_linear_not_exponential) {
  ASSERT_EQ(server_.addresses.size(), 1U) << server_.first_line;
  const int fd = test::connect_to(server_.bound);
  const std::string as(200, 'a');
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(test::send_all(fd, command({"SET", as + std::to_string(i), "v"})));
    ASSERT_EQ(reply(fd, 5), "+OK\r\n");
  }
  ASSERT_TRUE(test::send_all(fd, command({"SET", as + "b", "v"})));
  ASSERT_EQ(reply(fd, 5), "+OK\r\n");
  // A recursive matcher tries every way to spread 20 stars over 200 characters (Redis's
  // CVE-2022-36021): it would not finish. Only "a...ab" matches.
  std::string pattern;
  for (int i = 0; i < 20; ++i) {
    pattern += "*a";
  }
  pattern += "*b";
  const long before = stalls();
  ASSERT_GE(before, 0);
  const int answered = while_pinging([&] {
    ASSERT_TRUE(test::send_all(fd, command({"KEYS", pattern})));
    EXPECT_EQ(first_line(fd), "*1\r\n");
    EXPECT_EQ(first_line(fd), "$201\r\n");
  });
  EXPECT_GE(answered, 0);
  EXPECT_EQ(stalls(), before);
  ::close(fd);
}

TEST_F(one_loop_redis, keys_and_flushall_over_a_large_keyspace_leave_the_loop_to_others) {
  ASSERT_EQ(server_.addresses.size(), 1U) << server_.first_line;
  const int fd = test::connect_to(server_.bound);
  constexpr int keys = 100'000;
  ASSERT_TRUE(load_keys(fd, keys));
  // KEYS * scans in slices, each a small part of a loop iteration: the PINGs are answered
  // between them, and every key comes back.
  const long before = stalls();
  ASSERT_GE(before, 0);
  const int answered = while_pinging([&] {
    ASSERT_TRUE(test::send_all(fd, command({"KEYS", "*"})));
    EXPECT_EQ(first_line(fd), "*" + std::to_string(keys) + "\r\n");
    std::size_t names = 0;
    for (int k = 0; k < keys; ++k) {
      const std::string header = first_line(fd);  // $N
      names += test::recv_exact(fd, std::stoul(header.substr(1)) + 2).size() > 2 ? 1 : 0;
    }
    EXPECT_EQ(names, static_cast<std::size_t>(keys));
  });
  EXPECT_GT(answered, 0) << "no PING was answered during the scan";
  // FLUSHALL frees the old table on a worker thread.
  ASSERT_TRUE(test::send_all(fd, command({"FLUSHALL"})));
  EXPECT_EQ(reply(fd, 5), "+OK\r\n");
  ASSERT_TRUE(test::send_all(fd, command({"DBSIZE"})));
  EXPECT_EQ(reply(fd, 4), ":0\r\n");
#if !defined(ACTNET_TEST_TSAN) && !defined(ACTNET_TEST_ASAN)
  // (Not under the sanitizers: there, with 100,000 keys loaded, scanned and freed and the
  // client threads on 2 cores, the loop's thread is at times off its core past the 200 ms
  // threshold. Under TSan the 64-bucket expiry timer once "held" the loop 200.2 ms; under ASan,
  // where each KEYS slice holds the loop 20-25 ms, one CI run in many saw an iteration past
  // 200 ms that six runs here did not repeat. Release and debug builds, at 20 and 80 ms, check
  // it.)
  EXPECT_EQ(stalls(), before);
#endif
  ::close(fd);
}

TEST_F(one_loop_redis, a_growing_keyspace_never_rehashes_it_all_at_once) {
  ASSERT_EQ(server_.addresses.size(), 1U) << server_.first_line;
  const int fd = test::connect_to(server_.bound);
  // 600,000 keys: one std::unordered_map would rehash all of them at once at 541,000 or so
  // (some 40 ms in a release build); the table's segments grow one at a time.
  constexpr int keys = 600'000;
  const long before = stalls();
  ASSERT_GE(before, 0);
  const int answered = while_pinging([&] { ASSERT_TRUE(load_keys(fd, keys)); });
  EXPECT_GT(answered, 0);
  ASSERT_TRUE(test::send_all(fd, command({"DBSIZE"})));
  EXPECT_EQ(reply(fd, 9), ":600000\r\n");
  ASSERT_TRUE(test::send_all(fd, command({"GET", "key:541000"})));
  EXPECT_EQ(reply(fd, 7), "$1\r\nv\r\n");
  EXPECT_EQ(stalls(), before);
  ::close(fd);
}

TEST_F(one_loop_redis, a_request_with_too_many_arguments_is_refused_before_its_work) {
  ASSERT_EQ(server_.addresses.size(), 1U) << server_.first_line;
  const int fd = test::connect_to(server_.bound);
  ASSERT_TRUE(test::send_all(fd, "*1000000\r\n"));  // a million keys to come
  EXPECT_EQ(first_line(fd).rfind("-ERR Protocol error", 0), 0U);
  EXPECT_TRUE(test::peer_closed(fd));
  ::close(fd);
  // 32,768 arguments are taken: 32,767 keys for MGET, in one request.
  std::vector<std::string> args{"MGET"};
  for (int k = 0; k < 32'767; ++k) {
    args.push_back("missing:" + std::to_string(k));
  }
  const int big = test::connect_to(server_.bound);
  const long before = stalls();
  ASSERT_GE(before, 0);
  const int answered = while_pinging([&] {
    ASSERT_TRUE(test::send_all(big, command(args)));
    EXPECT_EQ(first_line(big), "*32767\r\n");
  });
  EXPECT_GE(answered, 0);
  EXPECT_EQ(stalls(), before);
  ::close(big);
}

}  // namespace
}  // namespace actnet

namespace actnet {
namespace {

TEST_F(one_loop_http, a_flood_of_pipelined_requests_is_answered_a_read_at_a_time) {
  ASSERT_EQ(server_.addresses.size(), 1U) << server_.first_line;
  // 2 MiB of requests in as few writes as the socket takes: each read (64 KiB, some 1,700
  // requests) is answered in one write before the next is read.
  const std::string one = "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string flood;
  while (flood.size() < (std::size_t{2} << 20)) {
    flood += one;
  }
  const std::size_t requests = flood.size() / one.size();
  const int fd = test::connect_to(server_.bound);
  const long before = stalls();
  ASSERT_GE(before, 0);
  std::size_t responses = 0;
  const int answered = while_pinging([&] {
    std::thread reader([&] {  // counts the bodies as the answers stream in
      const std::string_view body = "Hello, World!";
      std::string window;
      std::string chunk(64 * 1024, '\0');
      while (responses < requests) {
        const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), 0);
        if (n <= 0) {
          return;
        }
        window.append(chunk.data(), static_cast<std::size_t>(n));
        std::size_t at = 0;
        for (std::size_t found = 0; (found = window.find(body, at)) != std::string::npos;) {
          ++responses;
          at = found + body.size();
        }
        window.erase(
            0, at == 0 ? (window.size() > body.size() ? window.size() - body.size() : 0) : at);
      }
    });
    EXPECT_TRUE(test::send_all(fd, flood));
    reader.join();
  });
  EXPECT_EQ(responses, requests);
  EXPECT_GT(answered, 0);
  EXPECT_EQ(stalls(), before);
  ::close(fd);
}

TEST_F(one_loop_http, a_head_sent_a_byte_at_a_time_is_parsed_in_bounded_steps) {
  ASSERT_EQ(server_.addresses.size(), 1U) << server_.first_line;
  // The parser reads the head again as bytes come: a head of 8 KiB, one byte a send, costs at
  // most 8 KiB a read; past 8 KiB it is refused with 431.
  std::string head = "GET /plaintext HTTP/1.1\r\nX-Long: ";
  head.append(9000, 'a');
  const int fd = test::connect_to(server_.bound);
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  const long before = stalls();
  ASSERT_GE(before, 0);
  const int answered = while_pinging([&] {
    for (const char c : head) {
      if (!test::send_all(fd, std::string_view(&c, 1))) {
        break;  // refused before the end: the 431 is on its way
      }
    }
    EXPECT_EQ(http_response(fd).rfind("HTTP/1.1 431", 0), 0U);
  });
  EXPECT_GT(answered, 0);
  EXPECT_EQ(stalls(), before);
  ::close(fd);
}

}  // namespace
}  // namespace actnet

namespace actnet {
namespace {

class one_loop_chat : public one_loop_server {
 protected:
  // A command the server answers with a notice; other clients' lines may come first.
  one_loop_chat()
      : one_loop_server(ACTNET_CHAT_SERVER, "/what\n", [](int fd) {
          for (std::string line = first_line_lf(fd); !line.empty(); line = first_line_lf(fd)) {
            if (line.starts_with("* unknown command")) {
              return true;
            }
          }
          return false;
        }) {}
  // Reads one line (up to \n); "" on the end or timeout.
  static std::string first_line_lf(int fd) {
    std::string line;
    char c = 0;
    while (::recv(fd, &c, 1, 0) == 1) {
      line += c;
      if (c == '\n') {
        return line;
      }
    }
    return "";
  }
};

TEST_F(one_loop_chat, a_flood_of_short_lines_to_many_listeners_leaves_the_loop_to_others) {
  ASSERT_EQ(server_.addresses.size(), 1U) << server_.first_line;
  // Ten listeners (their replies wait in their sockets and buffers) and one client sending
  // 32,768 one-character lines in one write: each line is a broadcast to every client, so one
  // read of the flood is 32,768 messages and some 360,000 writes, spread over iterations by
  // the mailbox budget and the mail phase's time limit.
  std::vector<int> listeners;
  for (int i = 0; i < 10; ++i) {
    listeners.push_back(test::connect_to(server_.bound));
    ASSERT_GE(listeners.back(), 0);
  }
  std::string flood;
  for (int i = 0; i < 32'768; ++i) {
    flood += "x\n";
  }
  const int flooder = test::connect_to(server_.bound);
  const long before = stalls();
  ASSERT_GE(before, 0);
  const int answered = while_pinging([&] {
    ASSERT_TRUE(test::send_all(flooder, flood));
    // The last listener has its every line once the flood is through.
    std::size_t lines = 0;
    while (lines < 32'768) {
      const std::string line = first_line_lf(listeners.back());
      if (line.empty()) {
        break;
      }
      lines += line.ends_with(": x\n") ? 1 : 0;
    }
    EXPECT_EQ(lines, 32'768U);
  });
  EXPECT_GT(answered, 0);
  EXPECT_EQ(stalls(), before);
  for (const int fd : listeners) {
    ::close(fd);
  }
  ::close(flooder);
}

}  // namespace
}  // namespace actnet
