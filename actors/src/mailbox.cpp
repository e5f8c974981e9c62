// mailbox: the registry of per-thread post counters that bounded mailboxes count with.
#include "actnet/actors/detail/mailbox.hpp"

#include <bitset>
#include <mutex>

namespace actnet {

namespace {

struct post_counters {
  std::mutex mutex;
  std::bitset<256> taken;
  std::uint8_t next_shared = 0;  // past 256 live mailboxes, round and round
};

post_counters& counters() {
  static post_counters c;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
  return c;
}

}  // namespace

detail::post_counter detail::take_post_counter() noexcept {
  post_counters& c = counters();
  const std::lock_guard lock(c.mutex);
  for (std::size_t i = 0; i < c.taken.size(); ++i) {
    if (!c.taken[i]) {
      c.taken[i] = true;
      return {static_cast<std::uint8_t>(i), true};
    }
  }
  return {c.next_shared++, false};
}

void detail::give_back_post_counter(post_counter counter) noexcept {
  if (counter.owned) {
    post_counters& c = counters();
    const std::lock_guard lock(c.mutex);
    c.taken[counter.index] = false;
  }
}

}  // namespace actnet
