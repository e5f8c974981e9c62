// lifecycle: a connection actor's life on its loop: made and installed in the slot table,
// opened, its close scheduled (schedule_close) and carried out between handlers (reap), and the
// memory an idle loop gives back.
#include <spdlog/logger.h>

#include "actnet/actors/event_loop.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/buffers/block_pool.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/syscalls.hpp"
#include "guarded.hpp"

namespace actnet {

std::unique_ptr<connection> detail::loop_core::make_connection(
    const std::function<std::unique_ptr<connection>()>& make) {
  std::unique_ptr<connection> c;
  if (!detail::guarded(*this, "the connection factory", [&] { c = make(); })) {
    return nullptr;
  }
  if (c == nullptr) {
    owner_.logger().error("loop {}: connection factory returned no connection", index_);
  }
  return c;
}

connection* detail::loop_core::install(std::unique_ptr<connection> c, int fd, watch how,
                                       bool counted) {
  const auto [slot, generation] = slots_.reserve();
  c->loop_ = &self_;
  c->fd_ = fd;
  c->slot_ = slot;
  c->generation_ = generation;
  c->counted_ = counted;
  if (!default_buffers_) [[unlikely]] {
    // (A connection's buffers are made with the default limits: with the engine's defaults
    // there is nothing to redo, a saving of some 200 instructions a connection.)
    c->in_ = ring_buffer(options_.inbound_cap);
    c->out_ = elastic_buffer(options_.outbound_ring_threshold, options_.outbound_cap);
  }
  if (how != watch::none) {
    const io_key key = io_key::from_bits(key_of(*c));
    if (const std::error_code ec = how == watch::stream ? backend_.watch_stream(fd, key, {})
                                                        : backend_.watch_datagram(fd, key)) {
      owner_.logger().error("loop {}: cannot watch a new connection: {}", index_, ec.message());
      slots_.release(slot);
      return nullptr;
    }
  }
  connection* conn = c.release();
  if (how == watch::stream && backend_.is_uring()) {
    conn->path_ |= connection::ring_sends;
  }
  if (how == watch::stream && options_.count_io) {
    conn->path_ |= connection::metered;
  }
  slots_.fill(slot, conn);
  if (counted) {
    connections_.fetch_add(1, std::memory_order_relaxed);
  }
  return conn;
}

void detail::loop_core::open(connection& c) {
  if (detail::byte_layer* layer = c.layer(); layer != nullptr && !layer->ready()) {
    begin_handshake(c, *layer);  // on_open when it is done
    return;
  }
  meter_.opened.add();
  note_running(c);
  const bool opened = detail::guarded(*this, "on_open", [&] {
    if (options_.connection_timeouts.any() && (c.dgram() == nullptr || c.kcp() != nullptr)) {
      c.set_timeouts(options_.connection_timeouts);
    }
    c.on_open();
  });
  if (!opened) {
    schedule_close(c, std::make_error_code(std::errc::state_not_recoverable));
  }
}

void detail::loop_core::release_retired_blocks() noexcept {
  for (const std::span<std::byte> b : retired_) {
    block_pool::deallocate(b);  // no view from that on_data can point into them any more
  }
  retired_.clear();
}

void detail::loop_core::schedule_close(connection& c, std::error_code reason,
                                       close_cause cause) noexcept {
  if (c.state_ == connection::state::closed) {
    return;
  }
  c.set_state(connection::state::closed);
  scheduled_closes_.push_back({&c, reason, cause});
}

void detail::loop_core::reap_scheduled() noexcept {
  while (!scheduled_closes_.empty()) {
    const scheduled_close next = scheduled_closes_.back();
    scheduled_closes_.pop_back();
    connection& c = *next.conn;
    bool ready = true;
    for (std::size_t i = 0; i < close_gates_.count && ready; ++i) {
      lifecycle_observer& job = *close_gates_.jobs[i];
      ready = !job.tracking() || job.ready_to_close(c, next.reason);
    }
    if (!ready) {
      // Behind what it waits for (a UDP socket actor's sessions), which are now at the top.
      scheduled_closes_.insert(scheduled_closes_.begin(), next);
      continue;
    }
    const bool own_socket = c.dgram() == nullptr || c.dgram()->socket == nullptr;  // not a session
    if (own_socket) {
      if ((c.path_ & connection::ring_sends) != 0 && !backend_.uring().in_flight(c.fd_)) {
        // io_uring: what the actor wrote before this close had not reached the kernel yet (on
        // epoll it would have): handed over now, before the fd goes, with one try.
        if (backend_.uring().sending(c.fd_)) {
          backend_.uring().submit(c.fd_);
        } else if (!c.out_.empty()) {
          (void)c.out_.drain_to(c.fd_);
        }
      }
      (void)backend_.unwatch(c.fd_);
    }
    if (c.pause_asked_) {
      meter_.paused.sub();
    }
    // Not open any more from here: whoever sees on_close's effects sees the count without it.
    const bool last = c.counted_ && connections_.fetch_sub(1, std::memory_order_relaxed) == 1;
    if (c.xport_ == nullptr || !c.xport_->handshaking) [[likely]] {
      meter_.closed_by[static_cast<std::size_t>(next.cause)].add();
      meter_.closed.add_released();  // (after closed_by: see read_metrics)
      note_running(c);
      (void)detail::guarded(*this, "on_close", [&] { c.on_close(next.reason); });
    } else {
      handshake_ended(c, next.reason);  // never opened: no on_close
    }
    if (own_socket) {
      (void)detail::sys_close(c.fd_);  // (EINTR: Linux has closed the fd all the same)
    }
    if (c.timing_ != nullptr) {
      c.cancel_timers();
    }
    for (std::size_t i = 0; i < close_observers_.count; ++i) {
      if (lifecycle_observer& job = *close_observers_.jobs[i]; job.tracking()) {
        job.closed(c, next.reason, stopping_);
      }
    }
    slots_.release(c.slot_);
    if (c.admitted_) {
      owner_.release_admission();
    }
    if (stall_threshold_ns_ != 0) {
      graveyard_.push_back(&c);  // freed after the iteration: the watchdog may be looking at it
    } else {
      delete &c;
    }
    if (last) {
      schedule_idle_release();
    }
  }
}

void detail::loop_core::schedule_idle_release() {
  if (idle_release_pending_ || stopping_ || options_.idle_release.count() == 0) {
    return;
  }
  idle_release_pending_ = true;
  try {
    timers_.add(timer_clock::now() + options_.idle_release, [this] {
      idle_release_pending_ = false;
      if (connections_.load(std::memory_order_relaxed) == 0 && !stopping_) {
        release_idle_memory();
      }
    });
  } catch (const std::bad_alloc&) {
    idle_release_pending_ = false;  // no memory for a timer: nothing to give back later either
  }
}

void detail::loop_core::release_idle_memory() noexcept {
  // Nothing points into these once the loop has no connections; they grow again on demand.
  // (UDP socket actors are not counted as connections: while one lives, the table stays.)
  (void)slots_.shrink();
  // Only what is empty: a close still pending here (a UDP socket actor's: those are not
  // counted) must still be carried out.
  if (scheduled_closes_.empty()) {
    std::vector<scheduled_close>().swap(scheduled_closes_);
  }
  if (retired_.empty()) {
    std::vector<std::span<std::byte>>().swap(retired_);
  }
  if (continue_reading_.empty()) {
    std::vector<conn_ref>().swap(continue_reading_);
  }
  local_mail_.release_memory();
  backend_.shrink();
  block_pool::release_idle_memory();
#if defined(__GLIBC__)
  ::malloc_trim(0);  // the connection objects' heap pages
#endif
  // mimalloc decommits freed pages after a delay (up to 500 ms for whole segments), and only
  // when it is called again: a second pass after that delay gives them back.
  try {
    timers_.add(timer_clock::now() + std::chrono::milliseconds(600), [this] {
      if (connections_.load(std::memory_order_relaxed) == 0) {
        block_pool::release_idle_memory();
      }
    });
  } catch (const std::bad_alloc&) {
    // the pages stay with the allocator until the next release
  }
}

void detail::loop_core::close_all(std::error_code reason) noexcept {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (connection* c = slots_.at(i); c != nullptr && c->state_ != connection::state::closed) {
      if (!c->out_.empty() && (c->path_ & connection::ring_sends) == 0) {
        (void)c->out_.drain_to(c->fd_);  // one try; a drain deadline comes later
      }
      schedule_close(*c, reason);
    }
  }
  reap();
}

void detail::loop_core::adopt(unique_fd owned,
                              const std::function<std::unique_ptr<connection>()>& make,
                              balancer_lease lease, bool admitted) {
  std::unique_ptr<connection> c = make_connection(make);
  if (c != nullptr) {
    c->lease_ = std::move(lease);
    c->admitted_ = admitted;
    if (connection* conn = install(std::move(c), owned.get(), watch::stream, true)) {
      (void)owned.release();
      open(*conn);
      return;
    }
  }
  if (admitted) {
    owner_.release_admission();
  }
}

}  // namespace actnet
