// event_loop: the loop core. Sends into the mailbox, run() and its phases, the per-message
// dispatch of the back end's events (in line: stream reads and on_data), and the handling of
// messages. The jobs above it have files of their own: accepting, dialer, datagram_sockets,
// stream_transport, lifecycle.
#include "actnet/actors/event_loop.hpp"

#include <sched.h>
#include <spdlog/logger.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <limits>
#include <set>
#include <thread>
#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/syscalls.hpp"
#include "guarded.hpp"
#include "log.hpp"

namespace actnet {

event_loop::event_loop(engine& owner, std::size_t index, const engine_options& options)
    : detail::loop_core(*this, owner, index, options), detail::loop_jobs(*this) {}

event_loop::~event_loop() {
  dialer_.fail_all(make_error_code(errc::engine_stopped));  // (a loop that never ran has some)
  shut_down();
}

namespace {
// The CPUs the loops may run on: cpu_affinity's distinct entries, else the process's mask.
std::size_t usable_cpus(const engine_options& o) {
  if (!o.cpu_affinity.empty()) {
    return std::set<int>(o.cpu_affinity.begin(), o.cpu_affinity.end()).size();
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    return static_cast<std::size_t>(CPU_COUNT(&set));
  }
  return std::max(1U, std::thread::hardware_concurrency());
}

// Whether loops may linger for mail (mail_linger): not when there are more loops than CPUs to
// run them, where a lingering loop would spin on a core another loop is waiting for (redis_ab
// with two loops on one CPU: 0.95x without this rule).
bool lingers(const engine_options& o) {
  return o.mail_linger.count() > 0 && o.loops <= usable_cpus(o);
}
}  // namespace

detail::loop_core::loop_core(event_loop& self, engine& owner, std::size_t index,
                             const engine_options& options)
    : self_(self),
      owner_(owner),
      options_(options),
      index_(index),
      backend_(options.backend == io_backend::io_uring, options.edge_triggered,
               detail::uring_settings{1024,
                                      std::min(options.uring_buffer_size, options.read_buffer_size),
                                      options.uring_buffers}),
      mailbox_(detail::backend_waker{&backend_}),
      local_cap_(options.mailbox_cap != 0 ? options.mailbox_cap
                                          : std::numeric_limits<std::size_t>::max()),
      read_buffer_{std::make_unique<std::byte[]>(options.read_buffer_size),  // NOLINT
                   options.read_buffer_size},
      default_buffers_(options.inbound_cap == defaults::inbound_cap &&
                       options.outbound_ring_threshold == defaults::elastic_ring_threshold &&
                       options.outbound_cap == defaults::elastic_max_size),
      stall_threshold_ns_(
          std::chrono::duration_cast<std::chrono::nanoseconds>(options.stall_threshold).count()),
      mail_linger_ns_(
          lingers(options)
              ? std::chrono::duration_cast<std::chrono::nanoseconds>(options.mail_linger).count()
              : 0) {}

void detail::loop_core::observe(lifecycle_observer& observer, std::uint8_t what) {
  if ((what & close_gate) != 0) {
    close_gates_.add(observer);
  }
  if ((what & closes) != 0) {
    close_observers_.add(observer);
  }
  if ((what & stop) != 0) {
    stop_observers_.add(observer);
  }
}

void detail::loop_core::shut_down() noexcept {
  close_all(make_error_code(errc::engine_stopped));
  release_retired();
  for (std::size_t i = 0; i < stop_observers_.count; ++i) {
    stop_observers_.jobs[i]->stopped();
  }
  drain_stopped();
  bury();
}

timer_id event_loop::after(std::chrono::nanoseconds delay, unique_function<void()> fn) {
  assert_in_loop_thread();
  return timers_.add(timer_clock::now() + delay, std::move(fn));
}

bool event_loop::cancel(timer_id id) noexcept {
  assert_in_loop_thread();
  return timers_.cancel(id);
}

connection* detail::loop_core::find(std::uint32_t slot, std::uint32_t generation) const noexcept {
  return slots_.find(slot, generation);
}

std::uint64_t detail::loop_core::id_of(const connection& c) noexcept {
  return io_key(io_kind::stream, c.slot_, c.generation_).bits();
}

std::uint64_t detail::loop_core::key_of(const connection& c) noexcept {
  return io_key(c.dgram() != nullptr ? io_kind::datagram : io_kind::stream, c.slot_, c.generation_)
      .bits();
}

// The per-message path, inlined into run(): a call per event and per read costs more than the
// rest of the dispatch (callgrind).
[[gnu::always_inline]] inline void detail::loop_core::dispatch(io_key key, std::uint32_t events) {
  if (key.is_stream()) [[likely]] {
    if (connection* c = slots_.find_registered(key.slot(), key.stream_generation())) {
      on_io(*c, events);
      reap();
    }
    return;
  }
  // Listeners, connects, datagram sockets: the job that registered the kind.
  if (io_job* job = handlers_[static_cast<std::size_t>(key.kind())]; job != nullptr) {
    job->on_io(key, events);
  }
  reap();
}

[[gnu::always_inline]] inline void detail::loop_core::on_io(connection& c, std::uint32_t events) {
  // The common event first: bytes for an open connection that is reading.
  if (events == io_event::readable && c.path_ == 0) [[likely]] {  // open, reading, plain
    read_plain<false>(c);
    return;
  }
  if (c.state_ == connection::state::closed) {
    return;
  }
  if ((events & (io_event::writable | io_event::error)) != 0) {
    (void)c.drain_output();
  }
  if (c.state_ == connection::state::open &&
      (events & (io_event::readable | io_event::hangup | io_event::error)) != 0) {
    if (!c.read_paused()) [[likely]] {
      read_from(c);
    } else if ((events & (io_event::hangup_both | io_event::error)) != 0) {
      paused_hangup(c);  // (a peer's FIN alone, EPOLLRDHUP, waits to be read after the resume)
    }
  }
}

void detail::loop_core::read_from(connection& c) {
  if (backend_.is_uring() || c.dgram() != nullptr) {
    // (On io_uring bytes come with completions, and a datagram connection's with each
    // datagram: only what was held back, or what KCP kept while paused, is read here.)
    read_held(c);
    return;
  }
  if (c.xport_ != nullptr) {
    read_layered(c);
  } else if ((c.path_ & connection::metered) != 0) {
    read_plain<true>(c);
  } else {
    read_plain<false>(c);
  }
}

// The one read loop of every stream: `take(n)` hands on the n bytes read into the read buffer.
// Level-triggered, one read an event; edge-triggered, until the socket is empty, c closed or
// paused, or edge_triggered_chunk bytes were read.
template <bool Metered, class Take>
[[gnu::always_inline]] inline void detail::loop_core::read_stream(connection& c, Take&& take) {
  std::size_t total = 0;
  for (;;) {
    const ssize_t n = detail::sys_read(c.fd_, read_buffer_.data(), read_buffer_.size());
    if constexpr (Metered) {
      ++tally_.reads;
      tally_.bytes_in += n > 0 ? static_cast<std::size_t>(n) : 0;
    }
    if (n > 0) {
      if (c.timing_ != nullptr) [[unlikely]] {
        c.note_read();
      }
      take(static_cast<std::size_t>(n));
      // Level-triggered: one read an event. Closed or paused: no more now.
      if (!options_.edge_triggered ||
          (c.path_ & (connection::not_open | connection::paused)) != 0) {
        return;
      }
      total += static_cast<std::size_t>(n);
      if (total >= options_.edge_triggered_chunk) {
        continue_reading_.push_back(c.ref());  // the rest after the other connections' turn
        return;
      }
      continue;
    }
    if (n == 0) {
      peer_shut_down(c);
      return;
    }
    const int e = errno;
    if (e == EINTR) {
      continue;
    }
    if (!detail::would_block(e)) {
      schedule_close(c, {e, std::system_category()});
    }
    return;
  }
}

template <bool Metered>
[[gnu::always_inline]] inline void detail::loop_core::read_plain(connection& c) {
  read_stream<Metered>(
      c, [&](std::size_t n) __attribute__((always_inline)) {
        c.fresh_ = std::span<const std::byte>(read_buffer_.data(), n);
        deliver(c);
      });
}

// read_plain's twin for a stream with a byte layer: each read decoded before on_data sees it.
void detail::loop_core::read_layered(connection& c) {
  if (!make_plain_buffer(c)) {
    return;
  }
  // Plain bytes the layer held while reading was paused come first.
  if (c.xport_->layer->holds_plain() && !decode_and_deliver(c, {})) {
    return;
  }
  const auto take = [&](std::size_t n) { (void)decode_and_deliver(c, {read_buffer_.data(), n}); };
  if ((c.path_ & connection::metered) != 0) {
    read_stream<true>(c, take);
  } else {
    read_stream<false>(c, take);
  }
}

bool detail::loop_core::make_plain_buffer(connection& c) {
  if (plain_buffer_.data() == nullptr) {
    try {
      plain_buffer_.bytes = std::make_unique<std::byte[]>(read_buffer_.size());  // NOLINT
    } catch (const std::bad_alloc&) {
      schedule_close(c, std::make_error_code(std::errc::not_enough_memory));
      return false;
    }
    plain_buffer_.length = read_buffer_.size();
  }
  return true;
}

// -- io_uring: bytes that come with their completion --

// The per-message path on io_uring: a plain stream's bytes straight from the loop's buffer
// ring to on_data (what on_data leaves is kept, as after a read).
[[gnu::always_inline]] inline void detail::loop_core::received(io_key key,
                                                               std::span<const std::byte> bytes) {
  connection* c = slots_.find_registered(key.slot(), key.stream_generation());
  if (c == nullptr) {
    return;  // closed in this batch: its buffer goes back all the same
  }
  if ((c->path_ & ~connection::ring_sends) == 0) [[likely]] {  // open, reading, plain
    if (c->timing_ != nullptr) [[unlikely]] {
      c->note_read();
    }
    c->fresh_ = bytes;
    deliver(*c);
  } else {
    received_slow(*c, bytes);
  }
  reap();
}

void detail::loop_core::received_slow(connection& c, std::span<const std::byte> bytes) {
  if ((c.path_ & connection::metered) != 0) {
    ++tally_.reads;
    tally_.bytes_in += bytes.size();
  }
  if (c.state_ != connection::state::open) {
    return;  // closing: not read any more, as on epoll
  }
  if (c.read_paused()) {
    hold(c, bytes);  // completed before the receive was cancelled
    return;
  }
  if (c.timing_ != nullptr) {
    c.note_read();
  }
  if (c.xport_ == nullptr) {  // a plain stream off the per-message path (count_io)
    c.fresh_ = bytes;
    deliver(c);
    return;
  }
  if (!make_plain_buffer(c)) {
    return;
  }
  if (c.xport_->layer->holds_plain() && !decode_and_deliver(c, {})) {
    if (c.state_ == connection::state::open) {
      hold(c, bytes);
    }
    return;
  }
  (void)decode_and_deliver(c, bytes);
}

void detail::loop_core::hold(connection& c, std::span<const std::byte> bytes) {
  if (c.xport_ == nullptr) {
    c.fresh_ = bytes;
    if (const std::error_code ec = c.keep_fresh_slow()) {
      schedule_close(c, ec);  // past the inbound cap
    }
    return;
  }
  std::vector<std::byte>& held = c.xport_->held_wire;
  if (held.size() + bytes.size() > options_.inbound_cap) {
    schedule_close(c, make_error_code(errc::capacity_exceeded));
    return;
  }
  try {
    held.insert(held.end(), bytes.begin(), bytes.end());
  } catch (const std::bad_alloc&) {
    schedule_close(c, std::make_error_code(std::errc::not_enough_memory));
  }
}

void detail::loop_core::read_held(connection& c) {
  if (c.dgram() != nullptr) {
    if (io_job* job = handlers_[static_cast<std::size_t>(io_kind::datagram)]; job != nullptr) {
      job->on_resumed(c);
    }
    return;
  }
  if (c.xport_ == nullptr) {
    if (c.inbound_buffered() > 0) {
      deliver(c);
    }
    return;
  }
  if (!make_plain_buffer(c)) {
    return;
  }
  std::vector<std::byte> wire;
  wire.swap(c.xport_->held_wire);
  if (!wire.empty() || c.xport_->layer->holds_plain()) {
    (void)decode_and_deliver(c, wire);
  }
}

void detail::loop_core::receive_ended(io_key key, int res) {
  connection* c = slots_.find_registered(key.slot(), key.stream_generation());
  if (c == nullptr || c->state_ == connection::state::closed) {
    return;
  }
  if (res != 0) {
    schedule_close(*c, {-res, std::system_category()});
  } else if (c->state_ == connection::state::open && !c->read_paused()) {
    peer_shut_down(*c);
  }
  // (A FIN while paused or closing is not read: the receive re-armed at the resume finds it.)
  reap();
}

[[gnu::always_inline]] inline void detail::loop_core::completions::operator()(
    io_key key, std::uint32_t events) const {
  if (!streams_only || key.is_stream()) {
    core.dispatch(key, events);
  }
}
[[gnu::always_inline]] inline void detail::loop_core::completions::received(
    io_key key, std::span<const std::byte> bytes) const {
  core.received(key, bytes);
}
void detail::loop_core::completions::receive_ended(io_key key, int res) const {
  core.receive_ended(key, res);
}
void detail::loop_core::completions::sent(io_key key, int res) const {
  core.sent(key, res);
}
void detail::loop_core::completions::accepted(io_key key, int fd) const {
  unique_fd owned(fd);
  if (streams_only) {
    return;  // the loop is stopping: the connection ends
  }
  if (io_job* job = core.handlers_[static_cast<std::size_t>(key.kind())]; job != nullptr) {
    job->on_accepted(key, std::move(owned));
  }
  core.reap();
}
void detail::loop_core::completions::datagram(io_key key, std::span<const std::byte> bytes,
                                              const sockaddr* from, socklen_t from_length,
                                              bool truncated) const {
  if (streams_only) {
    return;  // the loop is stopping: nothing new is read
  }
  if (io_job* job = core.handlers_[static_cast<std::size_t>(key.kind())]; job != nullptr) {
    job->on_datagram(key, bytes, from, from_length, truncated);
  }
  core.reap();
}
void detail::loop_core::completions::datagram_failed(io_key key, int res) const {
  if (streams_only) {
    return;
  }
  if (io_job* job = core.handlers_[static_cast<std::size_t>(key.kind())]; job != nullptr) {
    job->on_datagram_failed(key, res);
  }
  core.reap();
}
void detail::loop_core::completions::datagram_send_failed(io_key key, int res) const {
  if (io_job* job = core.handlers_[static_cast<std::size_t>(key.kind())]; job != nullptr) {
    job->on_datagram_send_failed(key, res);
  }
  core.reap();
}
void detail::loop_core::completions::connected(io_key key, int res) const {
  if (streams_only) {
    return;  // the loop is stopping: its dials end with it
  }
  if (io_job* job = core.handlers_[static_cast<std::size_t>(key.kind())]; job != nullptr) {
    job->on_connected(key, res);
  }
  core.reap();
}

void detail::loop_core::queue_ring_send(connection& c) {
  try {
    ring_sends_.push_back(c.ref());
  } catch (const std::bad_alloc&) {
    schedule_close(c, std::make_error_code(std::errc::not_enough_memory));
  }
}

// Before each wait: every connection that wrote since the last one hands its output to the
// ring (one send each, however many writes it made), and the wait's enter submits them all.
void detail::loop_core::flush_ring_sends() {
  if (ring_sends_.empty()) {
    return;
  }
  flushing_.swap(ring_sends_);
  for (const conn_ref& r : flushing_) {
    if (connection* c = find(r.slot_, r.generation_);
        c != nullptr && c->state_ != connection::state::closed) {
      (void)c->drain_output();
      reap();
    }
  }
  flushing_.clear();
}

void detail::loop_core::sent(io_key key, int res) {
  connection* c = slots_.find_registered(key.slot(), key.stream_generation());
  if (c == nullptr || c->state_ == connection::state::closed) {
    return;
  }
  if ((c->path_ & connection::metered) != 0) [[unlikely]] {
    ++tally_.writes;
    tally_.bytes_out += res > 0 ? static_cast<std::size_t>(res) : 0;
  }
  if (res < 0) [[unlikely]] {
    // As a send call's failure: after shutdown_write's FIN the peer's reset is the news.
    schedule_close(*c, {-res, std::system_category()});
    reap();
    return;
  }
  if (c->timing_ != nullptr) {
    c->note_sent();
  }
  if (c->out_.empty() && !c->writing_ && c->state_ == connection::state::open &&
      c->write_end_ == connection::write_end::open) [[likely]] {
    // The per-message path: the staged bytes went (or some did, the rest still in flight),
    // nothing else waits and nobody waits for the end of the output.
    return;
  }
  (void)c->drain_output();  // the next part, or the end of the output
  reap();
}

[[gnu::always_inline]] inline void detail::loop_core::deliver(connection& c) {
  note_running(c);
  if (!detail::guarded(*this, "on_data", [&] { c.on_data(); })) [[unlikely]] {
    c.fresh_ = {};
    schedule_close(c, std::make_error_code(std::errc::state_not_recoverable));
  }
  if (!c.fresh_.empty()) {
    if (const std::error_code ec = c.keep_fresh_slow()) {
      owner_.logger().warn("loop {}: closing a connection: inbound cap ({} bytes) exceeded", index_,
                           options_.inbound_cap);
      schedule_close(c, ec);  // past the inbound cap
    }
  }
  // No ring block, no views into one: most connections skip both.
  if (c.in_.holds_block()) [[unlikely]] {
    c.in_.trim();
    c.ring_views_ = false;
  }
  // Ring blocks this on_data retired are freed at the end of the phase (release_retired), not
  // here: one test per batch instead of one per message.
}

void detail::loop_core::deliver_now(connection& c) {
  deliver(c);
}

namespace {
// How often a lingering loop looks at its mailbox (mail_linger).
constexpr std::int64_t linger_look_ns = 1000;
// How long a busy-polling loop watches its mailbox between two polls of its back end.
constexpr std::int64_t busy_look_ns = 1000;

[[gnu::always_inline]] inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}
}  // namespace

[[gnu::always_inline]] inline result<std::size_t> detail::loop_core::wait_for_events(int timeout) {
  if (timeout != 0 && options_.busy_poll.count() > 0) {
    // Polled without sleeping, so the mailbox is looked at here: its senders wake only a
    // loop that announced its sleep.
    const timer_clock::time_point start = timer_clock::now();
    timer_clock::time_point until = start + options_.busy_poll;
    if (timeout > 0) {
      until = std::min(until, start + std::chrono::milliseconds(timeout));
    }
    do {
      // The mailbox between polls of the back end, which are system calls: mail that comes
      // during one would wait for it to return (a round trip between two polling loops:
      // 0.58 us polling the back end alone, 0.48 us so, perf/README).
      const std::int64_t next = steady_ns() + busy_look_ns;
      do {
        for (int look = 0; look < 8; ++look) {  // (the clock is read once in 8 looks)
          if (mailbox_.size_approx() > 0) {
            return std::size_t{0};  // (the back end: polled at the next iteration)
          }
          cpu_relax();
        }
      } while (steady_ns() < next);
      result<std::size_t> ready = backend_.wait(0);
      if (!ready || *ready > 0 || mailbox_.size_approx() > 0) {
        return ready;
      }
    } while (timer_clock::now() < until);
    if (!timers_.empty()) {
      timeout = timers_.next_timeout_ms(timer_clock::now());
    }
  }
  if (std::exchange(took_mail_, false) && timeout != 0 && mail_linger_ns_ > 0 &&
      options_.busy_poll.count() == 0) {
    // Mail came from other threads: more may be on its way (a sender's burst, the answer to a
    // question). Watch for it a little before sleeping, which would cost the sender a wake-up.
    // A look every microsecond: looking all the time pulled the senders' cache lines across at
    // every message they queued, and cost them more than the wake-ups.
    std::int64_t until = steady_ns() + mail_linger_ns_;
    if (timeout > 0) {  // not past the next timer
      until = std::min(until, steady_ns() + std::int64_t{timeout} * 1'000'000);
    }
    std::int64_t now = 0;
    do {
      const std::int64_t next = steady_ns() + linger_look_ns;
      do {
        cpu_relax();
        now = steady_ns();
      } while (now < next);
      if (mailbox_.size_approx() > 0) {
        timeout = 0;
        break;
      }
    } while (now < until);
  }
  const bool may_sleep = timeout != 0 && mailbox_.prepare_to_sleep();
  result<std::size_t> ready = backend_.wait(may_sleep ? timeout : 0);
  if (may_sleep) {
    mailbox_.awake();
  }
  return ready;
}

// The phases of one iteration, in order:
//  1. wait   - block in the back end until I/O, the next timer's deadline or mail; not at all
//              while work is pending (edge-triggered reads cut off by the chunk, or mail the
//              loop sent itself);
//  2. io     - each event to the handler of its source (streams in line: the per-message path);
//  3. resume - the edge-triggered reads cut off by the chunk, after every other connection's
//              turn, so one busy peer cannot starve the rest;
//  4. mail   - up to mailbox_budget messages, and for at most half the stall threshold, so a
//              flood of messages (or a chain of them) cannot starve I/O either: those the
//              loop's handlers sent it (its local queue) and those of other threads (its
//              mailbox), in turns;
//  5. timers - what is due, after the I/O and mail that may have re-armed or cancelled it.
// A close scheduled in any phase runs (reap) right after the handler that asked for it, never
// inside it: no actor is destroyed while one of its handlers is on the stack.
void detail::loop_core::run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  enter_thread(true);
  if (const std::error_code ec = backend_.start()) {
    owner_.logger().error("loop {}: cannot make its io_uring ring: {}; stopping the engine", index_,
                          ec.message());
    owner_.stop();
    stopping_ = true;
  }
  while (!stopping_) {
    if (!wait_phase()) {
      break;
    }
    io_phase();
    resume_phase();
    mail_phase();
    timer_phase();
  }
  stop_phase();
  enter_thread(false);
  bury();
  backend_.finish();  // io_uring: the ring goes with the loop's thread
}

// The end of an iteration's busy part, `now` (steady clock, ns): its time and the stall check,
// the iteration's per-message tallies added to the meter, and the start of the wait.
[[gnu::always_inline]] inline void detail::loop_core::end_busy(std::int64_t now) noexcept {
  if (busy_began_ != 0) [[likely]] {
    const auto busy = static_cast<std::uint64_t>(now - busy_began_);
    meter_.busy_ns.add(busy);
    meter_.iterations.add();
    meter_.iteration_time[iteration_bucket(busy)].add();
    if (stall_threshold_ns_ != 0 && now - busy_began_ > stall_threshold_ns_) [[unlikely]] {
      report_stall(now - busy_began_);
    }
  }
  if ((tally_.reads | tally_.writes) != 0) [[unlikely]] {  // count_io
    meter_.reads.add(std::exchange(tally_.reads, 0));
    meter_.writes.add(std::exchange(tally_.writes, 0));
    meter_.bytes_in.add(std::exchange(tally_.bytes_in, 0));
    meter_.bytes_out.add(std::exchange(tally_.bytes_out, 0));
  }
  meter_.timers.set(timers_.size());
  local_depth_.store(local_mail_.size(), std::memory_order_relaxed);
  meter_.phase.store(loop_phase::waiting, std::memory_order_relaxed);
  if (graveyard_.empty()) [[likely]] {
    meter_.busy_since_ns.store(0, std::memory_order_relaxed);
  } else {
    bury();
  }
  wait_began_ = now;
}

[[gnu::always_inline]] inline void detail::loop_core::begin_busy(std::int64_t now) noexcept {
  meter_.wait_ns.add(static_cast<std::uint64_t>(now - wait_began_));
  busy_began_ = now;
  meter_.running.store(nullptr, std::memory_order_relaxed);
  meter_.busy_since_ns.store(now, std::memory_order_relaxed);
}

[[gnu::always_inline]] inline bool detail::loop_core::wait_phase() {
  // The timer phase's clock reading is this one's too (one read an iteration): only its own
  // timers ran since, and they read the clock themselves to re-arm.
  flush_ring_sends();
  int timeout = -1;
  if (!timers_.empty()) {
    timeout = timers_.next_timeout_ms(timers_read_ ? timers_read_at_ : timer_clock::now());
  }
  timers_read_ = false;
  if (!continue_reading_.empty() || !local_mail_.empty()) {
    timeout = 0;  // work is waiting: look for I/O without sleeping
  }
  end_busy(steady_ns());
  const result<std::size_t> ready = wait_for_events(timeout);
  begin_busy(steady_ns());
  if (!ready) [[unlikely]] {
    owner_.logger().error("loop {}: the back end's wait failed: {}; stopping the engine", index_,
                          ready.error().message());
    owner_.stop();  // a dead loop would still be handed connections
    return false;
  }
  return true;
}

[[gnu::always_inline]] inline void detail::loop_core::io_phase() {
  // In line: the per-message path (a call per event cost more than the rest of the dispatch).
  meter_.phase.store(loop_phase::io, std::memory_order_relaxed);
  if (backend_.is_uring()) {
    backend_.uring().dispatch(completions{*this});
  } else {
    backend_.epoll().dispatch([this](io_key key, std::uint32_t events)
                                  __attribute__((always_inline)) { dispatch(key, events); });
  }
  release_retired();
}

[[gnu::always_inline]] inline void detail::loop_core::resume_phase() {
  if (continue_reading_.empty()) [[likely]] {
    return;
  }
  std::vector<conn_ref> again;
  again.swap(continue_reading_);
  for (const conn_ref& r : again) {
    if (connection* c = find(r.slot_, r.generation_);
        c != nullptr && c->is_open() && !c->read_paused()) {
      read_from(*c);
      reap();
    }
  }
  release_retired();
}

// In turns of up to a batch from each queue, the loop's own mail first: a flood in one queue
// leaves the other its turn, and the time check (a clock read) is paid once a turn.
template <class GoOn>
std::size_t detail::loop_core::run_mail(std::size_t budget, GoOn&& go_on) {
  constexpr std::size_t turn = 64;
  // The local queue's closures (post, tells to actors) are run in line. The mailbox's go
  // through handle(): in line there too, the consumer outran a sender on another core and
  // slept and was woken more often, and one-to-one throughput between two loops fell about a
  // tenth (actors_bench loops/1to1 and actors/1to1, interleaved with and without).
  const auto run_local = [this](detail::message && m) __attribute__((always_inline)) {
    if (m.what == detail::message::kind::closure) [[likely]] {
      meter_.running.store(nullptr, std::memory_order_relaxed);
      (void)detail::guarded(*this, "a message handler",
                            [&] { m.fn(self_, nullptr, detail::no_error()); });
    } else {
      handle(std::move(m));
    }
    reap();
  };
  const auto run = [this](detail::message&& m) {
    handle(std::move(m));
    reap();
  };
  std::size_t done = 0;
  while (done < budget) {
    // Of the local queue, what was there as the turn began: a chain (each message sending the
    // next) gets a time check between its links.
    std::size_t took = drain_local(run_local, std::min({turn, budget - done, local_mail_.size()}));
    if (const std::size_t mail = mailbox_.drain(run, std::min(turn, budget - done - took))) {
      took += mail;
      took_mail_ = true;
    }
    done += took;
    if (took == 0 || !go_on()) {
      break;
    }
  }
  return done;
}

[[gnu::always_inline]] inline void detail::loop_core::mail_phase() {
  meter_.phase.store(loop_phase::mail, std::memory_order_relaxed);
  // Mail that handlers post to this loop in the phase (a chain of asks between its actors)
  // is run too, but not past half the stall threshold of the iteration's time: then I/O
  // and timers have their turn, and the rest waits for the next iteration.
  const std::size_t handled = run_mail(options_.mailbox_budget, [this] {
    return stall_threshold_ns_ == 0 || steady_ns() - busy_began_ < stall_threshold_ns_ / 2;
  });
  if (handled != 0) {
    meter_.messages.add(handled);
    // What waited at the drain: those it took and those still waiting (approximately).
    meter_.mailbox_high.raise_to(handled + mailbox_.size_approx() + local_mail_.size());
  }
  release_retired();
}

[[gnu::always_inline]] inline void detail::loop_core::timer_phase() {
  if (!timers_.empty()) {
    meter_.phase.store(loop_phase::timers, std::memory_order_relaxed);
    timers_read_at_ = timer_clock::now();
    timers_read_ = true;
    run_timers(timers_read_at_);
    reap();
  }
}

void detail::loop_core::stop_phase() {
  // No new connections, no connects in flight: the jobs stop theirs.
  for (std::size_t i = 0; i < stop_observers_.count; ++i) {
    stop_observers_.jobs[i]->stopping();
  }
  if (options_.shutdown_timeout.count() > 0) {
    drain_for_stop(timer_clock::now() + options_.shutdown_timeout);
  }
  close_all(make_error_code(errc::engine_stopped));
  release_retired();
  for (std::size_t i = 0; i < stop_observers_.count; ++i) {
    stop_observers_.jobs[i]->stopped();  // the service actors, after the connections
  }
  timers_.clear();  // none runs after stop; a reconnect's retry reports engine_stopped as it goes
}

void detail::loop_core::drain_for_stop(timer_clock::time_point deadline) {
  // The messages already sent run: async writes, tells, asks. An accepted connection still on
  // its way is closed unserved.
  const auto run = [this](detail::message&& m) noexcept {
    if (m.what == detail::message::kind::adopt) {
      if (m.admitted) {
        owner_.release_admission();
      }
      return;  // the message closes its fd
    }
    handle(std::move(m));
    reap();
  };
  while (timer_clock::now() < deadline &&
         mailbox_.drain(run, options_.mailbox_budget) + drain_local(run, options_.mailbox_budget) !=
             0) {
  }
  // Every connection closes after its buffered output, until the deadline.
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (connection* c = slots_.at(i);
        c != nullptr && c->state_ == connection::state::open && c->dgram() == nullptr) {
      c->begin_closing();
      reap();
    }
  }
  for (;;) {
    bool waiting = false;
    for (std::size_t i = 0; i < slots_.size() && !waiting; ++i) {
      const connection* c = slots_.at(i);
      waiting = c != nullptr && c->state_ == connection::state::closing;
    }
    const auto now = timer_clock::now();
    if (!waiting || now >= deadline) {
      return;
    }
    flush_ring_sends();
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (!backend_.wait(static_cast<int>(std::min<std::int64_t>(left.count(), 1000)))) {
      return;
    }
    // Streams only: no accepting, dialing or datagrams past stop. What arrives in the mailbox
    // now is dropped after the loop (drain_stopped).
    if (backend_.is_uring()) {
      backend_.uring().dispatch(completions{*this, true});
    } else {
      backend_.epoll().dispatch([this](io_key key, std::uint32_t events) {
        if (key.is_stream()) {
          dispatch(key, events);
        }
      });
    }
  }
}

void detail::loop_core::run_timers(timer_clock::time_point now) {
  meter_.running.store(nullptr, std::memory_order_relaxed);  // (a connection's names itself)
  // A timer that throws is logged; the timers due after it run on the next iteration.
  (void)detail::guarded(*this, "a timer", [&] { timers_.run_due(now); });
}

}  // namespace actnet
