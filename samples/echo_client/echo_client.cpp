// echo_client: drives an echo server with N connections, each sending M messages of a given size
// (P in flight at a time), and checks every byte that comes back. The connections are actnet
// connection actors on an engine with no listener, made with engine::dial: the same classes
// serve both sides. Prints a summary (messages a second, round-trip percentiles) and exits non-zero
// on any wrong byte, early close or failed connection.
#include <actnet/actors/connection.hpp>
#include <actnet/actors/engine.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "../sample_main.hpp"

namespace {

using namespace std::chrono_literals;

struct settings {
  std::string connect = "tcp://127.0.0.1:7000";
  std::size_t conns = 10;
  std::size_t messages = 1000;
  std::size_t size = 64;
  std::size_t pipeline = 1;
  std::size_t loops = 1;
  actnet::io_backend backend = actnet::io_backend::epoll;
  std::chrono::milliseconds timeout = 60s;
  // --tls, or a tls:// url: the dials' TLS settings (the server's certificate checked).
  std::optional<actnet::tls_options> tls;
  // --kcp-mode, for a kcp:// url.
  std::optional<actnet::kcp_options> kcp;
};

/// Round-trip times (a message's send to the last byte of its echo), in nanoseconds, in
/// log-linear buckets: exact below 128 ns, then 128 buckets per power of two (within 0.8%).
class latency_histogram {
 public:
  void add(std::uint64_t ns) noexcept {
    ++counts_[index(ns)];
    max_ = std::max(max_, ns);
  }
  void merge(const latency_histogram& other) noexcept {
    for (std::size_t i = 0; i < buckets; ++i) {
      counts_[i] += other.counts_[i];
    }
    max_ = std::max(max_, other.max_);
  }
  /// The upper edge of the bucket holding the q-quantile (0 < q <= 1); 0 when empty.
  [[nodiscard]] std::uint64_t quantile(double q) const noexcept {
    std::uint64_t total = 0;
    for (const std::uint64_t c : counts_) {
      total += c;
    }
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total) + 0.999999);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets; ++i) {
      seen += counts_[i];
      if (seen >= rank && seen > 0) {
        return std::min(upper_edge(i), max_);
      }
    }
    return max_;
  }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }

 private:
  static constexpr unsigned sub_bits = 7;
  static constexpr std::size_t buckets = (64 - sub_bits + 1) << sub_bits;
  static std::size_t index(std::uint64_t ns) noexcept {
    if (ns < (1U << sub_bits)) {
      return static_cast<std::size_t>(ns);
    }
    const unsigned shift = static_cast<unsigned>(std::bit_width(ns)) - 1 - sub_bits;
    return ((shift + 1) << sub_bits) + ((ns >> shift) & ((1U << sub_bits) - 1));
  }
  static std::uint64_t upper_edge(std::size_t i) noexcept {
    if (i < (1U << sub_bits)) {
      return i;
    }
    const std::size_t shift = (i >> sub_bits) - 1;
    const std::uint64_t low = ((1ULL << sub_bits) | (i & ((1U << sub_bits) - 1))) << shift;
    return low + (1ULL << shift) - 1;
  }
  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t max_ = 0;
};

/// What every connection reports to; the run ends when each has finished or failed.
class run_state {
 public:
  run_state(const settings& s, actnet::engine& e) : settings_(s), engine_(e) {}

  const settings& config() const noexcept { return settings_; }
  std::size_t next_id() noexcept { return ids_.fetch_add(1); }
  void echoed(std::size_t n) noexcept { echoed_.fetch_add(n, std::memory_order_relaxed); }

  /// Once per connection, from its loop (or a failed dial's callback).
  void finished(const std::string& error) {
    {
      const std::lock_guard lock(mutex_);
      if (!error.empty()) {
        if (errors_.size() < 10) {
          errors_.push_back(error);
        }
        ++failed_;
      }
      if (++done_ < settings_.conns) {
        return;
      }
    }
    all_done_.notify_all();
    engine_.stop();
  }
  /// The watchdog: stops the run after the timeout; true when it had to.
  bool wait_or_time_out() {
    std::unique_lock lock(mutex_);
    if (all_done_.wait_for(lock, settings_.timeout,
                           [this] { return done_ >= settings_.conns || stopped_; })) {
      return false;
    }
    lock.unlock();
    engine_.stop();
    return true;
  }
  void stopping() {  // run() returned: release the watchdog
    {
      const std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    all_done_.notify_all();
  }

  [[nodiscard]] std::size_t failed() {
    const std::lock_guard lock(mutex_);
    return failed_ + (settings_.conns - done_);  // unfinished ones failed too
  }
  [[nodiscard]] std::vector<std::string> errors() {
    const std::lock_guard lock(mutex_);
    return errors_;
  }
  [[nodiscard]] std::uint64_t echoed() const noexcept { return echoed_.load(); }

  /// The calling loop thread's histogram (one per loop: connections of a loop share it).
  latency_histogram& latencies() {
    thread_local latency_histogram* mine = nullptr;
    if (mine == nullptr) {
      const std::lock_guard lock(mutex_);
      mine = &histograms_.emplace_back();
    }
    return *mine;
  }
  /// Every loop's, merged: after the run.
  [[nodiscard]] latency_histogram all_latencies() {
    const std::lock_guard lock(mutex_);
    latency_histogram all;
    for (const latency_histogram& h : histograms_) {
      all.merge(h);
    }
    return all;
  }

 private:
  const settings& settings_;
  actnet::engine& engine_;
  std::atomic<std::size_t> ids_{0};
  std::atomic<std::uint64_t> echoed_{0};
  std::mutex mutex_;
  std::condition_variable all_done_;
  std::size_t done_ = 0;
  std::size_t failed_ = 0;
  bool stopped_ = false;
  std::vector<std::string> errors_;
  std::deque<latency_histogram> histograms_;  // (a deque: each stays where it is)
};

/// Byte j of message k on connection id: a pattern that differs between connections, messages
/// and positions, so a byte from the wrong place is caught.
std::byte pattern(std::size_t id, std::size_t k, std::size_t j) noexcept {
  return static_cast<std::byte>((id * 131 + k * 31 + j * 7 + (j >> 8)) & 0xff);
}

class echo_probe final : public actnet::connection {
 public:
  explicit echo_probe(run_state* run) : run_(run), cfg_(run->config()) {}

  void on_open() override {
    id_ = run_->next_id();
    message_.resize(cfg_.size);
    sent_at_.resize(cfg_.pipeline);
    latencies_ = &run_->latencies();
    while (sent_ < cfg_.messages && sent_ < cfg_.pipeline) {
      send_next();
    }
    if (cfg_.messages == 0) {
      complete_ = true;
      close();
    }
  }

  void on_data() override {
    while (received_ < sent_ && inbound_buffered() >= cfg_.size) {
      const actnet::result<actnet::byte_views> got = next(cfg_.size);
      std::size_t j = 0;
      for (const auto part : {got->first, got->second}) {
        for (const std::byte b : part) {
          if (b != pattern(id_, received_, j)) {
            error_ = "connection " + std::to_string(id_) + ": message " +
                     std::to_string(received_) + " byte " + std::to_string(j) + " is wrong";
            close();
            return;
          }
          ++j;
        }
      }
      latencies_->add(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                               sent_at_[received_ % cfg_.pipeline])
              .count()));
      ++received_;
      run_->echoed(1);
      if (sent_ < cfg_.messages) {
        send_next();
      } else if (received_ == cfg_.messages) {
        complete_ = true;
        close();
        return;
      }
    }
    if (received_ == sent_ && inbound_buffered() > 0) {
      error_ = "connection " + std::to_string(id_) + ": bytes nobody sent came back";
      close();
    }
  }

  void on_close(std::error_code reason) override {
    if (error_.empty() && !complete_) {
      error_ = "connection " + std::to_string(id_) + " closed after " + std::to_string(received_) +
               " of " + std::to_string(cfg_.messages) + " messages: " + reason.message();
    }
    run_->finished(error_);
  }

 private:
  void send_next() {
    for (std::size_t j = 0; j < cfg_.size; ++j) {
      message_[j] = pattern(id_, sent_, j);
    }
    sent_at_[sent_ % cfg_.pipeline] = std::chrono::steady_clock::now();
    ++sent_;
    if (const std::error_code ec = write(message_); ec) {
      error_ = "connection " + std::to_string(id_) + ": write failed: " + ec.message();
      close();
    }
  }

  run_state* run_;
  const settings& cfg_;
  std::size_t id_ = 0;
  std::size_t sent_ = 0;
  std::size_t received_ = 0;
  bool complete_ = false;
  std::string error_;
  std::vector<std::byte> message_;
  std::vector<std::chrono::steady_clock::time_point> sent_at_;  // of the messages in flight
  latency_histogram* latencies_ = nullptr;                      // this loop's
};

constexpr std::string_view usage =
    R"(usage: echo_client [--connect URL] [--conns N] [--messages M] [--size BYTES]
                   [--pipeline P] [--loops L] [--backend B] [--timeout-s T]
                   [--tls] [--tls-ca FILE] [--tls-server-name NAME] [--kcp-mode MODE]
  --connect URL    the echo server: tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT or unix://PATH,
                   tls:// tls4:// tls6:// tls+unix:// for TLS, or kcp:// kcp4:// kcp6:// for
                   KCP over UDP (default tcp://127.0.0.1:7000)
  --conns N        connections (default 10)
  --messages M     messages per connection (default 1000)
  --size BYTES     bytes per message (default 64)
  --pipeline P     messages in flight per connection (default 1)
  --loops L        client loop threads (default 1)
  --backend B      epoll (default), io_uring or automatic
  --timeout-s T    give up after T seconds (default 60)
  --tls            TLS to the server, even with a tcp:// or unix:// url
  --tls-ca FILE    the CA certificates that sign the server's (default: the system's store)
  --tls-server-name NAME  the name to check the server's certificate against and send as SNI
                   (default: the url's host)
  --kcp-mode MODE  fast or normal (the default), for a kcp:// url
Each connection sends its messages, checks every byte of every echo, and closes. Prints a
summary (messages/s, round-trip p50/p99/p99.9/max, errors); exits 1 on any wrong byte, early close or failed connection.
)";

bool parse(int argc, char** argv, settings& s) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf("%.*s", static_cast<int>(usage.size()), usage.data());
      std::exit(0);
    }
    if (flag == "--tls") {
      s.tls.emplace();
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value (try --help)\n", argv[i]);
      return false;
    }
    const char* value = argv[++i];
    char* end = nullptr;
    const unsigned long long n = std::strtoull(value, &end, 10);
    const bool number = end != value && *end == '\0';
    if (flag == "--connect") {
      s.connect = value;
    } else if (flag == "--conns" && number && n > 0) {
      s.conns = n;
    } else if (flag == "--messages" && number) {
      s.messages = n;
    } else if (flag == "--size" && number && n > 0 && n <= (64U << 20)) {
      s.size = n;
    } else if (flag == "--pipeline" && number && n > 0) {
      s.pipeline = n;
    } else if (flag == "--backend") {
      s.backend = actnet::samples::backend_flag(value);
    } else if (flag == "--loops" && number && n > 0 && n <= 256) {
      s.loops = n;
    } else if (flag == "--timeout-s" && number && n > 0) {
      s.timeout = std::chrono::seconds(n);
    } else if (flag == "--tls-ca") {
      (s.tls ? *s.tls : s.tls.emplace()).ca_file = value;
    } else if (flag == "--tls-server-name") {
      (s.tls ? *s.tls : s.tls.emplace()).server_name = value;
    } else if (flag == "--kcp-mode") {
      s.kcp = actnet::samples::kcp_mode_flag(value);
    } else {
      std::fprintf(stderr, "bad or unknown flag: %s %s (try --help)\n", argv[i - 1], value);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  if (!parse(argc, argv, s)) {
    return 2;
  }
  try {
    actnet::engine_options options;
    options.loops = s.loops;
    options.backend = s.backend;
    actnet::engine e(options);
    run_state run(s, e);
    // A bad url is refused here, before the run (tls schemes are checked as their plain ones).
    (void)actnet::address::parse(actnet::samples::plain_url(s.connect));  // throws when bad
    actnet::dial_options dial;
    dial.tls = s.tls;
    if (s.connect.starts_with("kcp")) {
      dial.kcp = s.kcp;
    }
    std::chrono::steady_clock::time_point start;
    e.on_boot([&](actnet::engine& eng) {
      start = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < s.conns; ++i) {
        eng.dial<echo_probe>(
            s.connect, dial,
            [&run](actnet::result<actnet::conn_ref> r) {
              if (!r) {
                run.finished("connect failed: " + r.error().message());
              }
            },
            &run);
      }
    });
    bool timed_out = false;
    std::thread watchdog([&] { timed_out = run.wait_or_time_out(); });
    e.run();
    run.stopping();
    watchdog.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::uint64_t echoed = run.echoed();
    const std::size_t failed = run.failed();
    std::printf(
        "echo_client: %zu connections x %zu messages of %zu B to %s, pipeline %zu, %zu loop%s\n",
        s.conns, s.messages, s.size, s.connect.c_str(), s.pipeline, s.loops,
        s.loops == 1 ? "" : "s");
    std::printf(
        "%s in %.3f s: %llu messages echoed, %.0f msgs/s, %.1f MB/s each way; %zu failed "
        "connection%s\n",
        timed_out ? "timed out" : "done", seconds, static_cast<unsigned long long>(echoed),
        static_cast<double>(echoed) / seconds, static_cast<double>(echoed * s.size) / seconds / 1e6,
        failed, failed == 1 ? "" : "s");
    const latency_histogram rtt = run.all_latencies();
    std::printf(
        "round trip: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
        static_cast<double>(rtt.quantile(0.5)) / 1e3, static_cast<double>(rtt.quantile(0.99)) / 1e3,
        static_cast<double>(rtt.quantile(0.999)) / 1e3, static_cast<double>(rtt.max()) / 1e3);
    for (const std::string& error : run.errors()) {
      std::fprintf(stderr, "error: %s\n", error.c_str());
    }
    return failed == 0 && !timed_out && echoed == s.conns * s.messages ? 0 : 1;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "echo_client: %s\n", ex.what());
    return 2;
  }
}
