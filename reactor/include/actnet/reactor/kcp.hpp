// kcp: the KCP protocol's wire format and options (a reliable, ordered stream over datagrams;
// see kcp_session.hpp for the state machine). Interoperable with ikcp and kcp-go (no FEC, no
// encryption): every datagram is one or more segments, each a 24-byte little-endian header
// followed by its data.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace actnet {

/// A KCP conversation's tuning (kcp-go's SetNoDelay, SetWindowSize, SetMtu). The defaults are
/// KCP's "normal" mode: kcp-go's `SetNoDelay(0, 100, 0, 0)`. Its "fast" mode is nodelay = true,
/// interval 10 ms, fast_resend = 2, congestion_control = false.
struct kcp_options {
  /// A lost segment's retransmission timeout grows by half the round-trip estimate at each
  /// resend instead of doubling, and the smallest timeout is 30 ms instead of 100 ms.
  bool nodelay = false;
  /// How often a conversation is flushed: acknowledgements, sends and retransmissions go out
  /// at this pace (10 ms to 5 s).
  std::chrono::milliseconds interval{100};
  /// Resend a segment at once when this many segments sent after it were acknowledged before
  /// it, each ack counting (0: only on its timeout, or one ack when nothing new is queued).
  std::uint32_t fast_resend = 0;
  /// Slow start and congestion avoidance on the send window (off: the windows alone).
  bool congestion_control = true;
  /// Segments in flight at most (1 to 65,535).
  std::uint32_t send_window = 32;
  /// Segments received ahead of the reader at most: the window told to the peer (1 to 65,535).
  std::uint32_t receive_window = 128;
  /// The largest datagram sent (a segment's data: mtu - 24 bytes), 50 to 65,507.
  std::size_t mtu = 1400;
  /// The kcp:// transport's: a conversation that hears nothing from its peer for this long
  /// closes with on_close(timed_out), on a listener and on a dial alike (KCP has no close of
  /// its own, so a vanished peer is known only by its silence); 1 ms to a year.
  std::chrono::milliseconds idle_timeout{30'000};
  /// The kcp:// transport's: conversations per socket (a listener's: per loop); datagrams that
  /// would open more are dropped and counted.
  std::size_t max_conversations = 65'536;
};

namespace detail {

/// A segment's command.
enum class kcp_command : std::uint8_t {
  push = 81,          // data
  ack = 82,           // acknowledges one segment (sn, and the ts it carried)
  window_probe = 83,  // asks the peer for its window
  window_tell = 84,   // tells this side's window
};

/// One segment's header, as on the wire.
struct kcp_header {
  static constexpr std::size_t size = 24;
  std::uint32_t conv = 0;  // the conversation
  kcp_command cmd = kcp_command::push;
  std::uint8_t frg = 0;   // fragments of one message still to come after this one
  std::uint16_t wnd = 0;  // the sender's free receive window, in segments
  std::uint32_t ts = 0;   // the sender's clock (ms) when it sent it; an ack echoes it
  std::uint32_t sn = 0;   // sequence number
  std::uint32_t una = 0;  // every segment before this one has been received
  std::uint32_t len = 0;  // data bytes that follow
};

/// Reads the header at the start of `bytes`: nullopt when fewer than 24 bytes. The command and
/// length are not checked here (see kcp_session::input).
[[nodiscard]] std::optional<kcp_header> read_kcp_header(std::span<const std::byte> bytes) noexcept;
/// Writes `h` to the first 24 bytes of `to` (at least that long).
void write_kcp_header(const kcp_header& h, std::span<std::byte> to) noexcept;
/// The conversation a datagram belongs to (its first four bytes): nullopt when it is shorter
/// than a header.
[[nodiscard]] std::optional<std::uint32_t> kcp_conversation(
    std::span<const std::byte> datagram) noexcept;

}  // namespace detail
}  // namespace actnet
