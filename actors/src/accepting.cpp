// accepting: a loop's listeners. The acceptor takes the connections; here each is admitted
// (max_connections), given to a loop by the balancer, and adopted as a connection actor.
#include <spdlog/logger.h>

#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"

namespace actnet {

using detail::io_key;
using detail::io_kind;

void detail::loop_core::add_listener(std::size_t listener_index, int fd) {
  if (const std::error_code ec = backend_.watch_listener(
          fd, io_key(io_kind::listener, static_cast<std::uint32_t>(listener_index)))) {
    throw std::system_error(ec, "actnet: cannot watch a listener");
  }
}

void detail::loop_core::accept_from(std::size_t listener_index) {
  const int listen_fd =
      options_.reuse_port && listener_index < listeners_.size() && listeners_[listener_index]
          ? listeners_[listener_index].get()
          : owner_.listeners_[listener_index].fd.get();
  auto take = [this, listener_index](unique_fd fd, const sockaddr_storage& peer,
                                     socklen_t peer_length) {
    place_accepted(listener_index, std::move(fd), peer, peer_length);
  };
  auto drop = [this](std::string_view why) { note_dropped_accept(why); };
  if (const std::error_code ec = acceptor_.accept_from(listen_fd, take, drop)) {
    if (ec != std::errc::too_many_files_open && ec != std::errc::too_many_files_open_in_system) {
      owner_.logger().error("loop {}: accept failed: {}", index_, ec.message());
    }
    pause_accepting(listener_index, listen_fd);
  }
}

void detail::loop_core::place_accepted(std::size_t listener_index, unique_fd fd,
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
  event_loop& target = options_.reuse_port ? self_ : *owner_.loops_[to.target];
  if (&target == &self_) {
    adopt(std::move(fd), owner_.listeners_[listener_index].make, std::move(to.lease), admitted);
    reap();
  } else {
    target.send(detail::message::adopt(std::move(fd), static_cast<std::uint32_t>(listener_index),
                                       std::move(to.lease), admitted));
  }
}

void detail::loop_core::note_dropped_accept(std::string_view why) {
  owner_.refused_.fetch_add(1, std::memory_order_relaxed);
  if (const std::uint64_t n = dropped_accepts_.note(timer_clock::now())) {
    owner_.logger().warn("loop {}: accept: {}; dropped {} connection(s)", index_, why, n);
  }
}

void detail::loop_core::pause_accepting(std::size_t listener_index, int listen_fd) {
  (void)backend_.unwatch(listen_fd);
  self_.after(std::chrono::milliseconds(100), [this, listener_index, listen_fd] {
    if (!stopping_) {
      (void)backend_.watch_listener(
          listen_fd, io_key(io_kind::listener, static_cast<std::uint32_t>(listener_index)));
    }
  });
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
