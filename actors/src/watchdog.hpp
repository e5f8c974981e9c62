// watchdog: the engine's thread that looks at each loop once every stall threshold, so that a
// stall is named while it lasts: it notes the handler a loop has been in past the threshold
// (the loop's own stall report names it), and logs a loop still stuck after four thresholds.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace actnet {

class engine;

namespace detail {

class watchdog {
 public:
  /// Starts watching `e`'s loops (engine_options::stall_threshold, which must be above 0).
  explicit watchdog(engine& e);
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  ~watchdog();  // stops and joins

 private:
  void run();
  void look(std::int64_t now);

  engine& engine_;
  std::int64_t threshold_ns_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::vector<std::int64_t> reported_;  // by loop: the stuck iteration last logged (its start)
  std::thread thread_;
};

}  // namespace detail
}  // namespace actnet
