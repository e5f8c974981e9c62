// Every tunable in actnet, in one place. Engine options override them per instance.
#pragma once

#include <cstddef>

namespace actnet::defaults {

// -- block pool --
/// Smallest block the pool hands out; smaller requests round up to it.
inline constexpr std::size_t pool_min_block = 64;
/// Largest block a thread cache keeps; larger blocks go straight back to mimalloc.
inline constexpr std::size_t pool_max_cached_block = std::size_t{1} << 20;
/// How many bytes of one size class a thread cache may keep idle.
inline constexpr std::size_t pool_cache_bytes_per_class = std::size_t{1} << 20;
/// How many bytes a thread cache may keep idle over all classes.
inline constexpr std::size_t pool_cache_bytes_per_thread = std::size_t{4} << 20;

// -- ring buffer (inbound) --
/// The first allocation of a ring buffer, unless the first write needs more.
inline constexpr std::size_t ring_initial_capacity = 1024;
/// The largest a ring buffer grows to unless told otherwise.
inline constexpr std::size_t ring_max_capacity = std::size_t{64} << 20;

// -- linked-list buffer --
/// Block sizes (payload header included) that push() allocates: it starts small and uses
/// big blocks for big writes, so a long backlog costs few iovecs.
inline constexpr std::size_t list_min_block = 4096;
inline constexpr std::size_t list_max_block = std::size_t{64} << 10;
/// The most a linked-list buffer holds unless told otherwise.
inline constexpr std::size_t list_max_size = std::size_t{64} << 20;

// -- elastic buffer (outbound) --
/// Bytes kept in the ring part before writes spill into the linked list (gnet's WriteBufferCap).
inline constexpr std::size_t elastic_ring_threshold = std::size_t{64} << 10;
/// The most an elastic buffer holds, ring and list together, unless told otherwise.
inline constexpr std::size_t elastic_max_size = std::size_t{64} << 20;

// -- fd I/O --
/// Size of the spill area that fills a buffer from an fd in one readv (muduo's extrabuf).
inline constexpr std::size_t read_spill_size = std::size_t{64} << 10;

// -- loops and connections --
/// Mailbox messages a loop handles per iteration before it polls I/O again (gnet: 256).
inline constexpr std::size_t mailbox_budget = 256;
/// Messages a loop's mailbox may hold before users' sends get queue_full.
inline constexpr std::size_t mailbox_cap = std::size_t{256} << 10;
/// How long a loop that just took mail from other threads watches its mailbox before it sleeps
/// (µs; 0: not at all): long enough for the next message of a burst, or an answer from a loop
/// that is awake, to come first.
inline constexpr int mail_linger_us = 20;
/// Each loop's read buffer: the most one read() takes, and so the most one on_data() sees
/// fresh (gnet's ReadBufferCap).
inline constexpr std::size_t read_buffer_size = std::size_t{64} << 10;
// io_uring: a loop's provided-buffer ring (64 x 64 KiB: 4 MiB mapped, touched as used). A
// buffer as large as read_buffer_size lets one completion carry what one read takes on epoll:
// 16 KiB buffers cut a 64 KiB message into four completions and four sends (0.76x raw epoll's
// throughput); 64 buffers were as fast as 256 at 1,000 connections (perf/README.md).
inline constexpr std::size_t uring_buffer_size = std::size_t{64} << 10;
inline constexpr unsigned uring_buffers = 64;
// io_uring: the most one send through the ring takes from a connection's outbound buffer.
inline constexpr std::size_t ring_send_chunk = std::size_t{64} << 10;
// io_uring: a write at least this large, with nothing ahead of it, goes out at once by a send
// call from the caller's bytes, as on epoll: copying it into the ring's send buffer costs more
// than the system call it saves (a 64 KiB echo spent a fifth of its CPU in that copy).
inline constexpr std::size_t ring_direct_send = std::size_t{8} << 10;
/// Edge-triggered mode: the most a connection reads per wake-up before other connections get
/// their turn (gnet's EdgeTriggeredIOChunk).
inline constexpr std::size_t edge_triggered_chunk = std::size_t{1} << 20;
/// What a connection may hold unconsumed inbound before it is closed with capacity_exceeded.
inline constexpr std::size_t inbound_cap = ring_max_capacity;
/// How long a loop waits, once its last connection has closed, before it gives its memory
/// back (slot table, event array, its thread's block cache, free heap pages), in ms.
inline constexpr std::size_t idle_release_ms = 1000;

/// Outbound watermarks: on_writable_changed(false) at the high one, (true) back at the low one.
inline constexpr std::size_t outbound_high_watermark = std::size_t{1} << 20;
inline constexpr std::size_t outbound_low_watermark = std::size_t{256} << 10;
/// close(): how long buffered output may take to go out before the connection is cut off, in ms.
inline constexpr std::size_t drain_timeout_ms = 30000;
/// stop(): how long loops keep delivering queued and buffered output, in ms.
inline constexpr std::size_t shutdown_timeout_ms = 5000;
/// A handler that holds its loop longer than this is a stall (engine_options::stall_threshold).
inline constexpr std::size_t stall_threshold_ms = 25;

/// The worker pool: jobs waiting to run before submit() reports queue_full.
inline constexpr std::size_t worker_queue_cap = std::size_t{64} << 10;
/// engine::dial: a connect not completed by then fails with timed_out, in ms.
inline constexpr std::size_t dial_timeout_ms = 10000;
/// A TLS handshake not done by then closes its connection (tls_options::handshake_timeout).
inline constexpr std::size_t tls_handshake_timeout_ms = 10000;
/// reconnect_policy: the first delay before dialing again, and the longest, in ms.
inline constexpr std::size_t reconnect_initial_ms = 100;
inline constexpr std::size_t reconnect_max_ms = 30000;
/// UDP: datagrams read per readable event before the loop serves the others.
inline constexpr std::size_t datagram_batch = 32;
/// UDP sessions: closed after this long without a datagram from their peer.
inline constexpr std::size_t udp_session_idle_ms = 30000;
/// UDP sessions per socket (per loop); further new peers' datagrams are dropped.
inline constexpr std::size_t udp_max_sessions = 65536;

}  // namespace actnet::defaults
