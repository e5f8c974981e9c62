// A test client's end of one KCP conversation, with a blocking socket's semantics, so the stream
// suites' bodies run over KCP as over TCP and TLS (stream_end holds one): a UDP socket connected
// to the server, a conversation of the protocol core (reactor/kcp_session.hpp) in KCP's fast
// mode, and a thread that feeds it the datagrams and keeps its clock (acks and resends go out
// while the test waits elsewhere). Sends wait while two windows are unacknowledged; reads wait
// up to 20 s, as the suites' sockets do.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/reactor/address.hpp>
#include <actnet/reactor/kcp.hpp>
#include <actnet/reactor/kcp_session.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>

#include "actors/kcp_test_util.hpp"

namespace actnet::test {

class kcp_end {
 public:
  explicit kcp_end(const address& server)
      : fd_(::socket(server.family(), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)),
        session_(conversation_id(), kcp_mode(true), [this](std::span<const std::byte> d) {
          (void)::send(fd_, d.data(), d.size(), 0);
        }) {
    if (fd_ >= 0 && ::connect(fd_, server.data(), server.size()) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (fd_ >= 0) {
      pump_ = std::thread([this] { pump(); });
    }
  }
  kcp_end(const kcp_end&) = delete;
  kcp_end& operator=(const kcp_end&) = delete;
  ~kcp_end() {
    stop_.store(true);
    if (pump_.joinable()) {
      pump_.join();
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  [[nodiscard]] bool ok() const { return fd_ >= 0; }

  /// Queues all `n` bytes (after waiting while two windows are unacknowledged) and flushes.
  ssize_t send_some(const void* data, std::size_t n) {
    std::unique_lock lock(mutex_);
    const std::size_t room = std::size_t{2} * session_.send_window() * session_.mss();
    if (!changed_.wait_for(lock, limit, [&] { return session_.unacknowledged_bytes() < room; })) {
      errno = EAGAIN;
      return -1;
    }
    session_.send({static_cast<const std::byte*>(data), n});
    session_.flush(now_ms());
    return static_cast<ssize_t>(n);
  }
  /// Up to `n` received bytes, waiting for some; -1 with EAGAIN when none came in time (KCP
  /// has no end of stream, so there is no 0).
  ssize_t recv_some(void* out, std::size_t n) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, limit, [&] { return !received_.empty(); })) {
      errno = EAGAIN;
      return -1;
    }
    const std::size_t taken = std::min(n, received_.size());
    std::memcpy(out, received_.data(), taken);
    received_.erase(0, taken);
    return static_cast<ssize_t>(taken);
  }

 private:
  static constexpr auto limit = std::chrono::seconds(20);
  static std::uint32_t conversation_id() {
    std::random_device random;
    return random() | 1U;  // (never 0)
  }
  static std::uint32_t now_ms() {
    return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }

  // Datagrams into the conversation, its received bytes out to received_, its clock kept.
  void pump() {
    std::array<std::byte, 65536> buf{};
    while (!stop_.load()) {
      int wait = 5;
      {
        const std::lock_guard lock(mutex_);
        const std::uint32_t now = now_ms();
        wait = std::clamp(static_cast<int>(session_.next_update(now) - now), 0, wait);
      }
      pollfd p{fd_, POLLIN, 0};
      (void)::poll(&p, 1, wait);
      const std::lock_guard lock(mutex_);
      const std::uint32_t now = now_ms();
      for (;;) {
        const ssize_t got = ::recv(fd_, buf.data(), buf.size(), 0);
        if (got <= 0) {
          break;
        }
        (void)session_.input({buf.data(), static_cast<std::size_t>(got)}, now);
      }
      (void)session_.receive([&](std::span<const std::byte> piece) {
        received_.append(reinterpret_cast<const char*>(piece.data()), piece.size());  // NOLINT
        return received_.size() < (std::size_t{1} << 20);  // the rest waits: the window shrinks
      });
      if (session_.acks_owed() != 0) {
        session_.flush(now);
      }
      session_.update(now);
      changed_.notify_all();
    }
  }

  int fd_;
  std::mutex mutex_;
  std::condition_variable changed_;
  detail::kcp_session session_;  // under mutex_
  std::string received_;         // under mutex_: received, not read yet
  std::atomic<bool> stop_{false};
  std::thread pump_;
};

}  // namespace actnet::test
