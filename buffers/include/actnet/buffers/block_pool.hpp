// block_pool: power-of-two blocks on mimalloc with lock-free per-thread caches and counters.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

namespace actnet {

/// What the pool holds, summed over every thread (and threads that have exited).
struct pool_stats {
  std::int64_t bytes_in_use = 0;           ///< handed out and not yet returned
  std::int64_t bytes_cached = 0;           ///< returned and kept in thread caches for reuse
  std::uint64_t allocations = 0;           ///< allocate() calls
  std::uint64_t upstream_allocations = 0;  ///< allocate() calls the caches could not serve
};

/// Size-class allocator for buffer memory. Every block is a power of two of at least
/// defaults::pool_min_block bytes. Each thread keeps a bounded cache of free blocks per class,
/// so allocate/deallocate take no lock; a block may be returned on any thread (it then joins
/// that thread's cache). A thread's cache goes back to mimalloc when the thread exits.
/// All functions are thread-safe.
class block_pool {
 public:
  block_pool() = delete;

  /// The block size that serves a request of `size` bytes.
  [[nodiscard]] static constexpr std::size_t block_size(std::size_t size) noexcept;

  /// A block of block_size(size) bytes. Throws std::bad_alloc when memory is exhausted and
  /// std::length_error for requests over max_block.
  [[nodiscard]] static std::span<std::byte> allocate(std::size_t size);

  /// Returns a block; `block` must be exactly what allocate() gave.
  static void deallocate(std::span<std::byte> block) noexcept;

  /// Totals over all threads; each figure is exact once the threads that touch the pool are
  /// quiescent, and a recent snapshot otherwise.
  [[nodiscard]] static pool_stats stats() noexcept;

  /// Gives the calling thread's cached blocks back to mimalloc.
  static void trim_thread_cache() noexcept;
  /// trim_thread_cache(), then asks mimalloc to return its free pages to the OS (slower: for
  /// a thread going idle, not for a hot path).
  static void release_idle_memory() noexcept;

  static constexpr std::size_t min_block = 64;
  static constexpr std::size_t max_block = std::size_t{1} << 31;
};

constexpr std::size_t block_pool::block_size(std::size_t size) noexcept {
  return size <= min_block ? min_block : std::bit_ceil(size);
}

}  // namespace actnet
