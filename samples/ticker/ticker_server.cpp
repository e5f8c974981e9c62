// ticker_server: pushes the time to every connection once a second (engine::on_tick), the way
// a game or market-data server pushes state. Each loop keeps the list of its own connections,
// touched only on its thread, so a tick is one message per loop and no locks.
#include <actnet/actors/connection.hpp>
#include <actnet/actors/engine.hpp>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "sample_main.hpp"

namespace {

class ticker_connection;

/// Per loop: its open connections (index: the loop's). Each list is touched by its loop only.
using registry = std::vector<std::vector<ticker_connection*>>;

class ticker_connection final : public actnet::connection {
 public:
  explicit ticker_connection(std::shared_ptr<registry> r) : registry_(std::move(r)) {}
  void on_open() override {
    position_ = mine().size();
    mine().push_back(this);
  }
  void on_data() override { (void)next_all(); }  // it talks; nobody listens
  void on_close(std::error_code /*reason*/) override {
    // Swap with the last and pop: O(1) however many connections the loop holds.
    std::vector<ticker_connection*>& list = mine();
    list[position_] = list.back();
    list[position_]->position_ = position_;
    list.pop_back();
  }

 private:
  std::vector<ticker_connection*>& mine() { return (*registry_)[loop().index()]; }
  std::shared_ptr<registry> registry_;
  std::size_t position_ = 0;
};

/// "2026-11-21T04:50:01.123Z\n": UTC, milliseconds.
std::string now_line() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  std::array<char, 40> text{};
  const std::size_t n = std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text.data() + n, text.size() - n, ".%03dZ\n", static_cast<int>(ms.count()));
  return text.data();
}

constexpr std::string_view usage =
    R"(usage: ticker_server [--listen URL]... [--loops N] [--backend B] [--lb STRATEGY] [--cpus LIST]
                     [--interval-ms MS]
  --listen URL       tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT or unix://PATH (repeatable;
                     default tcp://127.0.0.1:7000; port 0 picks a free port)
  --loops N          loop threads (0 = one per hardware thread; default 0)
  --backend B        epoll (default), io_uring or automatic
  --lb STRATEGY      round_robin (default), source_addr_hash or least_connections
  --cpus LIST        pin loop i to the i-th CPU of LIST (e.g. 0,1; round and round)
  --busy-poll N      microseconds a loop polls before it sleeps (0, the default: off)
  --interval-ms MS   time between pushes (default 1000)
Every connection receives the UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ\n" once per interval.
Prints "listening on URL" per listener; SIGINT or SIGTERM stops it.
)";

}  // namespace

int main(int argc, char** argv) {
  long interval_ms = 1000;
  auto flags =
      actnet::samples::parse_flags(argc, argv, usage, [&](std::string_view f, const char* value) {
        if (f == "--interval-ms" && value != nullptr) {
          interval_ms = std::strtol(value, nullptr, 10);
          return 2;
        }
        return 0;
      });
  if (interval_ms < 1) {
    std::fprintf(stderr, "--interval-ms must be at least 1\n");
    return 2;
  }
  auto connections = std::make_shared<registry>();
  return actnet::samples::serve<ticker_connection>(
      flags,
      [&](actnet::engine& e) {
        connections->resize(e.loop_count());
        e.on_tick([connections, interval_ms](actnet::engine& self) {
          const std::string line = now_line();
          // One message per loop; each writes to its own connections.
          for (std::size_t i = 0; i < self.loop_count(); ++i) {
            self.loop(i).post([connections, line](actnet::event_loop& loop) {
              for (ticker_connection* c : (*connections)[loop.index()]) {
                (void)c->write(line);
              }
            });
          }
          return std::chrono::milliseconds(interval_ms);
        });
      },
      connections);
}
