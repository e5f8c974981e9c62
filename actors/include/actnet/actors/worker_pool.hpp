// worker_pool: the worker-pool actor group. Threads that share one mailbox and run blocking
// work away from the loops; connections reach it with connection::offload.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "actnet/defaults.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

/// N threads sharing one mailbox (moodycamel BlockingConcurrentQueue). Jobs are move-only
/// closures. The queue is bounded: submit() never blocks and reports errc::queue_full when
/// `capacity` jobs are waiting, so a loop thread can hand work over without ever stalling.
/// Threads start with the first submit(), so a server that never offloads has none.
///
/// Stopping: jobs already running finish; jobs not yet started are cancelled: each one's
/// `cancelled` callback (if it gave one) runs on the thread that stops the pool, and the job
/// itself never runs. submit() after stop() reports errc::engine_stopped.
class worker_pool {
 public:
  using job = unique_function<void()>;

  /// `workers`: threads (0: one per hardware thread); `capacity`: jobs that may wait.
  explicit worker_pool(std::size_t workers = 0, std::size_t capacity = defaults::worker_queue_cap);
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;
  ~worker_pool();  // stop()

  /// Thread-safe, never blocks: queues `work` for a worker thread. Errors: queue_full (nothing
  /// queued), engine_stopped after stop(), or resource_unavailable_try_again when no thread
  /// could be started.
  std::error_code submit(job work, job cancelled = {});
  /// Thread-safe and idempotent: lets running jobs finish, cancels the rest, joins the threads.
  void stop() noexcept;

  [[nodiscard]] std::size_t workers() const noexcept { return workers_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  /// Thread-safe counters.
  [[nodiscard]] std::size_t queued() const noexcept { return queued_.load(); }
  [[nodiscard]] std::uint64_t completed() const noexcept { return completed_.load(); }
  [[nodiscard]] std::uint64_t cancelled() const noexcept { return cancelled_.load(); }
  [[nodiscard]] std::uint64_t rejected() const noexcept { return rejected_.load(); }

 private:
  struct entry;
  struct queue;
  void run_worker();
  void cancel(entry& e) noexcept;  // counts it and runs its cancelled callback
  bool start_threads();

  std::size_t workers_;
  std::size_t capacity_;
  std::unique_ptr<queue> queue_;
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> cancelled_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};
  std::mutex start_mutex_;  // starting and stopping the threads
  std::vector<std::thread> threads_;
};

}  // namespace actnet
