// message: what travels through a loop's mailbox, with one builder per kind of message.
#pragma once

#include <cstdint>
#include <utility>

#include "actnet/actors/conn_ref.hpp"
#include "actnet/balancer/balancer.hpp"
#include "actnet/buffers/block.hpp"
#include "actnet/reactor/unique_fd.hpp"

namespace actnet::detail {

/// A mailbox message. The built-in kinds carry their payload inline (an fd, a pooled block, a
/// closure of up to 48 bytes), so posting one allocates nothing of its own. Build one with the
/// static functions below, never field by field.
struct message {
  using kind = message_kind;
  kind what = kind::none;
  bool admitted = false;  // adopt: counted against engine_options::max_connections
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  int fd = -1;                 // adopt: the accepted socket
  std::uint32_t listener = 0;  // adopt: which listener accepted it
  balancer_lease lease;        // adopt: the connection's count on the balancer
  block payload;               // async_write
  message_fn fn;               // closure, tell, ask, async_write's completion

  /// `fn(loop, nullptr, {})` on the loop.
  static message closure(message_fn fn) noexcept { return {kind::closure, std::move(fn)}; }
  /// A message for the connection (slot, generation): tell, ask (generation 0: the loop's own
  /// question), async_write (with `payload`; `fn` its completion), close, wake.
  static message to_actor(kind k, std::uint32_t slot, std::uint32_t generation,
                          message_fn fn = nullptr, block payload = {}) noexcept {
    message m;
    m.what = k;
    m.slot = slot;
    m.generation = generation;
    m.fn = std::move(fn);
    m.payload = std::move(payload);
    return m;
  }
  /// An accepted socket for another loop to adopt; the message owns `fd` until then.
  static message adopt(unique_fd fd, std::uint32_t listener, balancer_lease lease,
                       bool admitted) noexcept {
    message m;
    m.what = kind::adopt;
    m.fd = fd.release();
    m.listener = listener;
    m.lease = std::move(lease);
    m.admitted = admitted;
    return m;
  }
  static message stop() noexcept {
    message m;
    m.what = kind::stop;
    return m;
  }

  message() noexcept = default;
  /// A message of kind `k` whose fn is made of `f` in place.
  template <class F>
  message(kind k, F&& f) : what(k), fn(std::forward<F>(f)) {}
  message(message&& other) noexcept
      : what(other.what),
        admitted(std::exchange(other.admitted, false)),
        slot(other.slot),
        generation(other.generation),
        fd(std::exchange(other.fd, -1)),  // the fd has one owner: the moved-from has none
        listener(other.listener),
        lease(std::move(other.lease)),
        payload(std::move(other.payload)),
        fn(std::move(other.fn)) {}
  message& operator=(message&& other) noexcept;
  message(const message&) = delete;
  message& operator=(const message&) = delete;
  ~message() {
    if (fd >= 0) [[unlikely]] {
      close_fd();  // an adopted fd that no loop took
    }
  }

 private:
  void close_fd() noexcept;
};

}  // namespace actnet::detail
