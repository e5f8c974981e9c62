// block_pool: thread caches of free blocks, a registry of caches for stats, mimalloc upstream.
#include "actnet/buffers/block_pool.hpp"

#include <mimalloc.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>

#include "actnet/defaults.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ACTNET_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define ACTNET_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ACTNET_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define ACTNET_TSAN 1
#endif
// Sanitizers see through malloc, not through an uninstrumented mimalloc: under ASan (leaks,
// use after free) and TSan (a block freed on one thread and reused on another looks like a race
// when the handover happens inside mimalloc) the pool takes its blocks from malloc.
#if defined(ACTNET_ASAN) || defined(ACTNET_TSAN)
#define ACTNET_POOL_MALLOC 1
#endif

#ifdef ACTNET_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace actnet {
namespace {

static_assert(block_pool::min_block == defaults::pool_min_block);
static_assert(std::has_single_bit(defaults::pool_max_cached_block));

constexpr unsigned min_log2 = std::countr_zero(block_pool::min_block);
constexpr unsigned cached_classes =
    std::countr_zero(defaults::pool_max_cached_block) - min_log2 + 1;

constexpr unsigned class_of(std::size_t block_size) noexcept {
  return static_cast<unsigned>(std::countr_zero(block_size)) - min_log2;
}

// Under sanitizers blocks come from malloc (see above); under AddressSanitizer cached blocks
// are also poisoned, so a use after return is reported.
void* upstream_allocate(std::size_t size) noexcept {
#ifdef ACTNET_POOL_MALLOC
  return std::malloc(size);
#else
  return mi_malloc(size);
#endif
}

void upstream_free(void* p) noexcept {
#ifdef ACTNET_POOL_MALLOC
  std::free(p);
#else
  mi_free(p);
#endif
}

struct free_block {
  free_block* next;
};

void poison(free_block* b, std::size_t size) noexcept {
#ifdef ACTNET_ASAN
  ASAN_POISON_MEMORY_REGION(reinterpret_cast<std::byte*>(b) + sizeof(free_block),
                            size - sizeof(free_block));
#else
  (void)b;
  (void)size;
#endif
}

void unpoison(void* b, std::size_t size) noexcept {
#ifdef ACTNET_ASAN
  ASAN_UNPOISON_MEMORY_REGION(b, size);
#else
  (void)b;
  (void)size;
#endif
}

// A counter written by one thread and read by any: a relaxed load + store, no locked
// instruction on the hot path.
template <class T>
struct owned_counter {
  std::atomic<T> value{0};
  void add(T d) noexcept {
    value.store(value.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }
  [[nodiscard]] T get() const noexcept { return value.load(std::memory_order_relaxed); }
};

struct thread_cache {
  std::array<free_block*, cached_classes> heads{};
  std::array<std::size_t, cached_classes> class_bytes{};
  std::size_t total_bytes = 0;

  owned_counter<std::int64_t> in_use;
  owned_counter<std::int64_t> cached;
  owned_counter<std::uint64_t> allocations;
  owned_counter<std::uint64_t> upstream;

  thread_cache* prev = nullptr;  // registry links, guarded by registry::mutex
  thread_cache* next = nullptr;

  thread_cache();
  ~thread_cache();
  thread_cache(const thread_cache&) = delete;
  thread_cache& operator=(const thread_cache&) = delete;

  void release_all() noexcept {
    for (unsigned c = 0; c < cached_classes; ++c) {
      const std::size_t size = block_pool::min_block << c;
      while (free_block* b = heads[c]) {
        unpoison(b, sizeof(free_block));
        heads[c] = b->next;
        unpoison(b, size);
        upstream_free(b);
      }
      class_bytes[c] = 0;
    }
    cached.add(-static_cast<std::int64_t>(total_bytes));
    total_bytes = 0;
  }
};

// Counts of threads that have exited, and of blocks that moved when no cache was available
// (a thread's cache is gone during its final thread_local destructors).
struct registry {
  std::mutex mutex;
  thread_cache* head = nullptr;
  std::atomic<std::int64_t> in_use{0};
  std::atomic<std::uint64_t> allocations{0};
  std::atomic<std::uint64_t> upstream{0};
};

registry& the_registry() noexcept {
  // Never destroyed: thread caches may outlive static teardown. Placement new cannot throw.
  alignas(registry) static std::byte storage[sizeof(registry)];
  static auto* const r = new (storage) registry;
  return *r;
}

thread_cache::thread_cache() {
  registry& r = the_registry();
  const std::lock_guard lock(r.mutex);
  next = r.head;
  if (next != nullptr) {
    next->prev = this;
  }
  r.head = this;
}

thread_cache::~thread_cache() {
  release_all();
  registry& r = the_registry();
  const std::lock_guard lock(r.mutex);
  r.in_use.fetch_add(in_use.get(), std::memory_order_relaxed);
  r.allocations.fetch_add(allocations.get(), std::memory_order_relaxed);
  r.upstream.fetch_add(upstream.get(), std::memory_order_relaxed);
  (prev != nullptr ? prev->next : r.head) = next;
  if (next != nullptr) {
    next->prev = prev;
  }
}

thread_local thread_cache* tl_cache = nullptr;  // trivially destructible: a fast check
thread_local bool tl_cache_gone = false;

struct cache_owner {
  thread_cache cache;
  ~cache_owner() {
    tl_cache = nullptr;
    tl_cache_gone = true;
  }
};

thread_cache* local_cache() noexcept {
  if (tl_cache != nullptr) [[likely]] {
    return tl_cache;
  }
  if (tl_cache_gone) {
    return nullptr;
  }
  static thread_local cache_owner owner;
  tl_cache = &owner.cache;
  return tl_cache;
}

}  // namespace

std::span<std::byte> block_pool::allocate(std::size_t size) {
  if (size > max_block) {
    throw std::length_error("actnet::block_pool: block over 2 GiB requested");
  }
  const std::size_t bytes = block_size(size);
  thread_cache* tc = local_cache();
  void* p = nullptr;
  if (tc != nullptr && bytes <= defaults::pool_max_cached_block) {
    const unsigned c = class_of(bytes);
    if (free_block* b = tc->heads[c]) {
      unpoison(b, sizeof(free_block));
      tc->heads[c] = b->next;
      unpoison(b, bytes);
      tc->class_bytes[c] -= bytes;
      tc->total_bytes -= bytes;
      tc->cached.add(-static_cast<std::int64_t>(bytes));
      p = b;
    }
  }
  if (p == nullptr) {
    p = upstream_allocate(bytes);
    if (p == nullptr) {
      throw std::bad_alloc();
    }
    if (tc != nullptr) {
      tc->upstream.add(1);
    } else {
      the_registry().upstream.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (tc != nullptr) {
    tc->allocations.add(1);
    tc->in_use.add(static_cast<std::int64_t>(bytes));
  } else {
    the_registry().allocations.fetch_add(1, std::memory_order_relaxed);
    the_registry().in_use.fetch_add(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
  }
  return {static_cast<std::byte*>(p), bytes};
}

void block_pool::deallocate(std::span<std::byte> block) noexcept {
  if (block.data() == nullptr) {
    return;
  }
  const std::size_t bytes = block.size();
  thread_cache* tc = local_cache();
  if (tc == nullptr) {
    the_registry().in_use.fetch_sub(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
    upstream_free(block.data());
    return;
  }
  tc->in_use.add(-static_cast<std::int64_t>(bytes));
  if (bytes <= defaults::pool_max_cached_block) {
    const unsigned c = class_of(bytes);
    if (tc->class_bytes[c] + bytes <= defaults::pool_cache_bytes_per_class &&
        tc->total_bytes + bytes <= defaults::pool_cache_bytes_per_thread) {
      auto* b = reinterpret_cast<free_block*>(block.data());
      b->next = tc->heads[c];
      poison(b, bytes);
      tc->heads[c] = b;
      tc->class_bytes[c] += bytes;
      tc->total_bytes += bytes;
      tc->cached.add(static_cast<std::int64_t>(bytes));
      return;
    }
  }
  upstream_free(block.data());
}

pool_stats block_pool::stats() noexcept {
  registry& r = the_registry();
  pool_stats s;
  const std::lock_guard lock(r.mutex);
  s.bytes_in_use = r.in_use.load(std::memory_order_relaxed);
  s.allocations = r.allocations.load(std::memory_order_relaxed);
  s.upstream_allocations = r.upstream.load(std::memory_order_relaxed);
  for (const thread_cache* tc = r.head; tc != nullptr; tc = tc->next) {
    s.bytes_in_use += tc->in_use.get();
    s.bytes_cached += tc->cached.get();
    s.allocations += tc->allocations.get();
    s.upstream_allocations += tc->upstream.get();
  }
  return s;
}

void block_pool::trim_thread_cache() noexcept {
  if (thread_cache* tc = local_cache()) {
    tc->release_all();
  }
}

void block_pool::release_idle_memory() noexcept {
  trim_thread_cache();
  mi_collect(/*force=*/true);
}

}  // namespace actnet
