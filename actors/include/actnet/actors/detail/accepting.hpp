// accepting: a loop's job for its listeners: the acceptor takes the connections, each is
// admitted (max_connections), given to a loop by the balancer and adopted there.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "actnet/actors/detail/acceptor.hpp"
#include "actnet/actors/detail/log_limiter.hpp"
#include "actnet/actors/detail/loop_core.hpp"
#include "actnet/reactor/unique_fd.hpp"

namespace actnet {

class event_loop;

namespace detail {

/// One per loop, registered for io_kind::listener. Loop-thread only.
class accepting final : public io_job, public lifecycle_observer {
 public:
  explicit accepting(event_loop& loop);

  /// Watches listener `listener_index`'s socket `fd` on this loop. Throws std::system_error
  /// when the back end refuses it.
  void add_listener(std::size_t listener_index, int fd);
  /// The same, for an SO_REUSEPORT socket of this loop's own, which it then keeps.
  void add_own_listener(std::size_t listener_index, unique_fd fd);

  void on_io(io_key key, std::uint32_t events) override;  // a listener is readable
  void on_accepted(io_key key, unique_fd fd) override;    // io_uring accepted for it
  void closed(connection& /*c*/, std::error_code /*reason*/, bool /*stopping*/) noexcept override {}
  void stopping() noexcept override;  // no new connections

 private:
  void accept_from(std::size_t listener_index);
  // A connection accepted from listener `listener_index`: admitted, balanced and adopted here
  // or handed to the loop the balancer picks.
  void place_accepted(std::size_t listener_index, unique_fd fd, const sockaddr_storage& peer,
                      socklen_t peer_length);
  void pause_accepting(std::size_t listener_index, int listen_fd);
  void note_dropped_accept(std::string_view why);  // logged once a second at most

  event_loop& loop_;
  acceptor acceptor_;
  log_limiter dropped_;
  std::vector<unique_fd> own_;  // SO_REUSEPORT listeners owned by this loop, by listener index
};

}  // namespace detail
}  // namespace actnet
