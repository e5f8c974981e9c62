// KCP through an impaired datagram path, on each back end: an engine's kcp:// dials and listener
// talk through lossy_relay (tests/actors/lossy_relay.hpp), which drops 1%, 5% or 20% of the
// datagrams each way, duplicates 2% and reorders 2%: every byte arrives, in order, in fast and
// normal modes. A peer that vanishes mid-transfer (the relay drops everything from then on) is
// closed with timed_out at kcp_options::idle_timeout on both sides.
#include <gtest/gtest.h>

#include <actnet/actors/engine.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "actors/kcp_test_util.hpp"
#include "actors/lossy_relay.hpp"
#include "actors/test_util.hpp"

namespace actnet {
namespace {

using test::echo_record;
using test::eventually;
using test::kcp_echo;
using test::pattern_sender;
using test::running_engine;
using namespace std::chrono_literals;

void expect_pattern(echo_record& r, std::size_t total) {
  const std::lock_guard lock(r.mutex);
  test::expect_kcp_pattern(r.got, total);
}

// (percent of datagrams lost each way, fast mode)
using loss_case = std::tuple<int, bool>;
class kcp_loss : public ::testing::TestWithParam<loss_case> {};

TEST_P(kcp_loss, every_byte_arrives_in_order_through_loss_duplication_and_reordering) {
  const auto [percent, fast] = GetParam();
  // Normal mode's timeouts start at 100 ms and double: a smaller transfer keeps the case short.
  const std::size_t bulk_total = fast ? 256 * 1024 : 64 * 1024;
  constexpr std::size_t small_total = 64 * 500;
  echo_record bulk;  // before the engine: its connections write to them until they close
  echo_record small;
  bulk.expected = bulk_total;
  small.expected = small_total;
  running_engine e(test::small_options(2));
  listen_options lo;
  lo.kcp = test::kcp_mode(fast);
  const address bound = e->listen<kcp_echo>(lo, "kcp://127.0.0.1:0");
  e.start();
  test::impairment how;
  how.loss = percent / 100.0;
  how.duplicate = 0.02;
  how.reorder = 0.02;
  how.seed = static_cast<std::uint64_t>(percent) * 2 + (fast ? 1 : 0);
  test::lossy_relay relay(bound.port(), how);
  dial_options d;
  d.kcp = test::kcp_mode(fast);
  const std::string to = "kcp://127.0.0.1:" + std::to_string(relay.port());
  e->dial<pattern_sender>(
      to, d, [](result<conn_ref>) {}, &bulk, bulk_total, std::size_t{1024});
  e->dial<pattern_sender>(
      to, d, [](result<conn_ref>) {}, &small, small_total, std::size_t{64});
  ASSERT_EQ(bulk.done.get_future().wait_for(120s), std::future_status::ready);
  ASSERT_EQ(small.done.get_future().wait_for(120s), std::future_status::ready);
  expect_pattern(bulk, bulk_total);
  expect_pattern(small, small_total);
  const test::relay_counts c = relay.counts();
  EXPECT_GT(c.dropped, 0U);  // the path was impaired: the test is not vacuous
  EXPECT_GT(c.duplicated, 0U);
  EXPECT_GT(c.reordered, 0U);
}

std::string loss_name(const ::testing::TestParamInfo<loss_case>& c) {
  return std::string(std::get<1>(c.param) ? "fast" : "normal") + "_" +
         std::to_string(std::get<0>(c.param)) + "_percent_lost";
}

INSTANTIATE_TEST_SUITE_P(kcp, kcp_loss,
                         ::testing::Values(loss_case{1, true}, loss_case{5, true},
                                           loss_case{20, true}, loss_case{1, false},
                                           loss_case{5, false}, loss_case{20, false}),
                         loss_name);

// Sends a byte every 5 ms while open, and records what comes back and its close.
class ticking_sender final : public connection {
 public:
  explicit ticking_sender(echo_record* r) : record_(r) {}
  void on_open() override { tick(); }
  void on_data() override { record_->take(next_all()); }
  void on_close(std::error_code reason) override { record_->closed(reason); }

 private:
  void tick() {
    (void)write(std::string_view("x"));
    after(5ms, [this](connection&) { tick(); });
  }
  echo_record* record_;
};

// Notes its close and echoes.
class noting_echo final : public connection {
 public:
  explicit noting_echo(echo_record* r) : record_(r) {}
  void on_data() override { (void)write(next_all()); }
  void on_close(std::error_code reason) override { record_->closed(reason); }

 private:
  echo_record* record_;
};

TEST(kcp_loss, a_peer_that_vanishes_is_closed_at_the_idle_timeout_on_both_sides) {
  echo_record client;  // before the engine: its connections write to them until they close
  echo_record server;
  client.expected = 10;  // a few echoes: the conversation is up
  running_engine e(test::small_options(1));
  kcp_options o = test::kcp_mode(true);
  o.idle_timeout = 300ms;
  listen_options lo;
  lo.kcp = o;
  const address bound = e->listen<noting_echo>(lo, "kcp://127.0.0.1:0", &server);
  e.start();
  test::lossy_relay relay(bound.port(), {});
  dial_options d;
  d.kcp = o;
  e->dial<ticking_sender>(
      "kcp://127.0.0.1:" + std::to_string(relay.port()), d, [](result<conn_ref>) {}, &client);
  ASSERT_EQ(client.done.get_future().wait_for(30s), std::future_status::ready);
  relay.blackhole();  // each side still sends (data, acks, resends); nothing arrives
  const auto closed = [](echo_record& r) {
    const std::lock_guard lock(r.mutex);
    return r.closes == 1;
  };
  ASSERT_TRUE(eventually([&] { return closed(client) && closed(server); }));
  EXPECT_EQ(client.close_reason, std::errc::timed_out);
  EXPECT_EQ(server.close_reason, std::errc::timed_out);
  EXPECT_EQ(e->count_connections(), 0U);
}

}  // namespace
}  // namespace actnet
