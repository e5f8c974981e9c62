// datagram_sockets: UDP socket actors, batched reads, and sessions by peer address.
#include "actnet/actors/detail/datagram_sockets.hpp"

#include <netinet/in.h>
#include <spdlog/logger.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/detail/kcp_state.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/defaults.hpp"

namespace actnet::detail {

/// A peer's address as a hash key: family, port, IP and (IPv6) scope; and, on a KCP listener,
/// the conversation.
struct peer_key {
  std::array<std::uint64_t, 4> words{};
  friend bool operator==(const peer_key&, const peer_key&) = default;
};

namespace {

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

peer_key key_of_peer(const sockaddr_storage& peer, std::uint32_t conv = 0) noexcept {
  peer_key k;
  k.words[3] = conv;
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

// A connected socket's peer length, from its family (recvfrom overwrote the length).
socklen_t sizeof_peer(const datagram_endpoint& ep) noexcept {
  return ep.peer.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// recvfrom errors that concern one datagram or an earlier send, not the socket: skip them.
bool transient_datagram_error(int e) noexcept {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == ECONNRESET ||
         e == EMSGSIZE || e == ENOMEM || e == ENOBUFS;
}

}  // namespace

/// The socket actor of a listener with UDP sessions: it owns the socket and hands each datagram
/// to its peer's session, making one on the first datagram.
class udp_router final : public connection {
 public:
  explicit udp_router(std::size_t listener) : listener_index(listener) {}
  std::size_t listener_index;
  std::unordered_map<peer_key, connection*, peer_key_hash> sessions;
};

connection* datagram_sockets::open_session(udp_router& router, const peer_key& key,
                                           std::uint32_t conv) {
  const engine::listener& l = loop_.owner_.listeners_[router.listener_index];
  std::unique_ptr<connection> c = loop_.make_connection(l.make);
  if (c == nullptr) {
    return nullptr;
  }
  auto endpoint = std::make_unique<datagram_endpoint>();
  endpoint->peer = router.dgram()->peer;
  endpoint->peer_length = router.dgram()->peer_length;
  endpoint->socket = &router;
  endpoint->last_seen = timer_clock::now();
  c->set_datagram(std::move(endpoint));
  if (l.options.kcp) {
    try {
      attach_kcp(*c, conv, *l.options.kcp);
    } catch (const std::bad_alloc&) {
      note_dropped("a new KCP conversation, out of memory");
      return nullptr;
    }
  }
  tracking_ = true;  // (for good: a loop that serves UDP once keeps hearing of closes)
  connection* session =
      loop_.install(std::move(c), router.fd_, detail::loop_core::watch::none, true);
  if (session == nullptr) {
    return nullptr;
  }
  router.sessions.emplace(key, session);
  watch_idle(session->ref(), idle_limit(*session));
  loop_.open(*session);
  return session;
}

std::chrono::nanoseconds datagram_sockets::idle_limit(const connection& c) const {
  if (c.kcp() != nullptr) {
    return c.kcp()->idle_timeout;  // a listener's conversation or a dial's
  }
  const auto& router = static_cast<const udp_router&>(*c.dgram()->socket);
  return loop_.owner_.listeners_[router.listener_index].options.session_idle_timeout;
}

void datagram_sockets::kcp_dialed(connection& c) {
  c.dgram()->last_seen = timer_clock::now();
  watch_idle(c.ref(), idle_limit(c));
}

void datagram_sockets::watch_idle(conn_ref session, std::chrono::nanoseconds wait) {
  // One timer per session, moved forward only when it fires: datagrams cost no timer work.
  loop_.after(wait, [this, session] {
    connection* c = loop_.find(session.slot_, session.generation_);
    if (c == nullptr || c->state_ == connection::state::closed) {
      return;
    }
    const std::chrono::nanoseconds idle = idle_limit(*c);
    const auto quiet = timer_clock::now() - c->dgram()->last_seen;
    if (quiet >= idle) {
      loop_.schedule_close(*c, std::make_error_code(std::errc::timed_out));
      loop_.reap();
    } else {
      watch_idle(session, idle - quiet);
    }
  });
}

void datagram_sockets::open(std::size_t listener, unique_fd fd) {
  const engine::listener& l = loop_.owner_.listeners_[listener];
  std::unique_ptr<connection> c;
  if (l.options.udp_sessions) {
    c = std::make_unique<udp_router>(listener);
  } else {
    c = loop_.make_connection(l.make);
    if (c == nullptr) {
      return;  // logged; this loop does not serve the address
    }
  }
  auto endpoint = std::make_unique<datagram_endpoint>();
  endpoint->routes = l.options.udp_sessions;
  endpoint->listener = listener;
  c->set_datagram(std::move(endpoint));
  tracking_ = true;  // (for good: a loop that serves UDP once keeps hearing of closes)
  // Level-triggered whatever the engine's mode: readable() takes a bounded batch per event.
  if (connection* conn =
          loop_.install(std::move(c), fd.get(), detail::loop_core::watch::datagram, false)) {
    (void)fd.release();
    if (!conn->dgram()->routes) {
      loop_.open(*conn);
    }
  }
}

void datagram_sockets::readable(connection& c) {
  datagram_endpoint& ep = *c.dgram();
  const auto& buffer = loop_.read_buffer_;
  for (std::size_t i = 0; i < defaults::datagram_batch; ++i) {
    ep.peer_length = sizeof ep.peer;
    // MSG_TRUNC: the datagram's real length, so one cut to the read buffer is seen.
    const ssize_t n = ::recvfrom(c.fd_, buffer.data(), buffer.size(), MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&ep.peer), &ep.peer_length);  // NOLINT
    if (n < 0) {
      const int e = errno;
      if (ep.connected) {
        ep.peer_length = sizeof_peer(ep);
        if (e == ECONNREFUSED) {  // the peer's port is closed (ICMP): the dialer should know
          loop_.schedule_close(c, {e, std::system_category()});
          return;
        }
      } else {
        ep.peer_length = 0;
      }
      if (e == EINTR || transient_datagram_error(e)) {
        continue;
      }
      if (e != EAGAIN && e != EWOULDBLOCK) {
        loop_.schedule_close(c, {e, std::system_category()});
      }
      return;
    }
    if (static_cast<std::size_t>(n) > buffer.size()) {
      ep.peer_length = ep.connected ? sizeof_peer(ep) : 0;
      note_dropped("longer than read_buffer_size");  // never half a datagram
      continue;
    }
    if (!hand_on(c, std::span<const std::byte>(buffer.data(), static_cast<std::size_t>(n)))) {
      return;
    }
  }
}

bool datagram_sockets::hand_on(connection& c, std::span<const std::byte> datagram) {
  datagram_endpoint& ep = *c.dgram();
  connection* to = &c;
  if (ep.routes) {
    auto& router = static_cast<udp_router&>(c);
    const engine::listener& l = loop_.owner_.listeners_[router.listener_index];
    // A KCP listener's conversations: by peer and conversation id, the first segment's.
    const std::optional<std::uint32_t> conv =
        l.options.kcp ? kcp_conversation(datagram) : std::optional<std::uint32_t>(0);
    const peer_key key = key_of_peer(ep.peer, conv.value_or(0));
    if (!conv) {
      note_dropped("too short for a KCP segment");
      to = nullptr;
    } else if (const auto found = router.sessions.find(key); found != router.sessions.end()) {
      to = found->second;
    } else if (router.sessions.size() >=
               (l.options.kcp ? l.options.kcp->max_conversations : l.options.max_sessions)) {
      note_dropped(l.options.kcp ? "KCP: a new conversation past max_conversations"
                                 : "from a new peer past max_sessions");
      to = nullptr;
    } else if (l.options.kcp && !opens_conversation(datagram)) {
      note_dropped("KCP: no data segment to open a conversation");  // (a late ack, a probe)
      to = nullptr;
    } else {
      to = open_session(router, key, *conv);
    }
    // (A closing session's datagrams end with it; a closing KCP conversation's acks count.)
    if (to != nullptr &&
        (to->is_open() || (to->kcp() != nullptr && to->state_ == connection::state::closing))) {
      to->dgram()->last_seen = timer_clock::now();
    } else {
      to = nullptr;
    }
  }
  if (to != nullptr && to->kcp() != nullptr) {
    if (ep.connected) {
      ep.last_seen = timer_clock::now();  // a dial's conversation (a listener's is above)
    }
    kcp_received(*to, datagram);
  } else if (to != nullptr) {
    to->fresh_ = datagram;
    loop_.deliver_now(*to);
  }
  // A socket actor's sender is known during on_data only; a connected socket's is fixed.
  ep.peer_length = ep.connected ? sizeof_peer(ep) : 0;
  if (!c.is_open()) {
    return false;
  }
  loop_.reap();  // sessions closed by that datagram, so the next one from their peer opens anew
  return true;
}

connection* datagram_sockets::reader(io_key key) {
  // The generation matters: a socket actor closed earlier in this batch may have had its
  // slot taken by another connection since.
  connection* c = loop_.find(key.slot(), key.generation());
  // (A dialed KCP conversation that is closing still reads: the acks it waits for.)
  const bool reading =
      c != nullptr &&
      (c->is_open() || (c->kcp() != nullptr && c->state_ == connection::state::closing));
  return reading && c->dgram() != nullptr && c->dgram()->socket == nullptr ? c : nullptr;
}

void datagram_sockets::on_datagram(io_key key, std::span<const std::byte> bytes,
                                   const sockaddr* from, socklen_t from_length, bool truncated) {
  connection* c = reader(key);
  if (c == nullptr) {
    return;  // closing: not read any more, as on epoll
  }
  if (truncated || bytes.size() > loop_.read_buffer_.size()) {
    // Never half a datagram: on io_uring the limit is also the ring's buffer, less the room
    // for the sender's address.
    note_dropped(truncated ? "longer than uring_buffer_size less 144 bytes"
                           : "longer than read_buffer_size");
    return;
  }
  datagram_endpoint& ep = *c->dgram();
  from_length = std::min<socklen_t>(from_length, sizeof ep.peer);
  if ((c->read_paused() && c->kcp() == nullptr) || !ep.held.empty()) {
    try {  // (after a pause, behind what was held: in order)
      datagram_endpoint::held_datagram& h = ep.held.emplace_back();
      h.bytes.assign(bytes.begin(), bytes.end());
      std::memcpy(&h.from, from, from_length);
      h.from_length = from_length;
    } catch (const std::bad_alloc&) {
      note_dropped("held while paused, out of memory");
    }
    return;
  }
  if (!ep.connected) {
    std::memcpy(&ep.peer, from, from_length);
    ep.peer_length = from_length;
  }
  (void)hand_on(*c, bytes);
}

void datagram_sockets::on_datagram_failed(io_key key, int res) {
  connection* c = reader(key);
  if (c == nullptr) {
    return;
  }
  const int e = -res;
  // A dialed socket hears that its peer's port is closed (ICMP); other errors that concern one
  // datagram are skipped, and the back end arms the receive again.
  const bool refused = c->dgram()->connected && e == ECONNREFUSED;
  if (refused || (e != EINTR && !transient_datagram_error(e))) {
    loop_.schedule_close(*c, {e, std::system_category()});
  }
}

void datagram_sockets::on_datagram_send_failed(io_key key, int res) {
  connection* c = reader(key);
  if (c != nullptr && c->dgram()->connected && res == -ECONNREFUSED) {
    loop_.schedule_close(*c, {-res, std::system_category()});  // the peer's port is closed
    return;
  }
  note_dropped("a send through the ring failed");
}

void datagram_sockets::on_resumed(connection& c) {
  if (c.kcp() != nullptr) {
    kcp_deliver(c);  // what KCP received while reading was paused
    loop_.reap();
    return;
  }
  datagram_endpoint& ep = *c.dgram();
  std::vector<datagram_endpoint::held_datagram> held;
  held.swap(ep.held);
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (!c.is_open() || c.read_paused()) {
      // Paused again: the rest stays held, ahead of whatever came meanwhile.
      ep.held.insert(ep.held.begin(),
                     std::make_move_iterator(held.begin() + static_cast<std::ptrdiff_t>(i)),
                     std::make_move_iterator(held.end()));
      return;
    }
    if (!ep.connected) {
      ep.peer = held[i].from;
      ep.peer_length = held[i].from_length;
    }
    if (!hand_on(c, held[i].bytes)) {
      return;
    }
  }
}

datagram_sockets::datagram_sockets(event_loop& loop) : loop_(loop) {
  loop.handle_kind(io_kind::datagram, *this);
  loop.observe(*this, loop_core::close_gate | loop_core::closes);
}

void datagram_sockets::on_io(io_key key, std::uint32_t /*events*/) {
  if (connection* c = reader(key); c != nullptr && (!c->read_paused() || c->kcp() != nullptr)) {
    readable(*c);
  }
}

bool datagram_sockets::ready_to_close(connection& c, std::error_code reason) noexcept {
  if (c.dgram() == nullptr || !c.dgram()->routes) {
    return true;
  }
  auto& router = static_cast<udp_router&>(c);
  if (router.sessions.empty()) {
    return true;
  }
  for (const auto& [key, session] : router.sessions) {
    loop_.schedule_close(*session, reason);
  }
  return false;
}

void datagram_sockets::closed(connection& c, std::error_code /*reason*/, bool stopping) noexcept {
  if (c.dgram() == nullptr) {
    return;
  }
  const datagram_endpoint& ep = *c.dgram();
  if (ep.socket != nullptr) {
    const std::uint32_t conv = c.kcp() != nullptr ? c.kcp()->session.conv() : 0;
    static_cast<udp_router&>(*ep.socket).sessions.erase(key_of_peer(ep.peer, conv));
  } else if (!ep.connected && !stopping) {
    // A socket actor closed while serving: its socket must leave the port's SO_REUSEPORT
    // group, or the kernel keeps sending it peers nobody reads. (Loop 0's is a duplicate of
    // the engine's, which closes with it.)
    loop_.owner_.socket_actor_closed(ep.listener, loop_.index());
  }
}

void datagram_sockets::note_dropped(const char* why) {
  loop_.datagrams_dropped_.fetch_add(1, std::memory_order_relaxed);
  if (const std::uint64_t n = dropped_.note(timer_clock::now())) {
    loop_.owner().logger().warn("loop {}: dropped {} datagram(s) (the latest {})", loop_.index(), n,
                                why);
  }
}

}  // namespace actnet::detail
