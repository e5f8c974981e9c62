// kcp_state: what a KCP connection keeps: its conversation (reactor/kcp_session.hpp) and where
// its loop's KCP clock (datagram_sockets) has it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "actnet/reactor/kcp_session.hpp"

namespace actnet {
class connection;
}

namespace actnet::detail {

struct kcp_state {
  kcp_state(std::uint32_t conv, const kcp_options& options, kcp_session::output_fn output)
      : session(conv, options, std::move(output)), idle_timeout(options.idle_timeout) {}
  kcp_session session;
  std::chrono::milliseconds idle_timeout;  // closes after this long without a datagram
  std::uint64_t due = 0;   // when the clock updates it next (while scheduled), in kcp_clock_ms
  bool scheduled = false;  // in the clock's heap at `due`
  bool dirty = false;      // written to since its last flush: on the clock's flush list
};

/// The loop's clock in milliseconds (steady), as the KCP clock keeps it; a conversation gets
/// its low 32 bits, as KCP's wire does.
[[nodiscard]] std::uint64_t kcp_clock_ms() noexcept;

/// "kcp://…", "kcp4://…", "kcp6://…" (any case) as the "udp…" url KCP runs over; nullopt for
/// any other url.
[[nodiscard]] std::optional<std::string> kcp_plain_url(std::string_view url);
/// Throws std::invalid_argument naming the first option out of its range (mtu: at most the
/// loop's read buffer, so a whole datagram is read).
void check_kcp_options(const kcp_options& options, std::size_t read_buffer_size);
/// Whether a datagram from a new peer (or with a new conversation id) may open a conversation:
/// its first segment carries data (a stray ack or window probe opens none).
[[nodiscard]] bool opens_conversation(std::span<const std::byte> datagram) noexcept;
/// `make`, with each connection it makes a KCP conversation of a new random id (a dial).
[[nodiscard]] std::function<std::unique_ptr<connection>()> kcp_client_factory(
    std::function<std::unique_ptr<connection>()> make, const kcp_options& options);

}  // namespace actnet::detail
