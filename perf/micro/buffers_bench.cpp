// buffers_bench: actnet's buffers against the std containers a user would otherwise reach for:
// append/consume throughput, readv/writev through a socketpair, footprint, and the block pool.
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "actnet/buffers/block_pool.hpp"
#include "actnet/buffers/elastic_buffer.hpp"
#include "actnet/buffers/linked_list_buffer.hpp"
#include "actnet/buffers/ring_buffer.hpp"
#include "actnet/defaults.hpp"
#include "actnet/result.hpp"
#include "bench_main.hpp"

namespace {

constexpr std::array<std::size_t, 4> message_sizes{64, 1024, 16 * 1024, 64 * 1024};

// Messages written per iteration before the handler consumes them: a burst, as when one
// readiness event delivers several requests.
constexpr std::size_t burst = 8;

// Bytes left unconsumed across iterations in the *_backlog runs (a handler that is behind).
// It makes the ring wrap, pushes the elastic buffer over its 64 KiB ring threshold for the
// larger messages, and makes vector memmove the whole backlog on every front erase.
constexpr std::size_t backlog_bytes = 32 * 1024;

// How far the backlog runs shift message boundaries off the ring's power-of-two end, so that
// some messages straddle it, as they do with real traffic.
constexpr std::size_t skew_bytes = 100;

// What the socketpair "spilled" runs queue per iteration: twice the elastic buffer's ring
// threshold, so half of it sits in the linked list and drain_to has many iovecs to write.
constexpr std::size_t spilled_burst_bytes = 2 * actnet::defaults::elastic_ring_threshold;

[[noreturn]] void fail(const char* what, std::error_code ec) {
  std::fprintf(stderr, "buffers_bench: %s failed: %s\n", what, ec.message().c_str());
  std::abort();
}

// A benchmark that silently measures a failing call measures nothing; stop loudly instead.
void check(std::error_code ec, const char* what) {
  if (ec) [[unlikely]] {
    fail(what, ec);
  }
}

std::span<const std::byte> payload(std::size_t n) {
  static const std::vector<std::byte> bytes = [] {
    std::vector<std::byte> v(std::size_t{64} << 10);
    for (std::size_t i = 0; i < v.size(); ++i) {
      v[i] = static_cast<std::byte>(i * 131 + 7);
    }
    return v;
  }();
  return std::span(bytes).first(n);
}

std::uint64_t pool_allocations() noexcept {
  return actnet::block_pool::stats().allocations;
}

double as_double(std::uint64_t v) noexcept {
  return static_cast<double>(v);
}

// -- contestants for append/consume: one buffer each behind append() and consume() --------

struct ring_discard {
  static constexpr bool pooled = true;
  actnet::ring_buffer buf;
  void append(std::span<const std::byte> b) { check(buf.write(b), "ring_buffer::write"); }
  void consume(std::size_t n) { check(buf.discard(n), "ring_buffer::discard"); }
  [[nodiscard]] std::size_t size() const noexcept { return buf.size(); }
};

// A handler that parses in place: next() hands out views and keeps the block, so the
// following burst reuses it instead of asking the pool again.
struct ring_next {
  static constexpr bool pooled = true;
  actnet::ring_buffer buf;
  std::uint64_t split_views = 0;  // how often a message straddled the end of the ring
  void append(std::span<const std::byte> b) { check(buf.write(b), "ring_buffer::write"); }
  void consume(std::size_t n) {
    const actnet::result<actnet::byte_views> views = buf.next(n);
    if (!views) [[unlikely]] {
      fail("ring_buffer::next", views.error());
    }
    benchmark::DoNotOptimize(views->first.data());
    benchmark::DoNotOptimize(views->second.data());
    split_views += views->contiguous() ? 0 : 1;
  }
  [[nodiscard]] std::size_t size() const noexcept { return buf.size(); }
};

struct elastic {
  static constexpr bool pooled = true;
  actnet::elastic_buffer buf;
  void append(std::span<const std::byte> b) { check(buf.write(b), "elastic_buffer::write"); }
  void consume(std::size_t n) { check(buf.discard(n), "elastic_buffer::discard"); }
  [[nodiscard]] std::size_t size() const noexcept { return buf.size(); }
};

struct linked_list {
  static constexpr bool pooled = true;
  actnet::linked_list_buffer buf;
  void append(std::span<const std::byte> b) { check(buf.push(b), "linked_list_buffer::push"); }
  void consume(std::size_t n) { check(buf.discard(n), "linked_list_buffer::discard"); }
  [[nodiscard]] std::size_t size() const noexcept { return buf.size(); }
};

// The naive buffers: append at the end, erase consumed bytes from the front.
template <class Container>
struct std_container {
  static constexpr bool pooled = false;
  Container buf;
  void append(std::span<const std::byte> b) {
    const auto* p = reinterpret_cast<const char*>(b.data());
    buf.insert(buf.end(), p, p + b.size());
  }
  void consume(std::size_t n) {
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  [[nodiscard]] std::size_t size() const noexcept { return buf.size(); }
};
using vector_buffer = std_container<std::vector<char>>;
using deque_buffer = std_container<std::deque<char>>;

// Per iteration: `burst` messages arrive, then the handler consumes `burst` messages from the
// front, leaving `backlog` older bytes in place throughout.
template <class Contestant>
void append_consume(benchmark::State& state, std::size_t message, std::size_t backlog) {
  auto c = std::make_unique<Contestant>();
  for (std::size_t left = backlog; left > 0;) {
    const std::size_t n = std::min(left, message);
    c->append(payload(n));
    left -= n;
  }
  const std::span<const std::byte> msg = payload(message);
  const auto round = [&] {
    for (std::size_t k = 0; k < burst; ++k) {
      c->append(msg);
    }
    for (std::size_t k = 0; k < burst; ++k) {
      c->consume(message);
    }
  };
  // One untimed round: the block pool's cache and the containers reach their steady state.
  round();
  // Only now, after the growth (which re-bases a ring at offset 0): one odd-sized consume.
  if (backlog > 0) {
    c->consume(skew_bytes);
    c->append(payload(skew_bytes));
  }
  if constexpr (requires { c->split_views; }) {
    c->split_views = 0;
  }
  const std::uint64_t allocations_before = pool_allocations();
  for (auto _ : state) {
    round();
    benchmark::DoNotOptimize(c.get());
    benchmark::ClobberMemory();
  }
  const std::uint64_t allocations = pool_allocations() - allocations_before;
  if (c->size() != backlog) {
    state.SkipWithError("the buffer does not hold the backlog it started with");
    return;
  }
  const auto messages = static_cast<std::uint64_t>(state.iterations()) * burst;
  state.SetBytesProcessed(static_cast<std::int64_t>(messages * message));
  state.counters["msgs/s"] = benchmark::Counter(as_double(messages), benchmark::Counter::kIsRate);
  if constexpr (Contestant::pooled) {
    state.counters["pool_allocs/msg"] = as_double(allocations) / as_double(messages);
  }
  if constexpr (requires { c->split_views; }) {
    state.counters["split/msg"] = as_double(c->split_views) / as_double(messages);
  }
}

// -- readv/writev through a socketpair -------------------------------------------------------

bool would_block(int e) noexcept {
  return e == EAGAIN || e == EWOULDBLOCK;
}

class socket_pair {
 public:
  socket_pair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_.data()) != 0) {
      fail("socketpair", {errno, std::system_category()});
    }
    // Room for a whole spilled burst in flight, so a run measures copies and system calls
    // rather than how often the writer finds the socket full (the kernel may cap it lower).
    const int size = 4 << 20;
    (void)::setsockopt(fds_[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    (void)::setsockopt(fds_[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  socket_pair(const socket_pair&) = delete;
  socket_pair& operator=(const socket_pair&) = delete;
  ~socket_pair() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  [[nodiscard]] int writer() const noexcept { return fds_[0]; }
  [[nodiscard]] int reader() const noexcept { return fds_[1]; }

 private:
  std::array<int, 2> fds_{};
};

// The sending side of a connection, as actnet does it: an elastic buffer drained with writev.
struct elastic_sender {
  actnet::elastic_buffer out;
  void append(std::span<const std::byte> b) { check(out.write(b), "elastic_buffer::write"); }
  [[nodiscard]] bool empty() const noexcept { return out.empty(); }
  [[nodiscard]] std::size_t iovecs() const {
    std::vector<iovec> iov(actnet::linked_list_buffer::max_iovecs);
    return out.peek(iov);
  }
  // One writev; false when the socket was full.
  bool flush(int fd) {
    const actnet::result<std::size_t> n = out.drain_to(fd);
    if (!n) {
      if (would_block(n.error().value())) {
        return false;
      }
      fail("elastic_buffer::drain_to", n.error());
    }
    return true;
  }
};

// The receiving side: a ring buffer filled by readv with a 64 KiB spill area, the handler
// consuming whole messages as soon as they are complete.
struct ring_receiver {
  actnet::ring_buffer in;
  std::vector<std::byte> spill = std::vector<std::byte>(actnet::defaults::read_spill_size);
  // One readv; the number of whole messages consumed, or -1 when nothing was ready.
  std::ptrdiff_t receive(int fd, std::size_t message) {
    const actnet::result<std::size_t> n = in.fill_from(fd, spill);
    if (!n) {
      if (would_block(n.error().value())) {
        return -1;
      }
      fail("ring_buffer::fill_from", n.error());
    }
    if (*n == 0) {
      fail("ring_buffer::fill_from", std::make_error_code(std::errc::connection_reset));
    }
    std::ptrdiff_t messages = 0;
    while (in.size() >= message) {
      check(in.discard(message), "ring_buffer::discard");
      ++messages;
    }
    return messages;
  }
};

// The baseline a user writes with plain write()/read() and std::vector<char>.
struct vector_sender {
  std::vector<char> out;
  void append(std::span<const std::byte> b) {
    const auto* p = reinterpret_cast<const char*>(b.data());
    out.insert(out.end(), p, p + b.size());
  }
  [[nodiscard]] bool empty() const noexcept { return out.empty(); }
  [[nodiscard]] std::size_t iovecs() const noexcept { return 1; }
  bool flush(int fd) {
    const ssize_t n = ::write(fd, out.data(), out.size());
    if (n < 0) {
      if (would_block(errno)) {
        return false;
      }
      fail("write", {errno, std::system_category()});
    }
    out.erase(out.begin(), out.begin() + n);
    return true;
  }
};

struct vector_receiver {
  std::vector<char> in;
  std::vector<char> scratch = std::vector<char>(actnet::defaults::read_spill_size);
  std::ptrdiff_t receive(int fd, std::size_t message) {
    const ssize_t n = ::read(fd, scratch.data(), scratch.size());
    if (n < 0) {
      if (would_block(errno)) {
        return -1;
      }
      fail("read", {errno, std::system_category()});
    }
    if (n == 0) {
      fail("read", std::make_error_code(std::errc::connection_reset));
    }
    in.insert(in.end(), scratch.data(), scratch.data() + n);
    std::ptrdiff_t messages = 0;
    while (in.size() >= message) {
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(message));
      ++messages;
    }
    return messages;
  }
};

// Per iteration: `count` messages are queued on the sender, then the sender writes and the
// receiver reads, alternating one system call each, until the receiver has consumed them all.
template <class Sender, class Receiver>
void socket_transfer(benchmark::State& state, std::size_t message, std::size_t count) {
  const socket_pair sockets;
  auto sender = std::make_unique<Sender>();
  auto receiver = std::make_unique<Receiver>();
  const std::span<const std::byte> msg = payload(message);
  std::uint64_t writes = 0;
  std::uint64_t reads = 0;
  std::uint64_t full = 0;        // writes and reads that found the socket full or empty
  std::size_t first_iovecs = 0;  // what one writev carries when a whole burst is queued
  const auto round = [&] {
    for (std::size_t k = 0; k < count; ++k) {
      sender->append(msg);
    }
    if (first_iovecs == 0) {
      first_iovecs = sender->iovecs();
    }
    std::size_t consumed = 0;
    while (consumed < count) {
      if (!sender->empty()) {
        ++writes;
        full += sender->flush(sockets.writer()) ? 0 : 1;
      }
      ++reads;
      const std::ptrdiff_t got = receiver->receive(sockets.reader(), message);
      if (got < 0) {
        ++full;
      } else {
        consumed += static_cast<std::size_t>(got);
      }
    }
  };
  round();  // untimed: pool caches and socket buffers warm up
  writes = reads = full = 0;
  const std::uint64_t allocations_before = pool_allocations();
  for (auto _ : state) {
    round();
    benchmark::ClobberMemory();
  }
  const std::uint64_t allocations = pool_allocations() - allocations_before;
  const auto iterations = static_cast<std::uint64_t>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(iterations * count * message));
  state.counters["msgs/s"] =
      benchmark::Counter(as_double(iterations * count), benchmark::Counter::kIsRate);
  state.counters["writes/iter"] = as_double(writes) / as_double(iterations);
  state.counters["reads/iter"] = as_double(reads) / as_double(iterations);
  state.counters["would_block/iter"] = as_double(full) / as_double(iterations);
  state.counters["iovecs"] = as_double(first_iovecs);
  state.counters["pool_allocs/iter"] = as_double(allocations) / as_double(iterations);
}

// -- footprint of an idle buffer --------------------------------------------------------------

// An idle connection holds one of each buffer: its size is per-connection memory, and a
// default-constructed buffer must not touch the pool at all.
template <class Buffer>
void footprint(benchmark::State& state) {
  const std::uint64_t allocations_before = pool_allocations();
  for (auto _ : state) {
    Buffer b;
    benchmark::DoNotOptimize(&b);
    benchmark::ClobberMemory();
  }
  state.counters["bytes"] = static_cast<double>(sizeof(Buffer));
  state.counters["allocations"] = as_double(pool_allocations() - allocations_before);
}

// -- block pool vs malloc ---------------------------------------------------------------------

constexpr std::size_t pool_block = 4096;

// Holds `batch` blocks at once, so a batch larger than one shows what the thread cache does
// with many live blocks of a class, not only the last one returned.
void pool_block_pool(benchmark::State& state, std::size_t batch) {
  std::vector<std::span<std::byte>> held(batch);
  const actnet::pool_stats before = actnet::block_pool::stats();
  for (auto _ : state) {
    for (std::span<std::byte>& b : held) {
      b = actnet::block_pool::allocate(pool_block);
      benchmark::DoNotOptimize(b.data());
    }
    for (const std::span<std::byte> b : held) {
      actnet::block_pool::deallocate(b);
    }
    benchmark::ClobberMemory();
  }
  const actnet::pool_stats after = actnet::block_pool::stats();
  const std::uint64_t pairs = static_cast<std::uint64_t>(state.iterations()) * batch;
  state.SetItemsProcessed(static_cast<std::int64_t>(pairs));
  state.counters["upstream/alloc"] =
      as_double(after.upstream_allocations - before.upstream_allocations) / as_double(pairs);
}

void pool_malloc(benchmark::State& state, std::size_t batch) {
  std::vector<void*> held(batch);
  for (auto _ : state) {
    for (void*& p : held) {
      p = std::malloc(pool_block);
      benchmark::DoNotOptimize(p);
    }
    for (void* p : held) {
      std::free(p);
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(
      static_cast<std::int64_t>(static_cast<std::uint64_t>(state.iterations()) * batch));
}

// -- registration -----------------------------------------------------------------------------

template <class Fn>
void add(const std::string& name, Fn&& fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::forward<Fn>(fn));
}

template <class Contestant>
void add_append_consume(const std::string& family, const char* contestant, std::size_t message,
                        std::size_t backlog) {
  add(family + "/" + contestant + "/" + std::to_string(message),
      [message, backlog](benchmark::State& s) { append_consume<Contestant>(s, message, backlog); });
}

void register_all() {
  // Grouped by size, so the contestants for one message size sit together in the table.
  for (const char* family : {"append_consume", "append_consume_backlog"}) {
    const std::size_t backlog = std::string(family) == "append_consume" ? 0 : backlog_bytes;
    for (const std::size_t m : message_sizes) {
      add_append_consume<ring_discard>(family, "ring_buffer", m, backlog);
      add_append_consume<ring_next>(family, "ring_buffer_next", m, backlog);
      add_append_consume<elastic>(family, "elastic_buffer", m, backlog);
      add_append_consume<linked_list>(family, "linked_list_buffer", m, backlog);
      add_append_consume<vector_buffer>(family, "vector", m, backlog);
      add_append_consume<deque_buffer>(family, "deque", m, backlog);
    }
  }
  for (const std::size_t m : message_sizes) {
    const std::string size = std::to_string(m);
    add("socket_pair/elastic_to_ring/" + size,
        [m](benchmark::State& s) { socket_transfer<elastic_sender, ring_receiver>(s, m, 1); });
    add("socket_pair/vector/" + size,
        [m](benchmark::State& s) { socket_transfer<vector_sender, vector_receiver>(s, m, 1); });
  }
  for (const std::size_t m : message_sizes) {
    const std::string size = std::to_string(m);
    const std::size_t count = spilled_burst_bytes / m;
    add("socket_pair_spilled/elastic_to_ring/" + size, [m, count](benchmark::State& s) {
      socket_transfer<elastic_sender, ring_receiver>(s, m, count);
    });
    add("socket_pair_spilled/vector/" + size, [m, count](benchmark::State& s) {
      socket_transfer<vector_sender, vector_receiver>(s, m, count);
    });
  }
  add("sizeof/ring_buffer", &footprint<actnet::ring_buffer>);
  add("sizeof/elastic_buffer", &footprint<actnet::elastic_buffer>);
  add("sizeof/linked_list_buffer", &footprint<actnet::linked_list_buffer>);
  for (const std::size_t batch : {std::size_t{1}, std::size_t{32}}) {
    const std::string family = batch == 1 ? "pool" : "pool_batch" + std::to_string(batch);
    const std::string size = std::to_string(pool_block);
    add(family + "/block_pool/" + size,
        [batch](benchmark::State& s) { pool_block_pool(s, batch); });
    add(family + "/malloc/" + size, [batch](benchmark::State& s) { pool_malloc(s, batch); });
  }
}

// Prints the console table as usual, then a summary: each contestant's throughput as a ratio
// to the naive baseline of the same family and size, measured in the same run (the median of
// the repetitions when there are several), since ratios survive machine noise where absolute
// figures do not.
class summary_reporter : public actnet::perf::summary_reporter_base {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      bool median = false;
      if (!summarised(run, median)) {
        continue;
      }
      double rate = 0;
      for (const char* counter : {"bytes_per_second", "items_per_second"}) {
        if (const auto it = run.counters.find(counter); it != run.counters.end()) {
          rate = it->second.value;
        }
      }
      if (rate <= 0) {
        continue;
      }
      const std::string& name = run.run_name.function_name;
      if (!rates_.contains(name)) {
        order_.push_back(name);
      }
      auto& entry = rates_[name];
      if (median || !entry.from_median) {
        entry = {rate, median, run.counters.count("bytes_per_second") > 0};
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nSummary: throughput as a ratio to the naive baseline in the same run\n");
    std::printf("%-24s %7s  %-20s %12s  %s\n", "family", "size", "contestant", "throughput",
                "ratio");
    for (const std::string& name : order_) {
      const entry_t& entry = rates_.at(name);
      const auto parts = split(name);
      if (parts.size() != 3) {
        continue;
      }
      const std::string& family = parts[0];
      const std::string baseline = family.starts_with("pool") ? "malloc" : "vector";
      const auto base = rates_.find(family + "/" + baseline + "/" + parts[2]);
      if (base == rates_.end() || parts[1] == baseline) {
        continue;
      }
      std::printf("%-24s %7s  %-20s %9.2f %s  %5.2fx %s\n", family.c_str(), parts[2].c_str(),
                  parts[1].c_str(), entry.rate / 1e9, entry.bytes ? "GB/s" : "G/s ",
                  entry.rate / base->second.rate, baseline.c_str());
    }
  }

 private:
  struct entry_t {
    double rate = 0;
    bool from_median = false;
    bool bytes = false;
  };

  static std::vector<std::string> split(const std::string& name) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t slash; (slash = name.find('/', start)) != std::string::npos;
         start = slash + 1) {
      parts.push_back(name.substr(start, slash - start));
    }
    parts.push_back(name.substr(start));
    return parts;
  }

  std::map<std::string, entry_t> rates_;
  std::vector<std::string> order_;  // as the benchmarks ran: contestants of one size together
};

}  // namespace

int main(int argc, char** argv) {
  return actnet::perf::bench_main<summary_reporter>(argc, argv, register_all);
}
