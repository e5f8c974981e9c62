// udp_load: a UDP echo load generator. N connected client sockets on one thread, each keeping K
// datagrams in flight, for S seconds; every reply is checked against what was sent (the payload
// carries the client and sequence number). Prints one line:
//   datagrams=<echoed> seconds=<s> rate=<datagrams/s> lost=<never answered> bad=<wrong bytes>
// Exit status 1 on a wrong byte or a socket error; lost datagrams are counted, not fatal (UDP).
//   udp_load --port P [--host 127.0.0.1] [--clients 10] [--pipeline 1] [--size 64]
//            [--seconds 3]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct client {
  int fd = -1;
  std::uint64_t next_seq = 0;  // next to send
  std::uint64_t expected = 0;  // next reply expected (replies may be lost, never reordered
                               // on loopback; a gap counts the skipped ones as lost)
  std::uint64_t in_flight = 0;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "udp_load: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

void fill(std::vector<char>& buf, std::uint32_t id, std::uint64_t seq) {
  std::memcpy(buf.data(), &id, sizeof id);
  std::memcpy(buf.data() + 4, &seq, sizeof seq);
  for (std::size_t i = 12; i < buf.size(); ++i) {
    buf[i] = static_cast<char>(seq + i);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  int clients = 10;
  int pipeline = 1;
  std::size_t size = 64;
  double seconds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--host") {
      host = value;
    } else if (flag == "--port") {
      port = std::atoi(value);
    } else if (flag == "--clients") {
      clients = std::atoi(value);
    } else if (flag == "--pipeline") {
      pipeline = std::atoi(value);
    } else if (flag == "--size") {
      size = std::strtoul(value, nullptr, 10);
    } else if (flag == "--seconds") {
      seconds = std::atof(value);
    } else {
      std::fprintf(stderr, "udp_load: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (port <= 0 || clients < 1 || pipeline < 1 || size < 12 || size > 65507 || seconds <= 0) {
    std::fprintf(stderr,
                 "usage: udp_load --port P [--host H] [--clients N] [--pipeline K] "
                 "[--size 12..65507] [--seconds S]\n");
    return 2;
  }
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &server.sin_addr) != 1) {
    std::fprintf(stderr, "udp_load: bad IPv4 host %s\n", host.c_str());
    return 2;
  }
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<client> cs(static_cast<std::size_t>(clients));
  std::vector<char> out(size);
  std::vector<char> in(65536);
  std::vector<char> expect(size);
  for (std::size_t i = 0; i < cs.size(); ++i) {
    cs[i].fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cs[i].fd < 0 ||
        ::connect(cs[i].fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0) {
      die("socket/connect");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  std::uint64_t echoed = 0;
  std::uint64_t lost = 0;
  std::uint64_t bad = 0;
  const auto send_one = [&](std::size_t i) {
    client& c = cs[i];
    fill(out, static_cast<std::uint32_t>(i), c.next_seq);
    if (::send(c.fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size())) {
      ++c.next_seq;
      ++c.in_flight;
    }
  };
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  for (std::size_t i = 0; i < cs.size(); ++i) {
    for (int k = 0; k < pipeline; ++k) {
      send_one(i);
    }
  }
  std::array<epoll_event, 256> events{};
  auto last_progress = start;
  while (std::chrono::steady_clock::now() < deadline) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n == 0 &&
        std::chrono::steady_clock::now() - last_progress > std::chrono::milliseconds(200)) {
      // Nothing for 200 ms: what is in flight is lost. Count it and start those clients again.
      for (std::size_t i = 0; i < cs.size(); ++i) {
        lost += cs[i].in_flight;
        cs[i].expected = cs[i].next_seq;
        cs[i].in_flight = 0;
        for (int k = 0; k < pipeline; ++k) {
          send_one(i);
        }
      }
      last_progress = std::chrono::steady_clock::now();
    }
    for (int e = 0; e < n; ++e) {
      const std::size_t i = events[static_cast<std::size_t>(e)].data.u64;
      client& c = cs[i];
      for (;;) {
        const ssize_t r = ::recv(c.fd, in.data(), in.size(), 0);
        if (r < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED) {
            die("recv");
          }
          break;
        }
        std::uint64_t seq = 0;
        std::memcpy(&seq, in.data() + 4, sizeof seq);
        fill(expect, static_cast<std::uint32_t>(i), seq);
        if (static_cast<std::size_t>(r) != size ||
            std::memcmp(in.data(), expect.data(), size) != 0 || seq < c.expected ||
            seq >= c.next_seq) {
          ++bad;
          continue;
        }
        lost += seq - c.expected;
        c.in_flight -= seq - c.expected + 1;
        c.expected = seq + 1;
        ++echoed;
        last_progress = std::chrono::steady_clock::now();
        send_one(i);
      }
    }
  }
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("datagrams=%llu seconds=%.3f rate=%.0f lost=%llu bad=%llu\n",
              static_cast<unsigned long long>(echoed), took, static_cast<double>(echoed) / took,
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(bad));
  for (const client& c : cs) {
    ::close(c.fd);
  }
  ::close(ep);
  return bad == 0 ? 0 : 1;
}
