// Helpers for engine tests: an engine running on its own thread, blocking loopback clients,
// and bounded waits (a failing test ends by its deadline, never hangs).
#pragma once

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace actnet::test {

/// Options for a small test engine: `loops` loops, defaults otherwise.
inline engine_options small_options(std::size_t loops = 1) {
  engine_options o;
  o.loops = loops;
  return o;
}

// The sanitizer this build has: GCC says so with __SANITIZE_*__, Clang (the fuzz preset) with
// __has_feature.
#if defined(__SANITIZE_THREAD__)
#define ACTNET_TEST_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define ACTNET_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTNET_TEST_TSAN 1
#elif __has_feature(address_sanitizer)
#define ACTNET_TEST_ASAN 1
#endif
#endif

/// How many times its size a byte of memory costs in this build: ThreadSanitizer keeps about
/// 2.5 bytes of shadow and meta data for each byte the program touches, AddressSanitizer 1/8.
inline constexpr std::size_t memory_factor =
#if defined(ACTNET_TEST_TSAN)
    4;
#elif defined(ACTNET_TEST_ASAN)
    2;
#else
    1;
#endif

/// How many times longer work takes in this build than in an optimised one without
/// sanitizers, at worst: for thresholds (the stall detector's) that a build must not trip on
/// its own slowness. Not a timing assertion: tests never assert how long something took. The
/// sanitizers' allocators make allocation-heavy handlers (a chat line broadcast to every
/// client, an HTTP answer) some ten times slower.
inline constexpr long time_factor =
#if defined(ACTNET_TEST_TSAN) || defined(ACTNET_TEST_ASAN)
    10;
#elif !defined(NDEBUG)
    4;
#else
    1;
#endif

/// What loops on io_uring hold however light their traffic: each loop's provided-buffer ring,
/// whose buffers the kernel fills in turn, so that any traffic touches all of them in time.
/// Nothing on epoll. Tests that bound RSS growth count it as a fixed cost.
inline std::size_t ring_buffer_bytes(const engine_options& o) {
  if (o.backend != io_backend::io_uring) {
    return 0;
  }
  return o.loops * o.uring_buffers * std::min(o.uring_buffer_size, o.read_buffer_size) *
         memory_factor;
}

/// The back end this process's engines run on, as ACTNET_BACKEND sets it (the suites run once
/// on each); for sample processes, which inherit it.
inline io_backend backend_under_test() {
  const char* env = std::getenv("ACTNET_BACKEND");  // NOLINT(concurrency-mt-unsafe)
  return env != nullptr && std::string_view(env) == "io_uring" ? io_backend::io_uring
                                                               : io_backend::epoll;
}

/// A gate that handlers and jobs wait at (wait()) until the test opens it.
class gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    opened_.wait(lock, [this] { return open_; });
  }
  void open() {
    {
      const std::lock_guard lock(mutex_);
      open_ = true;
    }
    opened_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

/// An engine whose run() is on a thread of its own; stopped and joined on destruction.
class running_engine {
 public:
  explicit running_engine(engine_options o = test::small_options()) : engine_(o) {}
  running_engine(const running_engine&) = delete;
  running_engine& operator=(const running_engine&) = delete;
  ~running_engine() { stop(); }

  engine& operator*() { return engine_; }
  engine* operator->() { return &engine_; }
  void start() {
    thread_ = std::thread([this] { engine_.run(); });
  }
  void stop() {
    engine_.stop();
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  engine engine_;
  std::thread thread_;
};

/// Waits until `done()` or 20 s; returns done(). Only a deadline: no test asserts timing.
inline bool eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// A blocking client socket connected to `a`, with 20 s send/receive timeouts; -1 on failure.
inline int connect_to(const address& a) {
  const int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, a.data(), a.size()) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

/// Reads exactly `n` bytes (fewer if the peer closes or the timeout passes).
inline std::string recv_exact(int fd, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) {
      break;
    }
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

/// Raises `high` to `value` if that is higher (several threads may race to it).
inline void raise_to(std::atomic<std::size_t>& high, std::size_t value) {
  std::size_t seen = high.load();
  while (value > seen && !high.compare_exchange_weak(seen, value)) {
  }
}

/// Reads until the peer closes (or the receive timeout passes): everything it sent.
inline std::string read_to_end(int fd) {
  std::string all;
  std::string chunk(65536, '\0');
  for (;;) {
    const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), 0);
    if (n <= 0) {
      return all;
    }
    all.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

/// Bytes [from, from + n) of a stream pattern that a lost, doubled or reordered byte breaks.
inline std::string pattern_bytes(std::size_t from, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t at = from + i;
    s[i] = static_cast<char>('a' + (at * 7 + at / 251) % 26);
  }
  return s;
}

/// True when the peer has closed: recv returns 0 (within the timeout).
inline bool peer_closed(int fd) {
  char c = 0;
  return ::recv(fd, &c, 1, 0) == 0;
}

/// Open file descriptors of this process.
inline int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) {
      ++n;
    }
    ::closedir(d);
  }
  return n;
}

/// A blocking UDP client of `server`, bound to its loopback address (127.0.0.1 for a multicast
/// group), with a receive timeout.
class udp_client {
 public:
  explicit udp_client(const address& server, int timeout_ms = 20000) : server_(server) {
    fd_ = ::socket(server.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    // Bound to the server's loopback address, so local() is the address the server sees.
    const address here =
        server.multicast() ? address::parse("udp4://127.0.0.1:0") : server.with_port(0);
    ::bind(fd_, here.data(), here.size());
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  udp_client(const udp_client&) = delete;
  udp_client& operator=(const udp_client&) = delete;
  ~udp_client() { ::close(fd_); }

  bool send(std::string_view s) const { return send_to(server_, s); }
  bool send_to(const address& to, std::string_view s) const {
    return ::sendto(fd_, s.data(), s.size(), 0, to.data(), to.size()) ==
           static_cast<ssize_t>(s.size());
  }
  /// One datagram ("" after the timeout).
  [[nodiscard]] std::string receive() const {
    std::string out(65536, '\0');
    const ssize_t n = ::recv(fd_, out.data(), out.size(), 0);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
  }
  [[nodiscard]] address local() const { return *local_address(fd_, transport::udp); }
  [[nodiscard]] int fd() const { return fd_; }

 private:
  address server_;
  int fd_ = -1;
};

}  // namespace actnet::test
