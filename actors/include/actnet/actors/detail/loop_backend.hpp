// loop_backend: the back end a loop runs on, chosen at start (engine_options::backend): the
// epoll back end or the io_uring one. Registration calls branch on which; the per-message
// dispatch branches once a wait, so each back end's path stays one piece of inlined code.
#pragma once

#include <cstddef>
#include <optional>
#include <system_error>

#include "actnet/actors/detail/backend.hpp"
#include "actnet/actors/detail/epoll_backend.hpp"
#include "actnet/actors/detail/io_key.hpp"
#include "actnet/actors/detail/uring_backend.hpp"
#include "actnet/result.hpp"

namespace actnet::detail {

class loop_backend {
 public:
  /// Throws std::system_error when the kernel refuses the chosen back end.
  loop_backend(bool use_uring, bool edge_triggered, const uring_settings& settings) {
    if (use_uring) {
      uring_.emplace(settings);
    } else {
      epoll_.emplace(edge_triggered);
    }
  }

  [[nodiscard]] bool is_uring() const noexcept { return uring_.has_value(); }
  [[nodiscard]] epoll_backend& epoll() noexcept {
    return *epoll_;
  }  // NOLINT(bugprone-unchecked-optional-access)
  [[nodiscard]] uring_backend& uring() noexcept {
    return *uring_;
  }  // NOLINT(bugprone-unchecked-optional-access)

  /// On the loop's thread, before its first wait.
  [[nodiscard]] std::error_code start() noexcept {
    return uring_ ? uring_->start() : std::error_code{};
  }

  [[nodiscard]] std::error_code watch_listener(int fd, io_key key) noexcept {
    return uring_ ? uring_->watch_listener(fd, key) : epoll_->watch_listener(fd, key);
  }
  [[nodiscard]] std::error_code watch_stream(int fd, io_key key, stream_interest want) noexcept {
    return uring_ ? uring_->watch_stream(fd, key, want) : epoll_->watch_stream(fd, key, want);
  }
  [[nodiscard]] std::error_code change_stream(int fd, io_key key, stream_interest want) noexcept {
    return uring_ ? uring_->change_stream(fd, key, want) : epoll_->change_stream(fd, key, want);
  }
  [[nodiscard]] std::error_code watch_connect(int fd, io_key key) noexcept {
    return uring_ ? uring_->watch_connect(fd, key) : epoll_->watch_connect(fd, key);
  }
  [[nodiscard]] std::error_code watch_datagram(int fd, io_key key) noexcept {
    return uring_ ? uring_->watch_datagram(fd, key) : epoll_->watch_datagram(fd, key);
  }
  [[nodiscard]] std::error_code change_datagram(int fd, io_key key, bool receive) noexcept {
    return uring_ ? uring_->change_datagram(fd, key, receive)
                  : epoll_->change_datagram(fd, key, receive);
  }
  [[nodiscard]] std::error_code unwatch(int fd) noexcept {
    return uring_ ? uring_->unwatch(fd) : epoll_->unwatch(fd);
  }
  [[nodiscard]] result<std::size_t> wait(int timeout_ms) {
    return uring_ ? uring_->wait(timeout_ms) : epoll_->wait(timeout_ms);
  }
  void wake() noexcept {
    if (uring_) {
      uring_->wake();
    } else {
      epoll_->wake();
    }
  }
  /// On the loop's thread as it leaves.
  void finish() noexcept {
    if (uring_) {
      uring_->finish();
    }
  }
  void shrink() noexcept {
    if (epoll_) {
      epoll_->shrink();
    }
    if (uring_) {
      uring_->shrink();
    }
  }

 private:
  std::optional<epoll_backend> epoll_;
  std::optional<uring_backend> uring_;
};

}  // namespace actnet::detail
