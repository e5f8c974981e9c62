// The fault suite: an in-process engine against peers that misbehave (reset mid-write,
// half-close, die, read slowly or never, connect and vanish in storms, race async writes with
// closes, keep traffic going through stop()) and 10,000 concurrent connections. Every case
// checks that a healthy connection is served byte for byte throughout, that each connection
// closes exactly once, and that no fd leaks. Each runs over plain TCP and over TLS, with
// level- and edge-triggered loops. Deadlines only (eventually()); nothing is timed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/error.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "actors/stream_end.hpp"
#include "actors/test_util.hpp"
#include "actors/transports.hpp"

namespace actnet {
namespace {

using test::eventually;
using test::over;
using test::running_engine;
using test::stream_end;
using test::target;

constexpr std::size_t kib = 1024;
constexpr std::size_t mib = 1024 * 1024;

// -- the byte pattern every stream carries: (seed, offset) names each byte, so a lost,
// repeated or reordered byte shows as a mismatch at its offset --

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void fill_pattern(std::uint64_t seed, std::uint64_t offset, char* out, std::size_t n) {
  for (std::size_t i = 0; i < n;) {
    const std::uint64_t at = offset + i;
    const std::uint64_t word = mix((seed << 40) ^ (at / 8));
    const std::size_t from = at % 8;
    const std::size_t take = std::min<std::size_t>(8 - from, n - i);
    if (take == 8 && std::endian::native == std::endian::little) {
      std::memcpy(out + i, &word, 8);  // one store, not eight (sanitizers check each)
    } else {
      for (std::size_t k = 0; k < take; ++k) {
        out[i + k] = static_cast<char>(word >> ((from + k) * 8));
      }
    }
    i += take;
  }
}

std::string pattern(std::uint64_t seed, std::uint64_t offset, std::size_t n) {
  std::string s(n, '\0');
  fill_pattern(seed, offset, s.data(), n);
  return s;
}

// "" when `got` is the pattern's bytes from `offset`, else where it differs.
std::string check_pattern(std::uint64_t seed, std::uint64_t offset, std::string_view got) {
  std::array<char, 16 * kib> expected{};
  for (std::size_t done = 0; done < got.size(); done += expected.size()) {
    const std::size_t n = std::min(expected.size(), got.size() - done);
    fill_pattern(seed, offset + done, expected.data(), n);
    if (std::memcmp(expected.data(), got.data() + done, n) != 0) {
      std::size_t i = 0;
      while (expected[i] == got[done + i]) {
        ++i;
      }
      return "pattern " + std::to_string(seed) + " differs at offset " +
             std::to_string(offset + done + i);
    }
  }
  return "";
}

// -- process state --

// Resident bytes, read without allocating (see echo_client::exchange).
std::size_t rss_bytes() {
  std::array<char, 128> text{};
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  const ssize_t n = fd < 0 ? -1 : ::read(fd, text.data(), text.size() - 1);
  if (fd >= 0) {
    ::close(fd);
  }
  if (n <= 0) {
    return 0;
  }
  const char* resident = std::strchr(text.data(), ' ');  // the second field
  return resident == nullptr ? 0
                             : std::strtoul(resident + 1, nullptr, 10) *
                                   static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

bool is_reset(std::error_code ec) {
  return ec == std::errc::connection_reset || ec == std::errc::broken_pipe;
}

// -- the server: one connection class whose first line says what to do --

/// What the server saw of one connection, kept after it is gone.
struct conn_record {
  std::string tag;  // from the command line ("" until it has arrived)
  conn_ref ref;
  int closes = 0;
  std::error_code reason;
  std::size_t bytes_in = 0;       // consumed after the command, or buffered before it
  std::size_t most_outbound = 0;  // outbound_buffered()'s high-water mark, as noted
  std::size_t outbound_at_close = 0;
};

/// Every connection the server opened, by an id given at on_open; thread-safe.
class server_log {
 public:
  std::uint64_t opened(conn_ref r) {
    const std::lock_guard lock(mutex_);
    const std::uint64_t id = next_id_++;
    conns_[id].ref = r;
    opens_++;
    return id;
  }
  void closed(std::uint64_t id, std::error_code reason, std::size_t outbound) {
    const std::lock_guard lock(mutex_);
    conn_record& r = conns_[id];
    r.closes++;
    r.reason = reason;
    r.outbound_at_close = outbound;
    closes_++;
  }
  template <class F>
  void update(std::uint64_t id, F&& f) {
    const std::lock_guard lock(mutex_);
    f(conns_[id]);
  }

  [[nodiscard]] int opens() const { return opens_.load(); }
  [[nodiscard]] int closes() const { return closes_.load(); }
  /// The connection that said `tag` (the first one, if several did).
  [[nodiscard]] std::optional<conn_record> find(std::string_view tag) const {
    const std::lock_guard lock(mutex_);
    for (const auto& [id, r] : conns_) {
      if (r.tag == tag) {
        return r;
      }
    }
    return std::nullopt;
  }
  [[nodiscard]] std::vector<conn_record> all() const {
    const std::lock_guard lock(mutex_);
    std::vector<conn_record> out;
    for (const auto& [id, r] : conns_) {
      out.push_back(r);
    }
    return out;
  }
  /// "" when every connection opened has closed exactly once, else which did not.
  [[nodiscard]] std::string not_closed_once() const {
    const std::lock_guard lock(mutex_);
    std::ostringstream out;
    int bad = 0;
    for (const auto& [id, r] : conns_) {
      if (r.closes != 1 && bad++ < 5) {
        out << "connection " << id << " '" << r.tag << "' closed " << r.closes << " times; ";
      }
    }
    if (static_cast<std::size_t>(opens_.load()) != conns_.size()) {
      out << conns_.size() << " records for " << opens_.load() << " opens";  // a close never opened
    }
    return out.str();
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::uint64_t, conn_record> conns_;
  std::uint64_t next_id_ = 0;
  std::atomic<int> opens_{0};
  std::atomic<int> closes_{0};
};

/// The server's connection. Its first line is a command:
///   echo TAG                   echoes every byte after it;
///   hold TAG                   consumes and ignores what follows;
///   send TAG BYTES SEED        writes BYTES of pattern SEED at once (what the socket refuses is
///                              buffered), then ignores what follows;
///   flood TAG SEED CHUNK       writes CHUNK bytes of pattern SEED every millisecond, without end.
class fault_conn final : public connection {
 public:
  explicit fault_conn(server_log* log) : log_(log) {}

  void on_open() override { id_ = log_->opened(ref()); }
  void on_close(std::error_code reason) override { log_->closed(id_, reason, outbound_buffered()); }
  void on_data() override {
    if (mode_ == mode::command && !take_command()) {
      const std::size_t waiting = inbound_buffered();
      log_->update(id_, [waiting](conn_record& r) { r.bytes_in = waiting; });
      return;
    }
    const std::size_t n = inbound_buffered();
    if (n == 0) {
      return;
    }
    log_->update(id_, [n](conn_record& r) { r.bytes_in += n; });
    if (mode_ == mode::echo) {
      const byte_views data = next_all();
      const std::array parts{data.first, data.second};
      (void)writev(parts);
    } else {
      (void)discard(n);
    }
  }

 private:
  enum class mode : std::uint8_t { command, echo, hold, send, flood };

  // Reads the command line once it is whole; false while it is not.
  bool take_command() {
    const std::string buffered = peek_all().to_string();
    const std::size_t end = buffered.find('\n');
    if (end == std::string::npos) {
      return false;
    }
    (void)discard(end + 1);
    std::istringstream line(buffered.substr(0, end));
    std::string verb;
    std::string tag;
    line >> verb >> tag;
    log_->update(id_, [&tag](conn_record& r) {
      r.tag = tag;
      r.bytes_in = 0;
    });
    if (verb == "echo") {
      mode_ = mode::echo;
    } else if (verb == "send") {
      std::size_t bytes = 0;
      line >> bytes >> seed_;
      mode_ = mode::send;
      send_pattern(bytes);
    } else if (verb == "flood") {
      line >> seed_ >> chunk_;
      mode_ = mode::flood;
      flood();
    } else {
      mode_ = mode::hold;
    }
    return true;
  }

  void send_pattern(std::size_t bytes) {
    std::string chunk(64 * kib, '\0');
    for (std::size_t off = 0; off < bytes && is_open(); off += chunk.size()) {
      const std::size_t n = std::min(chunk.size(), bytes - off);
      fill_pattern(seed_, off, chunk.data(), n);
      if (write(std::string_view(chunk.data(), n))) {
        break;
      }
    }
    note_outbound();
  }

  void flood() {
    flood_chunk_.resize(chunk_);
    fill_pattern(seed_, sent_, flood_chunk_.data(), chunk_);
    const std::error_code ec = write(std::string_view(flood_chunk_));
    note_outbound();
    if (ec) {
      return;  // capacity_exceeded closes the connection; nothing past the cap was taken
    }
    sent_ += chunk_;
    (void)after(std::chrono::milliseconds(1),
                [](connection& c) { static_cast<fault_conn&>(c).flood(); });
  }

  void note_outbound() {
    const std::size_t now = outbound_buffered();
    log_->update(id_, [now](conn_record& r) { r.most_outbound = std::max(r.most_outbound, now); });
  }

  server_log* log_;
  std::uint64_t id_ = 0;
  mode mode_ = mode::command;
  std::uint64_t seed_ = 0;
  std::size_t chunk_ = 0;
  std::size_t sent_ = 0;
  std::string flood_chunk_;
};

// -- clients --

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/// A blocking connection to `t` (with its handshake done, over TLS), with 20 s send and receive
/// timeouts and, when `recv_buffer` is set, that receive buffer; !ok() on failure.
stream_end connect(const target& t, int recv_buffer = 0) {
  const int fd = ::socket(t.at.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return {};
  }
  if (recv_buffer > 0) {  // before connect, so the window is small from the start
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &recv_buffer, sizeof recv_buffer);
  }
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, t.at.data(), t.at.size()) != 0) {
    ::close(fd);
    return {};
  }
  return {fd, t.tls};
}

/// A blocking client that has sent `command` + "\n"; !ok() on failure.
stream_end client(const target& t, const std::string& command, int recv_buffer = 0) {
  stream_end s = connect(t, recv_buffer);
  if (s.ok() && !s.send_all(command + "\n")) {
    s.close();
  }
  return s;
}

/// An "echo" connection that checks every byte it gets back.
class echo_client {
 public:
  echo_client(const target& t, std::uint64_t seed, std::string tag = "healthy")
      : conn_(client(t, "echo " + tag)), seed_(seed) {}
  echo_client(const echo_client&) = delete;
  echo_client& operator=(const echo_client&) = delete;
  ~echo_client() { close(); }

  void close() { conn_.close(); }

  /// Sends `n` bytes (n <= 64 KiB, so the two socket buffers hold them) and checks their echo;
  /// "" or what went wrong. Allocates nothing when all is well: a sanitizer's quarantine
  /// would count a churn of buffers as RSS growth of the process under test.
  std::string exchange(std::size_t n) {
    if (!conn_.ok() || n > buf_.size()) {
      return "not connected, or too large";
    }
    fill_pattern(seed_, offset_, buf_.data(), n);
    if (!conn_.send_all(std::string_view(buf_.data(), n))) {
      return "send failed: " + std::string(std::strerror(errno));
    }
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = conn_.recv_some(buf_.data() + got, n - got);
      if (r <= 0) {
        return "echo cut short at " + std::to_string(offset_ + got);
      }
      got += static_cast<std::size_t>(r);
    }
    std::string error = check_pattern(seed_, offset_, std::string_view(buf_.data(), n));
    offset_ += n;
    return error;
  }

 private:
  stream_end conn_;
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
  std::vector<char> buf_ = std::vector<char>(64 * kib);
};

/// A healthy connection exchanging verified echoes on a thread of its own for as long as it
/// lives: the server must keep serving it whatever the other connections do.
class healthy_traffic {
 public:
  explicit healthy_traffic(const target& t) : client_(t, 0xbeef) {
    thread_ = std::thread([this] {
      std::size_t round = 0;
      while (!stop_.load()) {
        std::string error = client_.exchange(1 * kib + (round++ % 16) * 3 * kib);
        if (!error.empty()) {
          const std::lock_guard lock(mutex_);
          error_ = std::move(error);
          return;
        }
        rounds_++;
      }
    });
  }
  healthy_traffic(const healthy_traffic&) = delete;
  healthy_traffic& operator=(const healthy_traffic&) = delete;
  ~healthy_traffic() { (void)finish(); }

  /// Lets it make two more rounds (so it was served after whatever happened before), stops it
  /// and closes the connection; "" when every round was verified, else the first error.
  std::string finish() {
    if (thread_.joinable()) {
      const int from = rounds_.load();
      const bool went_on = eventually([&] { return rounds_.load() >= from + 2 || failed(); });
      stop_ = true;
      thread_.join();
      client_.close();
      if (!went_on) {
        return "no healthy round completed within the deadline";
      }
    }
    const std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  bool failed() {
    const std::lock_guard lock(mutex_);
    return !error_.empty();
  }

  echo_client client_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> rounds_{0};
  std::mutex mutex_;
  std::string error_;
};

/// Connections driven together on one thread with epoll, each streaming its pattern to the
/// echo server and checking the echo: `total` bytes (then it closes), never more than
/// `window` bytes ahead of the echo. A connection that ends early (EOF, reset) is `ended`.
struct echo_peer {
  stream_end conn;
  std::uint64_t seed = 0;
  std::size_t total = 0;
  std::size_t window = 0;
  std::size_t sent = 0;
  std::size_t received = 0;
  bool ended = false;  // by the server (EOF or an error), before `total`
  std::string error;   // a byte that differs, an unexpected error
  std::uint32_t interest = 0;
};

/// Runs until every peer has finished or ended, or `deadline`; false on the deadline. Every
/// received byte is checked; `verified` counts them.
bool drive_echo(std::vector<echo_peer>& peers, std::chrono::steady_clock::time_point deadline,
                std::atomic<std::size_t>* verified = nullptr) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<char> buf(64 * kib);
  std::size_t active = 0;
  const auto watch = [&](std::size_t i) {
    echo_peer& p = peers[i];
    const std::uint32_t want =
        EPOLLIN | (p.sent < p.total && p.sent - p.received < p.window ? EPOLLOUT : 0U);
    if (want != p.interest) {
      epoll_event ev{};
      ev.events = want;
      ev.data.u64 = i;
      ::epoll_ctl(ep, p.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, p.conn.fd(), &ev);
      p.interest = want;
    }
  };
  const auto finish = [&](echo_peer& p) {
    p.conn.close();  // leaves the epoll set with it
    --active;
  };
  for (std::size_t i = 0; i < peers.size(); ++i) {
    if (peers[i].conn.ok()) {
      set_nonblocking(peers[i].conn.fd());
      ++active;
      watch(i);
    }
  }
  std::array<epoll_event, 256> events{};
  while (active > 0 && std::chrono::steady_clock::now() < deadline) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int k = 0; k < n; ++k) {
      const std::size_t i = events[static_cast<std::size_t>(k)].data.u64;
      echo_peer& p = peers[i];
      if (!p.conn.ok()) {
        continue;
      }
      for (;;) {  // read what is there
        const ssize_t r = p.conn.recv_some(buf.data(), buf.size());
        if (r > 0) {
          const std::string_view got(buf.data(), static_cast<std::size_t>(r));
          if (p.received + got.size() > p.sent) {
            p.error = "more echoed than sent";
          } else if (std::string e = check_pattern(p.seed, p.received, got); !e.empty()) {
            p.error = std::move(e);
          }
          p.received += got.size();
          if (verified != nullptr) {
            verified->fetch_add(got.size(), std::memory_order_relaxed);
          }
          if (!p.error.empty()) {
            break;
          }
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          p.ended = true;
        }
        break;
      }
      if (!p.error.empty() || p.ended || p.received == p.total) {
        if (p.error.empty() && !p.ended) {
          (void)p.conn.shut_write();  // a clean end (over TLS, close_notify: not a truncation)
        }
        finish(p);
        continue;
      }
      // Sends what the window allows. (Over TLS, a write the socket refused part way is tried
      // again with at least as many bytes, the same ones: received only grows meanwhile.)
      while (p.sent < p.total && p.sent - p.received < p.window) {
        const std::size_t want =
            std::min({p.window - (p.sent - p.received), p.total - p.sent, buf.size()});
        fill_pattern(p.seed, p.sent, buf.data(), want);
        const ssize_t w = p.conn.send_some(buf.data(), want);
        if (w <= 0) {
          if (w < 0 && errno != EAGAIN && errno != EINTR) {
            p.ended = true;
          }
          break;
        }
        p.sent += static_cast<std::size_t>(w);
      }
      if (p.ended) {
        finish(p);
        continue;
      }
      watch(i);
    }
  }
  ::close(ep);
  for (echo_peer& p : peers) {
    p.conn.close();
  }
  return active == 0;
}

/// In a forked child: closes every fd the parent had (its engine's sockets, epoll, eventfds)
/// but stdio and `a` and `b`, so the child holds no reference to the server's connections.
void keep_only_fds(int a, int b) {
  const auto lo = static_cast<unsigned>(std::min(a, b));
  const auto hi = static_cast<unsigned>(std::max(a, b));
  if (lo > 3) {
    ::close_range(3, lo - 1, 0);
  }
  if (hi > lo + 1) {
    ::close_range(lo + 1, hi - 1, 0);
  }
  ::close_range(hi + 1, ~0U, 0);
}

/// A peer process: this one connects and sends `bytes` (over TLS, after its handshake), then
/// forks a child that holds the socket, alone, until it is killed. Only system calls run in
/// the child (the parent has threads).
class doomed_child {
 public:
  doomed_child(const target& t, const std::string& bytes) {
    stream_end conn = connect(t);
    if (!conn.ok() || !conn.send_all(bytes)) {
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      keep_only_fds(conn.fd(), conn.fd());
      for (;;) {
        ::pause();
      }
    }
    ready_ = pid_ > 0;
    conn.close();  // the child's is the socket's last reference (and no close_notify is sent)
  }
  doomed_child(const doomed_child&) = delete;
  doomed_child& operator=(const doomed_child&) = delete;
  ~doomed_child() { kill(); }

  [[nodiscard]] bool ready() const { return ready_; }
  /// SIGKILL and reap: the kernel closes its socket as it would for a crash.
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
};

// -- the fixture: a server, and the checks every case ends with --

// Each case runs with level- and edge-triggered loops (their read and write paths differ),
// over plain TCP and over TLS (whose layer holds bytes of its own between the socket and the
// actor, and closes with records of its own).
enum class trigger : std::uint8_t { level, edge };
using fault_param = std::tuple<trigger, over>;

void PrintTo(trigger t, std::ostream* out) {  // names the parameters in gtest's output
  *out << (t == trigger::edge ? "edge" : "level");
}

class fault : public ::testing::TestWithParam<fault_param> {
 protected:
  static bool over_tls() { return std::get<1>(GetParam()) == over::tls; }
  /// Two loops (so connections and messages cross threads), in the case's trigger mode.
  static engine_options options() {
    engine_options o;
    o.loops = 2;
    o.edge_triggered = std::get<0>(GetParam()) == trigger::edge;
    return o;
  }

  void SetUp() override { fds_at_start_ = test::open_fds(); }
  void TearDown() override {
    server_.reset();
    EXPECT_TRUE(eventually([&] { return test::open_fds() == fds_at_start_; }))
        << test::open_fds() << " fds open after the test, " << fds_at_start_ << " before";
  }

  /// Listens; the engine runs from server_->start() on (so a test may fork in between, while
  /// this process has one thread).
  target listen(const engine_options& o = options()) {
    server_ = std::make_unique<running_engine>(o);
    bound_ = test::listen_over<fault_conn>(**server_, std::get<1>(GetParam()), &log_);
    return bound_;
  }
  target start(const engine_options& o = options()) {
    listen(o);
    server_->start();
    return bound_;
  }
  engine& server() { return **server_; }

  /// Waits until every connection the server opened has closed, then checks that each closed
  /// exactly once and that the engine counts none.
  void expect_all_closed_once() {
    EXPECT_TRUE(eventually([&] { return log_.closes() >= log_.opens(); }))
        << log_.closes() << " closes for " << log_.opens() << " opens";
    EXPECT_TRUE(eventually([&] { return server().count_connections() == 0; }));
    EXPECT_EQ(log_.closes(), log_.opens());
    EXPECT_EQ(log_.not_closed_once(), "");
  }

  /// Waits until the connection tagged `tag` has closed; its record.
  conn_record closed_record(std::string_view tag) {
    EXPECT_TRUE(eventually([&] {
      const std::optional<conn_record> r = log_.find(tag);
      return r && r->closes > 0;
    })) << tag
        << " never closed";
    return log_.find(tag).value_or(conn_record{});
  }

  /// What a flood cut off at `cap` may add to RSS: the cap and the sockets' buffers, with room
  /// to spare, and the loops' buffer rings on io_uring. Over TLS under a sanitizer, times its
  /// memory factor: OpenSSL takes and frees a record buffer each write (idle buffers are
  /// released), and the sanitizer's quarantine keeps what was freed.
  std::size_t flood_budget(std::size_t cap) {
    const std::size_t plain = cap * 4 + 32 * mib;
    return (over_tls() ? plain * test::memory_factor : plain) +
           test::ring_buffer_bytes(server().options());
  }

  server_log log_;  // outlives the server, whose connections write to it
  std::unique_ptr<running_engine> server_;
  target bound_;
  int fds_at_start_ = 0;
};

// -- 1. a reset in the middle of a large response --

TEST_P(fault, a_peer_reset_mid_write_closes_the_connection_once_with_the_socket_error) {
  const target a = start();
  healthy_traffic healthy(a);
  constexpr std::size_t response = 32 * mib;
  // A fixed receive buffer (no autotuning, which may grow it to tcp_rmem's maximum): the
  // response cannot all fit in the sockets.
  stream_end victim_end = client(a, "send victim " + std::to_string(response) + " 11", 256 * kib);
  ASSERT_TRUE(victim_end.ok());
  const std::string head = victim_end.recv_exact(1 * mib);
  ASSERT_EQ(head.size(), 1 * mib);
  EXPECT_EQ(check_pattern(11, 0, head), "");
  ASSERT_TRUE(eventually([&] {
    const std::optional<conn_record> r = log_.find("victim");
    return r && r->most_outbound > 0;
  })) << "the response was never buffered";
  victim_end.reset_on_close();
  victim_end.close();  // RST, with megabytes still queued on the server

  const conn_record victim = closed_record("victim");
  EXPECT_TRUE(is_reset(victim.reason)) << victim.reason.message();
  EXPECT_GT(victim.outbound_at_close, 0U) << "the reset came before the response was out";
  EXPECT_EQ(healthy.finish(), "");
  expect_all_closed_once();
}

// -- 2. a half-close with output waiting --

TEST_P(fault, after_a_peer_half_close_the_queued_output_still_arrives_then_end_of_stream) {
  const target a = start();
  healthy_traffic healthy(a);
  constexpr std::size_t response = 24 * mib;
  stream_end victim_end = client(a, "send victim " + std::to_string(response) + " 22", 256 * kib);
  ASSERT_TRUE(victim_end.ok());
  ASSERT_TRUE(victim_end.shut_write());  // the request is complete; the answer is wanted
  // Not reading yet, so the socket fills and the server buffers the rest (read at once, a
  // fast reader could take each chunk as a slow writer makes it).
  ASSERT_TRUE(eventually([&] {
    const std::optional<conn_record> r = log_.find("victim");
    return r && r->most_outbound > 0;
  })) << "the response was never buffered";

  std::string got = victim_end.recv_exact(response);
  EXPECT_EQ(got.size(), response);
  EXPECT_EQ(check_pattern(22, 0, got), "");
  EXPECT_TRUE(victim_end.peer_closed()) << "a clean end after the last byte";
  victim_end.close();

  const conn_record victim = closed_record("victim");
  EXPECT_EQ(victim.reason, errc::end_of_stream) << victim.reason.message();
  EXPECT_EQ(victim.outbound_at_close, 0U);
  EXPECT_EQ(healthy.finish(), "");
  expect_all_closed_once();
}

// -- 3. a peer process killed mid-message --

TEST_P(fault, a_killed_peer_process_closes_its_connection_once_and_no_other) {
  const target a = start();
  healthy_traffic healthy(a);
  echo_client bystander(a, 33, "bystander");
  ASSERT_EQ(bystander.exchange(10 * kib), "");
  // One has sent half a command line; the other's echo sits unread in its socket, so the
  // kernel answers its death with a reset rather than a FIN.
  doomed_child partial(a, "send partial 1000");
  doomed_child unread(a, "echo unread\n" + pattern(34, 0, 100 * kib));
  ASSERT_TRUE(partial.ready());
  ASSERT_TRUE(unread.ready());
  ASSERT_TRUE(eventually([&] {
    const std::optional<conn_record> r = log_.find("unread");
    return r && r->bytes_in == 100 * kib;
  }));
  ASSERT_TRUE(eventually([&] {
    for (const conn_record& r : log_.all()) {
      if (r.tag.empty() && r.bytes_in == 17) {
        return true;
      }
    }
    return false;
  })) << "the server never held the half command";
  const int open_before = log_.opens() - log_.closes();

  partial.kill();
  unread.kill();
  ASSERT_TRUE(eventually([&] { return log_.opens() - log_.closes() == open_before - 2; }));
  for (const conn_record& r : log_.all()) {
    if (r.closes > 0) {
      // A killed process sends a FIN when its receive queue is empty (the server's echo still
      // on its way), a reset when it is not. Over TLS that FIN came without close_notify:
      // truncation, as TLS reports it.
      const bool fin = r.reason == (over_tls() ? errc::tls_truncated : errc::end_of_stream);
      EXPECT_TRUE(fin || is_reset(r.reason)) << r.tag << ": " << r.reason.message();
    }
  }
  EXPECT_EQ(bystander.exchange(10 * kib), "");
  EXPECT_EQ(log_.find("bystander")->closes, 0);
  bystander.close();
  EXPECT_EQ(healthy.finish(), "");
  expect_all_closed_once();
}

// -- 4 and 5. peers that read slowly or not at all while the server writes without end --

engine_options capped(engine_options o, std::size_t cap) {
  o.outbound_cap = cap;
  o.socket.send_buffer = 64 * kib;
  return o;
}

// Reads `fd` until EOF or reset, `chunk` bytes then a pause, checking the pattern; the bytes
// read, or 0 on a mismatch (reported). Samples RSS into `rss_peak` as it goes.
std::size_t read_slowly(stream_end& conn, std::uint64_t seed, std::size_t chunk,
                        std::chrono::microseconds pause, std::size_t& rss_peak,
                        std::size_t give_up_after) {
  std::string buf(chunk, '\0');
  std::size_t total = 0;
  for (;;) {
    const ssize_t r = conn.recv_some(buf.data(), buf.size());
    if (r <= 0) {
      return total;
    }
    const std::string error =
        check_pattern(seed, total, std::string_view(buf.data(), static_cast<std::size_t>(r)));
    if (!error.empty()) {
      ADD_FAILURE() << error;
      return 0;
    }
    total += static_cast<std::size_t>(r);
    rss_peak = std::max(rss_peak, rss_bytes());
    if (total > give_up_after) {
      ADD_FAILURE() << "still reading after " << total << " bytes: the flood was never cut off";
      return total;
    }
    std::this_thread::sleep_for(pause);
  }
}

TEST_P(fault, a_slow_reader_is_cut_off_at_the_outbound_cap_with_memory_bounded) {
  constexpr std::size_t cap = 16 * mib;
  const target a = start(capped(options(), cap));
  healthy_traffic healthy(a);
  const std::size_t rss_before = rss_bytes();
  stream_end slow_end = client(a, "flood slow 44 " + std::to_string(256 * kib), 64 * kib);
  ASSERT_TRUE(slow_end.ok());
  std::size_t rss_peak = rss_before;
  // 16 KiB a millisecond at most, against 256 KiB a millisecond written.
  const std::size_t read =
      read_slowly(slow_end, 44, 16 * kib, std::chrono::microseconds(1000), rss_peak, 4 * cap);
  slow_end.close();
  EXPECT_GT(read, 0U);

  const conn_record slow = closed_record("slow");
  EXPECT_EQ(slow.reason, errc::capacity_exceeded) << slow.reason.message();
  EXPECT_LE(slow.most_outbound, cap);
  EXPECT_GE(slow.most_outbound, cap - 256 * kib) << "closed before the buffer reached the cap";
  EXPECT_LT(rss_peak - rss_before, flood_budget(cap))
      << "RSS grew by " << (rss_peak - rss_before) / mib << " MiB";
  RecordProperty("rss_growth_kib", static_cast<int>((rss_peak - rss_before) / kib));
  EXPECT_EQ(healthy.finish(), "");
  expect_all_closed_once();
}

TEST_P(fault, a_peer_that_never_reads_is_cut_off_at_the_outbound_cap_with_memory_bounded) {
  constexpr std::size_t cap = 16 * mib;
  const target a = start(capped(options(), cap));
  healthy_traffic healthy(a);
  const std::size_t rss_before = rss_bytes();
  stream_end silent_end = client(a, "flood silent 55 " + std::to_string(256 * kib), 64 * kib);
  ASSERT_TRUE(silent_end.ok());
  std::size_t rss_peak = rss_before;
  ASSERT_TRUE(eventually([&] {
    rss_peak = std::max(rss_peak, rss_bytes());
    const std::optional<conn_record> r = log_.find("silent");
    return r && r->closes > 0;
  }));
  const conn_record silent = closed_record("silent");
  EXPECT_EQ(silent.reason, errc::capacity_exceeded) << silent.reason.message();
  EXPECT_LE(silent.most_outbound, cap);
  EXPECT_GE(silent.most_outbound, cap - 256 * kib);
  EXPECT_LT(rss_peak - rss_before, flood_budget(cap))
      << "RSS grew by " << (rss_peak - rss_before) / mib << " MiB";
  // What reached the socket before the cut is an intact prefix of the stream.
  const std::size_t read =
      read_slowly(silent_end, 55, 64 * kib, std::chrono::microseconds(0), rss_peak, cap);
  EXPECT_GT(read, 0U);
  silent_end.close();
  EXPECT_EQ(healthy.finish(), "");
  expect_all_closed_once();
}

// -- 6. a storm of connections that vanish at once --

TEST_P(fault, a_connect_close_storm_opens_and_closes_every_connection_exactly_once) {
  const target a = start();
  healthy_traffic healthy(a);
  constexpr int threads = 4;
  constexpr int per_thread = 500;
  std::atomic<int> connected{0};
  std::vector<std::thread> stormers;
  for (int t = 0; t < threads; ++t) {
    stormers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        stream_end conn = connect(a);  // (over TLS, once its side of the handshake is done)
        if (!conn.ok()) {
          continue;
        }
        connected++;
        switch ((t + i) % 4) {
          case 0:  // FIN at once
            break;
          case 1:  // reset at once
            conn.reset_on_close();
            break;
          case 2:  // a few bytes, then FIN (the echo may meet a closed socket: a reset)
            (void)conn.send_all("echo storm\nabc");
            break;
          default:  // a few bytes, then reset
            (void)conn.send_all("hold storm\nxyz");
            conn.reset_on_close();
            break;
        }
        conn.close();
      }
    });
  }
  for (std::thread& t : stormers) {
    t.join();
  }
  EXPECT_EQ(connected.load(), threads * per_thread);
  if (!over_tls()) {
    // Each connect completed its handshake, so each is accepted and opened (the backlog holds
    // them all), however soon it was closed.
    EXPECT_TRUE(eventually([&] { return log_.opens() == threads * per_thread + 1; }))
        << log_.opens() << " opened";
  } else {
    // Each is accepted, and its TLS handshake either ends on the server (the connection opens)
    // or is cut short by the peer's reset (counted as a failure, never opened): the server's
    // side ends after the client's, which may close at once.
    const auto settled = [&] {
      const tls_stats s = server().tls_stats_of(0);
      return s.handshakes + s.failures == threads * per_thread + 1U &&
             static_cast<std::uint64_t>(log_.opens()) == s.handshakes;
    };
    EXPECT_TRUE(eventually(settled))
        << server().tls_stats_of(0).handshakes << " handshakes, "
        << server().tls_stats_of(0).failures << " failed, " << log_.opens() << " opened";
  }
  EXPECT_EQ(healthy.finish(), "");
  expect_all_closed_once();
  RecordProperty("connections", log_.opens());
}

// -- 7. async writes racing closes from both sides --

TEST_P(fault, async_writes_racing_closes_complete_exactly_once_each) {
  const target a = start();
  healthy_traffic healthy(a);
  constexpr int conns = 200;
  std::vector<stream_end> ends;
  for (int i = 0; i < conns; ++i) {
    ends.push_back(client(a, "hold w" + std::to_string(i)));
    ASSERT_TRUE(ends.back().ok());
  }
  std::vector<conn_ref> refs;
  for (int i = 0; i < conns; ++i) {
    const std::string tag = "w" + std::to_string(i);
    ASSERT_TRUE(eventually([&] { return log_.find(tag).has_value(); }));
    refs.push_back(log_.find(tag)->ref);
  }

  // Writers keep writing until every connection has closed (and a while after, into closed
  // ones), at most `writes` each.
  constexpr int writers = 4;
  constexpr int writes = 20000;
  std::vector<std::atomic<int>> done(std::size_t{writers} * writes);
  std::atomic<int> posted{0};
  std::atomic<int> completed{0};
  std::atomic<int> closers_done{0};
  std::atomic<int> written{0};
  std::atomic<int> refused{0};
  std::mutex odd_mutex;
  std::vector<std::string> odd;  // completions with another error
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937 rng(static_cast<unsigned>(w));
      int after_closes = 0;
      for (int k = 0; k < writes && after_closes < 500; ++k) {
        after_closes += closers_done.load() == 2 ? 1 : 0;
        if (k % 64 == 63) {
          std::this_thread::sleep_for(std::chrono::microseconds(100));  // spread over the closes
        }
        posted++;
        const std::size_t slot = static_cast<std::size_t>(w) * writes + static_cast<std::size_t>(k);
        refs[rng() % conns].async_write("0123456789abcdef", [&, slot](std::error_code ec) {
          if (!ec) {
            written++;
          } else if (ec == errc::connection_closed) {
            refused++;
          } else {
            const std::lock_guard lock(odd_mutex);
            odd.push_back(ec.message());
          }
          done[slot]++;
          completed++;
        });
      }
    });
  }
  // The server closes a quarter (close() and abort(), from this thread through messages)...
  threads.emplace_back([&] {
    for (int i = 2; i < conns; i += 4) {
      refs[static_cast<std::size_t>(i)].close();
      refs[static_cast<std::size_t>(i) + 1].tell<fault_conn>([](fault_conn& c) { c.abort(); });
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    closers_done++;
  });
  // ... while the peers read everything, close half (FIN or reset), and close the rest when
  // the server has.
  threads.emplace_back([&] {
    std::vector<char> buf(64 * kib);
    for (const stream_end& e : ends) {
      set_nonblocking(e.fd());
    }
    std::vector<bool> open(ends.size(), true);
    int left = conns;
    int next_close = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (left > 0 && std::chrono::steady_clock::now() < deadline) {
      for (std::size_t i = 0; i < ends.size(); ++i) {
        if (!open[i]) {
          continue;
        }
        const ssize_t r = ends[i].recv_some(buf.data(), buf.size());
        const bool gone = r == 0 || (r < 0 && errno != EAGAIN);
        const bool ours = static_cast<int>(i) == next_close;
        if (gone || ours) {
          if (ours && i % 4 == 1) {
            ends[i].reset_on_close();
          }
          ends[i].close();
          open[i] = false;
          --left;
        }
      }
      next_close += 1;
      while (next_close < conns && next_close % 4 >= 2) {
        ++next_close;  // the server closes those
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    for (std::size_t i = 0; i < ends.size(); ++i) {
      if (open[i]) {
        ADD_FAILURE() << "w" << i << " never closed";
        ends[i].close();
      }
    }
    closers_done++;
  });
  for (std::thread& t : threads) {
    t.join();
  }

  ASSERT_TRUE(eventually([&] { return completed.load() == posted.load(); }))
      << completed.load() << " of " << posted.load() << " completions ran";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a second run would show here
  int runs = 0;
  int not_once = 0;
  for (const std::atomic<int>& d : done) {
    runs += d.load();
    not_once += d.load() > 1 ? 1 : 0;
  }
  EXPECT_EQ(not_once, 0);
  EXPECT_EQ(runs, posted.load());
  EXPECT_EQ(completed.load(), posted.load());
  {
    const std::lock_guard lock(odd_mutex);
    EXPECT_TRUE(odd.empty()) << odd.size()
                             << " completions with another error, the first: " << odd.front();
  }
  EXPECT_GT(refused.load(), 0);
  RecordProperty("posted", posted.load());
  RecordProperty("written", written.load());
  RecordProperty("refused", refused.load());
  EXPECT_EQ(healthy.finish(), "");
  expect_all_closed_once();
}

// -- 8. stop() under load --

TEST_P(fault, stop_during_heavy_traffic_closes_every_connection_once_and_returns) {
  const target a = start();
  constexpr int client_threads = 2;
  constexpr int per_thread = 32;
  std::vector<std::vector<echo_peer>> groups(client_threads);
  for (int t = 0; t < client_threads; ++t) {
    for (int i = 0; i < per_thread; ++i) {
      echo_peer p;
      p.conn = client(a, "echo heavy");
      ASSERT_TRUE(p.conn.ok());
      p.seed = static_cast<std::uint64_t>(t * per_thread + i) + 100;
      p.total = SIZE_MAX;  // until the server goes
      p.window = 256 * kib;
      groups[static_cast<std::size_t>(t)].push_back(std::move(p));
    }
  }
  ASSERT_TRUE(eventually([&] { return log_.opens() == client_threads * per_thread; }));
  std::atomic<std::size_t> verified{0};
  std::vector<std::thread> drivers;
  std::atomic<int> unfinished{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (auto& g : groups) {
    drivers.emplace_back([&g, &verified, &unfinished, deadline] {
      if (!drive_echo(g, deadline, &verified)) {
        unfinished++;
      }
    });
  }
  // (No ASSERT from here to the joins: the threads must be joined whatever happens.)
  {
    echo_client healthy(a, 0xbeef);  // served in the thick of it
    EXPECT_TRUE(eventually([&] { return verified.load() >= 64 * mib; }));
    EXPECT_EQ(healthy.exchange(32 * kib), "");
  }
  EXPECT_TRUE(eventually([&] { return log_.closes() == 1; }));  // the healthy one, closed

  std::atomic<bool> returned{false};
  std::thread stopper([&] {
    server_->stop();  // stop() and the join of run()'s thread
    returned = true;
  });
  if (!eventually([&] { return returned.load(); })) {
    ADD_FAILURE() << "run() did not return within the deadline after stop()";
    std::abort();  // a hung engine cannot be cleaned up; end the run rather than hang it
  }
  stopper.join();
  for (std::thread& d : drivers) {
    d.join();
  }
  EXPECT_EQ(unfinished.load(), 0) << "a client never saw its connection end";
  for (const auto& g : groups) {
    for (const echo_peer& p : g) {
      EXPECT_EQ(p.error, "");
      EXPECT_TRUE(p.ended);
    }
  }
  EXPECT_EQ(log_.closes(), log_.opens());
  EXPECT_EQ(log_.not_closed_once(), "");
  int stopped = 0;
  for (const conn_record& r : log_.all()) {
    stopped += r.reason == errc::engine_stopped ? 1 : 0;
  }
  EXPECT_EQ(stopped, client_threads * per_thread) << "every one but the healthy connection";
  RecordProperty("verified_mib", static_cast<int>(verified.load() / mib));
}

// -- 9. ten thousand concurrent connections --

/// Raises RLIMIT_NOFILE's soft limit to the hard limit for the test's life; found() is the
/// limit then in force.
class fd_limit {
 public:
  fd_limit() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    const rlimit raised{saved_.rlim_max, saved_.rlim_max};
    changed_ = raised.rlim_cur != saved_.rlim_cur && ::setrlimit(RLIMIT_NOFILE, &raised) == 0;
    rlimit now{};
    ::getrlimit(RLIMIT_NOFILE, &now);
    found_ = now.rlim_cur;
  }
  fd_limit(const fd_limit&) = delete;
  fd_limit& operator=(const fd_limit&) = delete;
  ~fd_limit() {
    if (changed_) {
      ::setrlimit(RLIMIT_NOFILE, &saved_);
    }
  }
  [[nodiscard]] rlim_t found() const { return found_; }

 private:
  rlimit saved_{};
  rlim_t found_ = 0;
  bool changed_ = false;
};

/// What the client process reports at its end.
struct echo_report {
  int connected = 0;
  int complete = 0;  // every message echoed byte for byte
  int ended = 0;     // closed by the server before its last echo
  int errors = 0;    // a byte that differed
  std::array<char, 160> first_error{};
};

/// Reads exactly `n` bytes within `timeout`; false on EOF, error or timeout.
bool read_within(int fd, void* out, std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto* at = static_cast<char*>(out);
  while (n > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) {
      return false;
    }
    const ssize_t r = ::read(fd, at, n);
    if (r <= 0) {
      return false;
    }
    at += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

/// The client ends of `conns` echo connections, in a forked child process: each process then
/// holds one end of each connection, so the fd limit (per process) need cover `conns` only
/// once. The child connects in batches of `batch`, each acknowledged by the parent once the
/// server has opened it (the listen backlog may be far smaller than `conns`), then, with all
/// of them open at once, sends three messages on each, each once the previous came back
/// whole, checks every byte, closes, and reports. Fork it while this process has one thread
/// (before the engine runs): the child allocates. It runs on a single thread.
class echo_process {
 public:
  echo_process(const target& a, int conns, int batch) {
    int up[2] = {-1, -1};
    int down[2] = {-1, -1};
    if (::pipe2(up, O_CLOEXEC) != 0 || ::pipe2(down, O_CLOEXEC) != 0) {
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      keep_only_fds(up[1], down[0]);
      run_child(a, conns, batch, up[1], down[0]);
    }
    ::close(up[1]);
    ::close(down[0]);
    from_child_ = up[0];
    to_child_ = down[1];
  }
  echo_process(const echo_process&) = delete;
  echo_process& operator=(const echo_process&) = delete;
  ~echo_process() {
    ::close(from_child_);
    ::close(to_child_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  /// Connections the child has made after its next batch; -1 when it is reporting instead,
  /// nullopt when it said nothing in time.
  std::optional<int> next_batch() {
    int connected = 0;
    if (!read_within(from_child_, &connected, sizeof connected, std::chrono::seconds(60))) {
      return std::nullopt;
    }
    return connected;
  }
  void go_on() { (void)!::write(to_child_, "k", 1); }
  /// The child's report (after next_batch() gave -1), and its exit; nullopt if it gave none.
  std::optional<echo_report> report() {
    echo_report r;
    if (!read_within(from_child_, &r, sizeof r, std::chrono::seconds(120))) {
      return std::nullopt;
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return std::nullopt;
    }
    return r;
  }

 private:
  [[noreturn]] static void run_child(const target& a, int conns, int batch, int up, int down) {
    echo_report r;
    std::vector<echo_peer> peers;
    const auto tell = [up](const void* what, std::size_t n) { (void)!::write(up, what, n); };
    const auto say_error = [&r](const std::string& what) {
      ++r.errors;
      if (r.first_error[0] == '\0') {
        std::snprintf(r.first_error.data(), r.first_error.size(), "%s", what.c_str());
      }
    };
    for (int i = 0; i < conns; ++i) {
      echo_peer p;
      p.conn = client(a, "echo c" + std::to_string(i));
      if (!p.conn.ok()) {
        say_error("connect " + std::to_string(i) + ": " + std::strerror(errno));
        break;
      }
      p.seed = static_cast<std::uint64_t>(i) + 1000;
      const std::size_t message = 64 + static_cast<std::size_t>(i) * 37 % 2000;
      p.total = 3 * message;
      p.window = message;  // so each message goes once the previous is back
      peers.push_back(std::move(p));
      r.connected = i + 1;
      char ack = 0;
      if ((r.connected % batch == 0 || r.connected == conns) &&
          (tell(&r.connected, sizeof r.connected), ::read(down, &ack, 1) != 1)) {
        ::_exit(2);  // the parent has gone
      }
    }
    if (r.errors == 0) {
      (void)drive_echo(peers, std::chrono::steady_clock::now() + std::chrono::seconds(120));
      for (const echo_peer& p : peers) {
        r.complete += p.received == p.total && p.error.empty() ? 1 : 0;
        r.ended += p.ended ? 1 : 0;
        if (!p.error.empty()) {
          say_error(p.error);
        }
      }
    }
    const int reporting = -1;
    tell(&reporting, sizeof reporting);
    tell(&r, sizeof r);
    ::_exit(0);  // nothing of the parent's (gtest, sanitizers' exit checks) runs here
  }

  pid_t pid_ = -1;
  int from_child_ = -1;
  int to_child_ = -1;
};

TEST_P(fault, ten_thousand_concurrent_connections_each_exchange_verified_messages) {
  constexpr int conns = 10000;
  constexpr rlim_t need = conns + 500;  // the server's end of each, and the rest of the process
  const fd_limit limit;
  if (limit.found() < need) {
    GTEST_SKIP() << "RLIMIT_NOFILE's hard limit is " << limit.found() << "; " << need
                 << " fds per process are needed for " << conns << " connections";
  }
  const auto started = std::chrono::steady_clock::now();
  const target a = listen();
  echo_process clients(a, conns, 1000);  // forked before the engine's threads exist
  server_->start();
  healthy_traffic healthy(a);
  for (;;) {
    const std::optional<int> connected = clients.next_batch();
    ASSERT_TRUE(connected) << "the client process went quiet";
    if (*connected < 0) {
      break;
    }
    ASSERT_TRUE(eventually([&] { return log_.opens() >= *connected + 1; }))
        << "the server opened " << log_.opens() - 1 << " of " << *connected;
    if (*connected == conns) {
      EXPECT_EQ(server().count_connections(), static_cast<std::size_t>(conns) + 1)
          << "all open at once, with the healthy one";
    }
    clients.go_on();
  }
  const std::optional<echo_report> report = clients.report();
  ASSERT_TRUE(report) << "no report from the client process";
  EXPECT_EQ(report->connected, conns);
  EXPECT_EQ(report->complete, conns);
  EXPECT_EQ(report->ended, 0) << "the server ended connections early";
  EXPECT_EQ(report->errors, 0) << report->first_error.data();
  EXPECT_EQ(healthy.finish(), "");
  expect_all_closed_once();
  for (const conn_record& r : log_.all()) {
    if (r.tag != "healthy") {
      EXPECT_EQ(r.reason, errc::end_of_stream) << r.tag;
    }
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  std::cout << "[          ] " << conns << " connections (RLIMIT_NOFILE " << limit.found()
            << ") in " << took.count() << " ms\n";
  RecordProperty("connections", conns);
  RecordProperty("milliseconds", static_cast<int>(took.count()));
}
std::string param_name(const ::testing::TestParamInfo<fault_param>& param) {
  const auto [mode, transport] = param.param;
  return std::string(mode == trigger::edge ? "edge" : "level") +
         (transport == over::tls ? "_tls" : "");
}

INSTANTIATE_TEST_SUITE_P(fault, fault,
                         ::testing::Combine(::testing::Values(trigger::level, trigger::edge),
                                            ::testing::Values(over::tcp, over::tls)),
                         param_name);

}  // namespace
}  // namespace actnet
