// lossy_relay: tests/actors/lossy_relay.hpp as a process, for perf/kcp_echo's runs at a loss
// rate (both servers behind the same impairment) and for trying a KCP peer by hand.
//
//   lossy_relay --to PORT [--loss PCT] [--duplicate PCT] [--reorder PCT] [--seed N] [--seconds S]
//
// Relays datagrams from clients on 127.0.0.1 to the server at 127.0.0.1:PORT and back, each
// direction impaired on its own: PCT percent dropped, sent twice, held back behind the next one.
// Prints "listening on 127.0.0.1:PORT", and on SIGTERM, SIGINT or after S seconds (default 600)
// "relayed N dropped D duplicated U reordered R" and exits.
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>

#include "actors/lossy_relay.hpp"

namespace {

bool percent(const char* value, double& out) {
  char* end = nullptr;
  const double v = std::strtod(value, &end);
  if (end == value || *end != '\0' || v < 0 || v > 100) {
    return false;
  }
  out = v / 100;
  return true;
}

bool whole(const char* value, unsigned long long& out) {
  char* end = nullptr;
  out = std::strtoull(value, &end, 10);
  return end != value && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  actnet::test::impairment how;
  unsigned long long to = 0;
  unsigned long long seconds = 600;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    const char* value = i + 1 < argc ? argv[++i] : "";
    bool ok = false;
    if (flag == "--to") {
      ok = whole(value, to) && to > 0 && to < 65536;
    } else if (flag == "--loss") {
      ok = percent(value, how.loss);
    } else if (flag == "--duplicate") {
      ok = percent(value, how.duplicate);
    } else if (flag == "--reorder") {
      ok = percent(value, how.reorder);
    } else if (flag == "--seed") {
      unsigned long long seed = 0;
      ok = whole(value, seed);
      how.seed = seed;
    } else if (flag == "--seconds") {
      ok = whole(value, seconds) && seconds > 0;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: lossy_relay --to PORT [--loss PCT] [--duplicate PCT] [--reorder PCT] "
                   "[--seed N] [--seconds S]\nbad or unknown: %.*s %s\n",
                   static_cast<int>(flag.size()), flag.data(), value);
      return 2;
    }
  }
  if (to == 0) {
    std::fprintf(stderr, "lossy_relay: --to PORT is required\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before the relay's thread, which inherits it
  try {
    actnet::test::lossy_relay relay(static_cast<std::uint16_t>(to), how);
    std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(relay.port()));
    std::fflush(stdout);
    const timespec limit{static_cast<time_t>(seconds), 0};
    while (sigtimedwait(&stop, nullptr, &limit) < 0 && errno == EINTR) {
    }
    const actnet::test::relay_counts c = relay.counts();
    std::printf("relayed %llu dropped %llu duplicated %llu reordered %llu\n",
                static_cast<unsigned long long>(c.relayed),
                static_cast<unsigned long long>(c.dropped),
                static_cast<unsigned long long>(c.duplicated),
                static_cast<unsigned long long>(c.reordered));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
