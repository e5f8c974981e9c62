// kcp: the segment header's encoding (little-endian, 24 bytes).
#include "actnet/reactor/kcp.hpp"

#include <cstring>

namespace actnet::detail {

namespace {

std::uint32_t load32(const std::byte* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
void store32(std::byte* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::byte>(v & 0xff);
  p[1] = static_cast<std::byte>((v >> 8) & 0xff);
  p[2] = static_cast<std::byte>((v >> 16) & 0xff);
  p[3] = static_cast<std::byte>(v >> 24);
}

}  // namespace

std::optional<kcp_header> read_kcp_header(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() < kcp_header::size) {
    return std::nullopt;
  }
  const std::byte* p = bytes.data();
  kcp_header h;
  h.conv = load32(p);
  h.cmd = static_cast<kcp_command>(p[4]);
  h.frg = static_cast<std::uint8_t>(p[5]);
  h.wnd =
      static_cast<std::uint16_t>(static_cast<unsigned>(p[6]) | (static_cast<unsigned>(p[7]) << 8));
  h.ts = load32(p + 8);
  h.sn = load32(p + 12);
  h.una = load32(p + 16);
  h.len = load32(p + 20);
  return h;
}

void write_kcp_header(const kcp_header& h, std::span<std::byte> to) noexcept {
  std::byte* p = to.data();
  store32(p, h.conv);
  p[4] = static_cast<std::byte>(h.cmd);
  p[5] = static_cast<std::byte>(h.frg);
  p[6] = static_cast<std::byte>(h.wnd & 0xff);
  p[7] = static_cast<std::byte>(h.wnd >> 8);
  store32(p + 8, h.ts);
  store32(p + 12, h.sn);
  store32(p + 16, h.una);
  store32(p + 20, h.len);
}

std::optional<std::uint32_t> kcp_conversation(std::span<const std::byte> datagram) noexcept {
  if (datagram.size() < kcp_header::size) {
    return std::nullopt;
  }
  return load32(datagram.data());
}

}  // namespace actnet::detail
