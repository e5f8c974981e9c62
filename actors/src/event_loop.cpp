// event_loop: one iteration polls I/O, dispatches it to connection actors, drains the mailbox
// with a budget, then fires due timers; closes are carried out between those steps (reap), so
// no actor is destroyed while one of its handlers is on the stack.
#include "actnet/actors/event_loop.hpp"

#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bitset>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <random>
#include <unordered_map>
#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/buffers/block_pool.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/syscalls.hpp"
#include "guarded.hpp"
#include "log.hpp"

namespace actnet {

namespace {

using detail::io_key;
using detail::io_kind;
namespace io_event = detail::io_event;

std::error_code errno_code() noexcept {
  return {errno, std::system_category()};
}

bool would_block(std::error_code ec) noexcept {
  return ec == std::errc::resource_unavailable_try_again || ec == std::errc::operation_would_block;
}

}  // namespace

event_loop::event_loop(engine& owner, std::size_t index, const engine_options& options)
    : owner_(owner),
      options_(options),
      index_(index),
      backend_(options.edge_triggered),
      mailbox_(detail::backend_waker{&backend_}),
      read_buffer_(options.read_buffer_size) {}

event_loop::~event_loop() {
  dialer_.fail_all(make_error_code(errc::engine_stopped));
  close_all(make_error_code(errc::engine_stopped));
  drain_stopped();
}

void event_loop::send(detail::message&& m) {
  mailbox_.post(std::move(m));
}

std::error_code event_loop::refuse_message() noexcept {
  refused_.fetch_add(1, std::memory_order_relaxed);
  return make_error_code(errc::queue_full);
}

std::error_code event_loop::send_bounded(detail::message&& m) {
  if (mailbox_.full(options_.mailbox_cap)) [[unlikely]] {
    return refuse_message();
  }
  mailbox_.post(std::move(m));
  return detail::no_error();
}

// send_bounded's steps in line rather than a call to it: post() is the busiest bounded send,
// and the call cost it about a tenth of its instructions (callgrind, actors_bench mailbox/1to1).
std::error_code event_loop::post_user(detail::message_fn fn) {
  if (mailbox_.full(options_.mailbox_cap)) [[unlikely]] {
    return refuse_message();
  }
  mailbox_.post(detail::message::closure(std::move(fn)));
  return detail::no_error();
}

void event_loop::post_fn(detail::message_fn fn) {
  send(detail::message::closure(std::move(fn)));
}

timer_id event_loop::after(std::chrono::nanoseconds delay, unique_function<void()> fn) {
  assert_in_loop();
  return timers_.add(timer_clock::now() + delay, std::move(fn));
}

bool event_loop::cancel(timer_id id) noexcept {
  assert_in_loop();
  return timers_.cancel(id);
}

connection* event_loop::find(std::uint32_t slot, std::uint32_t generation) const noexcept {
  return slots_.find(slot, generation);
}

std::uint64_t event_loop::id_of(const connection& c) noexcept {
  return io_key(io_kind::stream, c.slot_, c.generation_).bits();
}

std::uint64_t event_loop::key_of(const connection& c) noexcept {
  return io_key(c.dgram_ != nullptr ? io_kind::datagram : io_kind::stream, c.slot_, c.generation_)
      .bits();
}

void event_loop::add_listener(std::size_t listener_index, int fd) {
  if (const std::error_code ec = backend_.watch_listener(
          fd, io_key(io_kind::listener, static_cast<std::uint32_t>(listener_index)))) {
    throw std::system_error(ec, "actnet: cannot watch a listener");
  }
}

// The per-message path, inlined into run(): a call per event and per read costs more than the
// rest of the dispatch (callgrind).
[[gnu::always_inline]] inline void event_loop::dispatch(io_key key, std::uint32_t events) {
  if (key.is_stream()) [[likely]] {
    if (connection* c = find(key.slot(), key.stream_generation())) {
      on_io(*c, events);
      reap();
    }
    return;
  }
  switch (key.kind()) {
    case io_kind::stream:
      return;
    case io_kind::listener:
      accept_from(key.slot());
      break;
    case io_kind::dial:
      dialer_.connected(key.slot(), {});
      break;
    case io_kind::datagram: {
      // The generation matters: a socket actor closed earlier in this batch may have had its
      // slot taken by another connection since.
      connection* c = find(key.slot(), key.generation());
      if (c != nullptr && c->is_open() && !c->read_paused_ && c->dgram_ != nullptr &&
          c->dgram_->socket == nullptr) {
        read_datagrams(*c);
      }
      break;
    }
  }
  reap();
}

[[gnu::always_inline]] inline void event_loop::on_io(connection& c, std::uint32_t events) {
  if (c.state_ == connection::state::closed) {
    return;
  }
  if ((events & (io_event::writable | io_event::error)) != 0) {
    write_out(c);
  }
  if (c.state_ == connection::state::open &&
      (events & (io_event::readable | io_event::hangup | io_event::error)) != 0) {
    if (!c.read_paused_) [[likely]] {
      read_from(c);
    } else if ((events & (io_event::hangup_both | io_event::error)) != 0) {
      paused_hangup(c);  // (a peer's FIN alone, EPOLLRDHUP, waits to be read after the resume)
    }
  }
}

void event_loop::paused_hangup(connection& c) {
  // Reading is paused, but the socket failed (a reset) or hung up both ways: reported without
  // reading (the kernel would report it again and again).
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(c.fd_, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error == 0) {
    if (c.peer_closed_) {
      finish(c, make_error_code(errc::end_of_stream));
      return;
    }
    if (c.write_end_ == connection::write_end::shut) {
      // This side's FIN (shutdown_write) and then the peer's: its last bytes and its FIN wait
      // to be read at the resume. Level-triggered, the hang-up would be reported again and
      // again, so the socket leaves epoll until then (update_interest brings it back).
      if (!options_.edge_triggered && !c.unwatched_) {
        (void)backend_.unwatch(c.fd_);
        c.unwatched_ = true;
      }
      return;
    }
    error = ECONNRESET;
  }
  finish(c, {error, std::system_category()});
}

void event_loop::peer_shut_down(connection& c) {
  // The peer sends no more but may still read: reading stops for good (in level-triggered
  // mode its interest goes; edge-triggered reads are skipped), and the handler decides when to
  // close; the default closes after the buffered output, with end_of_stream.
  c.peer_closed_ = true;
  const bool was_reading = !c.read_paused_;
  c.read_paused_ = true;
  try {
    c.on_peer_shutdown();
  } catch (const std::exception& e) {
    owner_.logger().error("loop {}: on_peer_shutdown threw: {}", index_, e.what());
    finish(c, std::make_error_code(std::errc::state_not_recoverable));
  }
  if (c.state_ == connection::state::open && c.write_end_ == connection::write_end::shut) {
    finish(c, make_error_code(errc::end_of_stream));  // both ways are shut: nothing can pass
    return;
  }
  // Only a connection kept open needs its interest changed: one closed at once (the default,
  // with nothing to send) costs no epoll_ctl.
  if (was_reading && c.state_ == connection::state::open) {
    update_interest(c);
  }
}

void event_loop::update_interest(connection& c) noexcept {
  const detail::stream_interest want{c.state_ == connection::state::open && !c.read_paused_,
                                     c.writing_};
  const io_key key = io_key::from_bits(key_of(c));
  if (c.dgram_ != nullptr) {
    (void)backend_.change_datagram(c.fd_, key, want.receive);
    return;
  }
  if (c.unwatched_) [[unlikely]] {  // out of the back end since a hang-up while paused
    if (!want.receive) {
      return;
    }
    c.unwatched_ = false;
    if (const std::error_code ec = backend_.watch_stream(c.fd_, key, want)) {
      finish(c, ec);
    }
    return;
  }
  // (Edge-triggered, a stream is registered for both for good: a paused one's reads are
  // skipped instead.)
  (void)backend_.change_stream(c.fd_, key, want);
}

[[gnu::always_inline]] inline void event_loop::read_from(connection& c) {
  std::size_t total = 0;
  for (;;) {
    const ssize_t n = detail::sys_read(c.fd_, read_buffer_.data(), read_buffer_.size());
    if (n > 0) {
      if (c.timing_ != nullptr) [[unlikely]] {
        c.note_read();
      }
      c.fresh_ = std::span<const std::byte>(read_buffer_.data(), static_cast<std::size_t>(n));
      deliver(c);
      if (c.state_ != connection::state::open || !options_.edge_triggered || c.read_paused_) {
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
    const std::error_code ec = errno_code();
    if (ec == std::errc::interrupted) {
      continue;
    }
    if (!would_block(ec)) {
      finish(c, ec);
    }
    return;
  }
}

[[gnu::always_inline]] inline void event_loop::deliver(connection& c) {
  try {
    c.on_data();
  } catch (const std::exception& e) {
    owner_.logger().error("loop {}: on_data threw: {}", index_, e.what());
    c.fresh_ = {};
    finish(c, std::make_error_code(std::errc::state_not_recoverable));
  }
  if (!c.fresh_.empty()) {
    if (const std::error_code ec = c.keep_fresh_slow()) {
      owner_.logger().warn("loop {}: closing a connection: inbound cap ({} bytes) exceeded", index_,
                           options_.inbound_cap);
      finish(c, ec);  // past the inbound cap
    }
  }
  c.in_.trim();
  c.ring_views_ = false;
  if (!retired_.empty()) [[unlikely]] {
    release_retired();
  }
}

[[gnu::always_inline]] inline result<std::size_t> event_loop::wait_for_events(int timeout) {
  if (timeout != 0 && options_.busy_poll.count() > 0) {
    // Polled without sleeping, so the mailbox is looked at here: its senders wake only a
    // loop that announced its sleep.
    const timer_clock::time_point start = timer_clock::now();
    timer_clock::time_point until = start + options_.busy_poll;
    if (timeout > 0) {
      until = std::min(until, start + std::chrono::milliseconds(timeout));
    }
    do {
      result<std::size_t> ready = backend_.wait(0);
      if (!ready || *ready > 0 || mailbox_.size_approx() > 0) {
        return ready;
      }
    } while (timer_clock::now() < until);
    if (!timers_.empty()) {
      timeout = timers_.next_timeout_ms(timer_clock::now());
    }
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
//              while work is pending (edge-triggered reads cut off by the chunk);
//  2. io     - each event to the handler of its source (streams in line: the per-message path);
//  3. resume - the edge-triggered reads cut off by the chunk, after every other connection's
//              turn, so one busy peer cannot starve the rest;
//  4. mail   - up to mailbox_budget messages, so a flood of messages cannot starve I/O either;
//  5. timers - what is due, after the I/O and mail that may have re-armed or cancelled it.
// A close scheduled in any phase runs (reap) right after the handler that asked for it, never
// inside it: no actor is destroyed while one of its handlers is on the stack.
void event_loop::run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
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
}

[[gnu::always_inline]] inline bool event_loop::wait_phase() {
  int timeout = timers_.empty() ? -1 : timers_.next_timeout_ms(timer_clock::now());
  if (!continue_reading_.empty()) {
    timeout = 0;
  }
  const result<std::size_t> ready = wait_for_events(timeout);
  if (!ready) [[unlikely]] {
    owner_.logger().error("loop {}: the back end's wait failed: {}; stopping the engine", index_,
                          ready.error().message());
    owner_.stop();  // a dead loop would still be handed connections
    return false;
  }
  return true;
}

[[gnu::always_inline]] inline void event_loop::io_phase() {
  // In line: the per-message path (a call per event cost more than the rest of the dispatch).
  backend_.dispatch([this](io_key key, std::uint32_t events)
                        __attribute__((always_inline)) { dispatch(key, events); });
}

[[gnu::always_inline]] inline void event_loop::resume_phase() {
  if (continue_reading_.empty()) [[likely]] {
    return;
  }
  std::vector<conn_ref> again;
  again.swap(continue_reading_);
  for (const conn_ref& r : again) {
    if (connection* c = find(r.slot_, r.generation_);
        c != nullptr && c->is_open() && !c->read_paused_) {
      read_from(*c);
      reap();
    }
  }
}

[[gnu::always_inline]] inline void event_loop::mail_phase() {
  mailbox_.drain(
      [this](detail::message&& m) {
        handle(std::move(m));
        reap();
      },
      options_.mailbox_budget);
}

[[gnu::always_inline]] inline void event_loop::timer_phase() {
  if (!timers_.empty()) {
    run_timers();
    reap();
  }
}

void event_loop::stop_phase() {
  listeners_.clear();
  dialer_.fail_all(make_error_code(errc::engine_stopped));
  if (options_.shutdown_timeout.count() > 0) {
    drain_for_stop(timer_clock::now() + options_.shutdown_timeout);
  }
  close_all(make_error_code(errc::engine_stopped));
  timers_.clear();  // none runs after stop; a reconnect's retry reports engine_stopped as it goes
}

void event_loop::drain_for_stop(timer_clock::time_point deadline) {
  // No new connections: loop 0's listeners leave the poller (the others' closed above).
  if (index_ == 0) {
    const std::lock_guard lock(owner_.listener_fds_);
    for (const engine::listener& l : owner_.listeners_) {
      if (l.fd && l.bound.transport() != transport::udp) {
        (void)backend_.unwatch(l.fd.get());
      }
    }
  }
  // The messages already sent run: async writes, tells, asks. An accepted connection still on
  // its way is closed unserved.
  while (timer_clock::now() < deadline && mailbox_.drain(
                                              [this](detail::message&& m) {
                                                if (m.what == detail::message::kind::adopt) {
                                                  if (m.admitted) {
                                                    owner_.release_admission();
                                                  }
                                                  return;  // the message closes its fd
                                                }
                                                handle(std::move(m));
                                                reap();
                                              },
                                              options_.mailbox_budget) != 0) {
  }
  // Every connection closes after its buffered output, until the deadline.
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (connection* c = slots_.at(i);
        c != nullptr && c->state_ == connection::state::open && c->dgram_ == nullptr) {
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
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (!backend_.wait(static_cast<int>(std::min<std::int64_t>(left.count(), 1000)))) {
      return;
    }
    // Streams only: no accepting, dialing or datagrams past stop. What arrives in the mailbox
    // now is dropped after the loop (drain_stopped).
    backend_.dispatch([this](io_key key, std::uint32_t events) {
      if (key.is_stream()) {
        dispatch(key, events);
      }
    });
  }
}

void event_loop::handle(detail::message&& m) {
  // User code runs here (closures, tells, completions): an exception must not cross the loop.
  try {
    handle_unguarded(std::move(m));
  } catch (const std::exception& e) {
    owner_.logger().error("loop {}: a message handler threw: {}", index_, e.what());
  } catch (...) {
    owner_.logger().error("loop {}: a message handler threw", index_);
  }
}

void event_loop::handle_unguarded(detail::message&& m) {
  using kind = detail::message::kind;
  switch (m.what) {
    case kind::none:
      return;
    case kind::closure:
      m.fn(*this, nullptr, {});
      return;
    case kind::adopt:
      adopt(unique_fd(std::exchange(m.fd, -1)), owner_.listeners_[m.listener].make,
            owner_.listeners_[m.listener].bound.transport(), std::move(m.lease),
            std::exchange(m.admitted, false));
      return;
    case kind::stop:
      stopping_ = true;
      return;
    case kind::ask:
      if (m.generation == 0) {  // a question for the loop itself
        m.fn(*this, nullptr, {});
        return;
      }
      break;
    case kind::tell:
    case kind::async_write:
    case kind::close:
    case kind::wake:
      break;
  }
  connection* c = find(m.slot, m.generation);
  if (c == nullptr || !c->is_open()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    if ((m.what == kind::async_write || m.what == kind::ask) && m.fn) {
      m.fn(*this, nullptr, make_error_code(errc::connection_closed));  // the sender hears of it
    }
    return;
  }
  switch (m.what) {
    case kind::tell:
    case kind::ask:
      m.fn(*this, c, {});
      return;
    case kind::async_write: {
      const std::error_code ec = c->write(std::move(m.payload));
      if (m.fn) {
        // A write that fails closes the connection (a socket error, or the outbound cap); the
        // reason goes to on_close, and the sender hears what async_write promises: the bytes
        // could not be written because the connection is closed. (A datagram connection stays
        // open when the kernel refuses one datagram: that error is passed on as it is.)
        m.fn(*this, c, ec && !c->is_open() ? make_error_code(errc::connection_closed) : ec);
      }
      return;
    }
    case kind::close:
      c->close();
      return;
    case kind::wake:
      deliver(*c);
      return;
    default:
      return;
  }
}

void event_loop::run_timers() {
  // A timer that throws is logged; the timers due after it run on the next iteration.
  try {
    timers_.run_due(timer_clock::now());
  } catch (const std::exception& e) {
    owner_.logger().error("loop {}: a timer threw: {}", index_, e.what());
  } catch (...) {
    owner_.logger().error("loop {}: a timer threw", index_);
  }
}

void event_loop::drain_stopped() {
  mailbox_.drain(
      [this](detail::message&& m) {
        if (m.admitted) {
          owner_.release_admission();  // an accepted connection no loop took
        }
        if (m.what == detail::message::kind::async_write && m.fn) {
          m.fn(*this, nullptr, make_error_code(errc::engine_stopped));
        } else if (m.what != detail::message::kind::adopt &&
                   m.what != detail::message::kind::stop) {
          dropped_.fetch_add(1, std::memory_order_relaxed);
        }
      },
      SIZE_MAX);
}

void event_loop::accept_from(std::size_t listener_index) {
  const int listen_fd =
      options_.reuse_port && listener_index < listeners_.size() && listeners_[listener_index]
          ? listeners_[listener_index].get()
          : owner_.listeners_[listener_index].fd.get();
  detail::acceptor::sink take = [this, listener_index](unique_fd fd, const sockaddr_storage& peer,
                                                       socklen_t peer_length) {
    place_accepted(listener_index, std::move(fd), peer, peer_length);
  };
  detail::acceptor::dropped drop = [this](std::string_view why) { note_dropped_accept(why); };
  if (const std::error_code ec = acceptor_.accept_from(listen_fd, take, drop)) {
    if (ec != std::errc::too_many_files_open && ec != std::errc::too_many_files_open_in_system) {
      owner_.logger().error("loop {}: accept failed: {}", index_, ec.message());
    }
    pause_accepting(listener_index, listen_fd);
  }
}

void event_loop::place_accepted(std::size_t listener_index, unique_fd fd,
                                const sockaddr_storage& peer, socklen_t peer_length) {
  const bool admitted = options_.max_connections != 0;
  if (admitted && !owner_.admit()) {
    note_dropped_accept("max_connections reached");  // counted before the peer can see it
    return;  // fd closes at once: the peer sees its connection end
  }
  // SO_REUSEPORT: the kernel chose this loop. Otherwise the balancer chooses, and the lease it
  // gives travels with the connection, counting it there until the connection is gone.
  balancer_assignment to{0, {}};
  if (!options_.reuse_port) {
    to = owner_.balancer_->assign(reinterpret_cast<const sockaddr*>(&peer),  // NOLINT
                                  peer_length);
  }
  event_loop& target = options_.reuse_port ? *this : *owner_.loops_[to.target];
  if (&target == this) {
    adopt(std::move(fd), owner_.listeners_[listener_index].make,
          owner_.listeners_[listener_index].bound.transport(), std::move(to.lease), admitted);
    reap();
  } else {
    target.send(detail::message::adopt(std::move(fd), static_cast<std::uint32_t>(listener_index),
                                       std::move(to.lease), admitted));
  }
}

void event_loop::note_dropped_accept(std::string_view why) {
  owner_.refused_.fetch_add(1, std::memory_order_relaxed);
  if (const std::uint64_t n = dropped_accepts_.note(timer_clock::now())) {
    owner_.logger().warn("loop {}: accept: {}; dropped {} connection(s)", index_, why, n);
  }
}

void event_loop::pause_accepting(std::size_t listener_index, int listen_fd) {
  (void)backend_.unwatch(listen_fd);
  after(std::chrono::milliseconds(100), [this, listener_index, listen_fd] {
    if (!stopping_) {
      (void)backend_.watch_listener(
          listen_fd, io_key(io_kind::listener, static_cast<std::uint32_t>(listener_index)));
    }
  });
}

void event_loop::adopt(unique_fd owned, const std::function<std::unique_ptr<connection>()>& make,
                       transport t, balancer_lease lease, bool admitted) {
  std::unique_ptr<connection> c = make_connection(make);
  if (c != nullptr) {
    c->lease_ = std::move(lease);
    c->admitted_ = admitted;
    if (connection* conn = install(std::move(c), owned.get(), t, watch::stream, true)) {
      (void)owned.release();
      open(*conn);
      return;
    }
  }
  if (admitted) {
    owner_.release_admission();
  }
}

std::unique_ptr<connection> event_loop::make_connection(
    const std::function<std::unique_ptr<connection>()>& make) {
  std::unique_ptr<connection> c;
  try {
    c = make();
  } catch (const std::exception& e) {
    owner_.logger().error("loop {}: connection factory threw: {}", index_, e.what());
    return nullptr;
  }
  if (c == nullptr) {
    owner_.logger().error("loop {}: connection factory returned no connection", index_);
  }
  return c;
}

connection* event_loop::install(std::unique_ptr<connection> c, int fd, transport t, watch how,
                                bool counted) {
  const auto [slot, generation] = slots_.reserve();
  c->loop_ = this;
  c->fd_ = fd;
  c->slot_ = slot;
  c->generation_ = generation;
  c->transport_ = t;
  c->counted_ = counted;
  c->in_ = ring_buffer(options_.inbound_cap);
  c->out_ = elastic_buffer(options_.outbound_ring_threshold, options_.outbound_cap);
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
  slots_.fill(slot, conn);
  if (counted) {
    connections_.fetch_add(1, std::memory_order_relaxed);
  }
  return conn;
}

void event_loop::open(connection& c) {
  try {
    if (options_.connection_timeouts.any() && c.dgram_ == nullptr) {
      c.set_timeouts(options_.connection_timeouts);
    }
    c.on_open();
  } catch (const std::exception& e) {
    owner_.logger().error("loop {}: on_open threw: {}", index_, e.what());
    finish(c, std::make_error_code(std::errc::state_not_recoverable));
  }
}

// -- offloads: results in submission order --

std::uint64_t event_loop::offload_next(const connection& c) {
  return offloads_.next(id_of(c));
}

void event_loop::offload_unused(const connection& c, std::uint64_t seq) noexcept {
  offloads_.unused(id_of(c), seq);
}

void event_loop::offload_arrived(connection& c, std::uint64_t seq,
                                 unique_function<void()> deliver) {
  // A continuation may offload again or close c; one that throws is logged, and the results
  // queued behind it still run.
  offloads_.arrived(id_of(c), seq, std::move(deliver), [this, &c](unique_function<void()>& d) {
    (void)detail::guarded(owner_.logger(), index_, "an offload's continuation", d);
    return c.is_open();
  });
}

// -- UDP --

namespace detail {

/// A peer's address as a hash key: family, port, IP and (IPv6) scope.
struct peer_key {
  std::array<std::uint64_t, 3> words{};
  friend bool operator==(const peer_key&, const peer_key&) = default;
};

struct peer_key_hash {
  std::size_t operator()(const peer_key& k) const noexcept {
    std::uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (const std::uint64_t w : k.words) {
      h = (h ^ w) * 0xff51afd7ed558ccdULL;
      h ^= h >> 32;
    }
    return static_cast<std::size_t>(h);
  }
};

/// The socket actor of a listener with UDP sessions: it owns the socket and hands each datagram
/// to its peer's session, making one on the first datagram.
class udp_router final : public connection {
 public:
  explicit udp_router(std::size_t listener) : listener_index(listener) {}
  std::size_t listener_index;
  std::unordered_map<peer_key, connection*, peer_key_hash> sessions;
};

}  // namespace detail

namespace {

detail::peer_key key_of_peer(const sockaddr_storage& peer) noexcept {
  detail::peer_key k;
  auto* bytes = reinterpret_cast<unsigned char*>(k.words.data());  // NOLINT
  bytes[0] = static_cast<unsigned char>(peer.ss_family);
  if (peer.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(peer);
    std::memcpy(bytes + 2, &in.sin_port, sizeof in.sin_port);
    std::memcpy(bytes + 4, &in.sin_addr, sizeof in.sin_addr);
  } else if (peer.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(peer);
    std::memcpy(bytes + 2, &in6.sin6_port, sizeof in6.sin6_port);
    std::memcpy(bytes + 4, &in6.sin6_addr, sizeof in6.sin6_addr);
    std::memcpy(bytes + 20, &in6.sin6_scope_id, sizeof in6.sin6_scope_id);
  }
  return k;
}

// recvfrom errors that concern one datagram or an earlier send, not the socket: skip them.
// A connected socket's peer length, from its family (recvfrom overwrote the length).
socklen_t sizeof_peer(const detail::datagram_endpoint& ep) noexcept {
  return ep.peer.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

bool transient_datagram_error(int e) noexcept {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == ECONNRESET ||
         e == EMSGSIZE || e == ENOMEM || e == ENOBUFS;
}

}  // namespace

void event_loop::open_datagram(std::size_t listener_index, unique_fd owned) {
  const engine::listener& l = owner_.listeners_[listener_index];
  std::unique_ptr<connection> c;
  if (l.options.udp_sessions) {
    c = std::make_unique<detail::udp_router>(listener_index);
  } else {
    c = make_connection(l.make);
    if (c == nullptr) {
      return;  // logged; this loop does not serve the address
    }
  }
  auto endpoint = std::make_unique<detail::datagram_endpoint>();
  endpoint->routes = l.options.udp_sessions;
  endpoint->listener = listener_index;
  c->dgram_ = std::move(endpoint);
  // Level-triggered whatever the engine's mode: read_datagrams takes a bounded batch per event.
  if (connection* conn =
          install(std::move(c), owned.get(), transport::udp, watch::datagram, false)) {
    (void)owned.release();
    if (!conn->dgram_->routes) {
      open(*conn);
    }
  }
}

void event_loop::read_datagrams(connection& c) {
  detail::datagram_endpoint& ep = *c.dgram_;
  for (std::size_t i = 0; i < defaults::datagram_batch; ++i) {
    ep.peer_length = sizeof ep.peer;
    // MSG_TRUNC: the datagram's real length, so one cut to the read buffer is seen.
    const ssize_t n = ::recvfrom(c.fd_, read_buffer_.data(), read_buffer_.size(), MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&ep.peer), &ep.peer_length);  // NOLINT
    if (n < 0) {
      const int e = errno;
      if (ep.connected) {
        ep.peer_length = sizeof_peer(ep);
        if (e == ECONNREFUSED) {  // the peer's port is closed (ICMP): the dialer should know
          finish(c, {e, std::system_category()});
          return;
        }
      } else {
        ep.peer_length = 0;
      }
      if (e == EINTR || transient_datagram_error(e)) {
        continue;
      }
      if (e != EAGAIN && e != EWOULDBLOCK) {
        finish(c, {e, std::system_category()});
      }
      return;
    }
    if (static_cast<std::size_t>(n) > read_buffer_.size()) {
      ep.peer_length = ep.connected ? sizeof_peer(ep) : 0;
      note_dropped_datagram("longer than read_buffer_size");  // never half a datagram
      continue;
    }
    const std::span<const std::byte> datagram(read_buffer_.data(), static_cast<std::size_t>(n));
    if (ep.routes) {
      route_datagram(static_cast<detail::udp_router&>(c), datagram);
    } else {
      c.fresh_ = datagram;
      deliver(c);
    }
    // A socket actor's sender is known during on_data only; a connected socket's is fixed.
    ep.peer_length = ep.connected ? sizeof_peer(ep) : 0;
    if (c.state_ != connection::state::open) {
      return;
    }
    reap();  // sessions closed by that datagram, so the next one from their peer opens anew
  }
}

void event_loop::route_datagram(detail::udp_router& router, std::span<const std::byte> datagram) {
  const detail::peer_key key = key_of_peer(router.dgram_->peer);
  const engine::listener& l = owner_.listeners_[router.listener_index];
  connection* session = nullptr;
  if (const auto found = router.sessions.find(key); found != router.sessions.end()) {
    session = found->second;
  } else {
    if (router.sessions.size() >= l.options.max_sessions) {
      note_dropped_datagram("from a new peer past max_sessions");
      return;
    }
    session = open_session(router, key);
    if (session == nullptr) {
      return;
    }
  }
  if (session->state_ != connection::state::open) {
    return;  // closing: its peer's datagrams end with it
  }
  session->dgram_->last_seen = timer_clock::now();
  session->fresh_ = datagram;
  deliver(*session);
}

connection* event_loop::open_session(detail::udp_router& router, const detail::peer_key& key) {
  const engine::listener& l = owner_.listeners_[router.listener_index];
  std::unique_ptr<connection> c = make_connection(l.make);
  if (c == nullptr) {
    return nullptr;
  }
  auto endpoint = std::make_unique<detail::datagram_endpoint>();
  endpoint->peer = router.dgram_->peer;
  endpoint->peer_length = router.dgram_->peer_length;
  endpoint->socket = &router;
  endpoint->last_seen = timer_clock::now();
  c->dgram_ = std::move(endpoint);
  connection* session = install(std::move(c), router.fd_, transport::udp, watch::none, true);
  if (session == nullptr) {
    return nullptr;
  }
  router.sessions.emplace(key, session);
  watch_session_idle(session->ref(), l.options.session_idle_timeout);
  open(*session);
  return session;
}

void event_loop::watch_session_idle(conn_ref session, std::chrono::nanoseconds wait) {
  // One timer per session, moved forward only when it fires: datagrams cost no timer work.
  after(wait, [this, session] {
    connection* c = find(session.slot_, session.generation_);
    if (c == nullptr || !c->is_open()) {
      return;
    }
    const auto& router = static_cast<const detail::udp_router&>(*c->dgram_->socket);
    const std::chrono::nanoseconds idle =
        owner_.listeners_[router.listener_index].options.session_idle_timeout;
    const auto quiet = timer_clock::now() - c->dgram_->last_seen;
    if (quiet >= idle) {
      finish(*c, std::make_error_code(std::errc::timed_out));
      reap();
    } else {
      watch_session_idle(session, idle - quiet);
    }
  });
}

void event_loop::note_dropped_datagram(const char* why) {
  datagrams_dropped_.fetch_add(1, std::memory_order_relaxed);
  if (const std::uint64_t n = dropped_datagrams_.note(timer_clock::now())) {
    owner_.logger().warn("loop {}: dropped {} datagram(s) (the latest {})", index_, n, why);
  }
}

void event_loop::release_retired() noexcept {
  for (const std::span<std::byte> b : retired_) {
    block_pool::deallocate(b);  // no view from that on_data can point into them any more
  }
  retired_.clear();
}

void event_loop::write_out(connection& c) {
  bool progressed = false;
  while (!c.out_.empty()) {
    const result<std::size_t> sent = c.out_.drain_to(c.fd_);
    if (!sent) {
      if (sent.error() == std::errc::interrupted) {
        continue;
      }
      if (!would_block(sent.error())) {
        finish(c, sent.error());
        return;
      }
      c.after_draining(progressed);
      return;
    }
    progressed = progressed || *sent > 0;
  }
  c.want_write(false);
  if (c.state_ == connection::state::closing) {
    finish(c, c.closing_reason());
    return;
  }
  c.output_drained();
  c.after_draining(progressed);
}

void event_loop::finish(connection& c, std::error_code reason) noexcept {
  if (c.state_ == connection::state::closed) {
    return;
  }
  c.state_ = connection::state::closed;
  closing_.push_back({&c, reason});
}

void event_loop::reap_scheduled() noexcept {
  while (!closing_.empty()) {
    const closing next = closing_.back();
    closing_.pop_back();
    connection& c = *next.conn;
    if (c.dgram_ != nullptr && c.dgram_->routes) {
      auto& router = static_cast<detail::udp_router&>(c);
      if (!router.sessions.empty()) {
        // Its sessions write through its socket: they close first (before it, at the bottom).
        for (const auto& [key, session] : router.sessions) {
          finish(*session, next.reason);
        }
        closing_.insert(closing_.begin(), next);
        continue;
      }
    }
    const bool session = c.dgram_ != nullptr && c.dgram_->socket != nullptr;
    if (!session) {
      (void)backend_.unwatch(c.fd_);
    }
    try {
      c.on_close(next.reason);
    } catch (const std::exception& e) {
      owner_.logger().error("loop {}: on_close threw: {}", index_, e.what());
    }
    if (session) {
      static_cast<detail::udp_router&>(*c.dgram_->socket)
          .sessions.erase(key_of_peer(c.dgram_->peer));
    } else {
      ::close(c.fd_);
      if (c.dgram_ != nullptr && !c.dgram_->connected && !stopping_) {
        // A socket actor closed while serving: its socket must leave the port's SO_REUSEPORT
        // group, or the kernel keeps sending it peers nobody reads. (Loop 0's is a duplicate
        // of the engine's, which closes with it.)
        owner_.socket_actor_closed(c.dgram_->listener, index_);
      }
    }
    offloads_.forget(id_of(c));  // later results find no connection
    if (c.timing_ != nullptr) {
      c.cancel_timers();
    }
    (void)detail::guarded(owner_.logger(), index_, "scheduling a reconnect",
                          [&] { dialer_.closed(id_of(c), next.reason, stopping_); });
    slots_.release(c.slot_);
    const bool counted = c.counted_;
    if (c.admitted_) {
      owner_.release_admission();
    }
    delete &c;
    if (counted && connections_.fetch_sub(1, std::memory_order_relaxed) == 1) {
      schedule_idle_release();
    }
  }
}

void event_loop::schedule_idle_release() {
  if (idle_release_pending_ || stopping_ || options_.idle_release.count() == 0) {
    return;
  }
  idle_release_pending_ = true;
  try {
    timers_.add(timer_clock::now() + options_.idle_release, [this] {
      idle_release_pending_ = false;
      if (connection_count() == 0 && !stopping_) {
        release_idle_memory();
      }
    });
  } catch (const std::bad_alloc&) {
    idle_release_pending_ = false;  // no memory for a timer: nothing to give back later either
  }
}

void event_loop::release_idle_memory() noexcept {
  // Nothing points into these once the loop has no connections; they grow again on demand.
  // (UDP socket actors are not counted as connections: while one lives, the table stays.)
  (void)slots_.shrink();
  // Only what is empty: a close still pending here (a UDP socket actor's: those are not
  // counted) must still be carried out.
  if (closing_.empty()) {
    std::vector<closing>().swap(closing_);
  }
  if (retired_.empty()) {
    std::vector<std::span<std::byte>>().swap(retired_);
  }
  if (continue_reading_.empty()) {
    std::vector<conn_ref>().swap(continue_reading_);
  }
  backend_.shrink();
  block_pool::release_idle_memory();
#if defined(__GLIBC__)
  ::malloc_trim(0);  // the connection objects' heap pages
#endif
  // mimalloc decommits freed pages after a delay (up to 500 ms for whole segments), and only
  // when it is called again: a second pass after that delay gives them back.
  try {
    timers_.add(timer_clock::now() + std::chrono::milliseconds(600), [this] {
      if (connection_count() == 0) {
        block_pool::release_idle_memory();
      }
    });
  } catch (const std::bad_alloc&) {
    // the pages stay with the allocator until the next release
  }
}

void event_loop::close_all(std::error_code reason) noexcept {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (connection* c = slots_.at(i); c != nullptr && c->state_ != connection::state::closed) {
      if (!c->out_.empty()) {
        (void)c->out_.drain_to(c->fd_);  // one try; a drain deadline comes later
      }
      finish(*c, reason);
    }
  }
  reap();
}

}  // namespace actnet
