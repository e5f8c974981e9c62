// libFuzzer target for kcp_session (reactor/src/kcp_session.cpp): a peer's datagrams, whatever
// their bytes, interleaved with the application's sends and reads and the clock's updates.
//
// The input is a script. Its first byte picks the options (normal or fast mode, small or large
// windows, a small or large mtu); the conversation is the first datagram's first four bytes, as
// a server takes it. Then, while bytes remain, one operation a byte:
//   0: a datagram of the next two bytes' length (little-endian) from the peer;
//   1: the application writes 16 x (the next byte) bytes;
//   2: the clock moves on by the next byte's ms, and the session updates;
//   3: the reader takes what is there (or, when the next byte is odd, stops after one piece).
// Checks: input's verdict is the one the bytes call for; input never adds to what waits for an
// ack; the reader gets no more than the window holds; every datagram the session sends is at
// most the mtu and is whole segments of its conversation, each with a known command and a
// length that fits.
#include <actnet/reactor/kcp.hpp>
#include <actnet/reactor/kcp_session.hpp>
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <vector>

#include "fuzz_check.hpp"

namespace actnet::fuzz {
namespace {

struct milestones {
  std::uint64_t accepted = 0;   // datagrams input took whole
  std::uint64_t refused = 0;    // datagrams input refused
  std::uint64_t delivered = 0;  // bytes the reader got
  std::uint64_t sent = 0;       // datagrams the session sent
  milestones() = default;
  milestones(const milestones&) = delete;
  milestones& operator=(const milestones&) = delete;
  ~milestones() {
    std::fprintf(stderr,
                 "actnet fuzz milestones: accepted=%llu refused=%llu delivered=%llu sent=%llu\n",
                 as_ull(accepted), as_ull(refused), as_ull(delivered), as_ull(sent));
  }

 private:
  static unsigned long long as_ull(std::uint64_t v) { return v; }
};
milestones reached;

using detail::kcp_command;
using detail::kcp_header;
using detail::kcp_input;

// What input must say of `d` for conversation `conv`: the first bad segment's reason.
kcp_input expected_verdict(std::span<const std::byte> d, std::uint32_t conv) {
  if (d.size() < kcp_header::size) {
    return kcp_input::truncated;
  }
  while (d.size() >= kcp_header::size) {
    const kcp_header h = *detail::read_kcp_header(d);
    if (h.conv != conv) {
      return kcp_input::wrong_conv;
    }
    d = d.subspan(kcp_header::size);
    if (h.len > d.size()) {
      return kcp_input::truncated;
    }
    const auto c = static_cast<unsigned>(h.cmd);
    if (c < 81 || c > 84) {
      return kcp_input::bad_command;
    }
    d = d.subspan(h.len);
  }
  return d.empty() ? kcp_input::ok : kcp_input::truncated;
}

void check_sent(std::span<const std::byte> d, std::uint32_t conv, std::size_t mtu) {
  ++reached.sent;
  ACTNET_FUZZ_CHECK(!d.empty() && d.size() <= mtu);
  while (!d.empty()) {
    const auto h = detail::read_kcp_header(d);
    ACTNET_FUZZ_CHECK(h.has_value());
    ACTNET_FUZZ_CHECK(h->conv == conv);
    const auto c = static_cast<unsigned>(h->cmd);
    ACTNET_FUZZ_CHECK(c >= 81 && c <= 84);
    ACTNET_FUZZ_CHECK(h->len <= d.size() - kcp_header::size);
    ACTNET_FUZZ_CHECK(h->cmd == kcp_command::push || h->len == 0);
    d = d.subspan(kcp_header::size + h->len);
  }
}

}  // namespace
}  // namespace actnet::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace actnet::fuzz;
  if (size < 1) {
    return 0;
  }
  actnet::kcp_options o;
  const std::uint8_t pick = data[0];
  if ((pick & 1) != 0) {
    o.nodelay = true;
    o.interval = std::chrono::milliseconds(10);
    o.fast_resend = 2;
    o.congestion_control = false;
  }
  o.receive_window = (pick & 2) != 0 ? 4 : 128;
  o.send_window = (pick & 4) != 0 ? 4 : 64;
  o.mtu = (pick & 8) != 0 ? 60 : 1400;
  std::size_t at = 1;
  const auto byte = [&]() -> std::uint8_t { return at < size ? data[at++] : 0; };

  std::uint32_t conv = 0;
  std::uint32_t now = 1000;
  std::vector<std::byte> payload(16 * 255, std::byte{'x'});
  std::unique_ptr<actnet::detail::kcp_session> s;
  const auto session = [&]() -> actnet::detail::kcp_session& {
    if (!s) {
      s = std::make_unique<actnet::detail::kcp_session>(
          conv, o, [&](std::span<const std::byte> d) { check_sent(d, conv, o.mtu); });
    }
    return *s;
  };
  while (at < size) {
    switch (byte() % 4) {
      case 0: {
        std::size_t len = byte();
        len |= static_cast<std::size_t>(byte()) << 8;
        len = std::min(len, size - at);
        const auto d = std::span(reinterpret_cast<const std::byte*>(data + at), len);
        at += len;
        if (!s && d.size() >= kcp_header::size) {
          conv = *actnet::detail::kcp_conversation(d);  // a server's new conversation
        }
        auto& k = session();
        const std::size_t waiting = k.unacknowledged();
        const kcp_input verdict = k.input(d, now);
        ACTNET_FUZZ_CHECK(verdict == expected_verdict(d, k.conv()));
        ACTNET_FUZZ_CHECK(k.unacknowledged() <= waiting);
        ++(verdict == kcp_input::ok ? reached.accepted : reached.refused);
        break;
      }
      case 1:
        session().send(std::span(payload).first(16 * static_cast<std::size_t>(byte())));
        break;
      case 2:
        now += byte();
        session().update(now);
        break;
      default: {
        const bool one = (byte() & 1) != 0;
        std::size_t pieces = 0;
        const std::size_t got = session().receive([&](std::span<const std::byte> d) {
          ACTNET_FUZZ_CHECK(d.size() <= o.mtu);
          return !one || ++pieces == 1;
        });
        ACTNET_FUZZ_CHECK(got <= static_cast<std::size_t>(o.receive_window) * o.mtu);
        reached.delivered += got;
        break;
      }
    }
  }
  return 0;
}
