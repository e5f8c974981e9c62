// uring_backend: the completion back end. One io_uring per loop: streams receive through a
// multishot receive into the loop's provided-buffer ring (their bytes come with the completion,
// no read call), listeners accept through a multishot accept (each connection's fd comes with a
// completion), dials connect through the ring, datagram sockets receive through a multishot
// recvmsg into the same buffer ring (each datagram a completion, its sender beside it), and one
// io_uring_enter per iteration submits what the iteration queued and waits.
// liburing stays in uring_backend.cpp: this header needs only the kernel's completion layout.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "actnet/actors/detail/backend.hpp"
#include "actnet/actors/detail/io_key.hpp"
#include "actnet/buffers/block_pool.hpp"
#include "actnet/reactor/syscalls.hpp"
#include "actnet/reactor/unique_fd.hpp"
#include "actnet/result.hpp"

namespace actnet::detail {

/// What a completion back end's dispatch hands a stream besides io_handler's readiness calls:
/// its bytes, the end of its receiving (0: the peer's FIN; otherwise -errno), and the end of
/// its send (the bytes sent, or -errno).
template <class H>
concept completion_handler = io_handler<H> &&
    requires(H& h, io_key key, std::span<const std::byte> bytes, int res) {
  h.received(key, bytes);
  h.receive_ended(key, res);
  h.sent(key, res);
  h.accepted(key, res);
  h.connected(key, res);
  h.datagram(key, bytes, static_cast<const sockaddr*>(nullptr), socklen_t{0}, bool{});
  h.datagram_failed(key, res);
  h.datagram_send_failed(key, res);
};

/// io_uring's settings, from engine_options.
struct uring_settings {
  unsigned entries = 1024;          // submission queue; the completion queue is 8 times it
  std::size_t buffer_size = 65536;  // each provided buffer: the most one completion carries
  unsigned buffer_count = 64;       // buffers in the loop's ring (a power of two)
};

/// Loop-thread only, but wake(). Throws std::system_error naming what the kernel refused.
class uring_backend {
 public:
  explicit uring_backend(const uring_settings& settings);
  uring_backend(const uring_backend&) = delete;
  uring_backend& operator=(const uring_backend&) = delete;
  ~uring_backend();

  /// On the loop's thread, before its first wait: makes the ring (that thread's) and arms
  /// what was registered before. What the kernel refused, if it did.
  [[nodiscard]] std::error_code start() noexcept;
  /// On the loop's thread as it leaves: submits the last cancels (a closed socket stays open
  /// while an operation holds it) and tears the ring down. Registration is bookkeeping after.
  void finish() noexcept;

  /// Whether this kernel and process can run the back end: empty, or what is missing.
  [[nodiscard]] static std::string probe();

  [[nodiscard]] std::error_code watch_listener(int fd, io_key key) noexcept;
  [[nodiscard]] std::error_code watch_stream(int fd, io_key key, stream_interest want) noexcept;
  [[nodiscard]] std::error_code change_stream(int fd, io_key key, stream_interest want) noexcept;
  [[nodiscard]] std::error_code watch_connect(int fd, io_key key) noexcept;
  /// Connects the stream socket `fd` to `to` through the ring (no connect call, no poll) and
  /// watches it: handle.connected(key, 0 or -errno) reports the end. `to` must stay valid until
  /// then (or until unwatch, which cancels the connect).
  [[nodiscard]] std::error_code connect(int fd, io_key key, const sockaddr* to,
                                        socklen_t length) noexcept;
  [[nodiscard]] std::error_code watch_datagram(int fd, io_key key) noexcept;
  [[nodiscard]] std::error_code change_datagram(int fd, io_key key, bool receive) noexcept;
  [[nodiscard]] std::error_code unwatch(int fd) noexcept;

  /// Submits what was queued and waits up to `timeout_ms` (-1: no limit, 0: not at all) for a
  /// completion: one io_uring_enter. How many completions are ready.
  [[nodiscard]] result<std::size_t> wait(int timeout_ms);

  /// Hands each completion of the last wait on: a stream's bytes to handle.received, the end
  /// of its receiving to handle.receive_ended, a listener's new connection to
  /// handle.accepted(key, fd) (which owns the fd), an accept that failed (EMFILE...) and
  /// readiness (a datagram, a connect done, "may send") to handle(key, flags). Buffers go back to
  /// the ring as soon as their handler returns; ended multishots are re-armed while still wanted.
  template <completion_handler Handler>
  void dispatch(Handler&& handle);

  void wake() noexcept;  // thread-safe
  /// The loop has no connections: the pages of the fd table past its last source, the spare
  /// send buffers and the provided buffers' pages go back to the system (the kernel fills a
  /// buffer anew on demand).
  void shrink() noexcept;
  [[nodiscard]] static bool edge_triggered() noexcept { return false; }

  /// A stream's send through the ring: `parts` copied into the stream's send buffer (a block
  /// pool block, given back at the end, so an idle connection holds none) and sent, a short
  /// send continued, until all went or the send failed. handle.sent(key, n) reports each short
  /// send's progress and the end (all the bytes, or -errno). One send at a time per stream, so
  /// bytes keep their order: in_flight(fd) until then.
  [[nodiscard]] std::error_code send(int fd, std::span<const iovec> parts) noexcept;
  /// What stage() did with a write.
  enum class staged : std::uint8_t {
    refused,   // buffer it elsewhere, behind what the ring holds
    appended,  // behind bytes staged before
    first,     // the stream's first staged bytes: they go with the next wait's enter
  };
  /// Appends `bytes` to the stream's send buffer while none of it is in flight and the buffer
  /// stays within `limit`: the per-message path (a write copied once; every stream's staged
  /// bytes leave as one send each, submitted by wait() with its enter, however many writes
  /// came).
  [[nodiscard, gnu::always_inline]] staged stage(int fd, std::span<const std::byte> bytes,
                                                 std::size_t limit) noexcept {
    source* s = static_cast<std::size_t>(fd) < sources_.size() ? &sources_[fd] : nullptr;
    if (s == nullptr || s->send_submitted ||
        (s->send_len == 0 && staged_.size() == staged_.capacity())) [[unlikely]] {
      return stage_slow(fd, bytes, limit);
    }
    if (s->send_block.empty() && !spare_.empty()) [[likely]] {
      s->send_block = spare_.back();
      spare_.pop_back();
    }
    if (s->send_len + bytes.size() > s->send_block.size() || s->send_len + bytes.size() > limit)
        [[unlikely]] {
      return stage_slow(fd, bytes, limit);
    }
    const bool first = s->send_len == 0;
    if (first) {
      staged_.push_back(static_cast<std::uint32_t>(fd));  // (within its capacity: no allocation)
    }
    std::memcpy(s->send_block.data() + s->send_len, bytes.data(), bytes.size());
    s->send_len += static_cast<std::uint32_t>(bytes.size());
    return first ? staged::first : staged::appended;
  }
  /// Sends what stage() gathered now rather than at the wait (nothing when a send is in
  /// flight or nothing is staged).
  void submit(int fd) noexcept;
  /// Shuts the stream's sending (a FIN) through the ring, submitted with the next wait or
  /// unwatch, after the send in flight (none may be). A failure ends the stream as its
  /// receive's would: handle.receive_ended(key, -errno).
  [[nodiscard]] std::error_code shutdown_write(int fd) noexcept;
  /// Output of the stream the ring holds: staged or in flight.
  [[nodiscard]] bool sending(int fd) const noexcept {
    return static_cast<std::size_t>(fd) < sources_.size() && sources_[fd].send_len != 0;
  }
  /// A send of the stream is in flight (the kernel may be reading its buffer).
  [[nodiscard]] bool in_flight(int fd) const noexcept {
    return static_cast<std::size_t>(fd) < sources_.size() && sources_[fd].send_submitted;
  }

  /// A datagram out through the ring: `parts` and the address `to` copied into a buffer of the
  /// loop's, sent with the next enter, the buffer freed at the completion. A send that fails
  /// then is handed on as handle.datagram_send_failed(key, -errno). false: not taken
  /// (dgram_flight_cap bytes already in flight, a datagram longer than IPv4's most, no
  /// memory): send it by a call.
  [[nodiscard]] bool send_datagram(int fd, std::span<const iovec> parts, const sockaddr* to,
                                   socklen_t length) noexcept;

  /// Counted for the perf harness and tests: receives re-armed after the ring ran dry.
  [[nodiscard]] std::uint64_t buffer_shortages() const noexcept { return shortages_; }

 private:
  // user_data: the op in the top byte, then the source's sequence number (24 bits), then its
  // fd. A completion whose sequence is not its fd's current one is stale (the source was
  // unwatched, maybe its fd reused) and is dropped.
  enum op : std::uint8_t {
    none = 0,
    poll_in = 1,   // a listener's connection, a datagram (multishot)
    poll_out = 2,  // a stream may send, a connect ended (one-shot)
    recv = 3,      // a stream's bytes (multishot, into the buffer ring)
    wake_read = 4,
    cancel = 5,
    poll_hup = 6,      // a stream whose receiving is paused failed or hung up both ways (one-shot)
    send_op = 7,       // a stream's bytes out, from its send buffer
    accept_op = 8,     // a listener's connections (multishot): each completion's res is an fd
    connect_op = 9,    // a dial's connect: res 0 or -errno
    shutdown_op = 10,  // a stream's FIN: res 0 or -errno
    recvmsg_op = 11,   // a datagram socket's datagrams (multishot, into the buffer ring)
    sendmsg_op = 12    // a datagram out; user_data's low bits: its slot in dgram_slots_
  };
  enum class source_kind : std::uint8_t { none, listener, stream, connect, datagram };
  struct source {
    io_key key;
    std::uint32_t seq = 0;
    source_kind kind = source_kind::none;
    bool want_in = false;   // receive (stream), accept (listener) or poll (datagram)
    bool want_out = false;  // "may send" (stream) or the connect's end
    bool in_armed = false;
    bool out_armed = false;
    bool hup_armed = false;  // a paused stream's hang-up watch
    // A listener whose accept failed (out of fds): watched by a poll until a connection waits,
    // since an accept armed again would fail at once (the kernel takes an fd first), and spin.
    bool accept_by_poll = false;
    bool send_submitted = false;  // [send_off, send_len) is the kernel's now
    // The send: [send_off, send_len) of send_block still to go; send_len 0: none. The block is
    // the block pool's (its thread cache reuses it for the next send).
    std::span<std::byte> send_block;
    std::uint32_t send_len = 0;
    std::uint32_t send_off = 0;
  };
  // An entry per fd in use: its bytes are part of an idle connection's cost.
  static_assert(sizeof(source) == 48);
  // A send buffer whose stream was unwatched while the send was in flight: the kernel may still
  // read it, so it is freed at that send's (stale) completion or at finish().
  struct orphan {
    std::uint64_t user_data;
    std::span<std::byte> block;
  };
  // A datagram in flight: at the head of its buffer, then its bytes.
  struct datagram_out {
    msghdr msg;
    iovec iov;
    sockaddr_storage to;
    std::span<std::byte> block;
    std::uint64_t source;  // data_of(recvmsg_op, seq, fd): whose it is
  };
  struct completion {
    std::uint64_t user_data;
    std::int32_t res;
    std::uint32_t flags;
  };
  // The kernel's struct io_uring_buf (checked against it in the .cpp): the ring's tail is the
  // first entry's last field.
  struct ring_buf {
    std::uint64_t addr;
    std::uint32_t len;
    std::uint16_t bid;
    std::uint16_t tail;
  };
  // The kernel's struct io_uring_recvmsg_out, at the head of a datagram's buffer; then the
  // sender's address (recv_msg_.msg_namelen bytes of room), then the payload.
  struct recvmsg_out {
    std::uint32_t namelen;
    std::uint32_t controllen;
    std::uint32_t payloadlen;
    std::uint32_t flags;
  };
  static constexpr std::uint32_t cqe_more = 1U << 1;    // IORING_CQE_F_MORE
  static constexpr std::uint32_t cqe_buffer = 1U << 0;  // IORING_CQE_F_BUFFER
  static constexpr unsigned buffer_shift = 16;          // IORING_CQE_BUFFER_SHIFT

  static std::uint64_t data_of(op o, std::uint32_t seq, int fd) noexcept {
    return (std::uint64_t{o} << 56) | (std::uint64_t{seq & 0xffffffU} << 32) |
           static_cast<std::uint32_t>(fd);
  }
  static std::string probe_here();  // probe(), on the calling thread
  void unmap() noexcept;
  source* entry(int fd);           // grows the table (null: out of memory)
  source* find(int fd) noexcept {  // fd's entry, or null past the table
    return fd >= 0 && static_cast<std::size_t>(fd) < sources_.size() ? &sources_[fd] : nullptr;
  }
  // The sources by fd: mapped memory that costs only the pages of the fds in use (an entry
  // never written reads as the kernel's zero page). Grown by a new mapping that takes the
  // entries written so far: mremap would be cheaper, but ThreadSanitizer does not see it and
  // takes a later mapping at the freed address, another loop's, for the same memory. A source
  // is all zero bits when unused.
  class fd_table {
   public:
    fd_table() = default;
    fd_table(const fd_table&) = delete;
    fd_table& operator=(const fd_table&) = delete;
    ~fd_table();
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    source& operator[](std::size_t i) noexcept { return at_[i]; }
    const source& operator[](std::size_t i) const noexcept { return at_[i]; }
    source* begin() noexcept { return at_; }
    source* end() noexcept { return at_ + size_; }
    bool grow(std::size_t at_least) noexcept;       // false: out of address space
    void release_after(std::size_t used) noexcept;  // pages of entries [used, size) zeroed
    void written(std::size_t i) noexcept { used_ = std::max(used_, i + 1); }

   private:
    source* at_ = nullptr;
    std::size_t size_ = 0;  // entries mapped
    std::size_t used_ = 0;  // entries that may have been written: [0, used_)
  };
  [[gnu::always_inline]] source* current(std::uint64_t user_data) noexcept {
    const auto fd = static_cast<std::uint32_t>(user_data);
    if (fd >= sources_.size()) {
      return nullptr;
    }
    source& s = sources_[fd];
    const auto seq = static_cast<std::uint32_t>(user_data >> 32) & 0xffffffU;
    return s.kind != source_kind::none && (s.seq & 0xffffffU) == seq ? &s : nullptr;
  }
  std::error_code watch(int fd, io_key key, source_kind kind, bool in, bool out) noexcept;
  void arm(int fd, source& s) noexcept;  // what s wants and has not armed
  void arm_in(int fd, source& s) noexcept;
  void arm_out(int fd, source& s) noexcept;
  void arm_hup(int fd, source& s) noexcept;
  void submit_send(int fd, source& s) noexcept;
  inline void start_send(int fd, source& s) noexcept;  // (in line, in the .cpp: its only user)
  template <class Handler>
  void accepted(Handler& handle, const completion& c);
  template <class Handler>
  void datagram(Handler& handle, const completion& c);
  template <class Handler>
  void datagram_sent(Handler& handle, const completion& c);
  void free_datagram(std::uint32_t slot) noexcept;
  void settle() noexcept;
  staged stage_slow(int fd, std::span<const std::byte> bytes, std::size_t limit) noexcept;
  void submit_staged() noexcept;  // every stream's staged bytes that have not gone yet
  bool grow(source& s, std::size_t need) noexcept;  // the send buffer, keeping its bytes
  void drop_orphan(std::uint64_t user_data) noexcept;
  // A send buffer no stream needs any more: kept for the next send if it is of the common size
  // and the spares are few, else the block pool's.
  void release_send_block(source& s) noexcept {
    if (!s.send_block.empty()) {
      release_block(s.send_block);
      s.send_block = {};
    }
  }
  void release_block(std::span<std::byte> block) noexcept {
    if (block.size() == spare_block && spare_.size() < spare_.capacity()) [[likely]] {
      spare_.push_back(block);
    } else {
      block_pool::deallocate(block);
    }
  }
  void cancel_op(int fd, const source& s, op o) noexcept;
  void arm_wake() noexcept;
  void give_back(std::uint32_t bid) noexcept {
    ring_buf& b = buf_ring_[(buf_tail_ + returned_) & buf_mask_];
    b.addr = reinterpret_cast<std::uintptr_t>(buffers_ + std::size_t{bid} * buffer_size_);
    b.len = static_cast<std::uint32_t>(buffer_size_);
    b.bid = static_cast<std::uint16_t>(bid);
    ++returned_;
  }
  void publish_buffers() noexcept {
    if (returned_ != 0) {
      buf_tail_ = static_cast<std::uint16_t>(buf_tail_ + returned_);
      returned_ = 0;
      std::atomic_ref<std::uint16_t>(buf_ring_[0].tail).store(buf_tail_, std::memory_order_release);
    }
  }

  struct ring;  // liburing's struct io_uring, in the .cpp
  std::unique_ptr<ring> ring_;
  fd_table sources_;
  std::uint32_t next_seq_ = 0;  // each watch's sequence number (wraps at 24 bits)
  std::vector<orphan> orphans_;
  // Send buffers between sends. A stream holds one only while it has output staged or in
  // flight (an idle connection holds none); these spare the block pool's allocate and free
  // per message (some 60 instructions, callgrind). Bounded: spares_kept of spare_block bytes.
  static constexpr std::size_t spare_block = block_pool::block_size(4096);
  static constexpr std::size_t spares_kept = 64;
  std::vector<std::span<std::byte>> spare_;
  // Streams whose first bytes were staged since the last wait (an fd may be listed twice, once
  // for a source unwatched since): wait() submits their sends. Grown off the per-message path.
  std::vector<std::uint32_t> staged_;
  static constexpr std::size_t staged_kept = 1024;
  // The completion queue, read in place (the kernel's io_uring_cqe is `completion`): dispatch
  // hands on [*cq_head_, *cq_tail_) and moves the head past them.
  const completion* cqes_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  ring_buf* buf_ring_ = nullptr;  // shared with the kernel (mmap)
  std::size_t buf_ring_bytes_ = 0;
  std::byte* buffers_ = nullptr;  // buffer_count buffers of buffer_size (mmap: touched as used)
  std::size_t buffers_bytes_ = 0;
  std::size_t buffer_size_;
  std::uint32_t buf_mask_;
  std::uint16_t buf_tail_ = 0;
  std::uint32_t returned_ = 0;
  unique_fd wake_fd_;
  std::uint64_t wake_value_ = 0;  // the wake-up's read lands here
  msghdr recv_msg_{};             // the datagram receives' layout: room for any sender's address
  // Datagrams in flight by slot (null: free), the free slots, and their bytes, bounded.
  std::vector<datagram_out*> dgram_slots_;
  std::vector<std::uint32_t> dgram_free_;
  std::size_t dgram_bytes_ = 0;
  static constexpr std::size_t dgram_flight_cap = std::size_t{4} << 20;
  std::uint64_t shortages_ = 0;
  unsigned entries_;
  bool live_ = false;  // the ring exists: between start() and finish()
};

template <class Handler>
void uring_backend::accepted(Handler& handle, const completion& c) {
  source* s = current(c.user_data);
  const bool more = (c.flags & cqe_more) != 0;
  if (s == nullptr) {
    if (c.res >= 0) {
      sys_close(c.res);  // the listener was unwatched: as on epoll, the connection ends
    }
    return;
  }
  s->in_armed = more && s->in_armed;
  const io_key key = s->key;
  if (c.res >= 0) {
    handle.accepted(key, c.res);
  } else if (c.res != -ECANCELED) {
    // Out of fds or another failure, which ends the multishot: the accept loop of the epoll
    // path takes over (its spare fd drops a connection on EMFILE; a listener that keeps
    // failing is paused), then a poll waits for the next connection.
    s->accept_by_poll = true;
    handle(key, io_event::readable);
  }
  const auto fd = static_cast<int>(static_cast<std::uint32_t>(c.user_data));
  if (source* again = current(c.user_data);
      again != nullptr && again->want_in && !again->in_armed && c.res != -ECANCELED) {
    arm_in(fd, *again);
  }
}

template <class Handler>
void uring_backend::datagram(Handler& handle, const completion& c) {
  source* s = current(c.user_data);
  const bool more = (c.flags & cqe_more) != 0;
  if (c.res > 0 && (c.flags & cqe_buffer) != 0) {
    const std::uint32_t bid = c.flags >> buffer_shift;
    const std::size_t head = sizeof(recvmsg_out) + recv_msg_.msg_namelen;
    if (s != nullptr && static_cast<std::size_t>(c.res) >= head) {
      s->in_armed = more && s->in_armed;
      std::byte* at = buffers_ + std::size_t{bid} * buffer_size_;
      recvmsg_out out{};
      std::memcpy(&out, at, sizeof out);
      const std::size_t got = static_cast<std::size_t>(c.res) - head;
      // MSG_TRUNC: longer than the buffer; handed on as such (dropped and counted), never cut.
      const bool truncated = (out.flags & MSG_TRUNC) != 0 || out.payloadlen > got;
      const io_key key = s->key;
      handle.datagram(
          key, std::span<const std::byte>(at + head, truncated ? 0 : out.payloadlen),
          reinterpret_cast<const sockaddr*>(at + sizeof out),  // NOLINT: the kernel's layout
          static_cast<socklen_t>(std::min<std::uint32_t>(out.namelen, recv_msg_.msg_namelen)),
          truncated);
    }
    give_back(bid);
  } else if (c.res == -ECANCELED) {
    return;  // cancelled here (change_datagram, unwatch), which disarmed it then
  } else if (s != nullptr) {
    s->in_armed = more && s->in_armed;
    if (c.res == -ENOBUFS) {
      ++shortages_;  // the datagrams wait in the socket: re-armed below
    } else if (c.res < 0) {
      const io_key key = s->key;
      handle.datagram_failed(key, c.res);  // ECONNREFUSED on a dialed socket, say
    }
  }
  if (!more) {
    if (source* again = current(c.user_data);
        again != nullptr && again->want_in && !again->in_armed) {
      arm_in(static_cast<int>(static_cast<std::uint32_t>(c.user_data)), *again);
    }
  }
}

template <class Handler>
void uring_backend::datagram_sent(Handler& handle, const completion& c) {
  const auto slot = static_cast<std::uint32_t>(c.user_data);
  if (slot >= dgram_slots_.size() || dgram_slots_[slot] == nullptr) {
    return;
  }
  const std::uint64_t whose = dgram_slots_[slot]->source;
  free_datagram(slot);
  if (source* s = current(whose); s != nullptr && c.res < 0) {
    const io_key key = s->key;
    handle.datagram_send_failed(key, c.res);  // (epoll's sendmsg returns it to write())
  }
}

template <completion_handler Handler>
void uring_backend::dispatch(Handler&& handle) {
  if (!live_) {
    return;
  }
  // The kernel adds completions at the tail and never writes past the head, which moves only
  // at the end: a handler that submits (unwatch does) may bring more, handled next time.
  const unsigned head = *cq_head_;
  const unsigned tail = std::atomic_ref<unsigned>(*cq_tail_).load(std::memory_order_acquire);
  struct advance {
    unsigned* head;
    unsigned to;
    ~advance() { std::atomic_ref<unsigned>(*head).store(to, std::memory_order_release); }
  } const done{cq_head_, tail};
  const completion* const cqes = cqes_;
  const unsigned mask = cq_mask_;
  for (unsigned i = head; i != tail; ++i) {
    const completion c = cqes[i & mask];  // (a copy: its fields stay in registers over calls)
    const auto o = static_cast<op>(c.user_data >> 56);
    if (o == recv) [[likely]] {
      source* s = current(c.user_data);
      const bool more = (c.flags & cqe_more) != 0;
      if (c.res > 0 && (c.flags & cqe_buffer) != 0) [[likely]] {
        const std::uint32_t bid = c.flags >> buffer_shift;
        if (s != nullptr) {
          if (!more) {
            s->in_armed = false;
          }
          const io_key key = s->key;
          handle.received(key,
                          std::span<const std::byte>(buffers_ + std::size_t{bid} * buffer_size_,
                                                     static_cast<std::size_t>(c.res)));
        }
        give_back(bid);
      } else if (c.res == -ECANCELED) {
        continue;  // cancelled here (change_stream, unwatch), which disarmed it then
      } else if (s != nullptr) {
        s->in_armed = more && s->in_armed;
        if (c.res == -ENOBUFS) {
          ++shortages_;  // the bytes wait in the socket: re-armed below, nothing lost
        } else {
          const io_key key = s->key;
          handle.receive_ended(key, c.res);
        }
      }
      if (!more) {
        // The handler may have unwatched the fd (and another source may have it now).
        if (source* again = current(c.user_data);
            again != nullptr && again->want_in && !again->in_armed && c.res != 0) {
          arm_in(static_cast<int>(static_cast<std::uint32_t>(c.user_data)), *again);
        }
      }
      continue;
    }
    if (o == send_op) {
      source* s = current(c.user_data);
      if (s == nullptr) {
        drop_orphan(c.user_data);
        continue;
      }
      const int fd = static_cast<int>(static_cast<std::uint32_t>(c.user_data));
      if (c.res > 0 && s->send_off + static_cast<std::uint32_t>(c.res) < s->send_len) {
        s->send_off += static_cast<std::uint32_t>(c.res);  // a short send: the rest, in order
        submit_send(fd, *s);
        const io_key key = s->key;
        handle.sent(key, c.res);  // progress (a slow reader is not a stalled one); still in flight
        continue;
      }
      const int res = c.res < 0 ? c.res : static_cast<int>(s->send_len);
      s->send_len = s->send_off = 0;
      s->send_submitted = false;
      release_send_block(*s);  // an idle connection holds no send buffer
      const io_key key = s->key;
      handle.sent(key, res);
      continue;
    }
    if (o == accept_op) {
      accepted(handle, c);
      continue;
    }
    if (o == recvmsg_op) {
      datagram(handle, c);
      continue;
    }
    if (o == sendmsg_op) {
      datagram_sent(handle, c);
      continue;
    }
    if (o == connect_op) {
      if (source* s = current(c.user_data); s != nullptr) {
        s->out_armed = false;
        const io_key key = s->key;
        handle.connected(key, c.res);
      }
      continue;  // (stale: the dial ended first, by its timeout or the stop)
    }
    if (o == wake_read) {
      arm_wake();
      continue;
    }
    if (o == shutdown_op) {
      if (source* s = current(c.user_data); s != nullptr && c.res < 0 && c.res != -ECANCELED) {
        const io_key key = s->key;
        handle.receive_ended(key, c.res);  // (after a reset: not connected; the reset is the news)
      }
      continue;
    }
    if (o != poll_in && o != poll_out && o != poll_hup) {
      continue;  // a cancel's own completion
    }
    source* s = current(c.user_data);
    if (s == nullptr || c.res == -ECANCELED) {
      continue;
    }
    const bool more = (c.flags & cqe_more) != 0;
    auto events = static_cast<std::uint32_t>(c.res < 0 ? io_event::error : c.res);
    if (o == poll_in) {
      s->in_armed = more && s->in_armed;
      s->accept_by_poll = false;  // a listener: a connection waits, the accept is armed again
    } else if (o == poll_out) {
      s->out_armed = false;  // one-shot
      if (s->kind == source_kind::stream) {
        // Its errors and FIN come with its receive; a failed socket's send finds out why.
        events = io_event::writable;
      }
    } else {
      s->hup_armed = false;
      events &= io_event::error | io_event::hangup_both;
      if (s->want_in) {
        events = 0;  // (the receive is back: it reports what happened)
      } else if (events == 0) {
        // The peer's FIN alone (the ring's poll reports it whatever the mask): it waits to be
        // read at the resume, and the watch stays off (as if armed) until the interest changes.
        s->hup_armed = true;
        continue;
      }
    }
    if (events == 0) {
      if (source* again = current(c.user_data); again != nullptr) {
        arm(static_cast<int>(static_cast<std::uint32_t>(c.user_data)), *again);
      }
      continue;
    }
    const io_key key = s->key;
    handle(key, events);
    if (source* again = current(c.user_data); again != nullptr) {
      arm(static_cast<int>(static_cast<std::uint32_t>(c.user_data)), *again);
    }
  }
  publish_buffers();
}

}  // namespace actnet::detail
