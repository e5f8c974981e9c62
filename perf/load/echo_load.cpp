// echo_load: the perf harness's echo load generator. Many non-blocking connections per epoll
// thread keep pipelined messages in flight, check every echoed byte and time every message.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <bit>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using nanos = std::int64_t;

constexpr nanos ns_per_s = 1'000'000'000;

nanos now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return nanos{ts.tv_sec} * ns_per_s + ts.tv_nsec;
}

nanos seconds_to_ns(double s) noexcept {
  return static_cast<nanos>(s * 1e9);
}

__attribute__((format(printf, 1, 2))) std::string formatted(const char* fmt, ...) {
  std::array<char, 512> text{};
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(text.data(), text.size(), fmt, args);
  va_end(args);
  return text.data();
}

struct options {
  std::string host;
  long port = -1;
  std::string unix_path;
  long conns = 100;
  long size = 64;
  long pipeline = 1;
  double duration_s = 5;
  double warmup_s = 1;
  long threads = 1;
  bool idle = false;
  double hold_s = 600;
  bool json = false;
  bool self_test = false;
};

// Where the connections go, already in the form connect() takes.
struct address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  bool is_tcp = true;
  std::string text;
};

// Counts every error; prints the first few, since one broken server can produce thousands of
// identical lines that would bury the summary.
class error_log {
 public:
  explicit error_log(bool quiet = false) : quiet_(quiet) {}

  void report(const std::string& what) {
    const long n = count_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n > max_printed) {
      return;
    }
    std::lock_guard lock(print_mutex_);
    if (first_.empty()) {
      first_ = what;
    }
    if (quiet_) {
      return;
    }
    std::fprintf(stderr, "echo_load: error: %s\n", what.c_str());
    if (n == max_printed) {
      std::fprintf(stderr, "echo_load: further errors are counted, not printed\n");
    }
  }

  long count() const noexcept { return count_.load(std::memory_order_relaxed); }

  // Only once every thread that reports has been joined.
  const std::string& first() const noexcept { return first_; }

 private:
  static constexpr long max_printed = 10;
  bool quiet_;
  std::atomic<long> count_{0};
  std::mutex print_mutex_;
  std::string first_;
};

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

// Every connection's byte stream is a window onto one shared pseudo-random tape: byte i of
// connection c is tape[(start(c) + i) % tape_length]. The length is odd, so no message size
// divides it and consecutive messages differ: a server that replays or drops a whole message is
// caught, not only one that corrupts bytes. Read-only once built, so threads share it freely.
class tape {
 public:
  static constexpr std::size_t length = (std::size_t{1} << 20) + 4093;

  tape() : bytes_(length) {
    std::uint64_t state = 0x61637421;
    for (std::size_t i = 0; i < length; i += 8) {
      const std::uint64_t r = splitmix64(state);
      std::memcpy(bytes_.data() + i, &r, std::min<std::size_t>(8, length - i));
    }
  }

  const unsigned char* data() const noexcept { return bytes_.data(); }

  static std::size_t start_of(std::uint64_t connection_id) noexcept {
    std::uint64_t state = connection_id * 7919 + 1;
    return static_cast<std::size_t>(splitmix64(state) % length);
  }

 private:
  std::vector<unsigned char> bytes_;
};

// Log-bucketed latency histogram (HDR-like): 128 linear sub-buckets per power of two, so every
// value is reported within 1/256 of itself (the bucket's midpoint); merging is a sum per bucket.
class histogram {
 public:
  void record(std::uint64_t v) noexcept {
    ++counts_[index_of(v)];
    ++total_;
    max_ = std::max(max_, v);
  }

  void merge(const histogram& other) noexcept {
    for (std::size_t i = 0; i < bucket_count; ++i) {
      counts_[i] += other.counts_[i];
    }
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }

  std::uint64_t total() const noexcept { return total_; }
  std::uint64_t max() const noexcept { return max_; }

  // The value below which a fraction q of the recorded values lie; 0 when empty.
  std::uint64_t percentile(double q) const noexcept {
    if (total_ == 0) {
      return 0;
    }
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.999999);
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        return std::min(midpoint_of(i), max_);
      }
    }
    return max_;
  }

  static std::size_t index_of(std::uint64_t v) noexcept {
    if (v < sub_count) {
      return static_cast<std::size_t>(v);
    }
    const int shift = static_cast<int>(std::bit_width(v)) - 1 - sub_bits;
    return static_cast<std::size_t>(shift + 1) * sub_count +
           static_cast<std::size_t>((v >> shift) - sub_count);
  }

  static std::uint64_t midpoint_of(std::size_t index) noexcept {
    if (index < sub_count) {
      return index;
    }
    const auto shift = static_cast<int>(index / sub_count) - 1;
    const std::uint64_t low = (sub_count + index % sub_count) << shift;
    return low + ((std::uint64_t{1} << shift) >> 1);
  }

 private:
  static constexpr int sub_bits = 7;
  static constexpr std::uint64_t sub_count = std::uint64_t{1} << sub_bits;
  static constexpr std::size_t bucket_count = sub_count * (64 - sub_bits + 1);

  std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(bucket_count);
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

// When one worker's run starts, counts and stops, set by the main thread once every connection
// is up.
struct run_plan {
  nanos warm_end = 0;  // completions before this are warmup, not counted
  nanos end = 0;       // no message starts after this
  nanos drain_timeout = 0;
  std::uint64_t message_limit = 0;  // per connection; 0 means until `end`
};

struct connection {
  int fd = -1;
  std::uint64_t id = 0;
  std::size_t tape_start = 0;
  std::uint64_t queued = 0;    // bytes of the messages started so far
  std::uint64_t sent = 0;      // bytes the socket accepted
  std::uint64_t received = 0;  // bytes echoed and verified
  std::uint64_t started = 0;   // messages
  std::uint64_t completed = 0;
  bool write_armed = false;
  bool finished = false;  // closed, or nothing left to send and nothing in flight
};

// One thread's share of the connections, on its own epoll instance; touched by that thread only.
class worker {
 public:
  worker(const options& o, const address& a, const tape& t, error_log& errors,
         std::uint64_t first_id, std::size_t count)
      : size_(static_cast<std::uint64_t>(o.size)),
        pipeline_(static_cast<std::uint64_t>(o.pipeline)),
        address_(a),
        tape_(t),
        errors_(errors),
        connections_(count),
        stamps_(count * static_cast<std::size_t>(o.pipeline)) {
    for (std::size_t i = 0; i < count; ++i) {
      connections_[i].id = first_id + i;
      connections_[i].tape_start = tape::start_of(first_id + i);
    }
  }

  ~worker() {
    for (auto& c : connections_) {
      if (c.fd >= 0) {
        ::close(c.fd);
      }
    }
    if (epoll_fd_ >= 0) {
      ::close(epoll_fd_);
    }
  }

  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Blocking connects, one after the other: the clock has not started yet, and a failure should
  // name the connection and the reason rather than time out somewhere inside the run.
  bool connect_all() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      errors_.report(formatted("epoll_create1: %s", std::strerror(errno)));
      return false;
    }
    for (std::size_t i = 0; i < connections_.size(); ++i) {
      if (!connect_one(i)) {
        return false;
      }
    }
    return true;
  }

  void run(const run_plan& plan) {
    plan_ = plan;
    unfinished_ = connections_.size();
    const nanos start = now_ns();
    for (std::size_t i = 0; i < connections_.size(); ++i) {
      start_messages(i, start);
    }
    std::vector<epoll_event> events(256);
    bool draining = false;
    nanos drain_deadline = 0;
    while (unfinished_ > 0) {
      const nanos now = now_ns();
      if (!draining && now >= plan_.end) {
        draining = true;
        drain_deadline = now + plan_.drain_timeout;
        for (std::size_t i = 0; i < connections_.size(); ++i) {
          finish_if_idle(i);
        }
        continue;
      }
      if (draining && now >= drain_deadline) {
        for (auto& c : connections_) {
          if (!c.finished) {
            fail(c, formatted("short read at the end: %llu of %llu bytes came back within %.1f s",
                              static_cast<unsigned long long>(c.received),
                              static_cast<unsigned long long>(c.sent),
                              static_cast<double>(plan_.drain_timeout) / 1e9));
          }
        }
        break;
      }
      const nanos next =
          draining ? drain_deadline : (now < plan_.warm_end ? plan_.warm_end : plan_.end);
      // Waking a little late is harmless (no message starts after `end` either way); the cap keeps
      // the loop responsive without spinning.
      const int timeout_ms =
          static_cast<int>(std::clamp<nanos>((next - now) / 1'000'000 + 1, 0, 100));
      const int n =
          ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        errors_.report(formatted("epoll_wait: %s", std::strerror(errno)));
        return;
      }
      for (int e = 0; e < n; ++e) {
        const std::size_t i = events[e].data.u32;
        if (connections_[i].fd < 0) {
          continue;
        }
        if ((events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
          on_readable(i);
        }
        if (connections_[i].fd >= 0 && (events[e].events & EPOLLOUT) != 0) {
          flush(connections_[i]);
        }
      }
    }
  }

  const histogram& latency() const noexcept { return latency_; }
  std::uint64_t measured_messages() const noexcept { return measured_messages_; }
  std::uint64_t measured_bytes() const noexcept { return measured_bytes_; }

 private:
  static constexpr std::size_t read_buffer_size = 64 * 1024;
  // Reads per readiness event: enough to drain a pipelined burst, few enough that one busy
  // connection cannot starve the others (the event is level-triggered and comes back).
  static constexpr int reads_per_event = 4;

  bool connect_one(std::size_t i) {
    connection& c = connections_[i];
    const auto& sa = reinterpret_cast<const sockaddr&>(address_.storage);
    c.fd = ::socket(sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      errors_.report(formatted("socket (connection %llu): %s",
                               static_cast<unsigned long long>(c.id), std::strerror(errno)));
      return false;
    }
    // Bounds the blocking connect: on Linux SO_SNDTIMEO applies to it.
    const timeval limit{10, 0};
    ::setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    if (::connect(c.fd, &sa, address_.length) != 0) {
      const int err = errno == EINPROGRESS ? ETIMEDOUT : errno;
      errors_.report(formatted("connect to %s failed (connection %llu): %s", address_.text.c_str(),
                               static_cast<unsigned long long>(c.id), std::strerror(err)));
      return false;
    }
    if (address_.is_tcp) {
      const int one = 1;
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    const int flags = ::fcntl(c.fd, F_GETFL);
    ::fcntl(c.fd, F_SETFL, flags | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      errors_.report(formatted("epoll_ctl: %s", std::strerror(errno)));
      return false;
    }
    return true;
  }

  bool may_start(const connection& c, nanos now) const noexcept {
    if (now >= plan_.end) {
      return false;
    }
    return plan_.message_limit == 0 || c.started < plan_.message_limit;
  }

  void start_messages(std::size_t i, nanos now) {
    connection& c = connections_[i];
    while (c.started - c.completed < pipeline_ && may_start(c, now)) {
      stamps_[i * pipeline_ + c.started % pipeline_] = now;
      ++c.started;
      c.queued += size_;
    }
    flush(c);
    if (c.fd >= 0) {
      finish_if_idle(i);
    }
  }

  void finish_if_idle(std::size_t i) {
    connection& c = connections_[i];
    if (!c.finished && c.completed == c.started && !may_start(c, now_ns())) {
      c.finished = true;
      --unfinished_;
    }
  }

  void flush(connection& c) {
    while (c.sent < c.queued) {
      const std::size_t pos = (c.tape_start + c.sent) % tape::length;
      const std::uint64_t left = c.queued - c.sent;
      std::array<iovec, 2> iov{};
      const std::size_t first =
          static_cast<std::size_t>(std::min<std::uint64_t>(left, tape::length - pos));
      iov[0] = {const_cast<unsigned char*>(tape_.data() + pos), first};
      iov[1] = {const_cast<unsigned char*>(tape_.data()),
                static_cast<std::size_t>(std::min<std::uint64_t>(left - first, tape::length))};
      msghdr msg{};
      msg.msg_iov = iov.data();
      msg.msg_iovlen = iov[1].iov_len > 0 ? 2 : 1;
      const ssize_t n = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      }
      fail(c, formatted("send: %s", std::strerror(errno)));
      return;
    }
    const bool want_write = c.sent < c.queued;
    if (want_write != c.write_armed) {
      epoll_event ev{};
      ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0u);
      ev.data.u32 = static_cast<std::uint32_t>(&c - connections_.data());
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
      c.write_armed = want_write;
    }
  }

  void on_readable(std::size_t i) {
    connection& c = connections_[i];
    for (int r = 0; r < reads_per_event; ++r) {
      const ssize_t n = ::read(c.fd, read_buffer_.data(), read_buffer_.size());
      if (n > 0) {
        const nanos now = now_ns();
        if (!verify(c, static_cast<std::size_t>(n))) {
          return;
        }
        if (now >= plan_.warm_end && now < plan_.end) {
          measured_bytes_ += static_cast<std::uint64_t>(n);
        }
        complete(i, now);
        if (c.fd < 0 || static_cast<std::size_t>(n) < read_buffer_.size()) {
          return;
        }
        continue;
      }
      if (n == 0) {
        fail(c, formatted("closed by the server after echoing %llu of %llu bytes",
                          static_cast<unsigned long long>(c.received),
                          static_cast<unsigned long long>(c.sent)));
        return;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        fail(c, formatted("read: %s", std::strerror(errno)));
      }
      return;
    }
  }

  // Compares what just arrived with what this connection sent at the same stream offset.
  bool verify(connection& c, std::size_t n) {
    if (c.received + n > c.sent) {
      fail(c, formatted("the server sent %llu bytes more than it was sent",
                        static_cast<unsigned long long>(c.received + n - c.sent)));
      return false;
    }
    std::size_t done = 0;
    while (done < n) {
      const std::size_t pos = (c.tape_start + c.received + done) % tape::length;
      const std::size_t chunk = std::min(n - done, tape::length - pos);
      const unsigned char* expected = tape_.data() + pos;
      const unsigned char* got = read_buffer_.data() + done;
      if (std::memcmp(expected, got, chunk) != 0) {
        std::size_t k = 0;
        while (expected[k] == got[k]) {
          ++k;
        }
        const std::uint64_t offset = c.received + done + k;
        fail(c, formatted("echo mismatch at byte %llu of message %llu: expected 0x%02x, got 0x%02x",
                          static_cast<unsigned long long>(offset % size_),
                          static_cast<unsigned long long>(offset / size_), expected[k], got[k]));
        return false;
      }
      done += chunk;
    }
    c.received += n;
    return true;
  }

  void complete(std::size_t i, nanos now) {
    connection& c = connections_[i];
    const std::uint64_t echoed = c.received / size_;
    const bool counted = now >= plan_.warm_end && now < plan_.end;
    while (c.completed < echoed) {
      const nanos sent_at = stamps_[i * pipeline_ + c.completed % pipeline_];
      ++c.completed;
      if (counted) {
        latency_.record(static_cast<std::uint64_t>(now - sent_at));
        ++measured_messages_;
      }
    }
    start_messages(i, now);
  }

  void fail(connection& c, const std::string& what) {
    errors_.report(formatted("%s connection %llu: %s", address_.text.c_str(),
                             static_cast<unsigned long long>(c.id), what.c_str()));
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    if (!c.finished) {
      c.finished = true;
      --unfinished_;
    }
  }

  std::uint64_t size_;
  std::uint64_t pipeline_;
  const address& address_;
  const tape& tape_;
  error_log& errors_;
  int epoll_fd_ = -1;
  run_plan plan_;
  std::size_t unfinished_ = 0;
  std::vector<connection> connections_;
  std::vector<nanos> stamps_;  // send time of each message in flight: a ring of `pipeline_` each
  std::vector<unsigned char> read_buffer_ = std::vector<unsigned char>(read_buffer_size);
  histogram latency_;
  std::uint64_t measured_messages_ = 0;
  std::uint64_t measured_bytes_ = 0;
};

struct load_result {
  histogram latency;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  long errors = 0;
  std::string first_error;
  // CPU time over wall time of the run, all threads: well below 100% per thread means the machine
  // was busy with something else (or the server was slow) and the figures say little.
  double cpu_pct = 0;
};

double cpu_seconds() noexcept {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

// Keeps the idle connections open until stdin reaches end-of-file or `hold_s` passes.
void hold_idle(double hold_s) {
  const nanos deadline = now_ns() + seconds_to_ns(hold_s);
  std::array<char, 256> sink{};
  for (;;) {
    const nanos left = deadline - now_ns();
    if (left <= 0) {
      return;
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<nanos>(left / 1'000'000 + 1, 1000)));
    if (r < 0 && errno != EINTR) {
      return;
    }
    if (r > 0) {
      if ((p.revents & POLLNVAL) != 0) {
        return;
      }
      const ssize_t n = ::read(STDIN_FILENO, sink.data(), sink.size());
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        return;
      }
    }
  }
}

load_result run_load(const options& o, const address& a, const tape& t, error_log& errors) {
  const auto threads = static_cast<std::size_t>(std::min(o.threads, o.conns));
  const auto conns = static_cast<std::size_t>(o.conns);
  std::vector<std::unique_ptr<worker>> workers;
  std::uint64_t next_id = 0;
  for (std::size_t w = 0; w < threads; ++w) {
    const std::size_t share = conns / threads + (w < conns % threads ? 1 : 0);
    workers.push_back(std::make_unique<worker>(o, a, t, errors, next_id, share));
    next_id += share;
  }

  // Two meeting points: every connection is up (or has failed), then the plan is set.
  std::barrier<> meet(static_cast<std::ptrdiff_t>(threads + 1));
  run_plan plan;
  bool go = false;
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < threads; ++w) {
    pool.emplace_back([&, w] {
      const bool connected = workers[w]->connect_all();
      meet.arrive_and_wait();
      meet.arrive_and_wait();
      if (connected && go) {
        workers[w]->run(plan);
      }
    });
  }
  meet.arrive_and_wait();
  const nanos start = now_ns();
  const double cpu_at_start = cpu_seconds();
  if (o.idle) {
    // One verified echo each, then stop; the deadline only bounds a server that never answers.
    plan.warm_end = start;
    plan.end = start + 25 * ns_per_s;
    plan.drain_timeout = 5 * ns_per_s;
    plan.message_limit = 1;
  } else {
    plan.warm_end = start + seconds_to_ns(o.warmup_s);
    plan.end = plan.warm_end + seconds_to_ns(o.duration_s);
    plan.drain_timeout = 5 * ns_per_s;
  }
  go = errors.count() == 0;
  meet.arrive_and_wait();
  for (auto& th : pool) {
    th.join();
  }

  load_result result;
  result.cpu_pct =
      (cpu_seconds() - cpu_at_start) / (static_cast<double>(now_ns() - start) / 1e9) * 100;
  for (const auto& w : workers) {
    result.latency.merge(w->latency());
    result.messages += w->measured_messages();
    result.bytes += w->measured_bytes();
  }
  if (o.idle && errors.count() == 0) {
    std::printf("idle: %ld connections ready\n", o.conns);
    std::fflush(stdout);
    hold_idle(o.hold_s);
  } else if (!o.idle && go && result.messages == 0) {
    errors.report("no message came back during the measured window");
  }
  result.errors = errors.count();
  result.first_error = errors.first();
  return result;  // the workers close every connection here
}

std::string json_escaped(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += formatted("\\u%04x", static_cast<unsigned>(ch));
    } else {
      out += ch;
    }
  }
  return out;
}

void print_result(const options& o, const address& a, const load_result& r) {
  const double msgs_per_s = static_cast<double>(r.messages) / o.duration_s;
  const double mb_per_s = static_cast<double>(r.bytes) / o.duration_s / 1e6;
  const auto us = [&](double q) { return static_cast<double>(r.latency.percentile(q)) / 1e3; };
  const double max_us = static_cast<double>(r.latency.max()) / 1e3;
  if (o.json) {
    std::printf(
        "{\"target\":\"%s\",\"conns\":%ld,\"size\":%ld,\"pipeline\":%ld,\"threads\":%ld,"
        "\"warmup_s\":%g,\"duration_s\":%g,\"messages\":%llu,\"msgs_per_s\":%.1f,"
        "\"mb_per_s\":%.3f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
        "\"load_cpu_pct\":%.0f,\"errors\":%ld}\n",
        json_escaped(a.text).c_str(), o.conns, o.size, o.pipeline, std::min(o.threads, o.conns),
        o.warmup_s, o.duration_s, static_cast<unsigned long long>(r.messages), msgs_per_s, mb_per_s,
        us(0.5), us(0.99), us(0.999), max_us, r.cpu_pct, r.errors);
  } else {
    std::printf(
        "echo_load %s: %ld conns x %ld B, pipeline %ld, %ld thread(s), %g s warmup + %g s\n",
        a.text.c_str(), o.conns, o.size, o.pipeline, std::min(o.threads, o.conns), o.warmup_s,
        o.duration_s);
    std::printf("  msgs/s %.0f   MB/s %.2f   latency us: p50 %.1f  p99 %.1f  p999 %.1f  max %.1f\n",
                msgs_per_s, mb_per_s, us(0.5), us(0.99), us(0.999), max_us);
    std::printf("  messages %llu   CPU %.0f%%   errors %ld\n",
                static_cast<unsigned long long>(r.messages), r.cpu_pct, r.errors);
  }
  std::fflush(stdout);
}

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(
      stderr,
      "echo_load: %s\n"
      "usage: echo_load (--host H --port P | --unix PATH) [--conns N] [--size BYTES]\n"
      "                 [--pipeline K] [--duration S] [--warmup S] [--threads T] [--json]\n"
      "       echo_load (--host H --port P | --unix PATH) --idle [--conns N] [--hold S]\n"
      "       echo_load --self-test\n",
      what.c_str());
  std::exit(2);
}

long parse_long(const std::string& flag, const std::string& text, long min, long max) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < min || v > max) {
    usage_error(formatted("%s: '%s' is not a whole number in [%ld, %ld]", flag.c_str(),
                          text.c_str(), min, max));
  }
  return v;
}

double parse_seconds(const std::string& flag, const std::string& text, double min) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v >= min) || v > 86400) {
    usage_error(
        formatted("%s: '%s' is not a number of seconds >= %g", flag.c_str(), text.c_str(), min));
  }
  return v;
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    bool has_value = false;
    if (const auto eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
      has_value = true;
    }
    const auto next = [&]() -> std::string {
      if (has_value) {
        return value;
      }
      if (i + 1 >= argc) {
        usage_error(flag + " needs a value");
      }
      return argv[++i];
    };
    if (flag == "--host") {
      o.host = next();
    } else if (flag == "--port") {
      o.port = parse_long(flag, next(), 1, 65535);
    } else if (flag == "--unix") {
      o.unix_path = next();
    } else if (flag == "--conns") {
      o.conns = parse_long(flag, next(), 1, 1'000'000);
    } else if (flag == "--size") {
      o.size = parse_long(flag, next(), 1, 64L << 20);
    } else if (flag == "--pipeline") {
      o.pipeline = parse_long(flag, next(), 1, 65536);
    } else if (flag == "--duration") {
      o.duration_s = parse_seconds(flag, next(), 0.001);
    } else if (flag == "--warmup") {
      o.warmup_s = parse_seconds(flag, next(), 0);
    } else if (flag == "--threads") {
      o.threads = parse_long(flag, next(), 1, 1024);
    } else if (flag == "--hold") {
      o.hold_s = parse_seconds(flag, next(), 0);
    } else if (flag == "--idle" && !has_value) {
      o.idle = true;
    } else if (flag == "--json" && !has_value) {
      o.json = true;
    } else if (flag == "--self-test" && !has_value) {
      o.self_test = true;
    } else if (flag == "-h" || flag == "--help") {
      usage_error("help");
    } else {
      usage_error("unknown option: " + flag);
    }
  }
  return o;
}

address resolve(const options& o) {
  address a;
  if (!o.unix_path.empty()) {
    if (!o.host.empty() || o.port >= 0) {
      usage_error("--unix excludes --host and --port");
    }
    sockaddr_un un{};
    if (o.unix_path.size() >= sizeof un.sun_path) {
      usage_error("--unix: path too long: " + o.unix_path);
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, o.unix_path.data(), o.unix_path.size());
    std::memcpy(&a.storage, &un, sizeof un);
    a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + o.unix_path.size() + 1);
    a.is_tcp = false;
    a.text = "unix://" + o.unix_path;
    return a;
  }
  if (o.host.empty() || o.port < 0) {
    usage_error("give --host and --port, or --unix");
  }
  std::string host = o.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const auto port = htons(static_cast<std::uint16_t>(o.port));
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  if (::inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = port;
    std::memcpy(&a.storage, &v4, sizeof v4);
    a.length = sizeof v4;
    a.text = formatted("tcp://%s:%ld", host.c_str(), o.port);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = port;
    std::memcpy(&a.storage, &v6, sizeof v6);
    a.length = sizeof v6;
    a.text = formatted("tcp://[%s]:%ld", host.c_str(), o.port);
  } else {
    usage_error("--host: '" + o.host + "' is not an IPv4 or IPv6 literal");
  }
  return a;
}

// Every connection is a descriptor; the default soft limit (often 1024) is far below what a load
// run opens.
rlim_t raise_nofile_limit() {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  ::getrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur;
}

// --- self-test: the checks themselves are checked against servers that misbehave on purpose ---

enum class misbehaviour { none, corrupt, close_early };

// A one-connection blocking echo server on 127.0.0.1 that can flip one byte or hang up early.
class test_server {
 public:
  explicit test_server(misbehaviour m) : misbehaviour_(m) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), len) != 0 ||
        ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      std::fprintf(stderr, "echo_load: self-test server: %s\n", std::strerror(errno));
      std::exit(1);
    }
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~test_server() {
    thread_.join();
    ::close(listen_fd_);
  }

  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  long port() const noexcept { return port_; }

 private:
  static constexpr std::uint64_t corrupt_at = 1000;
  static constexpr std::uint64_t close_after = 5000;

  void serve() {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) {
      return;
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      return;
    }
    std::array<unsigned char, 4096> buf{};
    std::uint64_t echoed = 0;
    for (;;) {
      p = {fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) {
        break;
      }
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n <= 0) {
        break;
      }
      const auto got = static_cast<std::uint64_t>(n);
      if (misbehaviour_ == misbehaviour::corrupt && echoed <= corrupt_at &&
          corrupt_at < echoed + got) {
        buf[corrupt_at - echoed] ^= 0x20;
      }
      if (misbehaviour_ == misbehaviour::close_early && echoed + got > close_after) {
        break;
      }
      if (::send(fd, buf.data(), got, MSG_NOSIGNAL) != n) {
        break;
      }
      echoed += got;
    }
    ::close(fd);
  }

  misbehaviour misbehaviour_;
  int listen_fd_ = -1;
  long port_ = 0;
  std::thread thread_;
};

int self_test() {
  int failures = 0;
  const auto check = [&](bool ok, const std::string& what) {
    std::printf("self-test: %-60s %s\n", what.c_str(), ok ? "ok" : "FAILED");
    failures += ok ? 0 : 1;
  };

  histogram h;
  for (std::uint64_t v = 1; v <= 100'000; ++v) {
    h.record(v * 1000);
  }
  const auto near = [](std::uint64_t got, double want) {
    return std::abs(static_cast<double>(got) - want) <= want * 0.01;
  };
  check(near(h.percentile(0.5), 50'000'000) && near(h.percentile(0.99), 99'000'000) &&
            near(h.percentile(0.999), 99'900'000) && h.max() == 100'000'000,
        "histogram percentiles within 1% of exact");
  bool contiguous = true;
  for (std::uint64_t v = 1; v < (1u << 20); ++v) {
    const std::size_t i = histogram::index_of(v);
    contiguous =
        contiguous && (i == histogram::index_of(v - 1) || i == histogram::index_of(v - 1) + 1);
    const auto mid = static_cast<double>(histogram::midpoint_of(i));
    contiguous =
        contiguous && std::abs(mid - static_cast<double>(v)) <= static_cast<double>(v) / 128;
  }
  check(contiguous, "histogram buckets contiguous, midpoints within 1/128");

  const tape t;
  const auto run_against = [&](misbehaviour m) {
    test_server server(m);
    options o;
    o.host = "127.0.0.1";
    o.port = server.port();
    o.conns = 1;
    o.size = 100;
    o.pipeline = 4;
    o.warmup_s = 0.05;
    o.duration_s = 0.2;
    const address a = resolve(o);
    error_log errors(true);
    return run_load(o, a, t, errors);
  };
  const load_result good = run_against(misbehaviour::none);
  check(good.errors == 0 && good.messages > 0, "a correct echo server: no errors");
  const load_result corrupted = run_against(misbehaviour::corrupt);
  check(corrupted.errors > 0, "a server that flips one byte: an error");
  std::printf("self-test:   (%s)\n", corrupted.first_error.c_str());
  const load_result cut = run_against(misbehaviour::close_early);
  check(cut.errors > 0, "a server that hangs up early: an error");
  std::printf("self-test:   (%s)\n", cut.first_error.c_str());

  std::printf("self-test: %s\n", failures == 0 ? "passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_options(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  const rlim_t nofile = raise_nofile_limit();
  if (o.self_test) {
    return self_test();
  }
  // Each connection takes a descriptor; keep a few for epoll, stdio and the threads.
  const auto needed = static_cast<rlim_t>(o.conns + 16 + 2 * o.threads);
  if (nofile != RLIM_INFINITY && needed > nofile) {
    usage_error(formatted("--conns %ld needs about %llu descriptors; RLIMIT_NOFILE allows %llu",
                          o.conns, static_cast<unsigned long long>(needed),
                          static_cast<unsigned long long>(nofile)));
  }
  const address a = resolve(o);
  const tape t;
  error_log errors;
  const load_result r = run_load(o, a, t, errors);
  if (!o.idle) {
    print_result(o, a, r);
  }
  return r.errors == 0 ? 0 : 1;
}
