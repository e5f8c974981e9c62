// balancer: the lease's counting and the three built-in strategies.
#include "actnet/balancer/balancer.hpp"

#include <netinet/in.h>

#include <cstring>
#include <limits>
#include <stdexcept>

namespace actnet {

balancer::balancer(std::size_t targets)
    : targets_(targets),
      counts_(targets == 0 ? nullptr : std::make_unique<counter[]>(targets)) {  // NOLINT
  if (targets == 0) {
    throw std::invalid_argument("actnet::balancer: at least one target is needed");
  }
}

balancer::~balancer() = default;

balancer_assignment balancer::assign(const sockaddr* peer, socklen_t length) noexcept {
  const std::size_t target = pick(peer, length) % targets_;
  counts_[target].value.fetch_add(1, std::memory_order_relaxed);
  return {target, balancer_lease(&counts_[target].value)};
}

balancer_assignment balancer::assign_to(std::size_t target) noexcept {
  target %= targets_;
  counts_[target].value.fetch_add(1, std::memory_order_relaxed);
  return {target, balancer_lease(&counts_[target].value)};
}

std::size_t balancer::connections(std::size_t target) const noexcept {
  return target < targets_ ? counts_[target].value.load(std::memory_order_relaxed) : 0;
}

std::size_t round_robin::pick(const sockaddr* /*peer*/, socklen_t /*length*/) noexcept {
  return next_.fetch_add(1, std::memory_order_relaxed) % targets();
}

std::uint64_t source_addr_hash::hash(const sockaddr* peer, socklen_t length) noexcept {
  const unsigned char* bytes = nullptr;
  std::size_t size = 0;
  if (peer != nullptr && peer->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(peer);    // NOLINT
    bytes = reinterpret_cast<const unsigned char*>(&v4->sin_addr);  // NOLINT
    size = 4;
  } else if (peer != nullptr && peer->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(peer);    // NOLINT
    bytes = reinterpret_cast<const unsigned char*>(&v6->sin6_addr);  // NOLINT
    size = 16;
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      bytes += 12;  // ::ffff:a.b.c.d is a.b.c.d
      size = 4;
    }
  } else {
    return 0;
  }
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a, 64 bits
  for (std::size_t i = 0; i < size; ++i) {
    h = (h ^ bytes[i]) *
        1099511628211ULL;  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
  }
  return h;
}

std::size_t source_addr_hash::pick(const sockaddr* peer, socklen_t length) noexcept {
  const bool has_ip =
      peer != nullptr && (peer->sa_family == AF_INET || peer->sa_family == AF_INET6);
  if (!has_ip) {
    return next_.fetch_add(1, std::memory_order_relaxed) % targets();
  }
  return static_cast<std::size_t>(hash(peer, length) % targets());
}

std::size_t least_connections::pick(const sockaddr* /*peer*/, socklen_t /*length*/) noexcept {
  const std::size_t n = targets();
  const std::size_t start = start_.fetch_add(1, std::memory_order_relaxed) % n;
  std::size_t best = start;
  std::size_t fewest = std::numeric_limits<std::size_t>::max();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t t = (start + i) % n;
    const std::size_t c = connections(t);
    if (c < fewest) {
      fewest = c;
      best = t;
    }
  }
  return best;
}

std::unique_ptr<balancer> make_balancer(load_balancing strategy, std::size_t targets) {
  switch (strategy) {
    case load_balancing::source_addr_hash:
      return std::make_unique<source_addr_hash>(targets);
    case load_balancing::least_connections:
      return std::make_unique<least_connections>(targets);
    case load_balancing::round_robin:
      break;
  }
  return std::make_unique<round_robin>(targets);
}

}  // namespace actnet
