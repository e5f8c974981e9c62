// samples/redis: redis_server as a process on two loops (two keyspace shards), driven by
// redis-cli and redis-benchmark, and by raw sockets: a pipeline across both shards answered in
// order, and protocol errors answered and closed while other connections carry on.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

using outcome = test::command_outcome;
using test::run_command;

bool have(const char* tool) {
  return std::system(("command -v " + std::string(tool) + " >/dev/null 2>&1").c_str()) == 0;
}

std::string port_of(const address& a) {
  const std::string url = a.to_string();
  return url.substr(url.rfind(':') + 1);
}

test::sample_process start_redis(const std::vector<std::string>& more = {}) {
  std::vector<std::string> args = {"--listen", "tcp://127.0.0.1:0", "--loops", "2"};
  args.insert(args.end(), more.begin(), more.end());
  return test::sample_process(ACTNET_REDIS_SERVER, args);
}

TEST(redis_server_sample, redis_cli_runs_every_command) {
  if (!have("redis-cli")) {
    FAIL() << "redis-cli is not installed: the test command installs it (apt-get install "
              "redis-tools)";
  }
  test::sample_process server = start_redis();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  // One command per line on redis-cli's stdin; replies one per line (nil is an empty line).
  const std::vector<std::pair<std::string, std::string>> script = {
      {"PING", "PONG"},
      {"ECHO hello", "hello"},
      {"SET greeting hi", "OK"},
      {"GET greeting", "hi"},
      {"GET missing", ""},
      {"SET greeting bye XX", "OK"},
      {"SET greeting again NX", ""},
      {"SET fresh 1 NX", "OK"},
      {"SET temp 1 EX 100", "OK"},
      {"TTL temp", "100"},
      {"TTL greeting", "-1"},
      {"TTL missing", "-2"},
      {"EXPIRE greeting 50", "1"},
      {"TTL greeting", "50"},
      {"EXPIRE missing 50", "0"},
      {"INCR counter", "1"},
      {"INCRBY counter 41", "42"},
      {"DECR counter", "41"},
      {"INCR greeting", "ERR value is not an integer or out of range"},
      {"MSET a 1 b 2 c 3 d 4 e 5", "OK"},
      {"MGET a b nope e", "1\n2\n\n5"},
      {"EXISTS a b nope a", "3"},
      {"DEL a b nope", "2"},
      {"DBSIZE", "7"},
      {"KEYS [c-e]", ""},  // checked separately: the order across shards is not fixed
      {"SET k v PX 0", "ERR invalid expire time in 'set' command"},
      {"SET k v BOGUS", "ERR syntax error"},
      {"GET", "ERR wrong number of arguments for 'get' command"},
      {"NOSUCH x y", "ERR unknown command 'NOSUCH', with args beginning with: 'x' 'y' "},
      {"HELLO 3", "NOPROTO sorry, this protocol version is not supported"},
      {"FLUSHALL", "OK"},
      {"DBSIZE", "0"},
  };
  std::string input;
  std::string expected;
  std::size_t keys_at = 0;  // the line where KEYS's reply starts
  for (const auto& [command, reply] : script) {
    input += command + "\n";
    if (command == "KEYS [c-e]") {
      keys_at = static_cast<std::size_t>(std::count(expected.begin(), expected.end(), '\n'));
      continue;
    }
    expected += reply + "\n";
    if (reply.starts_with("ERR") || reply.starts_with("NOPROTO")) {
      expected += "\n";  // redis-cli prints an error with an empty line after it
    }
  }
  const std::string file = "/tmp/actnet-redis-cli-" + std::to_string(::getpid());
  {
    FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(input.c_str(), f);
    std::fclose(f);
  }
  const outcome o = run_command("redis-cli -p " + port_of(server.bound) + " < " + file);
  ::unlink(file.c_str());
  ASSERT_EQ(o.exit_code, 0) << o.output;
  // KEYS [c-e] printed c, d, e in some order where its reply sits: take those lines out.
  std::string got;
  std::vector<std::string> keys;
  std::size_t line_no = 0;
  for (std::size_t start = 0; start < o.output.size();) {
    const std::size_t end = o.output.find('\n', start);
    const std::string line = o.output.substr(start, end - start);
    if (line_no >= keys_at && line_no < keys_at + 3) {
      keys.push_back(line);
    } else {
      got += line + "\n";
    }
    ++line_no;
    start = end == std::string::npos ? o.output.size() : end + 1;
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"c", "d", "e"})) << o.output;
  EXPECT_EQ(got, expected);
}

TEST(redis_server_sample, redis_benchmark_gets_every_request_answered_with_and_without_pipelining) {
  if (!have("redis-benchmark")) {
    FAIL() << "redis-benchmark is not installed: the test command installs it (apt-get install "
              "redis-tools)";
  }
  test::sample_process server = start_redis();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  for (const char* pipeline : {"1", "16"}) {
    const outcome o =
        run_command("timeout 120 redis-benchmark -p " + port_of(server.bound) +
                    " -t ping,set,get,incr,mset -n 10000 -c 50 -P " + pipeline + " --csv");
    EXPECT_EQ(o.exit_code, 0) << o.output;
    for (const char* test : {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET"}) {
      EXPECT_NE(o.output.find("\"" + std::string(test)), std::string::npos)
          << test << " at -P " << pipeline << ":\n"
          << o.output;
    }
    EXPECT_EQ(o.output.find("rror"), std::string::npos) << o.output;  // Error / ERR replies
    EXPECT_EQ(o.output.find("WARNING"), std::string::npos) << o.output;
  }
  // redis-benchmark's INCR adds to "counter:__rand_int__": 2 x 10,000 increments in all.
  const outcome counter =
      run_command("redis-cli -p " + port_of(server.bound) + " GET counter:__rand_int__");
  EXPECT_EQ(counter.output, "20000\n");
}

TEST(redis_server_sample, a_busy_polling_server_answers_every_request) {
  if (!have("redis-benchmark")) {
    FAIL() << "redis-benchmark is not installed: the test command installs it (apt-get install "
              "redis-tools)";
  }
  test::sample_process server = start_redis({"--busy-poll", "50"});
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const outcome o = run_command("timeout 120 redis-benchmark -p " + port_of(server.bound) +
                                " -t set,get,incr -n 10000 -c 50 -P 1 --csv");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  for (const char* test : {"SET", "GET", "INCR"}) {
    EXPECT_NE(o.output.find("\"" + std::string(test)), std::string::npos) << test << o.output;
  }
  EXPECT_EQ(o.output.find("rror"), std::string::npos) << o.output;
  const outcome counter =
      run_command("redis-cli -p " + port_of(server.bound) + " GET counter:__rand_int__");
  EXPECT_EQ(counter.output, "10000\n");
}

/// Sends `requests` in one write and reads exactly `expected.size()` bytes back.
std::string exchange(int fd, const std::string& requests, std::size_t bytes) {
  if (!test::send_all(fd, requests)) {
    return "<send failed>";
  }
  return test::recv_exact(fd, bytes);
}

std::string command(const std::vector<std::string>& words) {
  std::string out = "*" + std::to_string(words.size()) + "\r\n";
  for (const std::string& w : words) {
    out += "$" + std::to_string(w.size()) + "\r\n" + w + "\r\n";
  }
  return out;
}

TEST(redis_server_sample, a_pipeline_across_both_shards_is_answered_in_order) {
  test::sample_process server = start_redis();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const int fd = test::connect_to(server.bound);
  ASSERT_GE(fd, 0);
  std::string requests;
  std::string expected;
  std::vector<std::string> mget{"MGET"};
  std::vector<std::string> exists{"EXISTS"};
  for (int i = 0; i < 40; ++i) {  // 40 keys: both shards get some
    const std::string key = "key" + std::to_string(i);
    requests += command({"SET", key, std::to_string(i)});
    expected += "+OK\r\n";
    requests += command({"INCR", key});
    expected += ":" + std::to_string(i + 1) + "\r\n";
    mget.push_back(key);
    exists.push_back(key);
  }
  requests += command(mget);
  expected += "*40\r\n";
  for (int i = 0; i < 40; ++i) {
    const std::string v = std::to_string(i + 1);
    expected += "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
  }
  std::vector<std::string> del{"DEL"};
  for (int i = 0; i < 40; i += 2) {
    del.push_back("key" + std::to_string(i));
  }
  requests += command(del);
  expected += ":20\r\n";
  requests += command(exists);
  expected += ":20\r\n";
  requests += command({"DBSIZE"});
  expected += ":20\r\n";
  requests += command({"GET", "key1"}) + "PING\r\n";
  expected += "$1\r\n2\r\n+PONG\r\n";
  EXPECT_EQ(exchange(fd, requests, expected.size()), expected);
  ::close(fd);
}

TEST(redis_server_sample, copy_awaits_one_shard_then_the_other_and_answers_in_order) {
  test::sample_process server = start_redis();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const int fd = test::connect_to(server.bound);
  ASSERT_GE(fd, 0);
  // 20 sources and their copies (over two shards, many pairs cross them), pipelined with the
  // reads that check them: every reply in request order.
  std::string requests;
  std::string expected;
  for (int i = 0; i < 20; ++i) {
    const std::string v = "v" + std::to_string(i);
    const std::string from = "src" + std::to_string(i);
    const std::string to = "dst" + std::to_string(i);
    requests += command({"SET", from, v}) + command({"COPY", from, to}) + command({"GET", to});
    expected += "+OK\r\n:1\r\n$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
    requests += command({"SET", from, "new"}) + command({"COPY", from, to});
    expected += "+OK\r\n:0\r\n";  // the destination exists
    requests += command({"COPY", from, to, "REPLACE"}) + command({"GET", to});
    expected += ":1\r\n$3\r\nnew\r\n";
  }
  requests += command({"COPY", "nothing", "dst0"}) + command({"COPY", "a", "b", "NOW"}) +
              command({"COPY", "a"}) + "PING\r\n";
  expected += ":0\r\n-ERR syntax error\r\n-ERR wrong number of arguments for 'copy' command\r\n";
  expected += "+PONG\r\n";
  EXPECT_EQ(exchange(fd, requests, expected.size()), expected);
  ::close(fd);
}

TEST(redis_server_sample, a_full_shard_mailbox_answers_busy_and_the_connection_carries_on) {
  // A mailbox cap of 1: the pipelined commands for the other shard soon meet a full mailbox.
  test::sample_process server = start_redis({"--mailbox-cap", "1"});
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  constexpr int keys = 16;  // on both shards
  constexpr int per_round = 20000;
  std::array<long, keys> counts{};  // each key's INCRs that ran
  int busy = 0;
  for (int round = 0; round < 10 && busy == 0; ++round) {
    const int fd = test::connect_to(server.bound);  // reads time out after 20 s
    ASSERT_GE(fd, 0);
    std::string requests;
    for (int i = 0; i < per_round; ++i) {
      requests += command({"INCR", "k" + std::to_string(i % keys)});
    }
    std::thread sender([&] { (void)test::send_all(fd, requests); });
    // Every command is answered, in order: each key's counter goes up by one at each reply
    // that is not the busy error.
    std::string buffer;
    std::size_t at = 0;
    int replies = 0;
    while (replies < per_round) {
      const std::size_t eol = buffer.find("\r\n", at);
      if (eol == std::string::npos) {
        buffer.erase(0, at);
        at = 0;
        char chunk[4096];
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
          break;  // closed, or 20 s without a reply
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      const std::string line = buffer.substr(at, eol - at);
      at = eol + 2;
      const int key = replies++ % keys;
      if (line.rfind("-ERR busy", 0) == 0) {
        ++busy;
      } else {
        ASSERT_EQ(line, ":" + std::to_string(++counts.at(key))) << "reply " << replies;
      }
    }
    sender.join();
    ::close(fd);
    ASSERT_EQ(replies, per_round) << "a command was never answered";
  }
  EXPECT_GT(busy, 0) << "no command met a full mailbox: the cap was not exercised";
  RecordProperty("busy_replies", busy);
}

TEST(redis_server_sample, a_client_that_half_closes_after_its_commands_gets_every_reply) {
  test::sample_process server = start_redis();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  for (int round = 0; round < 20; ++round) {
    const int fd = test::connect_to(server.bound);
    ASSERT_GE(fd, 0);
    std::string requests;
    std::string expected;
    for (int i = 0; i < 40; ++i) {  // both shards: half the replies come back as messages
      const std::string key = "half" + std::to_string(round) + "-" + std::to_string(i);
      requests += command({"SET", key, "v"}) + command({"GET", key});
      expected += "+OK\r\n$1\r\nv\r\n";
    }
    ASSERT_TRUE(test::send_all(fd, requests));
    ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);  // the FIN right behind the commands
    EXPECT_EQ(test::read_to_end(fd), expected) << "round " << round;
    ::close(fd);
  }
}

TEST(redis_server_sample, protocol_errors_are_answered_then_closed_and_others_carry_on) {
  test::sample_process server = start_redis();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const int healthy = test::connect_to(server.bound);
  ASSERT_GE(healthy, 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"*1\r\n*1\r\n$4\r\nPING\r\n", "-ERR Protocol error: expected '$', got '*'\r\n"},
      {"*1\r\n$600000000\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*zz\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
  };
  for (const auto& [request, expected] : cases) {
    const int fd = test::connect_to(server.bound);
    ASSERT_GE(fd, 0);
    // A good command first: answered before the error.
    EXPECT_EQ(exchange(fd, "PING\r\n" + request, 7 + expected.size()), "+PONG\r\n" + expected);
    EXPECT_TRUE(test::peer_closed(fd)) << expected;
    ::close(fd);
    EXPECT_EQ(exchange(healthy, "PING\r\n", 7), "+PONG\r\n");
  }
  EXPECT_EQ(exchange(healthy, "QUIT\r\n", 5), "+OK\r\n");
  EXPECT_TRUE(test::peer_closed(healthy));
  ::close(healthy);
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// Reads a RESP reply line (through \r\n) from a buffered reader.
class resp_reader {
 public:
  explicit resp_reader(int fd) : fd_(fd) {}
  std::string line() {
    for (;;) {
      if (const std::size_t end = buf_.find("\r\n", at_); end != std::string::npos) {
        std::string l = buf_.substr(at_, end - at_);
        at_ = end + 2;
        return l;
      }
      buf_.erase(0, at_);
      at_ = 0;
      char chunk[65536];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        return "<end>";
      }
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
  std::size_t at_ = 0;
};

TEST(redis_server_sample, keys_lists_each_key_once_while_the_keyspace_grows_under_it) {
  test::sample_process server = start_redis();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  const int loader = test::connect_to(server.bound);
  constexpr int keys = 200'000;
  const auto load = [&](const std::string& prefix) {
    for (int i = 0; i < keys; i += 1000) {
      std::vector<std::string> args{"MSET"};
      for (int k = i; k < i + 1000; ++k) {
        args.push_back(prefix + std::to_string(k));
        args.emplace_back("v");
      }
      if (exchange(loader, command(args), 5) != "+OK\r\n") {
        return false;
      }
    }
    return true;
  };
  ASSERT_TRUE(load("old:"));
  // KEYS * goes a slice at a time; between slices another client doubles the keyspace, so
  // table segments grow under the scan (and are scanned again). Each key there before the scan
  // is listed exactly once; a key written during it at most once.
  const int scanner = test::connect_to(server.bound);
  ASSERT_TRUE(test::send_all(scanner, command({"KEYS", "*"})));
  std::thread grow([&] { EXPECT_TRUE(load("new:")); });
  resp_reader in(scanner);
  const std::string header = in.line();
  ASSERT_EQ(header[0], '*') << header;
  const long listed = std::stol(header.substr(1));
  std::vector<int> old_seen(keys, 0);
  std::vector<int> new_seen(keys, 0);
  for (long n = 0; n < listed; ++n) {
    (void)in.line();  // $N
    const std::string key = in.line();
    std::vector<int>& seen = key.starts_with("old:") ? old_seen : new_seen;
    ++seen.at(std::stoul(key.substr(4)));
  }
  grow.join();
  EXPECT_EQ(std::count(old_seen.begin(), old_seen.end(), 1), keys);
  EXPECT_EQ(std::count_if(new_seen.begin(), new_seen.end(), [](int n) { return n > 1; }), 0);
  EXPECT_EQ(exchange(loader, command({"DBSIZE"}), 9), ":400000\r\n");
  ::close(scanner);
  ::close(loader);
}

}  // namespace
}  // namespace actnet
