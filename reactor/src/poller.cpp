// poller: epoll_ctl/epoll_wait and the eventfd wake-up.
#include "actnet/reactor/poller.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <new>
#include <span>

#include "actnet/reactor/syscalls.hpp"

namespace actnet {
namespace {

std::error_code last_error() noexcept {
  return {errno, std::system_category()};
}

std::uint32_t to_epoll(std::uint32_t interest) noexcept {
  // RDHUP only with readable: a writable-only registration (a connection flushing before its
  // close) must not be woken, level-triggered, again and again by the peer's half-close.
  return (interest & (io::readable | io::writable | io::edge)) |
         ((interest & io::readable) != 0 ? std::uint32_t{EPOLLRDHUP} : 0U);
}

}  // namespace

poller::poller()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      events_(initial_events) {
  if (!epoll_ || !wake_) {
    throw std::system_error(last_error(), "actnet::poller: epoll_create1/eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;  // edge: one report per batch of wakes, drained on report
  ev.data.u64 = wake_key;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    throw std::system_error(last_error(), "actnet::poller: register eventfd");
  }
}

std::error_code poller::add(int fd, std::uint32_t interest, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = to_epoll(interest);
  ev.data.u64 = data;
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0 ? std::error_code{} : last_error();
}

std::error_code poller::modify(int fd, std::uint32_t interest, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = to_epoll(interest);
  ev.data.u64 = data;
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) == 0 ? std::error_code{} : last_error();
}

std::error_code poller::remove(int fd) noexcept {
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr) == 0 ? std::error_code{}
                                                                    : last_error();
}

result<std::span<const poll_event>> poller::wait(int timeout_ms) {
  if (grow_) {  // grown here, not in the last wait, whose events the caller was still reading
    grow_ = false;
    events_.resize(events_.size() * 2);
  }
  const int n = detail::sys_epoll_wait(epoll_.get(), events_.data(),
                                       static_cast<int>(events_.size()), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) {
      return std::span<const poll_event>{};
    }
    return last_error();
  }
  grow_ = static_cast<std::size_t>(n) == events_.size() && events_.size() < max_events;
  return std::span<const poll_event>(events_.data(), static_cast<std::size_t>(n));
}

void poller::shrink() noexcept {
  if (events_.size() == initial_events) {
    return;
  }
  try {
    std::vector<epoll_event>(initial_events).swap(events_);
    grow_ = false;
  } catch (const std::bad_alloc&) {
    // keeps working with the bigger array
  }
}

void poller::wake() noexcept {
  const std::uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

void poller::consume_wake() noexcept {
  std::uint64_t drained = 0;
  (void)!::read(wake_.get(), &drained, sizeof drained);
}

}  // namespace actnet
