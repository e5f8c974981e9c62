// echo_server: writes back every byte it receives, over TCP, unix sockets, UDP, TLS and KCP
// (one class for all of them). The smallest actnet server, and the one the perf harness measures.
#include <actnet/actors/connection.hpp>
#include <array>
#include <cstring>

#include "sample_main.hpp"

namespace {

class echo_connection final : public actnet::connection {
  void on_data() override {
    // Zero-copy views of everything received (two spans when it wraps in the ring), written
    // back in one system call; whatever the socket does not take is buffered and sent later.
    (void)write(next_all());
  }
};

constexpr std::string_view usage =
    R"(usage: echo_server [--listen URL]... [--loops N] [--backend B] [--lb STRATEGY] [--cpus LIST] [--et]
                   [--reuseport]
  --listen URL   tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT, udp://HOST:PORT (each
                 datagram echoed to its sender), unix://PATH or unix://@NAME, tls://HOST:PORT
                 (with --tls-cert and --tls-key), tls+unix://PATH or kcp://HOST:PORT (a KCP
                 conversation per peer and conversation id; see --kcp-mode) (repeatable,
                 mixed kinds welcome; default tcp://127.0.0.1:7000; port 0 picks a free port)
  --loops N      loop threads (0 = one per hardware thread; default 0)
  --backend B    epoll (default), io_uring or automatic
  --lb STRATEGY  which loop gets each connection: round_robin (default), source_addr_hash
                 (one loop per client IP) or least_connections
  --cpus LIST    pin loop i to the i-th CPU of LIST (e.g. 0,1; round and round)
  --busy-poll N  microseconds a loop polls before it sleeps (0, the default: off)
  --et           edge-triggered epoll
  --reuseport    one SO_REUSEPORT listener per loop instead of one accepting loop
Prints "listening on URL" per listener; SIGINT or SIGTERM stops it.
)";

}  // namespace

int main(int argc, char** argv) {
  bool edge = false;
  bool reuse_port = false;
  auto flags =
      actnet::samples::parse_flags(argc, argv, usage, [&](std::string_view f, const char*) {
        if (f == "--et") {
          edge = true;
          return 1;
        }
        if (f == "--reuseport") {
          reuse_port = true;
          return 1;
        }
        return 0;
      });
  flags.options.edge_triggered = edge;
  flags.options.reuse_port = reuse_port;
  return actnet::samples::serve<echo_connection>(flags);
}
