// kcp_session: the header's encoding; two conversations over a simulated link (delay, jitter
// that reorders, loss and duplication, both ways, on a simulated clock) delivering every byte in
// order in normal and fast modes; fragments from a message-mode peer; the receive window and its
// probes; bad input refused and counted with bounded memory; a vanished peer found dead.
#include "actnet/reactor/kcp_session.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "actnet/reactor/kcp.hpp"

namespace actnet::detail {
namespace {

using bytes = std::vector<std::byte>;

bytes pattern(std::size_t n, std::uint32_t seed) {
  bytes b(n);
  std::uint32_t x = seed * 2654435761U + 1;
  for (std::byte& c : b) {
    x = x * 1103515245U + 12345U;
    c = static_cast<std::byte>(x >> 24);
  }
  return b;
}

TEST(kcp_header, round_trips_every_field_little_endian) {
  kcp_header h;
  h.conv = 0x01020304;
  h.cmd = kcp_command::ack;
  h.frg = 7;
  h.wnd = 0x0a0b;
  h.ts = 0xdeadbeef;
  h.sn = 42;
  h.una = 41;
  h.len = 1376;
  bytes wire(kcp_header::size);
  write_kcp_header(h, wire);
  EXPECT_EQ(wire[0], std::byte{0x04});  // conv, least significant byte first
  EXPECT_EQ(wire[3], std::byte{0x01});
  EXPECT_EQ(wire[4], std::byte{82});
  EXPECT_EQ(wire[6], std::byte{0x0b});
  const std::optional<kcp_header> back = read_kcp_header(wire);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->conv, h.conv);
  EXPECT_EQ(back->cmd, h.cmd);
  EXPECT_EQ(back->frg, h.frg);
  EXPECT_EQ(back->wnd, h.wnd);
  EXPECT_EQ(back->ts, h.ts);
  EXPECT_EQ(back->sn, h.sn);
  EXPECT_EQ(back->una, h.una);
  EXPECT_EQ(back->len, h.len);
  EXPECT_EQ(kcp_conversation(wire), 0x01020304U);
  EXPECT_FALSE(read_kcp_header(std::span(wire).first(23)));
  EXPECT_FALSE(kcp_conversation(std::span(wire).first(3)));
}

// One direction of a link: each datagram delivered after `delay` plus up to `jitter` ms (so
// later ones may overtake earlier ones), lost with probability `loss`, sent twice with
// probability `duplicate`.
class lossy_link {
 public:
  lossy_link(std::uint32_t seed, double loss, double duplicate, std::uint32_t delay,
             std::uint32_t jitter)
      : rng_(seed), loss_(loss), duplicate_(duplicate), delay_(delay), jitter_(jitter) {}

  void send(std::span<const std::byte> d, std::uint32_t now) {
    ++sent_;
    if (cut_ || chance(loss_)) {
      return;
    }
    const int copies = chance(duplicate_) ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
      in_flight_.emplace(now + delay_ + pick(jitter_), bytes(d.begin(), d.end()));
    }
  }
  template <class Fn>
  void deliver(std::uint32_t now, Fn&& to) {
    while (!in_flight_.empty() && in_flight_.begin()->first <= now) {
      const bytes d = std::move(in_flight_.begin()->second);
      in_flight_.erase(in_flight_.begin());
      to(d);
    }
  }
  [[nodiscard]] std::optional<std::uint32_t> next_arrival() const {
    if (in_flight_.empty()) {
      return std::nullopt;
    }
    return in_flight_.begin()->first;
  }
  void cut() { cut_ = true; }
  [[nodiscard]] std::uint64_t sent() const { return sent_; }

 private:
  bool chance(double p) { return p > 0 && std::uniform_real_distribution<>(0, 1)(rng_) < p; }
  std::uint32_t pick(std::uint32_t most) {
    return most == 0 ? 0 : std::uniform_int_distribution<std::uint32_t>(0, most)(rng_);
  }
  std::mt19937 rng_;
  double loss_;
  double duplicate_;
  std::uint32_t delay_;
  std::uint32_t jitter_;
  bool cut_ = false;
  std::uint64_t sent_ = 0;
  std::multimap<std::uint32_t, bytes> in_flight_;
};

// Two conversations joined by two lossy links, on a simulated clock that jumps to the next
// thing due (an update or an arrival).
struct pair_of_sessions {
  pair_of_sessions(const kcp_options& o, double loss, std::uint32_t seed, double duplicate = 0.01,
                   std::uint32_t delay = 10, std::uint32_t jitter = 6)
      : a_to_b(seed, loss, duplicate, delay, jitter),
        b_to_a(seed + 1, loss, duplicate, delay, jitter),
        a(7, o, [this](std::span<const std::byte> d) { a_to_b.send(d, now); }),
        b(7, o, [this](std::span<const std::byte> d) { b_to_a.send(d, now); }) {}

  // One step: what arrives now, then the updates that are due; then the clock moves on.
  void step() {
    a_to_b.deliver(now, [&](const bytes& d) { EXPECT_EQ(b.input(d, now), kcp_input::ok); });
    b_to_a.deliver(now, [&](const bytes& d) { EXPECT_EQ(a.input(d, now), kcp_input::ok); });
    if (a.next_update(now) == now) {
      a.update(now);
    }
    if (b.next_update(now) == now) {
      b.update(now);
    }
    std::uint32_t next = std::min(a.next_update(now), b.next_update(now));
    for (const auto& arrival : {a_to_b.next_arrival(), b_to_a.next_arrival()}) {
      if (arrival) {
        next = std::min(next, *arrival);
      }
    }
    now = std::max(next, now + 1);
  }

  std::uint32_t now = 1000;
  lossy_link a_to_b;
  lossy_link b_to_a;
  kcp_session a;
  kcp_session b;
};

kcp_options normal_mode() {
  return {};
}
kcp_options fast_mode() {
  kcp_options o;
  o.nodelay = true;
  o.interval = std::chrono::milliseconds(10);
  o.fast_resend = 2;
  o.congestion_control = false;
  return o;
}

// (fast mode, loss in percent)
class kcp_transfer : public ::testing::TestWithParam<std::tuple<bool, int>> {};

TEST_P(kcp_transfer, every_byte_arrives_once_and_in_order) {
  const auto [fast, loss_percent] = GetParam();
  kcp_options o = fast ? fast_mode() : normal_mode();
  o.send_window = 128;
  pair_of_sessions p(o, loss_percent / 100.0, 1234 + static_cast<std::uint32_t>(loss_percent));
  const bytes sent = pattern(loss_percent >= 20 ? 256 * 1024 : 1024 * 1024, 5);
  // Written in uneven pieces, as an application would.
  for (std::size_t at = 0, piece = 1; at < sent.size(); at += piece, piece = piece * 7 % 5003 + 1) {
    const std::size_t n = std::min(piece, sent.size() - at);
    p.a.send(std::span(sent).subspan(at, n));
  }
  bytes got;
  const std::uint32_t began = p.now;
  while (got.size() < sent.size() && p.now - began < 3'600'000) {  // an hour of simulated time
    p.step();
    (void)p.b.receive([&](std::span<const std::byte> d) {
      got.insert(got.end(), d.begin(), d.end());
      return true;
    });
  }
  ASSERT_EQ(got.size(), sent.size()) << "simulated ms: " << p.now - began;
  EXPECT_TRUE(got == sent);
  // The sender hears every ack in the end: nothing left in flight.
  for (int i = 0; i < 100000 && p.a.unacknowledged() != 0; ++i) {
    p.step();
  }
  EXPECT_EQ(p.a.unacknowledged(), 0U);
  EXPECT_EQ(p.a.unacknowledged_bytes(), 0U);
  EXPECT_FALSE(p.a.dead());
  if (loss_percent > 0) {
    EXPECT_GT(p.a.counters().retransmits + p.a.counters().fast_retransmits, 0U);
  }
}

INSTANTIATE_TEST_SUITE_P(modes_and_losses, kcp_transfer,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(0, 1, 5, 20)),
                         [](const auto& param_info) {
                           return std::string(std::get<0>(param_info.param) ? "fast" : "normal") +
                                  "_loss" + std::to_string(std::get<1>(param_info.param));
                         });

TEST(kcp_session, both_directions_at_once_each_delivered_in_order) {
  pair_of_sessions p(fast_mode(), 0.05, 99);
  const bytes to_b = pattern(200'000, 1);
  const bytes to_a = pattern(150'000, 2);
  p.a.send(to_b);
  p.b.send(to_a);
  bytes at_a;
  bytes at_b;
  const auto into = [](bytes& where) {
    return [&where](std::span<const std::byte> d) {
      where.insert(where.end(), d.begin(), d.end());
      return true;
    };
  };
  for (int i = 0; i < 2'000'000 && (at_a.size() < to_a.size() || at_b.size() < to_b.size()); ++i) {
    p.step();
    (void)p.a.receive(into(at_a));
    (void)p.b.receive(into(at_b));
  }
  EXPECT_TRUE(at_b == to_b);
  EXPECT_TRUE(at_a == to_a);
}

// Segments made by hand, as a peer would send them.
bytes segment(std::uint32_t conv, kcp_command cmd, std::uint32_t sn, std::uint8_t frg,
              std::string_view data, std::uint32_t una = 0, std::uint16_t wnd = 128) {
  kcp_header h;
  h.conv = conv;
  h.cmd = cmd;
  h.sn = sn;
  h.frg = frg;
  h.una = una;
  h.wnd = wnd;
  h.ts = 500;
  h.len = static_cast<std::uint32_t>(data.size());
  bytes b(kcp_header::size + data.size());
  write_kcp_header(h, b);
  std::memcpy(b.data() + kcp_header::size, data.data(), data.size());
  return b;
}

std::string drain(kcp_session& s) {
  std::string out;
  (void)s.receive([&](std::span<const std::byte> d) {
    out.append(reinterpret_cast<const char*>(d.data()), d.size());  // NOLINT
    return true;
  });
  return out;
}

TEST(kcp_session, a_message_mode_peers_fragments_arrive_as_one_stream_in_order) {
  std::vector<bytes> sent;
  kcp_session s(9, {},
                [&](std::span<const std::byte> d) { sent.emplace_back(d.begin(), d.end()); });
  // A message in three fragments (frg 2, 1, 0) and the next message, out of order, the last
  // two in one datagram.
  EXPECT_EQ(s.input(segment(9, kcp_command::push, 2, 0, "cc"), 1000), kcp_input::ok);
  EXPECT_EQ(drain(s), "");
  EXPECT_EQ(s.input(segment(9, kcp_command::push, 0, 2, "aa"), 1000), kcp_input::ok);
  EXPECT_EQ(drain(s), "aa");
  bytes two = segment(9, kcp_command::push, 1, 1, "bb");
  const bytes next = segment(9, kcp_command::push, 3, 0, "dd");
  two.insert(two.end(), next.begin(), next.end());
  EXPECT_EQ(s.input(two, 1001), kcp_input::ok);
  EXPECT_EQ(drain(s), "bbccdd");
  // Each push is acknowledged at the next flush, with una past all four.
  s.flush(1010);
  ASSERT_EQ(sent.size(), 1U);
  ASSERT_EQ(sent[0].size(), 4 * kcp_header::size);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto h = read_kcp_header(std::span(sent[0]).subspan(i * kcp_header::size));
    ASSERT_TRUE(h);
    EXPECT_EQ(h->cmd, kcp_command::ack);
    EXPECT_EQ(h->una, 4U);
  }
}

TEST(kcp_session, a_reader_that_stops_closes_the_window_and_reopening_it_resumes) {
  kcp_options o = fast_mode();
  o.receive_window = 16;
  o.send_window = 64;
  pair_of_sessions p(o, 0.0, 7, 0.0);
  const bytes sent = pattern(200 * p.a.mss(), 3);
  p.a.send(sent);
  // b does not read: it takes a window for its reader and buffers at most a window beyond it
  // (rcv_nxt + receive_window); a learns that the window is closed and sends no more.
  for (int i = 0; i < 20000; ++i) {
    p.step();
  }
  EXPECT_EQ(p.a.remote_window(), 0U) << "b's full window, as b told it";
  EXPECT_GE(p.a.unacknowledged(), 200U - 2 * 16U);
  EXPECT_LE(p.a.unacknowledged(), 200U - 16U);
  bytes got;
  for (int i = 0; i < 200000 && got.size() < sent.size(); ++i) {
    p.step();
    (void)p.b.receive([&](std::span<const std::byte> d) {
      got.insert(got.end(), d.begin(), d.end());
      return true;
    });
  }
  EXPECT_TRUE(got == sent);
}

TEST(kcp_session, a_lost_window_update_is_recovered_by_probing) {
  kcp_options o = fast_mode();
  o.receive_window = 4;
  pair_of_sessions p(o, 0.0, 11, 0.0);
  p.a.send(pattern(10 * p.a.mss(), 4));
  for (int i = 0; i < 2000; ++i) {
    p.step();
  }
  ASSERT_EQ(p.a.remote_window(), 0U);
  // b reads while its way back is cut, so the window tell is lost; then the way is restored.
  p.b_to_a.cut();
  EXPECT_GT(drain(p.b).size(), 0U);
  for (int i = 0; i < 50; ++i) {
    p.step();
  }
  p.b_to_a = lossy_link(13, 0.0, 0.0, 10, 0);  // the way back again
  std::size_t read = 4 * p.a.mss();
  for (int i = 0; i < 100000 && read < 10 * p.a.mss(); ++i) {  // probes come after 7 s and more
    p.step();
    read += drain(p.b).size();
  }
  EXPECT_EQ(read, 10 * p.a.mss());
}

TEST(kcp_session, bad_datagrams_are_refused_and_change_nothing_after_the_bad_segment) {
  std::size_t outputs = 0;
  kcp_session s(5, {}, [&](std::span<const std::byte>) { ++outputs; });
  EXPECT_EQ(s.input(bytes(10), 1000), kcp_input::truncated);
  EXPECT_EQ(s.input(segment(6, kcp_command::push, 0, 0, "x"), 1000), kcp_input::wrong_conv);
  bytes lying = segment(5, kcp_command::push, 0, 0, "xyz");
  lying.resize(lying.size() - 1);  // its length says 3, 2 follow
  EXPECT_EQ(s.input(lying, 1000), kcp_input::truncated);
  bytes odd = segment(5, kcp_command::push, 0, 0, "x");
  odd[4] = std::byte{99};
  EXPECT_EQ(s.input(odd, 1000), kcp_input::bad_command);
  EXPECT_FALSE(s.readable());
  // A good segment, then a bad one: the first counts.
  bytes mixed = segment(5, kcp_command::push, 0, 0, "ok");
  const bytes bad = segment(8, kcp_command::push, 1, 0, "no");
  mixed.insert(mixed.end(), bad.begin(), bad.end());
  EXPECT_EQ(s.input(mixed, 1000), kcp_input::wrong_conv);
  EXPECT_EQ(drain(s), "ok");
  // Trailing bytes too short for a header.
  bytes tail = segment(5, kcp_command::push, 1, 0, "!");
  tail.push_back(std::byte{1});
  EXPECT_EQ(s.input(tail, 1000), kcp_input::truncated);
  EXPECT_EQ(drain(s), "!");
  EXPECT_EQ(outputs, 0U);
}

TEST(kcp_session, pushes_outside_the_window_are_not_buffered) {
  kcp_options o;
  o.receive_window = 8;
  kcp_session s(5, o, [](std::span<const std::byte>) {});
  EXPECT_EQ(s.input(segment(5, kcp_command::push, 8, 0, "far"), 1000), kcp_input::ok);
  EXPECT_EQ(s.input(segment(5, kcp_command::push, 0xfffffff0U, 0, "far"), 1000), kcp_input::ok);
  EXPECT_EQ(s.counters().out_of_window, 1U);
  EXPECT_EQ(s.counters().duplicates, 1U);  // (before rcv_nxt: taken for an old one, acked)
  EXPECT_FALSE(s.readable());
}

TEST(kcp_session, floods_of_acks_and_duplicates_leave_memory_bounded) {
  std::size_t outputs = 0;
  kcp_options o;
  o.receive_window = 32;
  kcp_session s(5, o, [&](std::span<const std::byte>) { ++outputs; });
  s.send(pattern(10 * s.mss(), 1));
  s.flush(1000);
  const std::size_t in_flight = s.unacknowledged();
  std::mt19937 rng(3);
  for (int i = 0; i < 100'000; ++i) {  // acks for sequence numbers never sent
    EXPECT_EQ(s.input(segment(5, kcp_command::ack, static_cast<std::uint32_t>(rng()), 0, "", 0, 32),
                      1000),
              kcp_input::ok);
  }
  EXPECT_EQ(s.unacknowledged(), in_flight);
  // The same push 100,000 times between two flushes: acked in bounded batches, buffered once.
  const std::size_t before = outputs;
  for (int i = 0; i < 100'000; ++i) {
    EXPECT_EQ(s.input(segment(5, kcp_command::push, 1, 0, "dup"), 1000), kcp_input::ok);
  }
  EXPECT_GE(outputs - before, 100'000U / (2 * 32) - 1) << "acks owed are sent in batches";
  EXPECT_FALSE(s.readable()) << "sn 1 waits for sn 0";
  EXPECT_EQ(s.input(segment(5, kcp_command::push, 0, 0, "first "), 1000), kcp_input::ok);
  EXPECT_EQ(drain(s), "first dup");
}

TEST(kcp_session, a_peer_that_vanishes_is_found_dead) {
  pair_of_sessions p(normal_mode(), 0.0, 17);
  p.a.send(pattern(1000, 9));
  p.a_to_b.cut();
  const std::uint32_t began = p.now;
  while (!p.a.dead() && p.now - began < 86'400'000) {
    p.step();
  }
  EXPECT_TRUE(p.a.dead());
  EXPECT_EQ(p.a_to_b.sent(), kcp_session::dead_link);
}

// The pushes in what a session sent: (sn, the time it went).
struct sent_pushes {
  std::vector<std::pair<std::uint32_t, std::uint32_t>> seen;
  std::uint32_t now = 0;
  void operator()(std::span<const std::byte> d) {
    while (const std::optional<kcp_header> h = read_kcp_header(d)) {
      if (h->cmd == kcp_command::push) {
        seen.emplace_back(h->sn, now);
      }
      d = d.subspan(kcp_header::size + h->len);
    }
  }
  [[nodiscard]] std::vector<std::uint32_t> times_of(std::uint32_t sn) const {
    std::vector<std::uint32_t> at;
    for (const auto& [s, t] : seen) {
      if (s == sn) {
        at.push_back(t);
      }
    }
    return at;
  }
};

// One datagram of acks, each (sn, the ts it echoes).
bytes acks(std::uint32_t conv, std::initializer_list<std::pair<std::uint32_t, std::uint32_t>> of,
           std::uint32_t una) {
  bytes out;
  for (const auto& [sn, ts] : of) {
    kcp_header h;
    h.conv = conv;
    h.cmd = kcp_command::ack;
    h.sn = sn;
    h.ts = ts;
    h.una = una;
    h.wnd = 128;
    bytes b(kcp_header::size);
    write_kcp_header(h, b);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

TEST(kcp_session, each_ack_past_a_hole_counts_so_one_datagram_of_them_resends_it) {
  sent_pushes out;
  kcp_options o = fast_mode();  // fast resend after 2
  o.send_window = 6;
  kcp_session s(5, o, std::ref(out));
  s.send(pattern(10 * s.mss(), 2));  // 6 in flight, 4 waiting for the window
  out.now = 1000;
  s.flush(1000);
  ASSERT_EQ(out.seen.size(), 6U);
  // sn 0 lost: one datagram acks 1 and 2, two acks past it, enough in one datagram.
  EXPECT_EQ(s.input(acks(5, {{1, 1000}, {2, 1000}}, 0), 1002), kcp_input::ok);
  EXPECT_TRUE(s.resend_due());
  out.now = 1002;
  s.flush(1002);
  EXPECT_FALSE(s.resend_due());
  EXPECT_EQ(out.times_of(0), (std::vector<std::uint32_t>{1000, 1002}));
  EXPECT_EQ(s.counters().fast_retransmits, 1U);
  EXPECT_EQ(out.seen.size(), 7U) << "the window is still held by sn 0: nothing new";
  // Acks of segments sent before the resend are no news of the resent copy, and an ack
  // repeated is no news at all.
  EXPECT_EQ(s.input(acks(5, {{3, 1000}, {4, 1000}, {1, 1000}, {1, 1000}}, 0), 1003), kcp_input::ok);
  EXPECT_FALSE(s.resend_due());
  out.now = 1003;
  s.flush(1003);
  EXPECT_EQ(out.times_of(0).size(), 2U);
}

TEST(kcp_session, the_last_segment_in_flight_is_probed_once_before_its_timeout) {
  sent_pushes out;
  kcp_session s(5, fast_mode(), std::ref(out));  // interval 10 ms, timeouts from 30 ms
  const auto run_until = [&](std::uint32_t end) {
    for (std::uint32_t t = out.now; t <= end; ++t) {
      out.now = t;
      if (s.next_update(t) == t) {
        s.update(t);
      }
    }
  };
  // A round trip of 2 ms measured.
  s.send(pattern(100, 1));
  out.now = 1000;
  run_until(1000);
  EXPECT_EQ(s.input(acks(5, {{0, 1000}}, 1), 1002), kcp_input::ok);
  ASSERT_EQ(s.srtt(), 2U);
  ASSERT_EQ(s.rto(), 30U);
  // sn 1 goes and nothing answers: probed once at max(2 round trips, the interval) = 10 ms,
  // then sent again at its timeout, 30 ms after it first went, and 45 ms after that (the
  // timeout grown by half the estimate).
  s.send(pattern(100, 2));
  run_until(1005);
  run_until(1100);
  EXPECT_EQ(out.times_of(1), (std::vector<std::uint32_t>{1010, 1020, 1040, 1085}));
  EXPECT_EQ(s.counters().tail_probes, 1U);
  EXPECT_EQ(s.counters().retransmits, 2U);
  // A segment with more behind it is not probed: its loss shows in the acks of the others.
  EXPECT_EQ(s.input(acks(5, {{1, 1100}}, 2), 1101), kcp_input::ok);
  s.send(pattern(3 * s.mss(), 3));
  run_until(1200);
  EXPECT_EQ(s.counters().tail_probes, 2U) << "only the last of sn 2..4";
  EXPECT_EQ(out.times_of(2).size(), out.times_of(4).size() - 1);
}

TEST(kcp_segment_queue, keeps_order_through_pops_inserts_and_compaction_and_frees_when_drained) {
  segment_queue<std::vector<int>> q;
  EXPECT_EQ(q.capacity(), 0U);  // an empty queue holds no memory
  for (int i = 0; i < 100; ++i) {
    q.push_back({i});
  }
  for (int i = 0; i < 60; ++i) {  // past half: the popped slots are reclaimed on the way
    ASSERT_EQ(q.front().at(0), i);
    q.pop_front();
  }
  EXPECT_EQ(q.size(), 40U);
  q.insert(q.begin() + 1, {-1});  // (rcv_buf_'s out-of-order arrival)
  std::vector<int> seen;
  for (const std::vector<int>& v : q) {
    seen.push_back(v.at(0));
  }
  ASSERT_EQ(seen.size(), 41U);
  EXPECT_EQ(seen[0], 60);
  EXPECT_EQ(seen[1], -1);
  EXPECT_EQ(seen[2], 61);
  EXPECT_EQ(seen.back(), 99);
  EXPECT_EQ(q[2].at(0), 61);
  while (!q.empty()) {
    q.pop_front();
  }
  EXPECT_EQ(q.capacity(), 0U);  // a burst's storage goes back once it drains
  q.push_back({7});
  q.pop_front();
  EXPECT_TRUE(q.empty());
  EXPECT_LE(q.capacity(), 4U);  // a one-at-a-time queue keeps a little, and no churn
}

}  // namespace
}  // namespace actnet::detail
