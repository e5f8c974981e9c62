// samples/redis/table.hpp: the redis sample's segmented table. Lookups and their counts; keys
// spread over the segments so that no growth rehashes more than a small part of them; and a
// scan in slices that lists each key once while segments grow, shrink or empty under it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "redis/table.hpp"

namespace actnet::samples::redis {
namespace {

using string_table = table<std::string>;

std::string key(int i) {
  return "key:" + std::to_string(i);
}

TEST(redis_table, finds_sets_and_erases_and_counts_its_keys) {
  string_table t;
  EXPECT_EQ(t.find("a"), nullptr);
  t.insert_new("a", "1");
  t.assign("b", "2");
  t.assign("a", "3");  // over the old value
  ASSERT_NE(t.find("a"), nullptr);
  EXPECT_EQ(*t.find("a"), "3");
  EXPECT_EQ(*t.find("b"), "2");
  EXPECT_EQ(t.size(), 2U);
  EXPECT_TRUE(t.erase("a"));
  EXPECT_FALSE(t.erase("a"));
  EXPECT_EQ(t.find("a"), nullptr);
  EXPECT_EQ(t.size(), 1U);
  string_table emptied;
  t.clear_into(emptied);
  EXPECT_EQ(t.size(), 0U);
  EXPECT_EQ(t.find("b"), nullptr);
  EXPECT_EQ(emptied.size(), 1U);
  EXPECT_EQ(*emptied.find("b"), "2");
}

TEST(redis_table, keys_spread_over_the_segments_so_each_growth_is_small) {
  string_table t;
  constexpr int keys = 256'000;
  for (int i = 0; i < keys; ++i) {
    t.insert_new(key(i), "v");
  }
  EXPECT_EQ(t.size(), static_cast<std::size_t>(keys));
  std::size_t largest = 0;
  std::size_t total = 0;
  for (std::size_t s = 0; s < string_table::segments; ++s) {
    largest = std::max(largest, t.segment(s).size());
    total += t.segment(s).size();
  }
  EXPECT_EQ(total, static_cast<std::size_t>(keys));
  // A thousand a segment on average: none holds more than 1.25 times that (a growth rehashes
  // at most that many keys).
  EXPECT_LT(largest, keys / string_table::segments * 5 / 4);
}

// Runs a scan in slices of `steps` keys at most, calling `between(cursor)` after each slice;
// the keys kept (all), with the drops resume() asks for applied.
template <class Between>
std::vector<std::string> scan_all(string_table& t, std::size_t steps, Between&& between) {
  std::vector<std::string> found;
  table_cursor at;
  for (int slices = 0; slices < 1'000'000; ++slices) {
    found.resize(found.size() - t.resume(at));
    std::size_t budget = steps;
    const bool done = t.scan(at, budget, [&](const std::string& k, const std::string&) {
      if (budget == 0) {
        return visit::stop;  // (resumed at this key)
      }
      --budget;
      found.push_back(k);
      return visit::keep;
    });
    if (done) {
      return found;
    }
    between(at);
  }
  ADD_FAILURE() << "the scan never ended";
  return found;
}

std::map<std::string, int> counts(const std::vector<std::string>& keys) {
  std::map<std::string, int> n;
  for (const std::string& k : keys) {
    ++n[k];
  }
  return n;
}

// Fills `t` with key(0) .. key(n - 1).
void fill(string_table& t, int n) {
  for (int i = 0; i < n; ++i) {
    t.insert_new(key(i), "v");
  }
}

// Every key(i) for i in [from, to) by `step` listed exactly once, and no key listed twice.
void expect_once(const std::map<std::string, int>& n, int from, int to, int step = 1) {
  for (int i = from; i < to; i += step) {
    const auto it = n.find(key(i));
    ASSERT_NE(it, n.end()) << key(i);
    ASSERT_EQ(it->second, 1) << key(i);
  }
  for (const auto& [k, times] : n) {
    ASSERT_EQ(times, 1) << k;
  }
}

TEST(redis_table, a_scan_in_slices_lists_each_key_once) {
  string_table t;
  fill(t, 5000);
  const std::map<std::string, int> n = counts(scan_all(t, 7, [](const table_cursor&) {}));
  EXPECT_EQ(n.size(), 5000U);
  expect_once(n, 0, 5000);
}

TEST(redis_table, segments_that_grow_under_a_scan_are_scanned_again_and_no_key_is_listed_twice) {
  string_table t;
  fill(t, 20'000);
  // Once in each segment, new keys into the segment the scan is inside, until it grows; and
  // after every slice a few into any (which may grow others too, and front the bucket the scan
  // stopped in).
  int added = 0;
  std::set<std::size_t> forced;
  const std::vector<std::string> found = scan_all(t, 13, [&](const table_cursor& at) {
    for (int k = 0; k < 3; ++k) {
      t.insert_new("new:" + std::to_string(added++), "v");
    }
    if (at.buckets == 0 || !forced.insert(at.segment).second) {
      return;
    }
    const std::size_t buckets = t.segment(at.segment).bucket_count();
    while (t.segment(at.segment).bucket_count() == buckets) {
      const std::string k = "new:" + std::to_string(added++);
      if (string_table::segment_index(string_hash{}(k)) == at.segment) {
        t.insert_new(k, "v");
      }
    }
  });
  EXPECT_GT(forced.size(), string_table::segments / 2);
  // There throughout: once each; added during it: at most once.
  expect_once(counts(found), 0, 20'000);
}

TEST(redis_table, keys_erased_under_a_scan_leave_the_others_listed_once) {
  string_table t;
  fill(t, 20'000);
  int next = 0;
  const std::vector<std::string> found = scan_all(t, 11, [&](const table_cursor&) {
    for (int k = 0; k < 5 && next < 20'000; ++k, next += 2) {
      (void)t.erase(key(next));  // the even keys, from the front
    }
  });
  expect_once(counts(found), 1, 20'000, 2);  // the odd ones stay: once each
}

TEST(redis_table, a_table_emptied_under_a_scan_ends_it_without_a_key_twice) {
  string_table t;
  fill(t, 3000);
  int slices = 0;
  string_table old;
  const std::vector<std::string> found = scan_all(t, 17, [&](const table_cursor&) {
    if (++slices == 10) {
      t.clear_into(old);  // FLUSHALL
      for (int i = 0; i < 100; ++i) {
        t.insert_new("new:" + std::to_string(i), "v");
      }
    }
  });
  for (const auto& [k, times] : counts(found)) {
    ASSERT_EQ(times, 1) << k;
  }
}

}  // namespace
}  // namespace actnet::samples::redis
