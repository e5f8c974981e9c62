// table: the redis sample's hash table, split into segments that grow one at a time. A single
// std::unordered_map that outgrows its buckets rehashes every key at once: about 100 ms at a
// million keys, during which every connection on the loop waits (Redis's dict rehashes
// incrementally for this reason). Here a key's hash picks one of 256 segments, each a
// std::unordered_map that grows on its own, so one growth rehashes a 256th of the keys: under
// half a millisecond at a million (Dragonfly's dashtable splits its segments for the same
// reason). The price: a lookup touches one more cache line (the segment), some 10 to 20 ns.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace actnet::samples::redis {

/// A key and its hash, computed once: the hash picks the segment and the segment's bucket.
struct prehashed {
  std::string_view key;
  std::size_t hash;
  friend bool operator==(const prehashed& a, const std::string& b) noexcept { return a.key == b; }
};

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
  std::size_t operator()(const prehashed& k) const noexcept { return k.hash; }
};

/// Where a scan over a table is, between its slices.
struct table_cursor {
  std::size_t segment = 0;
  std::size_t bucket = 0;
  std::size_t buckets = 0;     // the segment's bucket count when its scan began (0: not begun)
  std::size_t found_here = 0;  // keys of this segment the scan kept in earlier slices
  // A slice that stopped inside a bucket: the bucket's keys it had visited, by name (a key
  // added to the bucket since goes to its front, so a count would be wrong). A bucket holds
  // a key or two.
  std::vector<std::string> done_in_bucket;

  void restart_segment() noexcept {
    bucket = 0;
    buckets = 0;
    found_here = 0;
    done_in_bucket.clear();
  }
  [[nodiscard]] bool visited(const std::string& key) const noexcept {
    return std::find(done_in_bucket.begin(), done_in_bucket.end(), key) != done_in_bucket.end();
  }
};

/// What a scan's visitor says of a key: not wanted, kept (counted in found_here), or "stop
/// here" (the next slice begins at this key again).
enum class visit : std::uint8_t { skip, keep, stop };

/// A key -> V table of `segments` std::unordered_maps; a key lives in the segment its hash's
/// top bits name (the map's bucket is its hash modulo a prime: the low bits too).
template <class V>
class table {
 public:
  using map_type = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;
  static constexpr std::size_t segments = 256;
  static constexpr int segment_bits = 8;
  static_assert(std::size_t{1} << segment_bits == segments);

  /// Segment i grows at a load of 0.5 + 0.5 i / segments: the segments, all about the same
  /// size, would otherwise all grow at about the same moment, within a few thousand inserts
  /// (tens of milliseconds of rehashing between them at a million keys); so their growths
  /// spread evenly over each doubling of the table.
  table() {
    for (std::size_t i = 0; i < segments; ++i) {
      segs_[i].max_load_factor(0.5F + 0.5F * static_cast<float>(i) / segments);
    }
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// The value of `key`, or null.
  V* find(std::string_view key) {
    const prehashed k{key, string_hash{}(key)};
    map_type& m = segment_of(k);
    const auto it = m.find(k);
    return it == m.end() ? nullptr : &it->second;
  }

  /// Adds `key`, which find() just did not find.
  V& insert_new(std::string_view key, V v) {
    const prehashed k{key, string_hash{}(key)};
    V& at = segment_of(k).emplace(std::string(key), std::move(v)).first->second;
    ++size_;
    return at;
  }

  /// Sets `key` to `v`, a new key or over the old value.
  V& assign(std::string_view key, V v) {
    if (V* found = find(key)) {
      *found = std::move(v);
      return *found;
    }
    return insert_new(key, std::move(v));
  }

  /// Removes `key`; false if it was not there.
  bool erase(std::string_view key) {
    const prehashed k{key, string_hash{}(key)};
    map_type& m = segment_of(k);
    const auto it = m.find(k);
    if (it == m.end()) {
      return false;
    }
    m.erase(it);
    --size_;
    return true;
  }

  /// Before a scan's next slice: if the segment it is in grew since the last slice (or the
  /// table was emptied), its keys moved between buckets, so its scan begins again; returns
  /// how many keys the scan kept from it, now void (0: it goes on where it was).
  std::size_t resume(table_cursor& at) const noexcept {
    if (at.buckets == 0 || at.buckets == segs_[at.segment].bucket_count()) {
      return 0;
    }
    const std::size_t dropped = at.found_here;
    at.restart_segment();
    return dropped;
  }

  /// One slice of a scan: visits keys from `at` on, segment by segment and bucket by bucket,
  /// until `visit(key, value)` says stop, `steps` (less one a bucket; the visitor takes its
  /// own) run out, or the table ends: then true. Each key present throughout a scan is
  /// visited once (after resume() at each slice); one added or removed during it, at most
  /// once.
  template <class Visit>
  bool scan(table_cursor& at, std::size_t& steps, Visit&& visit_key) {
    for (; at.segment < segments; ++at.segment) {
      map_type& m = segs_[at.segment];
      const std::size_t buckets = m.bucket_count();
      at.buckets = buckets;
      for (; at.bucket < buckets && steps > 0; ++at.bucket, at.done_in_bucket.clear()) {
        for (auto it = m.begin(at.bucket); it != m.end(at.bucket); ++it) {
          if (at.visited(it->first)) {
            continue;  // before an earlier slice stopped
          }
          const visit v = visit_key(it->first, it->second);
          if (v == visit::stop) {
            for (auto done = m.begin(at.bucket); done != it; ++done) {
              if (!at.visited(done->first)) {
                at.done_in_bucket.push_back(done->first);
              }
            }
            return false;
          }
          at.found_here += v == visit::keep ? 1 : 0;
        }
        steps -= steps > 0 ? 1 : 0;  // a bucket visited is a step too (most are empty)
      }
      if (at.bucket < buckets) {
        return false;  // out of steps
      }
      at.restart_segment();
    }
    return true;
  }

  /// The segment of a key with hash `h` (string_hash).
  [[nodiscard]] static std::size_t segment_index(std::size_t h) noexcept {
    return h >> (sizeof(std::size_t) * 8 - segment_bits);
  }

  /// Segment i, for scans (a key erased there must be counted with erased()).
  [[nodiscard]] map_type& segment(std::size_t i) noexcept { return segs_[i]; }
  void erased(std::size_t n = 1) noexcept { size_ -= n; }

  /// Empties the table into `out` (to be freed elsewhere: freeing a large table takes time).
  void clear_into(table& out) noexcept {
    std::swap(out.segs_, segs_);
    std::swap(out.size_, size_);
  }

 private:
  map_type& segment_of(const prehashed& k) { return segs_[segment_index(k.hash)]; }

  std::unique_ptr<map_type[]> segs_ = std::make_unique<map_type[]>(segments);
  std::size_t size_ = 0;
};

}  // namespace actnet::samples::redis
