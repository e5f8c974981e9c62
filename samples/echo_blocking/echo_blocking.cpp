// echo_blocking: every chunk a connection receives waits on a simulated blocking call (a sleep)
// in the worker-pool actor group, then is echoed by an async write, in the order it came. The
// loops never block: a connection whose job is waiting still gets its other events.
#include <actnet/actors/connection.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "sample_main.hpp"

namespace {

class blocking_echo final : public actnet::connection {
 public:
  explicit blocking_echo(long delay_ms) : delay_(std::chrono::milliseconds(delay_ms)) {}
  void on_data() override {
    const actnet::byte_views data = next_all();
    std::string chunk(reinterpret_cast<const char*>(data.first.data()), data.first.size());
    chunk.append(reinterpret_cast<const char*>(data.second.data()), data.second.size());
    const std::error_code ec = offload_write([delay = delay_, chunk = std::move(chunk)] {
      std::this_thread::sleep_for(delay);  // the blocking call: a database, a disk, a service
      return chunk;
    });
    if (ec) {
      close();  // the worker queue is full: shed this connection rather than stall the loop
    }
  }

 private:
  std::chrono::milliseconds delay_;
};

constexpr std::string_view usage =
    R"(usage: echo_blocking [--listen URL]... [--loops N] [--backend B] [--lb STRATEGY] [--cpus LIST]
                     [--delay-ms D] [--workers W]
  --listen URL   tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT or unix://PATH (repeatable;
                 default tcp://127.0.0.1:7000; port 0 picks a free port)
  --loops N      loop threads (0 = one per hardware thread; default 0)
  --backend B    epoll (default), io_uring or automatic
  --lb STRATEGY  round_robin (default), source_addr_hash or least_connections
  --cpus LIST    pin loop i to the i-th CPU of LIST (e.g. 0,1; round and round)
  --busy-poll N  microseconds a loop polls before it sleeps (0, the default: off)
  --delay-ms D   how long each chunk's simulated blocking call takes (default 1)
  --workers W    worker threads (default: one per hardware thread)
Each chunk received is echoed after its blocking call, in order per connection. A connection
whose chunk finds the worker queue full is closed. Prints "listening on URL" per listener;
SIGINT or SIGTERM stops it.
)";

}  // namespace

int main(int argc, char** argv) {
  long delay_ms = 1;
  long workers = 0;
  auto flags =
      actnet::samples::parse_flags(argc, argv, usage, [&](std::string_view f, const char* value) {
        if (f == "--delay-ms" && value != nullptr) {
          delay_ms = std::strtol(value, nullptr, 10);
          return 2;
        }
        if (f == "--workers" && value != nullptr) {
          workers = std::strtol(value, nullptr, 10);
          return 2;
        }
        return 0;
      });
  if (delay_ms < 0 || workers < 0) {
    std::fprintf(stderr, "--delay-ms and --workers must not be negative\n");
    return 2;
  }
  flags.options.workers = static_cast<std::size_t>(workers);
  return actnet::samples::serve<blocking_echo>(flags, {}, delay_ms);
}
