// churn_load: connections that each live for one message. Every thread connects, sends one
// message, reads its echo back (checking each byte), closes first, and starts again, until the
// duration ends: what a server spends to accept, serve one message and close a connection.
//   churn_load --host H --port P [--threads N] [--size B] [--duration S] [--json]
// Prints the connections completed; any failure (refused, reset, short or wrong echo) is
// counted and named, and makes the exit status 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 4;
  std::size_t size = 64;
  double duration_s = 3;
  bool json = false;
};

double now_s() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "churn_load: %s\nusage: churn_load --host H --port P [--threads N] [--size B] "
               "[--duration S] [--json]\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--json") {
      o.json = true;
      continue;
    }
    if (i + 1 >= argc) {
      usage("a flag needs a value");
    }
    const char* value = argv[++i];
    if (flag == "--host") {
      o.host = value;
    } else if (flag == "--port") {
      o.port = std::atoi(value);
    } else if (flag == "--threads") {
      o.threads = std::atoi(value);
    } else if (flag == "--size") {
      o.size = static_cast<std::size_t>(std::atol(value));
    } else if (flag == "--duration") {
      o.duration_s = std::atof(value);
    } else {
      usage("unknown flag");
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.threads < 1 || o.threads > 256 || o.size < 1 ||
      o.size > 65536 || o.duration_s <= 0 || o.duration_s > 600) {
    usage("a value is out of range");
  }
  return o;
}

// One connection's life; "" when the echo came back whole and right.
std::string one_connection(const sockaddr_in& to, const std::string& message) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return std::string("socket: ") + std::strerror(errno);
  }
  std::string error;
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {  // NOLINT
    error = std::string("connect: ") + std::strerror(errno);
  } else if (::send(fd, message.data(), message.size(), MSG_NOSIGNAL) !=
             static_cast<ssize_t>(message.size())) {
    error = std::string("send: ") + std::strerror(errno);
  } else {
    std::string echo(message.size(), '\0');
    std::size_t got = 0;
    while (got < echo.size()) {
      const ssize_t n = ::recv(fd, echo.data() + got, echo.size() - got, 0);
      if (n <= 0) {
        error = n == 0 ? "the server closed before the whole echo" : std::strerror(errno);
        break;
      }
      got += static_cast<std::size_t>(n);
    }
    if (error.empty() && echo != message) {
      error = "the echo differs from the message";
    }
  }
  ::close(fd);  // this side closes first: the server reads the FIN and closes too
  return error;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (::inet_pton(AF_INET, o.host.c_str(), &to.sin_addr) != 1) {
    usage("--host must be an IPv4 literal");
  }
  std::string message(o.size, '\0');
  for (std::size_t i = 0; i < message.size(); ++i) {
    message[i] = static_cast<char>('a' + i % 26);
  }
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> failed{0};
  std::string first_error;
  std::atomic<bool> error_taken{false};
  const double until = now_s() + o.duration_s;
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&] {
      while (now_s() < until) {
        std::string error = one_connection(to, message);
        if (error.empty()) {
          done.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        failed.fetch_add(1, std::memory_order_relaxed);
        if (!error_taken.exchange(true)) {
          first_error = std::move(error);
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  if (o.json) {
    std::printf("{\"connections\":%llu,\"failed\":%llu}\n",
                static_cast<unsigned long long>(done.load()),
                static_cast<unsigned long long>(failed.load()));
  } else {
    std::printf("connections %llu, failed %llu\n", static_cast<unsigned long long>(done.load()),
                static_cast<unsigned long long>(failed.load()));
  }
  if (failed.load() != 0) {
    std::fprintf(stderr, "churn_load: %llu failed, the first: %s\n",
                 static_cast<unsigned long long>(failed.load()), first_error.c_str());
    return 1;
  }
  return 0;
}
