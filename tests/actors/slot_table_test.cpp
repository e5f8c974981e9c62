// slot_table: slots are reused, generations are not, and a stale address finds nothing.
#include "actnet/actors/detail/slot_table.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

namespace actnet::detail {
namespace {

TEST(slot_table, an_address_finds_its_item_until_the_slot_is_released) {
  slot_table<int> table;
  int a = 1;
  const auto [slot, generation] = table.reserve();
  EXPECT_NE(generation, 0U);
  EXPECT_EQ(table.find(slot, generation), nullptr);  // reserved, not filled yet
  table.fill(slot, &a);
  EXPECT_EQ(table.find(slot, generation), &a);
  EXPECT_EQ(table.find(slot, generation + 1), nullptr);
  EXPECT_EQ(table.find(slot + 1, generation), nullptr);  // past the end
  table.release(slot);
  EXPECT_EQ(table.find(slot, generation), nullptr);
  EXPECT_EQ(table.find(slot, 0), nullptr);  // a free slot is never found, not even by 0
}

TEST(slot_table, a_reused_slot_gets_a_new_generation) {
  slot_table<int> table;
  int a = 1;
  int b = 2;
  const auto first = table.reserve();
  table.fill(first.slot, &a);
  table.release(first.slot);
  const auto second = table.reserve();
  table.fill(second.slot, &b);
  EXPECT_EQ(second.slot, first.slot);
  EXPECT_NE(second.generation, first.generation);
  EXPECT_EQ(table.find(first.slot, first.generation), nullptr);  // the old address is stale
  EXPECT_EQ(table.find(second.slot, second.generation), &b);
}

TEST(slot_table, shrinks_only_when_every_slot_is_free_and_generations_run_on) {
  slot_table<int> table;
  std::vector<int> items(100);
  std::vector<slot_table<int>::place> places;
  for (int& i : items) {
    places.push_back(table.reserve());
    table.fill(places.back().slot, &i);
  }
  EXPECT_EQ(table.size(), 100U);
  table.release(places[0].slot);
  EXPECT_FALSE(table.shrink());
  EXPECT_EQ(table.find(places[1].slot, places[1].generation), &items[1]);
  for (std::size_t i = 1; i < places.size(); ++i) {
    table.release(places[i].slot);
  }
  EXPECT_TRUE(table.all_free());
  EXPECT_TRUE(table.shrink());
  EXPECT_EQ(table.size(), 0U);
  // After a shrink, slot 0 comes back with a generation no earlier address had.
  const auto again = table.reserve();
  EXPECT_EQ(again.slot, 0U);
  std::set<std::uint32_t> old;
  for (const auto& p : places) {
    old.insert(p.generation);
  }
  EXPECT_EQ(old.count(again.generation), 0U);
  EXPECT_EQ(table.find(places[0].slot, places[0].generation), nullptr);
}

TEST(slot_table, generations_wrap_past_the_largest_to_one_never_zero) {
  slot_table<int> table(io_key::max_generation - 1);
  std::vector<std::uint32_t> given;
  for (int i = 0; i < 3; ++i) {
    const auto p = table.reserve();
    given.push_back(p.generation);
    table.release(p.slot);
  }
  EXPECT_EQ(given,
            (std::vector<std::uint32_t>{io_key::max_generation - 1, io_key::max_generation, 1U}));
}

}  // namespace
}  // namespace actnet::detail
