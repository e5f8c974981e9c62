// A UDP relay that loses, duplicates and reorders datagrams: the test shim in the datagram path
// of KCP's loss tests (tests/actors/kcp_loss_test.cpp) and, as tests/tools/lossy_relay, of
// perf/kcp_echo's runs at a loss rate. This kernel has no netem, so the impairment is done here.
//
// Clients send to the relay's port on 127.0.0.1; it sends each client's datagrams on to the
// server from a socket of that client's own (so the server tells clients apart, as it would
// without the relay) and the server's answers back to that client. On the way, each direction on
// its own and from a seeded generator, it drops `loss` of the datagrams, sends `duplicate` of
// them twice, and holds `reorder` of them back until the next datagram of that direction has
// gone (or 2 ms have passed). `blackhole()` drops everything from then on: a peer that vanishes.
// One thread; IPv4 loopback only; at most 4096 clients (later ones are dropped).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace actnet::test {

/// What the relay does to datagrams, as fractions of them (0 to 1), each direction on its own.
struct impairment {
  double loss = 0;
  double duplicate = 0;
  double reorder = 0;
  std::uint64_t seed = 1;
};

/// What the relay did, both directions together.
struct relay_counts {
  std::uint64_t relayed = 0;     // datagrams that came in
  std::uint64_t dropped = 0;     // of them, not sent on
  std::uint64_t duplicated = 0;  // sent on twice
  std::uint64_t reordered = 0;   // held back behind a later one
};

class lossy_relay {
 public:
  /// Relays to 127.0.0.1:`server_port`; listens on a free port of 127.0.0.1 (port()).
  lossy_relay(std::uint16_t server_port, impairment how) : how_(how), random_(how.seed) {
    server_.sin_family = AF_INET;
    server_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server_.sin_port = htons(server_port);
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    front_ = udp_socket();
    sockaddr_in at = loopback(0);
    socklen_t len = sizeof at;
    if (epoll_ < 0 || wake_ < 0 || front_ < 0 ||
        ::bind(front_, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0 ||  // NOLINT
        ::getsockname(front_, reinterpret_cast<sockaddr*>(&at), &len) != 0) {      // NOLINT
      close_all();
      throw std::runtime_error(std::string("lossy_relay: ") + std::strerror(errno));
    }
    port_ = ntohs(at.sin_port);
    watch(wake_, wake_tag);
    watch(front_, front_tag);
    thread_ = std::thread([this] { run(); });
  }
  lossy_relay(const lossy_relay&) = delete;
  lossy_relay& operator=(const lossy_relay&) = delete;
  ~lossy_relay() {
    stop_.store(true);
    const std::uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
    thread_.join();
    close_all();
  }

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// From now on every datagram, both ways, is dropped.
  void blackhole() { blackhole_.store(true); }
  [[nodiscard]] relay_counts counts() const {
    return {relayed_.load(), dropped_.load(), duplicated_.load(), reordered_.load()};
  }

 private:
  static constexpr std::uint32_t wake_tag = 0xffffffffU;
  static constexpr std::uint32_t front_tag = 0xfffffffeU;
  static constexpr std::size_t max_clients = 4096;
  static constexpr auto hold_limit = std::chrono::milliseconds(2);
  using clock = std::chrono::steady_clock;

  // A datagram held back, and since when.
  struct held {
    std::vector<std::byte> bytes;
    clock::time_point since;
  };
  // One way of one client: the socket it leaves by, where it goes, what it holds back.
  struct way {
    int fd = -1;
    sockaddr_in to{};
    std::optional<held> back;
  };
  struct client {
    int upstream = -1;  // its socket toward the server
    way to_server;
    way to_client;
  };

  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
  }
  static int udp_socket() {
    return ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  }
  void watch(int fd, std::uint32_t tag) const {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = tag;
    (void)::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  }
  void close_all() {
    for (auto& c : clients_) {
      ::close(c->upstream);
    }
    for (const int fd : {front_, wake_, epoll_}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }
  bool chance(double p) {
    return p > 0 && std::uniform_real_distribution<double>(0, 1)(random_) < p;
  }

  // The client of a datagram that came to the front socket from `from`: found, or made with an
  // upstream socket of its own; null past max_clients.
  client* client_of(const sockaddr_in& from) {
    const std::uint64_t key = (std::uint64_t{from.sin_addr.s_addr} << 16) | from.sin_port;
    if (const auto found = by_address_.find(key); found != by_address_.end()) {
      return clients_[found->second].get();
    }
    if (clients_.size() >= max_clients) {
      return nullptr;
    }
    const int up = udp_socket();
    if (up < 0) {
      return nullptr;
    }
    auto c = std::make_unique<client>();
    c->upstream = up;
    c->to_server = {up, server_, {}};
    c->to_client = {front_, from, {}};
    watch(up, static_cast<std::uint32_t>(clients_.size()));
    by_address_.emplace(key, clients_.size());
    clients_.push_back(std::move(c));
    return clients_.back().get();
  }

  static void send_on(const way& w, const std::byte* data, std::size_t n) {
    (void)::sendto(w.fd, data, n, 0, reinterpret_cast<const sockaddr*>(&w.to),  // NOLINT
                   sizeof w.to);
  }
  // One datagram going `w`'s way, through the impairment.
  void pass(way& w, const std::byte* data, std::size_t n) {
    relayed_.fetch_add(1, std::memory_order_relaxed);
    if (blackhole_.load(std::memory_order_relaxed) || chance(how_.loss)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!w.back && chance(how_.reorder)) {
      reordered_.fetch_add(1, std::memory_order_relaxed);
      w.back = held{std::vector<std::byte>(data, data + n), clock::now()};
      ++holding_;
      return;
    }
    send_on(w, data, n);
    if (chance(how_.duplicate)) {
      duplicated_.fetch_add(1, std::memory_order_relaxed);
      send_on(w, data, n);
    }
    release(w);
  }
  void release(way& w) {
    if (w.back) {
      send_on(w, w.back->bytes.data(), w.back->bytes.size());
      w.back.reset();
      --holding_;
    }
  }
  void release_old(clock::time_point now) {
    if (holding_ == 0) {
      return;
    }
    for (auto& c : clients_) {
      for (way* w : {&c->to_server, &c->to_client}) {
        if (w->back && now - w->back->since >= hold_limit) {
          release(*w);
        }
      }
    }
  }

  void run() {
    std::array<epoll_event, 64> events{};
    std::array<std::byte, 65536> buf{};
    while (!stop_.load()) {
      // A held datagram waits 2 ms at most: look again in 1 ms while one is held.
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                                 holding_ > 0 ? 1 : -1);
      for (int i = 0; i < n; ++i) {
        const std::uint32_t tag = events[static_cast<std::size_t>(i)].data.u32;
        if (tag == wake_tag) {
          continue;
        }
        const int fd = tag == front_tag ? front_ : clients_[tag]->upstream;
        for (;;) {  // drain the socket
          sockaddr_in from{};
          socklen_t from_len = sizeof from;
          const ssize_t got = ::recvfrom(fd, buf.data(), buf.size(), 0,
                                         reinterpret_cast<sockaddr*>(&from), &from_len);  // NOLINT
          if (got < 0) {
            break;
          }
          const auto size = static_cast<std::size_t>(got);
          if (tag == front_tag) {
            if (client* c = client_of(from); c != nullptr) {
              pass(c->to_server, buf.data(), size);
            } else {
              relayed_.fetch_add(1, std::memory_order_relaxed);
              dropped_.fetch_add(1, std::memory_order_relaxed);
            }
          } else {
            pass(clients_[tag]->to_client, buf.data(), size);
          }
        }
      }
      release_old(clock::now());
    }
  }

  impairment how_;
  std::mt19937_64 random_;
  sockaddr_in server_{};
  int epoll_ = -1;
  int wake_ = -1;
  int front_ = -1;
  std::uint16_t port_ = 0;
  std::vector<std::unique_ptr<client>> clients_;
  std::map<std::uint64_t, std::size_t> by_address_;
  std::size_t holding_ = 0;  // ways with a datagram held back
  std::atomic<bool> stop_{false};
  std::atomic<bool> blackhole_{false};
  std::atomic<std::uint64_t> relayed_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> duplicated_{0};
  std::atomic<std::uint64_t> reordered_{0};
  std::thread thread_;
};

}  // namespace actnet::test
