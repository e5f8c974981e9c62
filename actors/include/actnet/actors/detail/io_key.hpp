// io_key: what a loop registers with its back end for one source of I/O, and reads back from
// each event: a kind, a slot and a generation, encoded and decoded here only.
#pragma once

#include <cstdint>

namespace actnet::detail {

/// The sources of I/O a loop watches; each kind has one handler (the loop's dispatch).
enum class io_kind : std::uint8_t {
  stream = 0,    // a stream connection: slot and generation in the slot table
  listener = 1,  // a listening socket: slot is the engine's listener index
  datagram = 2,  // a UDP socket actor: slot and generation in the slot table
  dial = 3,      // a connect in progress: slot is the dial's id
};

/// Kind in the top two bits, then a 30-bit generation, then a 32-bit slot. A stream key is the
/// bare (generation << 32 | slot), so the per-message path tests one bit pattern. The back
/// end's wake-up key (all ones) is a dial key with a generation no dial has (dials carry 0).
class io_key {
 public:
  static constexpr std::uint32_t max_generation = (std::uint32_t{1} << 30) - 1;

  constexpr io_key() noexcept = default;
  constexpr io_key(io_kind kind, std::uint32_t slot, std::uint32_t generation = 0) noexcept
      : bits_((std::uint64_t{static_cast<std::uint8_t>(kind)} << kind_shift) |
              (std::uint64_t{generation & max_generation} << 32) | slot) {}
  /// A key as the back end reports it.
  static constexpr io_key from_bits(std::uint64_t bits) noexcept {
    io_key k;
    k.bits_ = bits;
    return k;
  }
  /// The back end's own wake-up (never a registered source).
  static constexpr io_key wake() noexcept { return from_bits(~std::uint64_t{0}); }

  [[nodiscard]] constexpr std::uint64_t bits() const noexcept { return bits_; }
  [[nodiscard]] constexpr io_kind kind() const noexcept {
    return static_cast<io_kind>(bits_ >> kind_shift);
  }
  [[nodiscard]] constexpr bool is_stream() const noexcept { return (bits_ >> kind_shift) == 0; }
  [[nodiscard]] constexpr std::uint32_t slot() const noexcept {
    return static_cast<std::uint32_t>(bits_);
  }
  [[nodiscard]] constexpr std::uint32_t generation() const noexcept {
    return static_cast<std::uint32_t>(bits_ >> 32) & max_generation;
  }
  /// generation() of a stream key, whose kind bits are 0: one instruction less per message.
  [[nodiscard]] constexpr std::uint32_t stream_generation() const noexcept {
    return static_cast<std::uint32_t>(bits_ >> 32);
  }

  friend constexpr bool operator==(io_key, io_key) noexcept = default;

 private:
  static constexpr unsigned kind_shift = 62;
  std::uint64_t bits_ = 0;
};

}  // namespace actnet::detail
