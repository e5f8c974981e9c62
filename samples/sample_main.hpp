// The sample contract shared by every server sample: --listen URL (repeatable), --loops N,
// --backend B, --lb STRATEGY, --cpus LIST, --busy-poll MICROSECONDS, the TLS flags, --metrics
// URL, --count-io, --stall-ms MS, --help; "listening on URL" once per listener (and "metrics on
// URL/metrics"); SIGINT/SIGTERM stop gracefully, exit 0.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <actnet/actors/engine.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace actnet::samples {

/// The inbound bytes as one view: zero-copy when they are contiguous, else (they wrap in the
/// ring, rarely) joined into `scratch`. For parsers that want a single string_view.
/// `value`, the argument of `flag`, as a whole number of at least `min`; otherwise says so,
/// naming the flag, and exits with status 2.
inline long long number_flag(std::string_view flag, const char* value, long long min) {
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(value, &end, 10);
  if (end == value || *end != '\0' || errno == ERANGE || n < min) {
    std::fprintf(stderr, "%.*s: expected a whole number, %lld or more, got %s\n",
                 static_cast<int>(flag.size()), flag.data(), min, value);
    std::exit(2);
  }
  return n;
}

inline std::string_view contiguous(const byte_views& in, std::string& scratch) {
  const std::string_view first(reinterpret_cast<const char*>(in.first.data()), in.first.size());
  if (in.second.empty()) {
    return first;
  }
  scratch.assign(first);
  scratch.append(reinterpret_cast<const char*>(in.second.data()), in.second.size());
  return scratch;
}

/// --backend's value: epoll, io_uring or automatic; otherwise says so and exits with status 2.
inline io_backend backend_flag(std::string_view value) {
  if (value == "epoll") {
    return io_backend::epoll;
  }
  if (value == "io_uring") {
    return io_backend::io_uring;
  }
  if (value != "automatic") {
    std::fprintf(stderr, "--backend: expected epoll, io_uring or automatic, got %.*s\n",
                 static_cast<int>(value.size()), value.data());
    std::exit(2);
  }
  return io_backend::automatic;
}

/// For a handler that does its work a slice at a time (a flood of pipelined requests or lines):
/// later(c) sends connection `c` a message that runs its on_data() again after the loop's other
/// work, one at a time however often it is asked; false when c's mailbox is full (then go on
/// now). `Conn` keeps the slicer as its member `slices`.
class slicer {
 public:
  template <class Conn>
  bool later(Conn& c) {
    if (!pending_) {
      pending_ = !c.ref().template tell<Conn>([](Conn& again) {
        again.slices.pending_ = false;
        again.on_data();
      });
    }
    return pending_;
  }

 private:
  bool pending_ = false;
};

/// `url` with a TLS or KCP scheme (tls, tls4, tls6, tls+unix, kcp, kcp4, kcp6) written as the
/// plain one it runs over, for checking it with address::parse before a run; other urls as
/// they are.
inline std::string plain_url(std::string url) {
  for (const auto& [secure, clear] :
       {std::pair{"tls+unix://", "unix://"}, std::pair{"tls4://", "tcp4://"},
        std::pair{"tls6://", "tcp6://"}, std::pair{"tls://", "tcp://"},
        std::pair{"kcp4://", "udp4://"}, std::pair{"kcp6://", "udp6://"},
        std::pair{"kcp://", "udp://"}}) {
    if (url.starts_with(secure)) {
      return clear + url.substr(std::string_view(secure).size());
    }
  }
  return url;
}

struct common_flags {
  std::vector<std::string> listen;
  engine_options options;
  // --tls-cert and --tls-key (with --tls-ca, --tls-client-auth): the tls:// listeners' settings.
  std::optional<tls_options> tls;
  std::string metrics;  // --metrics URL: engine::serve_metrics there
  // --kcp-mode: the kcp:// listeners' tuning (unset: kcp_options' defaults, the normal mode).
  std::optional<kcp_options> kcp;
};

/// --kcp-mode's value: KCP's normal mode (kcp_options' defaults) or its fast mode (no delay,
/// a 10 ms interval, fast resend after 2 acks, no congestion window), as kcp-go's users set
/// them; both with windows of 128 segments.
inline kcp_options kcp_mode_flag(std::string_view mode) {
  kcp_options o;
  if (mode == "fast") {
    o.nodelay = true;
    o.interval = std::chrono::milliseconds(10);
    o.fast_resend = 2;
    o.congestion_control = false;
  } else if (mode != "normal") {
    std::fprintf(stderr, "--kcp-mode: expected fast or normal, got %.*s\n",
                 static_cast<int>(mode.size()), mode.data());
    std::exit(2);
  }
  o.send_window = 128;
  o.receive_window = 128;
  return o;
}

/// The TLS flags every server sample takes, as the usage text says them.
inline constexpr std::string_view tls_usage =
    R"(  --tls-cert FILE  certificate chain (PEM) for tls:// tls4:// tls6:// tls+unix:// listeners
  --tls-key FILE   its private key (PEM); SIGHUP reads both again (engine::reload_tls)
  --tls-ca FILE    CA certificates for client certificates (with --tls-client-auth)
  --tls-client-auth MODE  none (default), optional or required
  --tls-sni NAME,CERT,KEY  a further certificate for clients asking for NAME (*.example.com
                   matches one label; repeatable)
  --tls-ciphersuites LIST  the TLS 1.3 suites, OpenSSL's syntax (TLS_AES_128_GCM_SHA256:...)
)";

/// The metrics flags every server sample takes.
inline constexpr std::string_view metrics_usage =
    R"(  --metrics URL    serve Prometheus metrics at GET /metrics on URL (tcp://, unix://, tls://)
  --count-io       count bytes and system calls in the metrics too (engine_options::count_io)
  --stall-ms MS    the stall detector's threshold (default 25; 0: off)
KCP:
  --kcp-mode MODE  fast or normal, for kcp:// kcp4:// kcp6:// listeners (default: normal)
)";

/// Parses the shared flags; `extra(flag, value_or_null)` handles a sample's own flags and
/// returns how many arguments it consumed (0: unknown). Exits on --help or a bad flag.
inline common_flags parse_flags(
    int argc, char** argv, std::string_view usage,
    const std::function<int(std::string_view, const char*)>& extra = {}) {
  common_flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (arg == "--help" || arg == "-h") {
      std::printf("%.*sTLS:\n%.*sMetrics:\n%.*s", static_cast<int>(usage.size()), usage.data(),
                  static_cast<int>(tls_usage.size()), tls_usage.data(),
                  static_cast<int>(metrics_usage.size()), metrics_usage.data());
      std::exit(0);
    }
    if (arg == "--listen" && value != nullptr) {
      f.listen.emplace_back(value);
      ++i;
    } else if (arg == "--loops" && value != nullptr) {
      f.options.loops = std::strtoul(value, nullptr, 10);
      ++i;
    } else if (arg == "--backend" && value != nullptr) {
      f.options.backend = backend_flag(value);
      ++i;
    } else if (arg == "--cpus" && value != nullptr) {
      // "0,2,3": loop i on the i-th CPU of the list (round and round).
      for (const char* p = value; *p != '\0';) {
        char* end = nullptr;
        const long cpu = std::strtol(p, &end, 10);
        if (end == p || (*end != ',' && *end != '\0')) {
          std::fprintf(stderr, "--cpus: expected a list such as 0,1, got %s\n", value);
          std::exit(2);
        }
        f.options.cpu_affinity.push_back(static_cast<int>(cpu));
        p = *end == ',' ? end + 1 : end;
      }
      ++i;
    } else if (arg == "--busy-poll" && value != nullptr) {
      // Microseconds each loop polls before it sleeps (engine_options::busy_poll).
      f.options.busy_poll = std::chrono::microseconds(number_flag(arg, value, 0));
      ++i;
    } else if (arg == "--lb" && value != nullptr) {
      const std::string_view lb = value;
      if (lb == "round_robin") {
        f.options.balancing = load_balancing::round_robin;
      } else if (lb == "source_addr_hash") {
        f.options.balancing = load_balancing::source_addr_hash;
      } else if (lb == "least_connections") {
        f.options.balancing = load_balancing::least_connections;
      } else {
        std::fprintf(stderr,
                     "--lb: expected round_robin, source_addr_hash or least_connections, got %s\n",
                     value);
        std::exit(2);
      }
      ++i;
    } else if (arg == "--metrics" && value != nullptr) {
      f.metrics = value;
      ++i;
    } else if (arg == "--kcp-mode" && value != nullptr) {
      f.kcp = kcp_mode_flag(value);
      ++i;
    } else if (arg == "--count-io") {
      f.options.count_io = true;
    } else if (arg == "--stall-ms" && value != nullptr) {
      f.options.stall_threshold = std::chrono::milliseconds(number_flag(arg, value, 0));
      ++i;
    } else if (arg == "--tls-sni" && value != nullptr) {
      // NAME,CERT,KEY: a further certificate for clients that ask for NAME.
      const std::string_view v = value;
      const std::size_t a = v.find(',');
      const std::size_t b = a == std::string_view::npos ? a : v.find(',', a + 1);
      if (b == std::string_view::npos) {
        std::fprintf(stderr, "--tls-sni: expected NAME,CERT,KEY, got %s\n", value);
        std::exit(2);
      }
      (f.tls ? *f.tls : f.tls.emplace())
          .sni.push_back({std::string(v.substr(0, a)), std::string(v.substr(a + 1, b - a - 1)),
                          std::string(v.substr(b + 1))});
      ++i;
    } else if (arg == "--tls-ciphersuites" && value != nullptr) {
      (f.tls ? *f.tls : f.tls.emplace()).ciphersuites = value;
      ++i;
    } else if ((arg == "--tls-cert" || arg == "--tls-key" || arg == "--tls-ca" ||
                arg == "--tls-client-auth") &&
               value != nullptr) {
      tls_options& t = f.tls ? *f.tls : f.tls.emplace();
      const std::string_view v = value;
      if (arg == "--tls-cert") {
        t.cert_file = value;
      } else if (arg == "--tls-key") {
        t.key_file = value;
      } else if (arg == "--tls-ca") {
        t.ca_file = value;
      } else if (v == "none" || v == "optional" || v == "required") {
        t.client_certificates = v == "none"       ? client_auth::none
                                : v == "optional" ? client_auth::optional
                                                  : client_auth::required;
      } else {
        std::fprintf(stderr, "--tls-client-auth: expected none, optional or required, got %s\n",
                     value);
        std::exit(2);
      }
      ++i;
    } else if (const int used = extra ? extra(arg, value) : 0; used > 0) {
      i += used - 1;
    } else {
      std::fprintf(stderr, "unknown or incomplete flag: %.*s (try --help)\n",
                   static_cast<int>(arg.size()), arg.data());
      std::exit(2);
    }
  }
  if (f.listen.empty()) {
    f.listen.emplace_back("tcp://127.0.0.1:7000");
  }
  return f;
}

/// Listens (connections of class Conn made with `args...`), lets `setup` add hooks to the
/// engine, prints the addresses, runs until SIGINT/SIGTERM. Returns the process exit code.
template <class Conn, class... Args>
int serve(const common_flags& flags, const std::function<void(engine&)>& setup = {}, Args... args) {
  // Block the stop signals in every thread; one thread waits for them and stops the engine.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR1);  // run() returned: the waiter may go
  sigaddset(&stop_signals, SIGHUP);   // TLS: read the certificate and key again
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  try {
    engine e(flags.options);
    if (setup) {
      setup(e);
    }
    std::vector<std::size_t> secure;  // the TLS listeners' indexes
    for (std::size_t i = 0; i < flags.listen.size(); ++i) {
      const std::string& url = flags.listen[i];
      listen_options lo;
      if (url.starts_with("tls")) {
        if (!flags.tls || flags.tls->cert_file.empty()) {
          std::fprintf(stderr, "%s needs --tls-cert and --tls-key\n", url.c_str());
          return 2;
        }
        lo.tls = flags.tls;
        secure.push_back(i);
      }
      const bool kcp = url.starts_with("kcp");
      if (kcp) {
        lo.kcp = flags.kcp;
      }
      const address bound = e.listen<Conn>(lo, url, args...);
      std::printf("listening on %s%s\n", bound.to_string().c_str(),
                  lo.tls ? " (TLS)" : (kcp ? " (KCP)" : ""));
    }
    if (!flags.metrics.empty()) {
      listen_options lo;
      if (flags.metrics.starts_with("tls")) {
        if (!flags.tls || flags.tls->cert_file.empty()) {
          std::fprintf(stderr, "--metrics %s needs --tls-cert and --tls-key\n",
                       flags.metrics.c_str());
          return 2;
        }
        lo.tls = flags.tls;
      }
      const address bound = e.serve_metrics(flags.metrics, lo);
      std::printf("metrics on %s/metrics%s\n", bound.to_string().c_str(), lo.tls ? " (TLS)" : "");
    }
    std::fflush(stdout);
    std::thread waiter([&e, &flags, &secure, stop_signals] {
      for (;;) {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        if (sig != SIGHUP) {
          break;
        }
        for (const std::size_t i : secure) {
          try {
            e.reload_tls(i, *flags.tls);
            std::printf("TLS settings reloaded for %s\n", flags.listen[i].c_str());
          } catch (const std::exception& ex) {
            std::printf("TLS reload refused (the old settings stay): %s\n", ex.what());
          }
          std::fflush(stdout);
        }
      }
      e.stop();
    });
    e.run();
    pthread_kill(waiter.native_handle(), SIGUSR1);
    waiter.join();
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "%s\n", ex.what());
    return 1;
  }
}

}  // namespace actnet::samples
