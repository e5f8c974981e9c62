// balancer: which loop gets the next connection. Round-robin, source-address hash and
// least-connections, behind one small interface users can implement too.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

namespace actnet {

class balancer;

/// Counts one connection against its target until destroyed (or moved from). Owned by the
/// connection it was made for, so the count falls when the connection goes, on any path. One
/// pointer: it costs an idle connection 8 bytes.
class balancer_lease {
 public:
  balancer_lease() = default;
  balancer_lease(balancer_lease&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
  balancer_lease& operator=(balancer_lease&& other) noexcept {
    if (this != &other) {
      reset();
      count_ = std::exchange(other.count_, nullptr);
    }
    return *this;
  }
  balancer_lease(const balancer_lease&) = delete;
  balancer_lease& operator=(const balancer_lease&) = delete;
  ~balancer_lease() { reset(); }

  [[nodiscard]] bool empty() const noexcept { return count_ == nullptr; }
  /// Stops counting now.
  void reset() noexcept {
    if (count_ != nullptr) {
      count_->fetch_sub(1, std::memory_order_relaxed);
      count_ = nullptr;
    }
  }

 private:
  friend class balancer;
  explicit balancer_lease(std::atomic<std::size_t>* count) noexcept : count_(count) {}
  std::atomic<std::size_t>* count_ = nullptr;
};

/// What balancer::assign() decides: the target, and the lease that counts the connection there.
struct balancer_assignment {
  std::size_t target = 0;
  balancer_lease lease;
};

/// Chooses among `targets()` targets (an engine's loops) for each new connection, and counts
/// the connections each target holds. Thread-safe: assign() and the counts may be called from
/// any thread at once. To plug in a strategy of your own, derive and implement pick().
class balancer {
 public:
  /// Throws std::invalid_argument when `targets` is 0.
  explicit balancer(std::size_t targets);
  balancer(const balancer&) = delete;
  balancer& operator=(const balancer&) = delete;
  virtual ~balancer();

  [[nodiscard]] std::size_t targets() const noexcept { return targets_; }
  /// The target for a connection from `peer` (null when unknown), with a lease that counts it
  /// there until the lease is destroyed. The balancer must outlive the lease.
  [[nodiscard]] balancer_assignment assign(const sockaddr* peer, socklen_t length) noexcept;
  /// A lease on `target` (taken modulo targets()), chosen by the caller rather than the
  /// strategy: a connection placed on a given loop is still counted there.
  [[nodiscard]] balancer_assignment assign_to(std::size_t target) noexcept;
  /// Connections counted against `target` now (leases alive).
  [[nodiscard]] std::size_t connections(std::size_t target) const noexcept;
  /// The strategy's name, for logs ("round_robin", ...).
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  /// Whether pick() looks at the peer's address. A back end that accepts without it (io_uring's
  /// multishot accept) asks the kernel for it (getpeername) only then. True unless overridden.
  [[nodiscard]] virtual bool needs_peer() const noexcept { return true; }

 protected:
  /// The strategy: a target in [0, targets()) for a connection from `peer` (may be null).
  /// Called concurrently; a result out of range is taken modulo targets().
  [[nodiscard]] virtual std::size_t pick(const sockaddr* peer, socklen_t length) noexcept = 0;

 private:
  // One cache line per count: loops on different cores update their own.
  struct alignas(64) counter {
    std::atomic<std::size_t> value{0};
  };
  std::size_t targets_;
  std::unique_ptr<counter[]> counts_;  // NOLINT(cppcoreguidelines-avoid-c-arrays)
};

/// Each target in turn (gnet's RoundRobin).
class round_robin final : public balancer {
 public:
  using balancer::balancer;
  [[nodiscard]] std::string_view name() const noexcept override { return "round_robin"; }
  [[nodiscard]] bool needs_peer() const noexcept override { return false; }

 private:
  std::size_t pick(const sockaddr* peer, socklen_t length) noexcept override;
  std::atomic<std::size_t> next_{0};
};

/// The same target for every connection from one IP address (the port is ignored, and an
/// IPv4-mapped IPv6 address counts as the IPv4 one): a client's connections share a loop.
/// Stable across processes and runs (FNV-1a of the address bytes). Peers without an IP address
/// (unix sockets) go round-robin.
class source_addr_hash final : public balancer {
 public:
  using balancer::balancer;
  [[nodiscard]] std::string_view name() const noexcept override { return "source_addr_hash"; }
  /// The hash of `peer`'s IP address; 0 for anything else.
  [[nodiscard]] static std::uint64_t hash(const sockaddr* peer, socklen_t length) noexcept;

 private:
  std::size_t pick(const sockaddr* peer, socklen_t length) noexcept override;
  std::atomic<std::size_t> next_{0};  // for peers without an IP address
};

/// The target holding the fewest connections; ties go round-robin, so an idle engine still
/// spreads a burst (gnet's LeastConnections, which scans from target 0).
class least_connections final : public balancer {
 public:
  using balancer::balancer;
  [[nodiscard]] std::string_view name() const noexcept override { return "least_connections"; }
  [[nodiscard]] bool needs_peer() const noexcept override { return false; }

 private:
  std::size_t pick(const sockaddr* peer, socklen_t length) noexcept override;
  std::atomic<std::size_t> start_{0};
};

/// The built-in strategies, for engine_options.
enum class load_balancing : std::uint8_t { round_robin, source_addr_hash, least_connections };

/// A balancer of the given strategy over `targets` targets.
[[nodiscard]] std::unique_ptr<balancer> make_balancer(load_balancing strategy, std::size_t targets);

}  // namespace actnet
