// slot_table: slots are reused, generations are not, and a stale address finds nothing.
#include "actnet/actors/detail/slot_table.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

namespace actnet::detail {
namespace {

// What the table holds: an item that keeps its own generation.
struct item {
  std::uint32_t generation = 0;
};
struct generation_of {
  std::uint32_t operator()(const item& i) const noexcept { return i.generation; }
};
using table = slot_table<item, generation_of>;

TEST(slot_table, an_address_finds_its_item_until_the_slot_is_released) {
  table t;
  const auto [slot, generation] = t.reserve();
  item a{generation};
  EXPECT_NE(generation, 0U);
  EXPECT_EQ(t.find(slot, generation), nullptr);  // reserved, not filled yet
  t.fill(slot, &a);
  EXPECT_EQ(t.find(slot, generation), &a);
  EXPECT_EQ(t.find(slot, generation + 1), nullptr);
  EXPECT_EQ(t.find(slot + 1, generation), nullptr);  // past the end
  t.release(slot);
  EXPECT_EQ(t.find(slot, generation), nullptr);
  EXPECT_EQ(t.find(slot, 0), nullptr);  // a free slot is never found, not even by 0
}

TEST(slot_table, find_registered_finds_what_find_finds_for_a_slot_in_the_table) {
  table t;
  const auto p = t.reserve();
  item a{p.generation};
  EXPECT_EQ(t.find_registered(p.slot, p.generation), nullptr);  // reserved, not filled
  t.fill(p.slot, &a);
  EXPECT_EQ(t.find_registered(p.slot, p.generation), &a);
  EXPECT_EQ(t.find_registered(p.slot, p.generation + 1), nullptr);
  t.release(p.slot);
  EXPECT_EQ(t.find_registered(p.slot, p.generation), nullptr);
}

TEST(slot_table, an_item_whose_generation_moved_on_is_not_found_by_its_old_address) {
  // The item keeps its own generation: the table reads it, and holds only a pointer a slot.
  table t;
  const auto p = t.reserve();
  item a{p.generation};
  t.fill(p.slot, &a);
  a.generation = p.generation + 1;
  EXPECT_EQ(t.find(p.slot, p.generation), nullptr);
  EXPECT_EQ(t.find(p.slot, p.generation + 1), &a);
}

TEST(slot_table, a_reused_slot_gets_a_new_generation) {
  table t;
  const auto first = t.reserve();
  item a{first.generation};
  t.fill(first.slot, &a);
  t.release(first.slot);
  const auto second = t.reserve();
  item b{second.generation};
  t.fill(second.slot, &b);
  EXPECT_EQ(second.slot, first.slot);
  EXPECT_NE(second.generation, first.generation);
  EXPECT_EQ(t.find(first.slot, first.generation), nullptr);  // the old address is stale
  EXPECT_EQ(t.find(second.slot, second.generation), &b);
}

TEST(slot_table, shrinks_only_when_every_slot_is_free_and_generations_run_on) {
  table t;
  std::vector<item> items(100);
  std::vector<table::place> places;
  for (item& i : items) {
    places.push_back(t.reserve());
    i.generation = places.back().generation;
    t.fill(places.back().slot, &i);
  }
  EXPECT_EQ(t.size(), 100U);
  t.release(places[0].slot);
  EXPECT_FALSE(t.shrink());
  EXPECT_EQ(t.find(places[1].slot, places[1].generation), &items[1]);
  for (std::size_t i = 1; i < places.size(); ++i) {
    t.release(places[i].slot);
  }
  EXPECT_TRUE(t.all_free());
  EXPECT_TRUE(t.shrink());
  EXPECT_EQ(t.size(), 0U);
  // After a shrink, slot 0 comes back with a generation no earlier address had.
  const auto again = t.reserve();
  EXPECT_EQ(again.slot, 0U);
  std::set<std::uint32_t> old;
  for (const auto& p : places) {
    old.insert(p.generation);
  }
  EXPECT_EQ(old.count(again.generation), 0U);
  EXPECT_EQ(t.find(places[0].slot, places[0].generation), nullptr);
}

TEST(slot_table, generations_wrap_past_the_largest_to_one_never_zero) {
  table t(io_key::max_generation - 1);
  std::vector<std::uint32_t> given;
  for (int i = 0; i < 3; ++i) {
    const auto p = t.reserve();
    given.push_back(p.generation);
    t.release(p.slot);
  }
  EXPECT_EQ(given,
            (std::vector<std::uint32_t>{io_key::max_generation - 1, io_key::max_generation, 1U}));
}

}  // namespace
}  // namespace actnet::detail
