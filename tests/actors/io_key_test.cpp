// io_key: every kind, slot and generation survives the round trip, and no key a loop registers
// can be taken for the back end's wake-up.
#include "actnet/actors/detail/io_key.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>

namespace actnet::detail {
namespace {

TEST(io_key, kind_slot_and_generation_come_back_as_they_went_in) {
  constexpr std::array kinds{io_kind::stream, io_kind::listener, io_kind::datagram, io_kind::dial};
  constexpr std::array<std::uint32_t, 4> slots{0, 1, 0x7fffffffU, 0xffffffffU};
  constexpr std::array<std::uint32_t, 4> generations{0, 1, 12345, io_key::max_generation};
  for (const io_kind kind : kinds) {
    for (const std::uint32_t slot : slots) {
      for (const std::uint32_t generation : generations) {
        const io_key key(kind, slot, generation);
        const io_key back = io_key::from_bits(key.bits());
        EXPECT_EQ(back.kind(), kind);
        EXPECT_EQ(back.slot(), slot);
        EXPECT_EQ(back.generation(), generation);
        EXPECT_EQ(back.is_stream(), kind == io_kind::stream);
        if (kind == io_kind::stream) {
          EXPECT_EQ(back.stream_generation(), generation);
        }
      }
    }
  }
}

TEST(io_key, a_stream_key_is_the_bare_generation_and_slot) {
  // The per-message path tests the top bits only: a stream key has none.
  EXPECT_EQ(io_key(io_kind::stream, 7, 3).bits(), (std::uint64_t{3} << 32) | 7U);
}

TEST(io_key, no_registered_key_is_the_wake_up) {
  // Dials carry generation 0; the wake-up has every generation bit set.
  EXPECT_NE(io_key(io_kind::dial, 0xffffffffU), io_key::wake());
  EXPECT_EQ(io_key::wake().kind(), io_kind::dial);
  EXPECT_EQ(io_key::wake().generation(), io_key::max_generation);
  // A generation wider than 30 bits cannot spill into the kind.
  EXPECT_EQ(io_key(io_kind::stream, 1, 0xffffffffU).kind(), io_kind::stream);
}

}  // namespace
}  // namespace actnet::detail
