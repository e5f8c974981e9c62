// poller: epoll_ctl/epoll_wait and the eventfd wake-up.
#include "actnet/reactor/poller.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <span>

namespace actnet {
namespace {

constexpr std::uint64_t wake_tag = ~std::uint64_t{0};

std::error_code last_error() noexcept {
  return {errno, std::system_category()};
}

std::uint32_t to_epoll(std::uint32_t interest) noexcept {
  // RDHUP only with readable: a writable-only registration (a connection flushing before its
  // close) must not be woken, level-triggered, again and again by the peer's half-close.
  std::uint32_t e = 0;
  e |= (interest & io::readable) != 0 ? EPOLLIN | EPOLLRDHUP : 0U;
  e |= (interest & io::writable) != 0 ? EPOLLOUT : 0U;
  e |= (interest & io::edge) != 0 ? EPOLLET : 0U;
  return e;
}

std::uint32_t from_epoll(std::uint32_t e) noexcept {
  std::uint32_t events = 0;
  events |= (e & EPOLLIN) != 0 ? io::readable : 0U;
  events |= (e & EPOLLOUT) != 0 ? io::writable : 0U;
  events |= (e & (EPOLLHUP | EPOLLRDHUP)) != 0 ? io::hangup : 0U;
  events |= (e & EPOLLERR) != 0 ? io::error : 0U;
  return events;
}

}  // namespace

poller::poller()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      events_(initial_events),
      ready_(initial_events) {
  if (!epoll_ || !wake_) {
    throw std::system_error(last_error(), "actnet::poller: epoll_create1/eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;  // edge: one report per batch of wakes, drained on report
  ev.data.u64 = wake_tag;
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
    ready_.resize(events_.size());
  }
  const int n =
      ::epoll_wait(epoll_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) {
      return std::span<const poll_event>{};
    }
    return last_error();
  }
  std::size_t count = 0;
  for (const epoll_event& e : std::span(events_.data(), static_cast<std::size_t>(n))) {
    if (e.data.u64 == wake_tag) {
      std::uint64_t drained = 0;
      (void)!::read(wake_.get(), &drained, sizeof drained);
      continue;
    }
    ready_[count++] = {e.data.u64, from_epoll(e.events)};
  }
  grow_ = static_cast<std::size_t>(n) == events_.size() && events_.size() < max_events;
  return std::span<const poll_event>(ready_.data(), count);
}

void poller::wake() noexcept {
  const std::uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

}  // namespace actnet
