// stream_input: what a parser target makes of its input: the bytes a client sent, and where the
// server's first read of them ended. Shared by the http and resp targets.
//
// Layout: the last two bytes (little-endian) pick the cut: below 0x8000, the offset from the
// start (modulo the stream's length + 1); from 0x8000 on, the low 15 bits are the distance from
// the end, so a first read that misses only the last bytes of a long stream is reachable too.
// The bytes before them are the stream, where 0xff k x (k > 0) stands for k * k * 17 copies of
// x, so a seed of a few bytes reaches the 8 KiB, 64 KiB and 1 MiB limits, and 0xff 0x00 for one
// 0xff byte. A seed is thus the request as text plus two bytes, e.g. "PING\r\n\0\0".
#pragma once

#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace actnet::fuzz {

// A reused buffer whose bytes past the ones given are poisoned, so ASan reports a parser reading
// even one byte past the end (in a std::string that byte is the terminating NUL, or spare
// capacity). Cheaper than an allocation of exactly the size for every input: ASan maps and
// unmaps large ones.
class fenced_bytes {
 public:
  fenced_bytes() = default;
  fenced_bytes(const fenced_bytes&) = delete;
  fenced_bytes& operator=(const fenced_bytes&) = delete;
  ~fenced_bytes() { ASAN_UNPOISON_MEMORY_REGION(bytes_.data(), bytes_.capacity()); }

  // Holds a copy of `from` (until the next call) and returns a view of it.
  std::string_view hold(std::string_view from) {
    ASAN_UNPOISON_MEMORY_REGION(bytes_.data(), bytes_.capacity());
    if (bytes_.size() < from.size()) {
      bytes_.resize(from.size());
    }
    if (!from.empty()) {  // an empty vector's data() may be null, which memcpy may not take
      std::memcpy(bytes_.data(), from.data(), from.size());
    }
    ASAN_POISON_MEMORY_REGION(bytes_.data() + from.size(), bytes_.capacity() - from.size());
    return {bytes_.data(), from.size()};
  }

 private:
  std::vector<char> bytes_;
};

// Where a view starts within another, as an offset (views of different copies compare this way).
inline std::size_t offset_in(std::string_view part, std::string_view whole) {
  return static_cast<std::size_t>(part.data() - whole.data());
}

// Whether `part` lies within `whole` (an empty part anywhere from its start to its end).
inline bool within(std::string_view part, std::string_view whole) {
  const auto begin = reinterpret_cast<std::uintptr_t>(whole.data());
  const auto at = reinterpret_cast<std::uintptr_t>(part.data());
  return at >= begin && at - begin <= whole.size() && part.size() <= whole.size() - (at - begin);
}

struct stream_input {
  // No more than `max` bytes are built (a little past the parser's largest limit), so one
  // input cannot make a run slow.
  explicit stream_input(std::size_t max) : max_stream(max) {}

  std::size_t max_stream;
  std::string stream;   // what the client sent
  std::size_t cut = 0;  // the first read took stream[0, cut)

  void decode(const std::uint8_t* data, std::size_t size) {
    stream.clear();
    const std::size_t body = size >= 2 ? size - 2 : 0;
    const std::size_t selector = size >= 2 ? data[size - 2] | (data[size - 1] << 8) : 0;
    for (std::size_t i = 0; i < body && stream.size() < max_stream; ++i) {
      if (data[i] != 0xff) {
        stream += static_cast<char>(data[i]);
      } else if (i + 1 < body && data[i + 1] == 0) {
        stream += '\xff';
        ++i;
      } else if (i + 2 < body) {
        const std::size_t k = data[i + 1];
        const std::size_t n = std::min(k * k * 17, max_stream - stream.size());
        stream.append(n, static_cast<char>(data[i + 2]));
        i += 2;
      } else {
        break;  // an escape cut short by the end
      }
    }
    const std::size_t from_end = selector & 0x7fffU;
    cut = selector < 0x8000U ? selector % (stream.size() + 1)
                             : stream.size() - std::min(from_end, stream.size());
  }
};

}  // namespace actnet::fuzz
