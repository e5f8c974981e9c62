// engine_options: the engine's options checked (each bad one named with its value and rule)
// and completed (loops 0: one per hardware thread).
#include "engine_options.hpp"

#include <net/if.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include "actnet/actors/detail/uring_backend.hpp"

namespace actnet::detail {
namespace {

[[noreturn]] void bad_option(const char* name, const std::string& value, const char* rule) {
  throw std::invalid_argument(std::string("actnet: engine option ") + name + " = " + value + ": " +
                              rule);
}

template <class T>
[[noreturn]] void bad_option(const char* name, T value, const char* rule) {
  bad_option(name, std::to_string(value), rule);
}

}  // namespace

engine_options checked_options(engine_options o) {
  if (o.loops == 0) {
    o.loops = std::max(1U, std::thread::hardware_concurrency());
  }
  if (o.loops > 1024) {
    bad_option("loops", o.loops, "must be at most 1024");
  }
  if (o.read_buffer_size < 1024 || o.read_buffer_size > (std::size_t{1} << 30)) {
    bad_option("read_buffer_size", o.read_buffer_size, "must be between 1 KiB and 1 GiB");
  }
  if (o.edge_triggered_chunk == 0) {
    bad_option("edge_triggered_chunk", o.edge_triggered_chunk, "must be at least 1");
  }
  if (o.inbound_cap == 0 || o.inbound_cap > ring_buffer::largest_capacity) {
    bad_option("inbound_cap", o.inbound_cap, "must be between 1 and 2 GiB");
  }
  if (o.outbound_cap == 0 || o.outbound_cap > elastic_buffer::largest_size) {
    bad_option("outbound_cap", o.outbound_cap, "must be between 1 and 4 GiB - 1");
  }
  if (o.outbound_ring_threshold == 0 || std::bit_ceil(o.outbound_ring_threshold) > o.outbound_cap) {
    bad_option("outbound_ring_threshold", o.outbound_ring_threshold,
               "must be at least 1 and (rounded up to a power of two) at most outbound_cap");
  }
  if (o.outbound_high_watermark == 0 || o.outbound_low_watermark > o.outbound_high_watermark) {
    bad_option("outbound_low_watermark", o.outbound_low_watermark,
               "must be at most outbound_high_watermark, which must be at least 1");
  }
  const auto check_ms = [](const char* name, std::chrono::milliseconds ms) {
    if (ms.count() < 0 || ms > std::chrono::hours(24 * 365)) {
      bad_option(name, ms.count(), "must be between 0 (none) and a year");
    }
  };
  check_ms("connection_timeouts.idle (ms)", o.connection_timeouts.idle);
  check_ms("connection_timeouts.read (ms)", o.connection_timeouts.read);
  check_ms("connection_timeouts.write (ms)", o.connection_timeouts.write);
  check_ms("drain_timeout (ms)", o.drain_timeout);
  check_ms("shutdown_timeout (ms)", o.shutdown_timeout);
  if (o.balancing != load_balancing::round_robin &&
      o.balancing != load_balancing::source_addr_hash &&
      o.balancing != load_balancing::least_connections) {
    bad_option("balancing", static_cast<int>(o.balancing),
               "must be round_robin, source_addr_hash or least_connections");
  }
  if (o.mailbox_budget == 0) {
    bad_option("mailbox_budget", o.mailbox_budget, "must be at least 1");
  }
  if (o.busy_poll.count() < 0 || o.busy_poll > std::chrono::seconds(1)) {
    bad_option("busy_poll (us)", o.busy_poll.count(), "must be between 0 (none) and a second");
  }
  if (o.mail_linger.count() < 0 || o.mail_linger > std::chrono::milliseconds(1)) {
    bad_option("mail_linger (us)", o.mail_linger.count(),
               "must be between 0 (none) and a millisecond");
  }
  if (o.stall_threshold.count() < 0 || o.stall_threshold > std::chrono::hours(1)) {
    bad_option("stall_threshold (ms)", o.stall_threshold.count(),
               "must be between 0 (no detection) and an hour");
  }
  if (o.idle_release.count() < 0) {
    bad_option("idle_release (ms)", o.idle_release.count(), "must not be negative (0: never)");
  }
  if (!o.cpu_affinity.empty()) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
      CPU_ZERO(&allowed);
    }
    for (const int cpu : o.cpu_affinity) {
      if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed)) {
        bad_option("cpu_affinity", cpu, "is not a CPU this process may run on");
      }
    }
  }
  if (o.socket.backlog < 0) {
    bad_option("socket.backlog", o.socket.backlog, "must not be negative");
  }
  if (!o.socket.bind_device.empty() && (o.socket.bind_device.size() >= IFNAMSIZ ||
                                        ::if_nametoindex(o.socket.bind_device.c_str()) == 0)) {
    bad_option("socket.bind_device", '"' + o.socket.bind_device + '"',
               "is no network interface here");
  }
  std::array<char, IFNAMSIZ> name{};
  if (o.socket.multicast_interface != 0 &&
      ::if_indextoname(o.socket.multicast_interface, name.data()) == nullptr) {
    bad_option("socket.multicast_interface", o.socket.multicast_interface,
               "is no network interface index here (see if_nametoindex)");
  }
  if (o.log_level && (*o.log_level < spdlog::level::trace || *o.log_level > spdlog::level::off)) {
    bad_option("log_level", static_cast<int>(*o.log_level), "must be one of spdlog's levels");
  }
  if (o.worker_queue_cap == 0) {
    bad_option("worker_queue_cap", o.worker_queue_cap, "must be at least 1");
  }
  if (o.workers > 1024) {
    bad_option("workers", o.workers, "must be at most 1024 (0: one per hardware thread)");
  }
  if (o.backend != io_backend::epoll && o.backend != io_backend::io_uring &&
      o.backend != io_backend::automatic) {
    bad_option("backend", static_cast<int>(o.backend), "must be epoll, io_uring or automatic");
  }
  if (!std::has_single_bit(o.uring_buffers) || o.uring_buffers > 32768) {
    bad_option("uring_buffers", o.uring_buffers, "must be a power of two up to 32768");
  }
  if (o.uring_buffer_size < 1024 || o.uring_buffer_size > (std::size_t{1} << 30)) {
    bad_option("uring_buffer_size", o.uring_buffer_size, "must be between 1 KiB and 1 GiB");
  }
  if (o.reuse_port) {
    o.socket.reuse_port = true;
  }
  return o;
}

std::string resolve_backend(engine_options& o) {
  // ACTNET_BACKEND overrides the option for every engine of the process (as libuv's
  // UV_USE_IO_URING does): to try a back end under a built program, and to run a test suite
  // on each.
  // (Read once, at the engine's construction, as ACTNET_LOG is.)
  if (const char* env = std::getenv("ACTNET_BACKEND");  // NOLINT(concurrency-mt-unsafe)
      env != nullptr && *env != '\0') {
    const std::string_view name = env;
    if (name == "epoll") {
      o.backend = io_backend::epoll;
    } else if (name == "io_uring") {
      o.backend = io_backend::io_uring;
    } else if (name == "automatic") {
      o.backend = io_backend::automatic;
    } else {
      throw std::invalid_argument("actnet: ACTNET_BACKEND = " + std::string(name) +
                                  ": must be epoll, io_uring or automatic");
    }
  }
  if (o.backend == io_backend::epoll) {
    return {};
  }
  std::string missing = uring_backend::probe();
  if (!missing.empty()) {
    if (o.backend == io_backend::io_uring) {
      throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                              "actnet: engine option backend = io_uring: this kernel or process "
                              "cannot run it; missing: " +
                                  missing);
    }
    o.backend = io_backend::epoll;
    return missing;
  }
  o.backend = io_backend::io_uring;
  o.edge_triggered = false;
  return {};
}

}  // namespace actnet::detail
