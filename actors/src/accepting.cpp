// accepting: a loop's listeners. The acceptor takes the connections; here each is admitted
// (max_connections), given to a loop by the balancer, and adopted as a connection actor.
#include "actnet/actors/detail/accepting.hpp"

#include <spdlog/logger.h>
#include <sys/socket.h>

#include <mutex>
#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"

namespace actnet::detail {

accepting::accepting(event_loop& loop) : loop_(loop) {
  loop.handle_kind(io_kind::listener, *this);
  loop.observe(*this, loop_core::stop);
}

void accepting::add_listener(std::size_t listener_index, int fd) {
  if (const std::error_code ec = loop_.backend_.watch_listener(
          fd, io_key(io_kind::listener, static_cast<std::uint32_t>(listener_index)))) {
    throw std::system_error(ec, "actnet: cannot watch a listener");
  }
}

void accepting::add_own_listener(std::size_t listener_index, unique_fd fd) {
  add_listener(listener_index, fd.get());
  if (own_.size() <= listener_index) {
    own_.resize(listener_index + 1);
  }
  own_[listener_index] = std::move(fd);
}

void accepting::on_io(io_key key, std::uint32_t /*events*/) {
  accept_from(key.slot());
}

void accepting::on_accepted(io_key key, unique_fd fd) {
  sockaddr_storage peer{};
  socklen_t length = 0;
  if (!loop_.options_.reuse_port && loop_.owner_.balancer_->needs_peer()) {
    length = sizeof peer;
    if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &length) != 0) {  // NOLINT
      length = 0;  // (reset already: it fails at its first read, wherever it goes)
      peer.ss_family = AF_UNSPEC;
    }
  }
  place_accepted(key.slot(), std::move(fd), peer, length);
}

void accepting::stopping() noexcept {
  // This loop's SO_REUSEPORT sockets leave its back end before they close: an accept still on
  // an io_uring ring holds its socket, which would stay in the port's group (and take
  // connections nobody accepts) until the ring is gone, after the loop's thread ends.
  for (const unique_fd& fd : own_) {
    if (fd) {
      (void)loop_.backend_.unwatch(fd.get());
    }
  }
  own_.clear();
  // Loop 0 accepts for the engine's own listeners: they leave its back end (the engine closes
  // them after the loops).
  if (loop_.index_ == 0) {
    const std::lock_guard lock(loop_.owner_.listener_fds_);
    for (const engine::listener& l : loop_.owner_.listeners_) {
      if (l.fd && l.bound.transport() != transport::udp) {
        (void)loop_.backend_.unwatch(l.fd.get());
      }
    }
  }
}

void accepting::accept_from(std::size_t listener_index) {
  const int listen_fd = listener_index < own_.size() && own_[listener_index]
                            ? own_[listener_index].get()
                            : loop_.owner_.listeners_[listener_index].fd.get();
  auto take = [this, listener_index](unique_fd fd, const sockaddr_storage& peer,
                                     socklen_t peer_length) {
    place_accepted(listener_index, std::move(fd), peer, peer_length);
  };
  auto drop = [this](std::string_view why) { note_dropped_accept(why); };
  if (const std::error_code ec = acceptor_.accept_from(listen_fd, take, drop)) {
    if (ec != std::errc::too_many_files_open && ec != std::errc::too_many_files_open_in_system) {
      loop_.owner_.logger().error("loop {}: accept failed: {}", loop_.index_, ec.message());
    }
    pause_accepting(listener_index, listen_fd);
  }
}

void accepting::place_accepted(std::size_t listener_index, unique_fd fd,
                               const sockaddr_storage& peer, socklen_t peer_length) {
  engine& owner = loop_.owner_;
  const engine_options& options = loop_.options_;
  const bool admitted = options.max_connections != 0;
  if (admitted && !owner.admit()) {
    note_dropped_accept("max_connections reached");  // counted before the peer can see it
    return;  // fd closes at once: the peer sees its connection end
  }
  loop_.meter_.accepted.add();
  // SO_REUSEPORT: the kernel chose this loop. Otherwise the balancer chooses, and the lease it
  // gives travels with the connection, counting it there until the connection is gone.
  balancer_assignment to{0, {}};
  if (!options.reuse_port) {
    to = owner.balancer_->assign(reinterpret_cast<const sockaddr*>(&peer),  // NOLINT
                                 peer_length);
  }
  event_loop& target = options.reuse_port ? loop_ : *owner.loops_[to.target];
  if (&target == &loop_) {
    loop_.adopt(std::move(fd), owner.listeners_[listener_index].make, std::move(to.lease),
                admitted);
    loop_.reap();
  } else {
    target.send(message::adopt(std::move(fd), static_cast<std::uint32_t>(listener_index),
                               std::move(to.lease), admitted));
  }
}

void accepting::note_dropped_accept(std::string_view why) {
  loop_.owner_.refused_.fetch_add(1, std::memory_order_relaxed);
  loop_.meter_.refused.add();
  if (const std::uint64_t n = dropped_.note(timer_clock::now())) {
    loop_.owner_.logger().warn("loop {}: accept: {}; dropped {} connection(s)", loop_.index_, why,
                               n);
  }
}

void accepting::pause_accepting(std::size_t listener_index, int listen_fd) {
  (void)loop_.backend_.unwatch(listen_fd);
  loop_.after(std::chrono::milliseconds(100), [this, listener_index, listen_fd] {
    if (!loop_.stopping_) {
      (void)loop_.backend_.watch_listener(
          listen_fd, io_key(io_kind::listener, static_cast<std::uint32_t>(listener_index)));
    }
  });
}

}  // namespace actnet::detail
