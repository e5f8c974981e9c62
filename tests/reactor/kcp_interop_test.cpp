// kcp_session, and the kcp:// transport made of it, against kcp-go (tests/tools/kcp_peer, built
// from Debian's golang-github-xtaci-kcp-dev) over real UDP on loopback, both ways, in fast and
// normal modes: actnet's conversations as a client of kcp-go's echo server, and as an echo server
// for kcp-go's client; 1 MiB at once and many small writes, every byte checked. The UDP side here
// is a small poll loop of the test's own (the protocol is what is under test).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/reactor/kcp.hpp>
#include <actnet/reactor/kcp_session.hpp>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "actors/kcp_test_util.hpp"

namespace actnet::detail {
namespace {

using actnet::byte_views;
using actnet::conn_ref;
using actnet::connection;
using actnet::dial_options;
using actnet::engine;
using actnet::engine_options;
using actnet::listen_options;
using actnet::result;
using bytes = std::vector<std::byte>;
using namespace std::chrono_literals;

// kcp_peer's pattern (actors/kcp_test_util.hpp).
bytes pattern(std::size_t n) {
  return actnet::test::kcp_pattern(n);
}

std::uint32_t now_ms() {
  return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

kcp_options mode(bool fast) {
  return actnet::test::kcp_mode(fast);
}

// A UDP socket on 127.0.0.1 and the conversations on it, one per (peer port, conv).
class udp_kcp {
 public:
  explicit udp_kcp(kcp_options o) : options_(o) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||  // NOLINT
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {          // NOLINT
      ADD_FAILURE() << "udp socket: " << std::strerror(errno);
    }
    port_ = ntohs(a.sin_port);
  }
  udp_kcp(const udp_kcp&) = delete;
  udp_kcp& operator=(const udp_kcp&) = delete;
  ~udp_kcp() { ::close(fd_); }

  [[nodiscard]] std::uint16_t port() const { return port_; }

  // A conversation of this side's, with the peer at `port`.
  kcp_session& open(std::uint16_t port, std::uint32_t conv) {
    sockaddr_in peer{};
    peer.sin_family = AF_INET;
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    peer.sin_port = htons(port);
    auto s =
        std::make_unique<kcp_session>(conv, options_, [this, peer](std::span<const std::byte> d) {
          (void)::sendto(fd_, d.data(), d.size(), 0,
                         reinterpret_cast<const sockaddr*>(&peer),  // NOLINT
                         sizeof peer);
        });
    kcp_session& ref = *s;
    sessions_[{port, conv}] = std::move(s);
    return ref;
  }

  // One round: waits up to the next update (10 ms at most) for datagrams, takes them (opening
  // a conversation for a new one when `accept`), updates what is due, and hands each
  // conversation's received bytes to `on_bytes(session, bytes)`. Unknown conversations'
  // datagrams are dropped.
  template <class OnBytes>
  void turn(bool accept, OnBytes&& on_bytes) {
    std::uint32_t now = now_ms();
    int wait = 10;
    for (auto& [key, s] : sessions_) {
      wait = std::min<int>(wait, static_cast<int>(s->next_update(now) - now));
    }
    pollfd p{fd_, POLLIN, 0};
    (void)::poll(&p, 1, std::max(wait, 0));
    std::array<std::byte, 65536> buf{};
    for (;;) {
      sockaddr_in from{};
      socklen_t from_len = sizeof from;
      const ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);  // NOLINT
      if (n < 0) {
        break;
      }
      const auto d = std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n));
      const std::optional<std::uint32_t> conv = kcp_conversation(d);
      if (!conv) {
        continue;
      }
      const std::pair<std::uint16_t, std::uint32_t> key{ntohs(from.sin_port), *conv};
      auto found = sessions_.find(key);
      if (found == sessions_.end()) {
        if (!accept) {
          continue;
        }
        (void)open(key.first, key.second);
        found = sessions_.find(key);
      }
      EXPECT_EQ(found->second->input(d, now_ms()), kcp_input::ok);
    }
    now = now_ms();
    for (auto& [key, s] : sessions_) {
      kcp_session& k = *s;
      (void)k.receive([&](std::span<const std::byte> got) {
        on_bytes(k, got);
        return true;
      });
      if (k.next_update(now) == now) {
        k.update(now);
      }
    }
  }

 private:
  kcp_options options_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::map<std::pair<std::uint16_t, std::uint32_t>, std::unique_ptr<kcp_session>> sessions_;
};

// kcp_peer as a child process with its stdout on a pipe; killed (if still running) and reaped
// at the end.
class peer_process {
 public:
  explicit peer_process(const std::vector<std::string>& args) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe";
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      std::vector<char*> argv;
      std::string path = ACTNET_KCP_PEER;
      argv.push_back(path.data());
      std::vector<std::string> copy = args;
      for (std::string& a : copy) {
        argv.push_back(a.data());
      }
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = ::fdopen(out[0], "r");
  }
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;
  ~peer_process() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      (void)::waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) {
      std::fclose(out_);
    }
  }
  std::string line() {
    std::array<char, 256> l{};
    return out_ != nullptr && std::fgets(l.data(), l.size(), out_) != nullptr ? l.data() : "";
  }
  // The exit status, or -1 while it runs.
  int poll_exit() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  FILE* out_ = nullptr;
};

// (fast mode, bytes, bytes a write)
using interop_case = std::tuple<bool, std::size_t, std::size_t>;
class kcp_interop : public ::testing::TestWithParam<interop_case> {};

TEST_P(kcp_interop, actnets_client_against_kcp_gos_echo_server) {
  const auto [fast, total, chunk] = GetParam();
  peer_process server({"server", "--mode", fast ? "fast" : "normal", "--seconds", "120"});
  const std::string listening = server.line();  // "listening on 127.0.0.1:PORT"
  const std::size_t colon = listening.rfind(':');
  ASSERT_NE(colon, std::string::npos) << listening;
  const auto port = static_cast<std::uint16_t>(std::stoi(listening.substr(colon + 1)));
  udp_kcp side(mode(fast));
  kcp_session& conv = side.open(port, std::random_device{}());
  const bytes sent = pattern(total);
  std::size_t written = 0;
  bytes echoed;
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (echoed.size() < total && std::chrono::steady_clock::now() < deadline) {
    // Writes while the peer keeps up (a window's worth waiting at most), flushed at once as
    // kcp-go's Write does.
    while (written < total && conv.unacknowledged() < 256) {
      const std::size_t n = std::min(chunk, total - written);
      conv.send(std::span(sent).subspan(written, n));
      written += n;
      conv.flush(now_ms());
    }
    side.turn(false, [&](kcp_session&, std::span<const std::byte> got) {
      echoed.insert(echoed.end(), got.begin(), got.end());
    });
  }
  ASSERT_EQ(echoed.size(), total);
  EXPECT_TRUE(echoed == sent);
}

TEST_P(kcp_interop, kcp_gos_client_against_actnets_echo_server) {
  const auto [fast, total, chunk] = GetParam();
  udp_kcp side(mode(fast));
  peer_process client({"client", "--connect", "127.0.0.1:" + std::to_string(side.port()), "--mode",
                       fast ? "fast" : "normal", "--bytes", std::to_string(total), "--chunk",
                       std::to_string(chunk), "--seconds", "90"});
  int status = -1;
  std::size_t echoed = 0;
  const auto deadline = std::chrono::steady_clock::now() + 100s;
  while (status < 0 && std::chrono::steady_clock::now() < deadline) {
    side.turn(true, [&](kcp_session& s, std::span<const std::byte> got) {
      s.send(got);
      echoed += got.size();
      s.flush(now_ms());
    });
    status = client.poll_exit();
  }
  const std::string said = status >= 0 ? client.line() : "(still running)";
  EXPECT_EQ(status, 0) << "kcp_peer client: " << said << " (echoed " << echoed << " bytes)";
  EXPECT_EQ(said, "ok " + std::to_string(total) + " bytes\n");
  EXPECT_EQ(echoed, total);
}

// The same through actnet's transport: a kcp:// listener of the engine echoing to kcp-go's
// client, and a kcp:// dial of the engine against kcp-go's echo server.
using actnet::test::kcp_echo;

TEST_P(kcp_interop, kcp_gos_client_against_a_kcp_listener_of_the_engine) {
  const auto [fast, total, chunk] = GetParam();
  engine_options eo;
  eo.loops = 2;
  engine e(eo);
  listen_options lo;
  lo.kcp = mode(fast);
  const address bound = e.listen<kcp_echo>(lo, "kcp://127.0.0.1:0");
  std::thread runner([&e] { e.run(); });
  peer_process client({"client", "--connect", "127.0.0.1:" + std::to_string(bound.port()), "--mode",
                       fast ? "fast" : "normal", "--bytes", std::to_string(total), "--chunk",
                       std::to_string(chunk), "--seconds", "90"});
  int status = -1;
  const auto deadline = std::chrono::steady_clock::now() + 100s;
  while (status < 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    status = client.poll_exit();
  }
  const std::string said = status >= 0 ? client.line() : "(still running)";
  e.stop();
  runner.join();
  EXPECT_EQ(status, 0) << "kcp_peer client: " << said;
  EXPECT_EQ(said, "ok " + std::to_string(total) + " bytes\n");
}

TEST_P(kcp_interop, a_kcp_dial_of_the_engine_against_kcp_gos_echo_server) {
  const auto [fast, total, chunk] = GetParam();
  peer_process server({"server", "--mode", fast ? "fast" : "normal", "--seconds", "120"});
  const std::string listening = server.line();
  const std::size_t colon = listening.rfind(':');
  ASSERT_NE(colon, std::string::npos) << listening;
  actnet::test::echo_record c;  // before the engine: its connection writes to it until it closes
  c.expected = total;
  engine_options eo;
  eo.loops = 1;
  engine e(eo);
  std::thread runner([&e] { e.run(); });
  dial_options d;
  d.kcp = mode(fast);
  e.dial<actnet::test::pattern_sender>(
      "kcp://127.0.0.1:" + listening.substr(colon + 1, listening.size() - colon - 2), d,
      [](result<conn_ref>) {}, &c, total, chunk);
  const bool done = c.done.get_future().wait_for(90s) == std::future_status::ready;
  e.stop();
  runner.join();
  ASSERT_TRUE(done);
  EXPECT_TRUE(c.got == pattern(total));
}

std::string case_name(const ::testing::TestParamInfo<interop_case>& c) {
  const auto& [fast, total, chunk] = c.param;
  return std::string(fast ? "fast" : "normal") + "_" + std::to_string(total) + "_bytes_in_" +
         std::to_string(chunk) + "_byte_writes";
}

INSTANTIATE_TEST_SUITE_P(modes, kcp_interop,
                         ::testing::Values(interop_case{true, 1 << 20, 1 << 20},
                                           interop_case{false, 1 << 20, 1 << 20},
                                           interop_case{true, 64 * 2000, 64},
                                           interop_case{false, 64 * 2000, 64}),
                         case_name);

}  // namespace
}  // namespace actnet::detail
