// raw_epoll_echo: the perf harness's baseline echo server, what a skilled engineer writes with
// bare epoll: one thread per loop (one by default), level-triggered, one read buffer per loop,
// backpressure on partial writes. With --loops N > 1 each loop has its own SO_REUSEPORT
// listener on the same port, and the kernel spreads the connections.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "peer_common.hpp"

namespace {

constexpr std::size_t read_buffer_size = 64 * 1024;

// Reads per readiness event before moving on to the next connection: the events are
// level-triggered, so whatever is left comes back on the next epoll_wait, and one flooding
// client cannot starve the rest.
constexpr int reads_per_event = 8;

using peers::die;

using peers::bound_url;
using peers::die_errno;
using peers::listen_address;
using peers::open_listener;
using peers::parse_listen;

class echo_server {
 public:
  echo_server(int listen_fd, bool is_tcp, int signal_fd)
      : listen_fd_(listen_fd), signal_fd_(signal_fd), is_tcp_(is_tcp) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      die_errno("epoll_create1");
    }
    watch(listen_fd_, EPOLLIN, EPOLL_CTL_ADD);
    watch(signal_fd_, EPOLLIN, EPOLL_CTL_ADD);
    // Held only to be given up when accept runs out of descriptors: see accept_all.
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  ~echo_server() {
    for (std::size_t fd = 0; fd < connections_.size(); ++fd) {
      if (connections_[fd].open) {
        ::close(static_cast<int>(fd));
      }
    }
    ::close(epoll_fd_);
    if (spare_fd_ >= 0) {
      ::close(spare_fd_);
    }
  }

  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;

  // Runs until SIGINT or SIGTERM.
  void run() {
    std::array<epoll_event, 256> events{};
    for (;;) {
      const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        die_errno("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          accept_all();
        } else if (fd == signal_fd_) {
          return;
        } else {
          on_event(fd, events[i].events);
        }
      }
    }
  }

 private:
  struct connection {
    bool open = false;
    bool draining = false;      // reading paused until `pending` is written
    std::vector<char> pending;  // the part of an echo the socket did not take
  };

  void watch(int fd, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, op, fd, &ev) != 0) {
      die_errno("epoll_ctl");
    }
  }

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        add_connection(fd);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
        // Out of descriptors, the pending connection would keep the level-triggered listener
        // ready forever: free the spare, accept and drop the connection, take the spare back.
        ::close(spare_fd_);
        const int dropped = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (dropped >= 0) {
          ::close(dropped);
        }
        spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        std::fprintf(stderr, "raw_epoll_echo: accept4: %s\n", std::strerror(errno));
      }
      return;
    }
  }

  void add_connection(int fd) {
    if (is_tcp_) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    const auto slot = static_cast<std::size_t>(fd);
    if (slot >= connections_.size()) {
      connections_.resize(slot + 1);
    }
    connections_[slot].open = true;
    watch(fd, EPOLLIN, EPOLL_CTL_ADD);
  }

  void close_connection(int fd) {
    connection& c = connections_[static_cast<std::size_t>(fd)];
    c.open = false;
    c.draining = false;
    std::vector<char>().swap(c.pending);
    ::close(fd);  // also leaves the epoll set
  }

  void on_event(int fd, std::uint32_t events) {
    connection& c = connections_[static_cast<std::size_t>(fd)];
    if (!c.open) {
      return;  // closed earlier in this batch of events; the number may not be ours any more
    }
    if (c.draining) {
      drain(fd, c, events);
    } else {
      echo(fd, c);
    }
  }

  // Reads and writes straight back; a partial write parks the rest and pauses reading, so a
  // client that does not read cannot make the server buffer without bound.
  void echo(int fd, connection& c) {
    for (int r = 0; r < reads_per_event; ++r) {
      const ssize_t n = ::read(fd, buffer_.data(), buffer_.size());
      if (n == 0) {
        close_connection(fd);
        return;
      }
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          close_connection(fd);
        }
        return;
      }
      const ssize_t w = ::send(fd, buffer_.data(), static_cast<std::size_t>(n), MSG_NOSIGNAL);
      if (w == n) {
        if (static_cast<std::size_t>(n) < buffer_.size()) {
          return;  // the socket is very likely empty: skip the read that would say EAGAIN
        }
        continue;
      }
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        close_connection(fd);
        return;
      }
      const std::size_t written = w < 0 ? 0 : static_cast<std::size_t>(w);
      c.pending.assign(buffer_.begin() + static_cast<std::ptrdiff_t>(written), buffer_.begin() + n);
      c.draining = true;
      watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
      return;
    }
  }

  void drain(int fd, connection& c, std::uint32_t events) {
    const ssize_t w = ::send(fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      close_connection(fd);
      return;
    }
    if (w <= 0) {
      // Hung up with the rest unwritable: the level-triggered EPOLLHUP would repeat forever.
      if ((events & (EPOLLHUP | EPOLLERR)) != 0) {
        close_connection(fd);
      }
      return;
    }
    const auto written = static_cast<std::size_t>(w);
    if (written < c.pending.size()) {
      c.pending.erase(c.pending.begin(), c.pending.begin() + static_cast<std::ptrdiff_t>(written));
      return;
    }
    // Given back rather than cleared: an idle connection should cost no buffer.
    std::vector<char>().swap(c.pending);
    c.draining = false;
    watch(fd, EPOLLIN, EPOLL_CTL_MOD);
  }

  int listen_fd_;
  int signal_fd_;
  bool is_tcp_;
  int epoll_fd_ = -1;
  int spare_fd_ = -1;
  std::vector<connection> connections_;  // indexed by descriptor
  std::array<char, read_buffer_size> buffer_{};
};

}  // namespace

constexpr const char* usage =
    "usage: raw_epoll_echo --listen tcp://HOST:PORT | unix://PATH [--loops N]\n";

int main(int argc, char** argv) {
  const auto [url, loops] = peers::parse_args(argc, argv, usage);
  peers::raise_nofile_limit();

  // Blocked before anything else, so the signals wait in the signalfd instead of killing us.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    die_errno("sigprocmask");
  }
  const int signal_fd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    die_errno("signalfd");
  }

  listen_address a = parse_listen(url);
  if (loops > 1 && !a.is_tcp) {
    die("--loops above 1 needs a tcp:// address (one SO_REUSEPORT listener per loop)");
  }
  std::vector<int> listeners{open_listener(a, loops > 1)};
  const std::string bound = bound_url(listeners[0], a);
  if (loops > 1) {
    // The others bind the port the first one got (port 0 asks the kernel for one).
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(listeners[0], reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      die_errno("getsockname");
    }
    std::memcpy(&a.storage, &ss, len);
    a.length = len;
    while (static_cast<long>(listeners.size()) < loops) {
      listeners.push_back(open_listener(a, true));
    }
  }
  std::printf("listening on %s\n", bound.c_str());
  std::fflush(stdout);
  {
    // Every loop watches the signalfd: a signal makes all of them return.
    std::vector<std::thread> others;
    for (std::size_t i = 1; i < listeners.size(); ++i) {
      others.emplace_back([&, i] {
        echo_server server(listeners[i], a.is_tcp, signal_fd);
        server.run();
      });
    }
    {
      echo_server server(listeners[0], a.is_tcp, signal_fd);
      server.run();
    }
    for (std::thread& t : others) {
      t.join();
    }
  }
  for (const int fd : listeners) {
    ::close(fd);
  }
  ::close(signal_fd);
  if (!a.is_tcp) {
    ::unlink(a.unix_path.c_str());
  }
  return 0;
}
