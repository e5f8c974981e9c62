// balancer: round-robin spread, source-address hashing (IP only, v4-mapped as v4, stable),
// least-connections with leases under churn from several threads, a strategy of one's own.
#include "actnet/balancer/balancer.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace actnet {
namespace {

sockaddr_in v4(const char* ip, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  EXPECT_EQ(::inet_pton(AF_INET, ip, &a.sin_addr), 1) << ip;
  return a;
}

sockaddr_in6 v6(const char* ip, std::uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  EXPECT_EQ(::inet_pton(AF_INET6, ip, &a.sin6_addr), 1) << ip;
  return a;
}

template <class Sockaddr>
const sockaddr* sa(const Sockaddr& a) {
  return reinterpret_cast<const sockaddr*>(&a);  // NOLINT
}

TEST(balancer, needs_at_least_one_target) {
  EXPECT_THROW(round_robin(0), std::invalid_argument);
}

TEST(balancer, assign_to_counts_on_the_chosen_target_and_the_lease_gives_it_back) {
  least_connections b(3);
  {
    const balancer_assignment a = b.assign_to(2);
    const balancer_assignment wrapped = b.assign_to(4);  // modulo 3: target 1
    EXPECT_EQ(a.target, 2U);
    EXPECT_EQ(wrapped.target, 1U);
    EXPECT_EQ(b.connections(2), 1U);
    EXPECT_EQ(b.connections(1), 1U);
    EXPECT_EQ(b.assign(nullptr, 0).target, 0U) << "least-connections sees the placed ones";
  }
  EXPECT_EQ(b.connections(0) + b.connections(1) + b.connections(2), 0U);
}

TEST(balancer, round_robin_spreads_100000_picks_within_one_percent) {
  constexpr std::size_t targets = 7;
  constexpr std::size_t picks = 100000;
  round_robin b(targets);
  std::vector<std::size_t> seen(targets);
  std::vector<balancer_lease> held;
  held.reserve(picks);
  for (std::size_t i = 0; i < picks; ++i) {
    balancer_assignment a = b.assign(nullptr, 0);
    ++seen[a.target];
    held.push_back(std::move(a.lease));
  }
  for (std::size_t t = 0; t < targets; ++t) {
    EXPECT_NEAR(static_cast<double>(seen[t]), static_cast<double>(picks) / targets,
                0.01 * picks / targets)
        << "target " << t;
    EXPECT_EQ(b.connections(t), seen[t]);
  }
  held.clear();
  for (std::size_t t = 0; t < targets; ++t) {
    EXPECT_EQ(b.connections(t), 0U);
  }
}

TEST(balancer, source_addr_hash_keeps_an_ip_on_one_target_whatever_the_port) {
  source_addr_hash b(16);
  const auto a1 = v4("192.0.2.7", 1000);
  const auto a2 = v4("192.0.2.7", 65000);
  const std::size_t t = b.assign(sa(a1), sizeof a1).target;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(b.assign(sa(a2), sizeof a2).target, t);
  }
  // An IPv4-mapped IPv6 address is the IPv4 address.
  const auto mapped = v6("::ffff:192.0.2.7", 1234);
  EXPECT_EQ(source_addr_hash::hash(sa(mapped), sizeof mapped),
            source_addr_hash::hash(sa(a1), sizeof a1));
  EXPECT_EQ(b.assign(sa(mapped), sizeof mapped).target, t);
  // A real IPv6 address hashes all 16 bytes.
  const auto other = v6("2001:db8::7", 1234);
  EXPECT_NE(source_addr_hash::hash(sa(other), sizeof other),
            source_addr_hash::hash(sa(a1), sizeof a1));
}

TEST(balancer, source_addr_hash_is_stable_across_instances_and_spreads_addresses) {
  source_addr_hash first(8);
  source_addr_hash second(8);
  std::set<std::size_t> used;
  for (int i = 1; i <= 200; ++i) {
    const std::string ip = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    const auto a = v4(ip.c_str(), 80);
    const std::size_t t = first.assign(sa(a), sizeof a).target;
    EXPECT_EQ(second.assign(sa(a), sizeof a).target, t) << ip;
    used.insert(t);
  }
  EXPECT_EQ(used.size(), 8U);  // 200 addresses reach every one of 8 targets
  // FNV-1a of 127.0.0.1's four bytes: the same in every process and every run.
  const auto loopback = v4("127.0.0.1", 1);
  EXPECT_EQ(source_addr_hash::hash(sa(loopback), sizeof loopback), 0x6c0b153976ee1fadULL);
}

TEST(balancer, source_addr_hash_sends_unix_peers_round_robin) {
  source_addr_hash b(3);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::set<std::size_t> used;
  for (int i = 0; i < 3; ++i) {
    used.insert(b.assign(sa(un), sizeof(sa_family_t)).target);
  }
  EXPECT_EQ(used.size(), 3U);
  EXPECT_EQ(source_addr_hash::hash(sa(un), sizeof un), 0U);
}

TEST(balancer, least_connections_picks_the_emptiest_and_breaks_ties_round_robin) {
  least_connections b(3);
  // Empty: ties everywhere, so three picks go to three different targets.
  std::vector<balancer_assignment> held;
  std::set<std::size_t> first_round;
  for (int i = 0; i < 3; ++i) {
    held.push_back(b.assign(nullptr, 0));
    first_round.insert(held.back().target);
  }
  EXPECT_EQ(first_round.size(), 3U);
  // Free target 1's connection: it is now the only emptiest, whatever the rotation.
  for (auto& a : held) {
    if (a.target == 1) {
      a.lease.reset();
    }
  }
  EXPECT_EQ(b.connections(1), 0U);
  EXPECT_EQ(b.assign(nullptr, 0).target, 1U);
}

TEST(balancer, least_connections_under_churn_from_four_threads_returns_every_count_to_zero) {
  least_connections b(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&b] {
      std::vector<balancer_lease> held;
      for (int i = 0; i < 20000; ++i) {
        held.push_back(b.assign(nullptr, 0).lease);
        if (held.size() > 50) {  // open and close, some leases held a while, some moved
          balancer_lease moved = std::move(held[static_cast<std::size_t>(i) % held.size()]);
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(i % 7));
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (std::size_t t = 0; t < 4; ++t) {
    EXPECT_EQ(b.connections(t), 0U) << "target " << t;
  }
}

// A strategy of one's own: everything to the last target.
class last_target final : public balancer {
 public:
  using balancer::balancer;
  [[nodiscard]] std::string_view name() const noexcept override { return "last_target"; }

 private:
  std::size_t pick(const sockaddr* /*peer*/, socklen_t /*length*/) noexcept override {
    return targets() - 1;
  }
};

TEST(balancer, a_strategy_of_ones_own_plugs_in_and_gets_the_counting) {
  last_target b(5);
  const balancer_assignment a = b.assign(nullptr, 0);
  EXPECT_EQ(a.target, 4U);
  EXPECT_EQ(b.connections(4), 1U);
  EXPECT_EQ(make_balancer(load_balancing::least_connections, 2)->name(), "least_connections");
  EXPECT_EQ(make_balancer(load_balancing::source_addr_hash, 2)->name(), "source_addr_hash");
  EXPECT_EQ(make_balancer(load_balancing::round_robin, 2)->name(), "round_robin");
}

}  // namespace
}  // namespace actnet
