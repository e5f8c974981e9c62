// kcp_transport: KCP conversations as connection actors over UDP (kcp:// listeners and dials).
// A connection's output goes into its conversation as KCP's window allows, the rest waiting in
// the outbound buffer (where the watermarks and the outbound cap see it); its datagrams go into
// the conversation and what arrives in order goes to on_data; one clock a loop drives every
// conversation that has work (acks owed, data in flight, a window to probe), and no other.
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstring>
#include <new>
#include <random>
#include <stdexcept>
#include <string>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/detail/datagram_sockets.hpp"
#include "actnet/actors/detail/kcp_state.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"

namespace actnet {
namespace detail {

std::uint64_t kcp_clock_ms() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::optional<std::string> kcp_plain_url(std::string_view url) {
  const std::size_t separator = url.find("://");
  if (separator == std::string_view::npos) {
    return std::nullopt;
  }
  std::string scheme(url.substr(0, separator));
  for (char& c : scheme) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (scheme != "kcp" && scheme != "kcp4" && scheme != "kcp6") {
    return std::nullopt;
  }
  return "udp" + scheme.substr(3) + std::string(url.substr(separator));
}

void check_kcp_options(const kcp_options& o, std::size_t read_buffer_size) {
  const auto bad = [](const std::string& what) {
    throw std::invalid_argument("kcp_options::" + what);
  };
  if (o.interval < std::chrono::milliseconds(10) || o.interval > std::chrono::seconds(5)) {
    bad("interval = " + std::to_string(o.interval.count()) + " ms: must be between 10 ms and 5 s");
  }
  if (o.send_window < 1 || o.send_window > 65'535) {
    bad("send_window = " + std::to_string(o.send_window) + ": must be 1 to 65,535 segments");
  }
  if (o.receive_window < 1 || o.receive_window > 65'535) {
    bad("receive_window = " + std::to_string(o.receive_window) + ": must be 1 to 65,535 segments");
  }
  if (o.idle_timeout.count() <= 0 || o.idle_timeout > std::chrono::hours(24 * 365)) {
    bad("idle_timeout = " + std::to_string(o.idle_timeout.count()) +
        " ms: must be between 1 ms and a year");
  }
  if (o.max_conversations == 0) {
    bad("max_conversations = 0: must be at least 1");
  }
  if (o.mtu < 50 || o.mtu > 65'507 || o.mtu > read_buffer_size) {
    bad("mtu = " + std::to_string(o.mtu) +
        ": must be 50 to 65,507 bytes, and at most read_buffer_size (" +
        std::to_string(read_buffer_size) + ")");
  }
}

bool opens_conversation(std::span<const std::byte> datagram) noexcept {
  const std::optional<kcp_header> h = read_kcp_header(datagram);
  return h.has_value() && h->cmd == kcp_command::push;
}

namespace {

// A dial's conversation id: random, so that a new dial is not taken for an old conversation
// between the same two ports.
std::uint32_t new_conversation_id() {
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uint32_t id = 0;
  while (id == 0) {
    id = static_cast<std::uint32_t>(rng());
  }
  return id;
}

}  // namespace

void attach_kcp(connection& c, std::uint32_t conv, const kcp_options& options) {
  if (c.xport_ == nullptr) {
    c.xport_ = std::make_unique<transport_state>();
    c.path_ = static_cast<std::uint8_t>(c.path_ | connection::not_plain);
  }
  c.xport_->kcp =
      std::make_unique<kcp_state>(conv, options, [conn = &c](std::span<const std::byte> d) {
        const std::array parts{d};
        (void)conn->send_datagram(parts);  // (one that is lost, KCP sends again)
      });
}

std::function<std::unique_ptr<connection>()> kcp_client_factory(
    std::function<std::unique_ptr<connection>()> make, const kcp_options& options) {
  return [make = std::move(make), options]() -> std::unique_ptr<connection> {
    std::unique_ptr<connection> c = make();
    if (c != nullptr) {
      attach_kcp(*c, new_conversation_id(), options);
    }
    return c;
  };
}

// -- the loop's clock and its conversations --

namespace {
bool later(const datagram_sockets::kcp_due& a, const datagram_sockets::kcp_due& b) noexcept {
  return a.at > b.at;
}
// From now to the start of millisecond `at` of the KCP clock, to the nanosecond: the loop's
// timer fires as that millisecond begins, not up to one later (a resend due at 30 ms goes at
// 30, not at 30.9).
std::chrono::nanoseconds kcp_delay_until(std::uint64_t at) noexcept {
  const auto delay =
      std::chrono::milliseconds(at) - std::chrono::steady_clock::now().time_since_epoch();
  return std::max(std::chrono::duration_cast<std::chrono::nanoseconds>(delay),
                  std::chrono::nanoseconds(0));
}
const char* why_refused(kcp_input verdict) noexcept {
  switch (verdict) {
    case kcp_input::wrong_conv:
      return "KCP: a segment of another conversation";
    case kcp_input::truncated:
      return "KCP: a truncated segment";
    case kcp_input::bad_command:
      return "KCP: an unknown command";
    case kcp_input::ok:
      break;
  }
  return "KCP";
}
}  // namespace

void datagram_sockets::kcp_received(connection& c, std::span<const std::byte> datagram) {
  kcp_state& k = *c.kcp();
  const std::uint64_t now = kcp_clock_ms();
  const std::size_t unacknowledged = k.session.unacknowledged_bytes();
  kcp_input verdict = kcp_input::ok;
  try {
    verdict = k.session.input(datagram, static_cast<std::uint32_t>(now));
  } catch (const std::bad_alloc&) {
    loop_.schedule_close(c, std::make_error_code(std::errc::not_enough_memory));
    return;
  }
  if (verdict != kcp_input::ok) {
    note_dropped(why_refused(verdict));
  }
  const bool acked = k.session.unacknowledged_bytes() < unacknowledged;
  if (acked && c.timing_ != nullptr) {
    c.note_sent();  // the peer acknowledged bytes: the idle and write timeouts' clock
  }
  // Acks may have opened the window for the output, or acknowledged what a close waits for.
  if (!c.out_.empty() || c.state_ == connection::state::closing) {
    (void)c.drain_kcp();
  }
  // Acks owed, segments the peer's acks have just let out, and resends its acks ask for go
  // once this batch of datagrams is read (one flush for the batch), not at the next interval:
  // the windows turn over in a round trip, not in an interval.
  if (k.session.acks_owed() != 0 || (acked && k.session.sends_waiting()) ||
      k.session.resend_due()) {
    kcp_touch(c);
  }
  kcp_deliver(c);
}

void datagram_sockets::kcp_deliver(connection& c) {
  kcp_session& s = c.kcp()->session;
  const auto& buffer = loop_.read_buffer_;  // (free: a datagram read into it is in KCP now)
  while (c.is_open() && !c.read_paused() && s.readable()) {
    std::size_t used = 0;
    (void)s.receive([&](std::span<const std::byte> piece) {
      if (used + piece.size() > buffer.size()) {
        return false;
      }
      std::memcpy(buffer.data() + used, piece.data(), piece.size());
      used += piece.size();
      return true;
    });
    if (used == 0) {
      break;
    }
    if (c.timing_ != nullptr) {
      c.note_read();
    }
    c.fresh_ = std::span<const std::byte>(buffer.data(), used);
    loop_.deliver_now(c);
  }
  if (c.state_ != connection::state::closed) {
    kcp_schedule(c, kcp_clock_ms());  // (acks owed, or a window that opened, to tell)
  }
}

void datagram_sockets::kcp_touch(connection& c) {
  kcp_state& k = *c.kcp();
  if (k.dirty) {
    return;
  }
  k.dirty = true;
  kcp_dirty_.push_back(c.ref());
  if (!kcp_flush_posted_) {
    kcp_flush_posted_ = true;
    loop_.post_fn([this](event_loop&, connection*, std::error_code) { kcp_flush(); });
  }
}

void datagram_sockets::kcp_flush() {
  kcp_flush_posted_ = false;
  std::vector<conn_ref> dirty;
  dirty.swap(kcp_dirty_);
  const std::uint64_t now = kcp_clock_ms();
  for (const conn_ref& r : dirty) {
    connection* c = loop_.find(r.slot_, r.generation_);
    if (c == nullptr || c->state_ == connection::state::closed || c->kcp() == nullptr) {
      continue;
    }
    c->kcp()->dirty = false;
    c->kcp()->session.flush(static_cast<std::uint32_t>(now));
    kcp_schedule(*c, now);
  }
  dirty.clear();
  if (kcp_dirty_.empty()) {
    kcp_dirty_.swap(dirty);  // (its capacity kept for the next batch)
  }
  loop_.reap();
}

void datagram_sockets::kcp_schedule(connection& c, std::uint64_t now) {
  kcp_state& k = *c.kcp();
  if (!k.session.has_work()) {
    k.scheduled = false;  // (an entry left in the heap is skipped when it comes up)
    return;
  }
  const auto now32 = static_cast<std::uint32_t>(now);
  // (At least a millisecond on: the clock's tick never runs one conversation twice.)
  const std::uint64_t at = now + std::max<std::uint32_t>(k.session.next_update(now32) - now32, 1);
  if (k.scheduled && k.due <= at) {
    return;
  }
  k.scheduled = true;
  k.due = at;
  kcp_heap_.push_back({at, c.ref()});
  std::push_heap(kcp_heap_.begin(), kcp_heap_.end(), later);
  if (kcp_timer_ == 0 || at < kcp_timer_at_) {
    if (kcp_timer_ != 0) {
      (void)loop_.cancel(kcp_timer_);
    }
    kcp_timer_at_ = at;
    kcp_timer_ = loop_.after(kcp_delay_until(at), [this] { kcp_tick(); });
  }
}

void datagram_sockets::kcp_tick() {
  kcp_timer_ = 0;
  const std::uint64_t now = kcp_clock_ms();
  while (!kcp_heap_.empty() && kcp_heap_.front().at <= now) {
    std::pop_heap(kcp_heap_.begin(), kcp_heap_.end(), later);
    const kcp_due due = kcp_heap_.back();
    kcp_heap_.pop_back();
    connection* c = loop_.find(due.who.slot_, due.who.generation_);
    if (c == nullptr || c->state_ == connection::state::closed || c->kcp() == nullptr) {
      continue;
    }
    kcp_state& k = *c->kcp();
    if (!k.scheduled || k.due != due.at) {
      continue;  // stale: scheduled again since
    }
    k.scheduled = false;
    k.session.update(static_cast<std::uint32_t>(now));
    if (k.session.dead()) {  // a segment sent again and again without an ack: the peer is gone
      loop_.schedule_close(*c, std::make_error_code(std::errc::timed_out));
      continue;
    }
    kcp_schedule(*c, now);
  }
  // The timer for the earliest entry: one armed above, by a conversation scheduled in this
  // tick, may be later than an entry that was already waiting.
  if (!kcp_heap_.empty() && (kcp_timer_ == 0 || kcp_heap_.front().at < kcp_timer_at_)) {
    if (kcp_timer_ != 0) {
      (void)loop_.cancel(kcp_timer_);
    }
    kcp_timer_at_ = kcp_heap_.front().at;
    kcp_timer_ = loop_.after(kcp_delay_until(kcp_timer_at_), [this] { kcp_tick(); });
  }
  loop_.reap();
}

}  // namespace detail

// -- the connection's side --

bool connection::kcp_unacknowledged() const noexcept {
  return xport_->kcp->session.unacknowledged() != 0;
}

std::error_code connection::write_kcp(std::span<const std::span<const std::byte>> parts) {
  const bool was_waiting = output_waiting();  // in the output, or in KCP unacknowledged
  for (const std::span<const std::byte> part : parts) {
    if (part.empty()) {
      continue;
    }
    if (const std::error_code ec = out_.write(part)) {
      return fail(ec);
    }
  }
  if (out_.empty()) {
    return {};
  }
  if (const std::error_code ec = drain_kcp()) {
    return ec;
  }
  if (state_ != state::closed) {
    if (timing_ != nullptr && !was_waiting && output_waiting()) {
      start_write_clock();  // bytes wait for acks now: the write timeout counts from here
    }
    if (!out_.empty()) {
      after_buffering(false);  // the rest waits for acks: the high watermark may be crossed
    }
  }
  return {};
}

std::error_code connection::drain_kcp() {
  detail::kcp_state& k = *xport_->kcp;
  detail::kcp_session& s = k.session;
  // Two windows' worth at most inside KCP; the rest waits in the output.
  const std::size_t room = std::size_t{2} * s.send_window() * s.mss();
  bool moved = false;
  try {
    while (!out_.empty() && s.unacknowledged_bytes() < room) {
      std::array<iovec, 16> parts{};
      const std::size_t n = out_.peek(parts, room - s.unacknowledged_bytes());
      std::size_t taken = 0;
      for (std::size_t i = 0; i < n; ++i) {
        s.send({static_cast<const std::byte*>(parts[i].iov_base), parts[i].iov_len});
        taken += parts[i].iov_len;
      }
      (void)out_.discard(taken);
      moved = true;
    }
    if (moved) {
      static_cast<detail::datagram_sockets*>(
          loop_->handlers_[static_cast<std::size_t>(detail::io_kind::datagram)])
          ->kcp_touch(*this);
    }
  } catch (const std::bad_alloc&) {
    return fail(std::make_error_code(std::errc::not_enough_memory));
  }
  if (out_.empty() && s.unacknowledged() == 0) {
    if (state_ == state::closing) {
      loop_->schedule_close(*this, closing_reason());
      return {};
    }
    output_drained();
  }
  after_draining(moved);
  return {};
}

}  // namespace actnet
