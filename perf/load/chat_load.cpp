// chat_load: a load for samples/chat. Connects `clients` clients, names client k "ck" (/nick),
// then runs rounds until the duration ends: in each, every client sends `private` lines
// "/msg c(k+1) ..." (each a lookup in the server's name directory and a message to another
// connection) and `broadcast` lines to everyone, in one write, and then reads what it must get:
// the private lines of client k-1 and the broadcasts of every other client. Every line is
// checked (its sender and its kind); the rate is lines delivered a second.
//   chat_load --port P [--host H] [--clients N] [--private N] [--broadcast N] [--duration S]
//             [--json]
// Any failure (a refused connection, a wrong or missing line, a timeout) is named and makes
// the exit status 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  int clients = 20;
  int private_lines = 16;
  int broadcast_lines = 1;
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
               "chat_load: %s\nusage: chat_load --port P [--host H] [--clients N] [--private N] "
               "[--broadcast N] [--duration S] [--json]\n",
               why);
  std::exit(2);
}

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "chat_load: %s\n", why.c_str());
  std::exit(1);
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
    } else if (flag == "--clients") {
      o.clients = std::atoi(value);
    } else if (flag == "--private") {
      o.private_lines = std::atoi(value);
    } else if (flag == "--broadcast") {
      o.broadcast_lines = std::atoi(value);
    } else if (flag == "--duration") {
      o.duration_s = std::atof(value);
    } else {
      usage("unknown flag");
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.clients < 2 || o.clients > 1000 || o.private_lines < 0 ||
      o.private_lines > 1000 || o.broadcast_lines < 0 || o.broadcast_lines > 100 ||
      o.private_lines + o.broadcast_lines == 0 || o.duration_s <= 0 || o.duration_s > 600) {
    usage("a value is out of range");
  }
  return o;
}

// One client: a blocking socket (10 s receive timeout) and what it has read past a line.
class client {
 public:
  client(const sockaddr_in& to, int k) : name_("c" + std::to_string(k)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      fail(std::string("socket: ") + std::strerror(errno));
    }
    const int one = 1;
    (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const timeval limit{10, 0};
    (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {  // NOLINT
      fail(std::string("connect: ") + std::strerror(errno));
    }
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  client(client&& other) noexcept
      : fd_(other.fd_), name_(std::move(other.name_)), in_(std::move(other.in_)) {
    other.fd_ = -1;
  }
  client& operator=(client&&) = delete;
  ~client() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  void send(const std::string& bytes) const {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        fail(name_ + ": send: " + std::strerror(errno));
      }
      sent += static_cast<std::size_t>(n);
    }
  }

  // The next line, without its "\n".
  std::string line() {
    for (;;) {
      if (const std::size_t end = in_.find('\n', scanned_); end != std::string::npos) {
        std::string l = in_.substr(0, end);
        in_.erase(0, end + 1);
        scanned_ = 0;
        return l;
      }
      scanned_ = in_.size();
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        fail(name_ + ": " + (n == 0 ? std::string("the server closed") : std::strerror(errno)));
      }
      in_.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string name_;
  std::string in_;
  std::size_t scanned_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (::inet_pton(AF_INET, o.host.c_str(), &to.sin_addr) != 1) {
    usage("--host must be an IPv4 literal");
  }
  const auto n = static_cast<std::size_t>(o.clients);
  std::vector<client> clients;
  clients.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    clients.emplace_back(to, static_cast<int>(k));
    (void)clients.back().line();  // "* welcome, you are guest..."
  }
  for (client& c : clients) {
    c.send("/nick " + c.name() + "\n");
    if (const std::string l = c.line(); l != "* you are now " + c.name()) {
      fail(c.name() + ": /nick answered \"" + l + "\"");
    }
  }
  // Each round's lines, made once: client k's private lines to k+1, then its broadcasts.
  std::vector<std::string> sends(n);
  for (std::size_t k = 0; k < n; ++k) {
    for (int i = 0; i < o.private_lines; ++i) {
      sends[k] += "/msg " + clients[(k + 1) % n].name() + " p\n";
    }
    for (int i = 0; i < o.broadcast_lines; ++i) {
      sends[k] += "b\n";
    }
  }
  const std::size_t per_client = static_cast<std::size_t>(o.private_lines) +
                                 static_cast<std::size_t>(o.broadcast_lines) * (n - 1);
  std::uint64_t delivered = 0;
  std::uint64_t rounds = 0;
  const double began = now_s();
  const double until = began + o.duration_s;
  while (now_s() < until) {
    for (std::size_t k = 0; k < n; ++k) {
      clients[k].send(sends[k]);
    }
    for (std::size_t k = 0; k < n; ++k) {
      const std::string from = clients[(k + n - 1) % n].name() + " (private): p";
      std::size_t privates = 0;
      for (std::size_t i = 0; i < per_client; ++i) {
        const std::string l = clients[k].line();
        if (l == from) {
          ++privates;
        } else if (l.size() < 4 || l.compare(l.size() - 3, 3, ": b") != 0 ||
                   l.starts_with(clients[k].name() + ":")) {
          fail(clients[k].name() + ": an unexpected line \"" + l + "\"");
        }
      }
      if (privates != static_cast<std::size_t>(o.private_lines)) {
        fail(clients[k].name() + ": " + std::to_string(privates) +
             " private lines in a round, not " + std::to_string(o.private_lines));
      }
    }
    delivered += per_client * n;
    ++rounds;
  }
  const double took = now_s() - began;
  const double rate = static_cast<double>(delivered) / took;
  if (o.json) {
    std::printf("{\"lines\":%llu,\"rounds\":%llu,\"seconds\":%.3f,\"lines_per_s\":%.0f}\n",
                static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(rounds),
                took, rate);
  } else {
    std::printf("lines %llu in %llu rounds, %.3f s: %.0f lines/s\n",
                static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(rounds),
                took, rate);
  }
  return 0;
}
