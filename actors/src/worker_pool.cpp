// worker_pool: a bounded moodycamel BlockingConcurrentQueue and the threads that drain it.
#include "actnet/actors/worker_pool.hpp"

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "actnet/error.hpp"
#include "log.hpp"

namespace actnet {

struct worker_pool::entry {
  job work;       // empty: a stop sentinel, one per thread
  job cancelled;  // runs instead of work when the pool stops first
};

struct worker_pool::queue {
  moodycamel::BlockingConcurrentQueue<entry> q;
};

worker_pool::worker_pool(std::size_t workers, std::size_t capacity)
    : workers_(workers != 0 ? workers : std::max(1U, std::thread::hardware_concurrency())),
      capacity_(capacity),
      queue_(std::make_unique<queue>()) {
  if (capacity == 0) {
    throw std::invalid_argument("actnet: worker_pool capacity = 0: must be at least 1");
  }
  if (workers_ > 1024) {
    throw std::invalid_argument("actnet: worker_pool workers = " + std::to_string(workers_) +
                                ": must be at most 1024");
  }
}

worker_pool::~worker_pool() {
  stop();
}

bool worker_pool::start_threads() {
  const std::lock_guard lock(start_mutex_);
  if (started_.load() || stopping_.load()) {
    return started_.load();
  }
  try {
    for (std::size_t i = 0; i < workers_; ++i) {
      threads_.emplace_back([this] { run_worker(); });
    }
  } catch (const std::system_error& e) {
    detail::log().error("worker pool: cannot start a thread: {}", e.what());
    if (threads_.empty()) {
      return false;
    }
  }
  started_.store(true);
  return true;
}

std::error_code worker_pool::submit(job work, job cancelled) {
  if (stopping_.load(std::memory_order_acquire)) {
    return make_error_code(errc::engine_stopped);
  }
  if (!started_.load(std::memory_order_acquire) && !start_threads()) {
    return std::make_error_code(std::errc::resource_unavailable_try_again);
  }
  if (queued_.fetch_add(1, std::memory_order_relaxed) >= capacity_) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return make_error_code(errc::queue_full);
  }
  if (!queue_->q.enqueue(entry{std::move(work), std::move(cancelled)})) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    return std::make_error_code(std::errc::not_enough_memory);
  }
  return {};
}

void worker_pool::cancel(entry& e) noexcept {
  cancelled_.fetch_add(1, std::memory_order_relaxed);
  if (e.cancelled) {
    try {
      e.cancelled();
    } catch (...) {
      detail::log().error("worker pool: a cancellation callback threw");
    }
  }
}

void worker_pool::run_worker() {
  for (;;) {
    entry e;
    queue_->q.wait_dequeue(e);
    if (!e.work) {
      return;  // a stop sentinel
    }
    queued_.fetch_sub(1, std::memory_order_relaxed);
    if (stopping_.load(std::memory_order_acquire)) {
      cancel(e);
      continue;
    }
    try {
      e.work();
    } catch (const std::exception& ex) {
      detail::log().error("worker pool: a job threw: {}", ex.what());
    } catch (...) {
      detail::log().error("worker pool: a job threw");
    }
    completed_.fetch_add(1, std::memory_order_relaxed);
  }
}

void worker_pool::stop() noexcept {
  const std::lock_guard lock(start_mutex_);
  if (stopping_.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  for (std::size_t i = 0; i < threads_.size(); ++i) {
    (void)queue_->q.enqueue(entry{});
  }
  for (std::thread& t : threads_) {
    t.join();
  }
  threads_.clear();
  // Whatever a worker did not dequeue before its sentinel (other producers' jobs land anywhere
  // in the queue's order): cancelled here.
  entry e;
  while (queue_->q.try_dequeue(e)) {
    if (e.work) {
      queued_.fetch_sub(1, std::memory_order_relaxed);
      cancel(e);
    }
  }
}

}  // namespace actnet
