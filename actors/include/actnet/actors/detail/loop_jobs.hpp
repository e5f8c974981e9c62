// loop_jobs: the jobs a loop runs on its core: accepting, dialing, datagram sockets and offload
// order. Each registers with the core (detail/loop_core.hpp) for what it watches and hears;
// the core never names them.
#pragma once

#include <cstdint>
#include <system_error>

#include "actnet/actors/detail/accepting.hpp"
#include "actnet/actors/detail/actor_host.hpp"
#include "actnet/actors/detail/datagram_sockets.hpp"
#include "actnet/actors/detail/dialer.hpp"
#include "actnet/actors/detail/loop_core.hpp"
#include "actnet/actors/detail/offload_order.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

class connection;
class event_loop;

namespace detail {

/// connection::offload's job: sequence numbers per connection, and results put back in that
/// order (offload_order). Loop-thread only.
class offloads final : public lifecycle_observer {
 public:
  explicit offloads(event_loop& loop);

  std::uint64_t next(const connection& c);
  void unused(const connection& c, std::uint64_t seq) noexcept;  // its submission failed
  void arrived(connection& c, std::uint64_t seq, unique_function<void()> deliver);
  void closed(connection& c, std::error_code reason, bool stopping) noexcept override;

 private:
  event_loop& loop_;
  offload_order order_;  // by connection id (slot and generation)
};

/// The jobs of one event_loop, its second private base (after loop_core, which they register
/// with as they are made).
struct loop_jobs {
  explicit loop_jobs(event_loop& self)
      : accepting_(self), dialer_(self), datagrams_(self), offloads_(self), actors_(self) {}

  accepting accepting_;
  dialer dialer_;
  datagram_sockets datagrams_;
  offloads offloads_;
  actor_host actors_;
};

}  // namespace detail
}  // namespace actnet
