// uring_backend: the ring's set-up (and what a kernel that cannot run it lacks), the provided-
// buffer ring, the operations each kind of source arms, and the one io_uring_enter a wait is.
#include "actnet/actors/detail/uring_backend.hpp"

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTNET_URING_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define ACTNET_URING_TSAN 1
#endif
#ifdef ACTNET_URING_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace actnet::detail {

static_assert(sizeof(io_uring_buf) == 16 && offsetof(io_uring_buf, addr) == 0 &&
                  offsetof(io_uring_buf, len) == 8 && offsetof(io_uring_buf, bid) == 12 &&
                  offsetof(io_uring_buf, resv) == 14 && offsetof(io_uring_buf_ring, tail) == 14,
              "ring_buf mirrors the kernel's io_uring_buf");
// The completion flags uring_backend.hpp spells out, as the kernel defines them.
static_assert(IORING_CQE_F_MORE == 2U && IORING_CQE_BUFFER_SHIFT == 16);
static_assert(IORING_CQE_F_BUFFER == 1U);  // NOLINT(misc-redundant-expression): (1U << 0)
static_assert(sizeof(io_uring_cqe) == 16 && offsetof(io_uring_cqe, user_data) == 0 &&
              offsetof(io_uring_cqe, res) == 8 && offsetof(io_uring_cqe, flags) == 12);
static_assert(sizeof(io_uring_recvmsg_out) == 16 &&
                  offsetof(io_uring_recvmsg_out, payloadlen) == 8 &&
                  offsetof(io_uring_recvmsg_out, flags) == 12,
              "recvmsg_out mirrors the kernel's io_uring_recvmsg_out");
static_assert(POLLIN == io_event::readable && POLLOUT == io_event::writable &&
                  POLLERR == io_event::error && POLLHUP == io_event::hangup_both &&
                  (POLLHUP | POLLRDHUP) == io_event::hangup,
              "poll's bits are epoll's: completions report them as they are");

struct uring_backend::ring {
  io_uring r{};
};

namespace {

constexpr std::uint16_t buffer_group = 0;

// liburing maps a ring's queues with its own system calls, which ThreadSanitizer does not see: a
// ring torn down on one loop's thread and a new one mapped at the same address on another look
// like one memory written by both. The unmap happens before the new map; these say so.
void ring_unmapping([[maybe_unused]] io_uring& r) noexcept {
#ifdef ACTNET_URING_TSAN
  __tsan_release(r.sq.ring_ptr);
  __tsan_release(r.cq.ring_ptr);
  __tsan_release(r.sq.sqes);
#endif
}

void ring_mapped([[maybe_unused]] io_uring& r) noexcept {
#ifdef ACTNET_URING_TSAN
  __tsan_acquire(r.sq.ring_ptr);
  __tsan_acquire(r.cq.ring_ptr);
  __tsan_acquire(r.sq.sqes);
#endif
}

// A free submission entry: when the queue is full, what it holds is submitted first.
[[gnu::always_inline]] inline io_uring_sqe* next_sqe(io_uring& r) noexcept {
  io_uring_sqe* sqe = io_uring_get_sqe(&r);
  if (sqe == nullptr) [[unlikely]] {
    (void)io_uring_submit(&r);
    sqe = io_uring_get_sqe(&r);
  }
  return sqe;
}

// A send of `length` bytes at `at`, its completion tagged `user_data`. (In line: the per-message
// path submits one for every stream that wrote.)
[[gnu::always_inline]] inline void prep_send(io_uring& r, int fd, const std::byte* at,
                                             std::uint32_t length,
                                             std::uint64_t user_data) noexcept {
  io_uring_sqe* sqe = next_sqe(r);
  if (sqe == nullptr) [[unlikely]] {
    return;
  }
  io_uring_prep_send(sqe, fd, at, length, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, user_data);
}

[[noreturn]] void refuse(int err, const std::string& what) {
  throw std::system_error(err, std::system_category(), "io_uring: " + what);
}

// The features the back end uses, each with the kernel release that brought it.
std::string missing_ops(io_uring& r) {
  io_uring_probe* p = io_uring_get_probe_ring(&r);
  if (p == nullptr) {
    return "the opcode probe (Linux 5.6)";
  }
  std::string missing;
  for (const auto& [opcode, name] :
       {std::pair{IORING_OP_RECV, "IORING_OP_RECV"}, std::pair{IORING_OP_POLL_ADD, "POLL_ADD"},
        std::pair{IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}, std::pair{IORING_OP_READ, "READ"},
        std::pair{IORING_OP_SEND, "SEND"}, std::pair{IORING_OP_ACCEPT, "ACCEPT"},
        std::pair{IORING_OP_CONNECT, "CONNECT"}, std::pair{IORING_OP_SHUTDOWN, "SHUTDOWN"},
        std::pair{IORING_OP_RECVMSG, "RECVMSG"}, std::pair{IORING_OP_SENDMSG, "SENDMSG"}}) {
    if (io_uring_opcode_supported(p, opcode) == 0) {
      missing += std::string(missing.empty() ? "" : ", ") + name;
    }
  }
  io_uring_free_probe(p);
  return missing;
}

}  // namespace

std::string uring_backend::probe() {
  // On a thread of its own: tearing a ring down leaves work for the thread that made it, which
  // interrupts that thread's next blocking call with EINTR (seen here), and the caller's
  // thread is the user's.
  std::string missing;
  std::thread([&missing] { missing = probe_here(); }).join();
  return missing;
}

std::string uring_backend::probe_here() {
  io_uring r{};
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(8, &r, &params);
  if (rc == -EINVAL) {
    params = {};
    params.flags = IORING_SETUP_COOP_TASKRUN;
    rc = io_uring_queue_init_params(8, &r, &params);
  }
  if (rc < 0) {
    if (rc == -EPERM) {
      return "permission to make a ring (sysctl kernel.io_uring_disabled, or a seccomp filter)";
    }
    if (rc == -ENOSYS) {
      return "io_uring in this kernel (io_uring_setup: ENOSYS)";
    }
    return std::string("a ring: io_uring_setup failed: ") + std::system_category().message(-rc);
  }
  ring_mapped(r);
  std::string missing;
  if ((params.features & IORING_FEAT_EXT_ARG) == 0) {
    missing = "IORING_FEAT_EXT_ARG (Linux 5.11)";
  } else if (std::string ops = missing_ops(r); !ops.empty()) {
    missing = "opcodes " + ops;
  } else {
    io_uring_buf_reg reg{};
    void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
    reg.ring_entries = 1;
    reg.bgid = 0;
    if (mem == MAP_FAILED || io_uring_register_buf_ring(&r, &reg, 0) < 0) {
      missing = "provided-buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19)";
    }
    if (mem != MAP_FAILED) {
      munmap(mem, 4096);
    }
  }
  ring_unmapping(r);
  io_uring_queue_exit(&r);
  return missing;
}

uring_backend::uring_backend(const uring_settings& settings)
    : ring_(std::make_unique<ring>()),
      buffer_size_(settings.buffer_size),
      buf_mask_(settings.buffer_count - 1),
      entries_(settings.entries) {
  if (!std::has_single_bit(settings.buffer_count) || settings.buffer_count > 32768 ||
      settings.buffer_size == 0 || settings.buffer_size > (std::size_t{1} << 31)) {
    throw std::invalid_argument(
        "io_uring: buffer_count must be a power of two up to 32768, buffer_size 1 B to 2 GiB");
  }
  spare_.reserve(spares_kept);  // (its capacity is the bound release_block keeps to)
  recv_msg_.msg_namelen = sizeof(sockaddr_storage);
  buf_ring_bytes_ = std::size_t{settings.buffer_count} * sizeof(io_uring_buf);
  void* mem =
      mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  buffers_bytes_ = std::size_t{settings.buffer_count} * buffer_size_;
  void* bufs = mmap(nullptr, buffers_bytes_, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  buf_ring_ = mem == MAP_FAILED ? nullptr : static_cast<ring_buf*>(mem);
  buffers_ = bufs == MAP_FAILED ? nullptr : static_cast<std::byte*>(bufs);
  const int wfd =
      buf_ring_ != nullptr && buffers_ != nullptr ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
  if (wfd < 0) {
    const int e = errno;
    unmap();
    refuse(e, "cannot map the provided-buffer ring or make the wake-up eventfd");
  }
  wake_fd_.reset(wfd);
  staged_.reserve(staged_kept);
}

void uring_backend::unmap() noexcept {
  if (buf_ring_ != nullptr) {
    munmap(buf_ring_, buf_ring_bytes_);
    buf_ring_ = nullptr;
  }
  if (buffers_ != nullptr) {
    munmap(buffers_, buffers_bytes_);
    buffers_ = nullptr;
  }
}

uring_backend::~uring_backend() {
  finish();
  unmap();
}

// The ring is made, and torn down (finish), on the loop's thread: a single-issuer ring is its
// creator's, and tearing one down leaves work for the thread that made it, which interrupts
// that thread's next blocking call with EINTR (seen here): that must not be a user's thread.
std::error_code uring_backend::start() noexcept {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = entries_ * 8;
  int rc = io_uring_queue_init_params(entries_, &ring_->r, &params);
  if (rc == -EINVAL) {  // before Linux 6.1: cooperative task running instead of deferred
    params = {};
    params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
    params.cq_entries = entries_ * 8;
    rc = io_uring_queue_init_params(entries_, &ring_->r, &params);
  }
  if (rc < 0) {
    return {-rc, std::system_category()};
  }
  ring_mapped(ring_->r);
  live_ = true;
  cqes_ = reinterpret_cast<const completion*>(ring_->r.cq.cqes);  // NOLINT: the same layout
  cq_head_ = ring_->r.cq.khead;
  cq_tail_ = ring_->r.cq.ktail;
  cq_mask_ = ring_->r.cq.ring_mask;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(buf_ring_);
  reg.ring_entries = buf_mask_ + 1;
  reg.bgid = buffer_group;
  if (rc = io_uring_register_buf_ring(&ring_->r, &reg, 0); rc < 0) {
    finish();
    return {-rc, std::system_category()};
  }
  buf_tail_ = 0;
  returned_ = 0;
  for (std::uint32_t bid = 0; bid <= buf_mask_; ++bid) {
    give_back(bid);
  }
  publish_buffers();
  (void)io_uring_register_ring_fd(&ring_->r);  // each enter then skips the fd look-up
  arm_wake();
  // What was registered before the loop ran (its listeners) is armed now.
  for (std::size_t fd = 0; fd < sources_.size(); ++fd) {
    if (source& src = sources_[fd]; src.kind != source_kind::none) {
      arm(static_cast<int>(fd), src);
    }
  }
  return {};
}

// Everything still in flight is cancelled and its completion awaited here, on the loop's
// thread, before the ring goes: a request holds its socket until it completes, and a ring's
// exit cancels what is left later, on a kernel worker. A listener held that way stays in its
// port's SO_REUSEPORT group after the engine has stopped, and takes connections nobody accepts
// (seen here). The cancelled requests complete as deferred task work, which one enter runs only
// a slice of: the rounds go on until one brings no completion.
void uring_backend::settle() noexcept {
  if (io_uring_sqe* sqe = next_sqe(ring_->r); sqe != nullptr) {
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, data_of(cancel, 0, 0));
  }
  constexpr int most_rounds = 4096;  // (a bound; the rounds end as the completions do)
  for (int round = 0; round < most_rounds; ++round) {
    (void)io_uring_submit_and_get_events(&ring_->r);
    const unsigned ready = io_uring_cq_ready(&ring_->r);
    if (ready == 0) {
      return;
    }
    io_uring_cq_advance(&ring_->r, ready);  // nothing to hand on: the loop's actors are gone
  }
}

void uring_backend::finish() noexcept {
  if (live_) {
    settle();
    ring_unmapping(ring_->r);
    io_uring_queue_exit(&ring_->r);  // ends what is still in flight
    live_ = false;
    cqes_ = nullptr;
    cq_head_ = cq_tail_ = nullptr;
  }
  staged_.clear();
  for (source& src : sources_) {
    src.in_armed = src.out_armed = src.hup_armed = false;
    src.send_len = src.send_off = 0;
    src.send_submitted = false;
  }
  for (source& src : sources_) {
    release_send_block(src);  // (staged bytes of closed connections)
  }
  for (const orphan& o : orphans_) {
    block_pool::deallocate(o.block);  // the ring is gone: nothing reads them any more
  }
  orphans_.clear();
  for (std::uint32_t slot = 0; slot < dgram_slots_.size(); ++slot) {
    if (dgram_slots_[slot] != nullptr) {
      free_datagram(slot);  // the ring is gone: nothing sends them any more
    }
  }
  for (const std::span<std::byte> block : spare_) {
    block_pool::deallocate(block);
  }
  spare_.clear();
}

std::error_code uring_backend::send(int fd, std::span<const iovec> parts) noexcept {
  source* s = find(fd);
  if (s == nullptr || s->kind != source_kind::stream || !live_) {
    return std::make_error_code(std::errc::not_connected);
  }
  if (s->send_submitted) {
    return std::make_error_code(std::errc::operation_in_progress);
  }
  std::size_t total = s->send_len;  // (behind what is staged)
  for (const iovec& v : parts) {
    total += v.iov_len;
  }
  if (total == 0) {
    return {};
  }
  if (total > UINT32_MAX / 2) {
    return std::make_error_code(std::errc::message_size);
  }
  if (total > s->send_block.size() && !grow(*s, total)) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  std::byte* to = s->send_block.data() + s->send_len;
  for (const iovec& v : parts) {
    std::memcpy(to, v.iov_base, v.iov_len);
    to += v.iov_len;
  }
  s->send_len = static_cast<std::uint32_t>(total);
  submit(fd);
  return {};
}

bool uring_backend::grow(source& s, std::size_t need) noexcept {
  const auto cap = std::max<std::size_t>({need, spare_block, s.send_block.size() * 2});
  std::span<std::byte> bigger;
  if (cap == spare_block && !spare_.empty()) {
    bigger = spare_.back();
    spare_.pop_back();
  } else {
    try {
      bigger = block_pool::allocate(cap);
    } catch (const std::bad_alloc&) {
      return false;
    }
  }
  if (s.send_len != 0) {
    std::memcpy(bigger.data(), s.send_block.data(), s.send_len);
  }
  release_send_block(s);
  s.send_block = bigger;
  return true;
}

uring_backend::staged uring_backend::stage_slow(int fd, std::span<const std::byte> bytes,
                                                std::size_t limit) noexcept {
  source* s = find(fd);
  if (s == nullptr || s->kind != source_kind::stream || !live_ || s->send_submitted ||
      s->send_len + bytes.size() > limit || bytes.size() > UINT32_MAX / 2) {
    return staged::refused;
  }
  if (s->send_len + bytes.size() > s->send_block.size() && !grow(*s, s->send_len + bytes.size())) {
    return staged::refused;
  }
  const bool first = s->send_len == 0;
  if (first) {
    try {
      staged_.push_back(static_cast<std::uint32_t>(fd));
    } catch (const std::bad_alloc&) {
      return staged::refused;
    }
  }
  std::memcpy(s->send_block.data() + s->send_len, bytes.data(), bytes.size());
  s->send_len += static_cast<std::uint32_t>(bytes.size());
  return first ? staged::first : staged::appended;
}

// The stream's staged bytes handed to the kernel: one send from the start of its buffer.
[[gnu::always_inline]] inline void uring_backend::start_send(int fd, source& s) noexcept {
  s.send_off = 0;
  s.send_submitted = true;
  prep_send(ring_->r, fd, s.send_block.data(), s.send_len, data_of(send_op, s.seq, fd));
}

void uring_backend::submit(int fd) noexcept {
  source* s = find(fd);
  if (s == nullptr || s->send_submitted || s->send_len == 0 || !live_) {
    return;
  }
  start_send(fd, *s);
}

std::error_code uring_backend::shutdown_write(int fd) noexcept {
  source* s = find(fd);
  if (s == nullptr || s->kind != source_kind::stream || !live_ || s->send_submitted) {
    return std::make_error_code(std::errc::not_connected);
  }
  io_uring_sqe* sqe = next_sqe(ring_->r);
  if (sqe == nullptr) {
    return std::make_error_code(std::errc::resource_unavailable_try_again);
  }
  io_uring_prep_shutdown(sqe, fd, SHUT_WR);
  io_uring_sqe_set_data64(sqe, data_of(shutdown_op, s->seq, fd));
  return {};
}

void uring_backend::submit_send(int fd, source& s) noexcept {
  prep_send(ring_->r, fd, s.send_block.data() + s.send_off, s.send_len - s.send_off,
            data_of(send_op, s.seq, fd));
}

bool uring_backend::send_datagram(int fd, std::span<const iovec> parts, const sockaddr* to,
                                  socklen_t length) noexcept {
  constexpr std::size_t ipv4_most = 65507;  // longer: a call, which says EMSGSIZE at once
  source* s = find(fd);
  std::size_t total = 0;
  for (const iovec& v : parts) {
    total += v.iov_len;
  }
  if (s == nullptr || s->kind != source_kind::datagram || !live_ || total > ipv4_most ||
      dgram_bytes_ + total > dgram_flight_cap || length > sizeof(sockaddr_storage)) {
    return false;
  }
  std::span<std::byte> block;
  std::uint32_t slot = 0;
  try {
    block = block_pool::allocate(sizeof(datagram_out) + total);
    if (dgram_free_.empty()) {
      dgram_slots_.push_back(nullptr);
      dgram_free_.push_back(static_cast<std::uint32_t>(dgram_slots_.size() - 1));
    }
  } catch (const std::bad_alloc&) {
    if (!block.empty()) {
      block_pool::deallocate(block);
    }
    return false;
  }
  io_uring_sqe* sqe = next_sqe(ring_->r);
  if (sqe == nullptr) {
    block_pool::deallocate(block);
    return false;
  }
  slot = dgram_free_.back();
  dgram_free_.pop_back();
  auto* d = new (block.data()) datagram_out{};
  std::byte* bytes = block.data() + sizeof(datagram_out);
  std::byte* at = bytes;
  for (const iovec& v : parts) {
    std::memcpy(at, v.iov_base, v.iov_len);
    at += v.iov_len;
  }
  d->block = block;
  d->source = data_of(recvmsg_op, s->seq, fd);
  d->iov = {bytes, total};
  d->msg.msg_iov = &d->iov;
  d->msg.msg_iovlen = 1;
  if (to != nullptr) {
    std::memcpy(&d->to, to, length);
    d->msg.msg_name = &d->to;
    d->msg.msg_namelen = length;
  }
  io_uring_prep_sendmsg(sqe, fd, &d->msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, (std::uint64_t{sendmsg_op} << 56) | slot);
  dgram_slots_[slot] = d;
  dgram_bytes_ += block.size();
  return true;
}

void uring_backend::free_datagram(std::uint32_t slot) noexcept {
  datagram_out* d = dgram_slots_[slot];
  const std::span<std::byte> block = d->block;
  d->~datagram_out();
  dgram_bytes_ -= block.size();
  block_pool::deallocate(block);
  dgram_slots_[slot] = nullptr;
  dgram_free_.push_back(slot);  // (reserved when the slot was made: no allocation here)
}

void uring_backend::drop_orphan(std::uint64_t user_data) noexcept {
  for (std::size_t i = 0; i < orphans_.size(); ++i) {
    if (orphans_[i].user_data == user_data) {
      release_block(orphans_[i].block);
      orphans_[i] = orphans_.back();
      orphans_.pop_back();
      return;
    }
  }
}

uring_backend::fd_table::~fd_table() {
  if (at_ != nullptr) {
    munmap(at_, size_ * sizeof(source));
  }
}

bool uring_backend::fd_table::grow(std::size_t at_least) noexcept {
  static_assert(std::is_trivially_copyable_v<source> && std::is_trivially_destructible_v<source>,
                "a source moves by memcpy and starts as zero pages");
  constexpr std::size_t page = 4096;
  const std::size_t want = std::max({at_least, size_ * 2, page / sizeof(source)});
  const std::size_t bytes = (want * sizeof(source) + page - 1) / page * page;
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    return false;
  }
  if (at_ != nullptr) {
    std::memcpy(mem, at_, used_ * sizeof(source));  // (what was never written stays untouched)
    munmap(at_, size_ * sizeof(source));
  }
  at_ = static_cast<source*>(mem);
  size_ = bytes / sizeof(source);
  return true;
}

void uring_backend::fd_table::release_after(std::size_t used) noexcept {
  constexpr std::size_t page = 4096;
  const std::size_t from = (used * sizeof(source) + page - 1) / page * page;
  const std::size_t bytes = size_ * sizeof(source);
  if (from < bytes) {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): a page address
    (void)madvise(reinterpret_cast<std::byte*>(at_) + from, bytes - from, MADV_DONTNEED);
    used_ = std::min(used_, from / sizeof(source) + 1);
  }
}

uring_backend::source* uring_backend::entry(int fd) {
  const auto i = static_cast<std::size_t>(fd);
  if (i >= sources_.size() && !sources_.grow(i + 1)) {
    return nullptr;
  }
  sources_.written(i);
  return &sources_[i];
}

void uring_backend::shrink() noexcept {
  std::size_t used = 0;
  for (std::size_t fd = 0; fd < sources_.size(); ++fd) {
    if (sources_[fd].kind != source_kind::none || !sources_[fd].send_block.empty()) {
      used = fd + 1;
    }
  }
  sources_.release_after(used);
  for (const std::span<std::byte> block : spare_) {
    block_pool::deallocate(block);
  }
  spare_.clear();
  // Every buffer is the ring's between iterations, and the kernel fills them only while this
  // thread is in io_uring_enter (deferred task running) or submitting: dropping their pages
  // here loses nothing; the next receive into one faults a zero page in.
  if (buffers_ != nullptr && live_) {
    (void)madvise(buffers_, buffers_bytes_, MADV_DONTNEED);
  }
  if (staged_.capacity() > staged_kept) {
    std::vector<std::uint32_t>().swap(staged_);
    try {
      staged_.reserve(staged_kept);
    } catch (const std::bad_alloc&) {
      // (stage() grows it again when it can)
    }
  }
}

std::error_code uring_backend::watch(int fd, io_key key, source_kind kind, bool in,
                                     bool out) noexcept {
  source* s = entry(fd);
  if (s == nullptr) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  if (s->kind != source_kind::none) {
    return std::make_error_code(std::errc::file_exists);  // as epoll_ctl's EEXIST
  }
  s->key = key;
  // From one counter for all fds: an entry whose pages shrink() dropped reads as zero again,
  // and a completion still on its way for the fd's earlier source must not match the next.
  s->seq = ++next_seq_;
  s->kind = kind;
  s->want_in = in;
  s->want_out = out;
  s->in_armed = s->out_armed = s->hup_armed = false;
  s->accept_by_poll = false;
  s->send_len = s->send_off = 0;
  s->send_submitted = false;
  arm(fd, *s);
  return {};
}

void uring_backend::arm(int fd, source& s) noexcept {
  if (s.want_in && !s.in_armed) {
    arm_in(fd, s);
  }
  if (s.want_out && !s.out_armed) {
    arm_out(fd, s);
  }
  // A stream not receiving still hears of a reset or a hang-up both ways, as epoll reports
  // them whatever the interest.
  if (s.kind == source_kind::stream && !s.want_in && !s.hup_armed) {
    arm_hup(fd, s);
  }
}

void uring_backend::arm_hup(int fd, source& s) noexcept {
  if (!live_) {
    return;  // armed at start(); nothing in flight after finish()
  }
  io_uring_sqe* sqe = next_sqe(ring_->r);
  if (sqe == nullptr) {
    return;
  }
  io_uring_prep_poll_add(sqe, fd, POLLERR | POLLHUP);
  io_uring_sqe_set_data64(sqe, data_of(poll_hup, s.seq, fd));
  s.hup_armed = true;
}

void uring_backend::arm_in(int fd, source& s) noexcept {
  if (!live_) {
    return;  // armed at start(); nothing in flight after finish()
  }
  io_uring_sqe* sqe = next_sqe(ring_->r);
  if (sqe == nullptr) {
    return;  // (never: a submission frees the whole queue)
  }
  if (s.kind == source_kind::stream) {
    io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffer_group;
    io_uring_sqe_set_data64(sqe, data_of(recv, s.seq, fd));
  } else if (s.kind == source_kind::listener && !s.accept_by_poll) {
    // Each connection's fd comes with a completion (no accept4, no poll): the kernel takes
    // the backlog as it fills. The peer's address is asked for only where the balancer uses it.
    io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, data_of(accept_op, s.seq, fd));
  } else if (s.kind == source_kind::datagram) {
    // Each datagram whole with a completion of its own, its sender's address in the buffer
    // ahead of it (no poll, no recvfrom).
    io_uring_prep_recvmsg_multishot(sqe, fd, &recv_msg_, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffer_group;
    io_uring_sqe_set_data64(sqe, data_of(recvmsg_op, s.seq, fd));
  } else {
    // A listener out of fds: one-shot, re-armed after each event (level-triggered, as on
    // epoll), until a connection waits.
    io_uring_prep_poll_add(sqe, fd, POLLIN);
    io_uring_sqe_set_data64(sqe, data_of(poll_in, s.seq, fd));
  }
  s.in_armed = true;
}

void uring_backend::arm_out(int fd, source& s) noexcept {
  if (!live_) {
    return;  // armed at start(); nothing in flight after finish()
  }
  io_uring_sqe* sqe = next_sqe(ring_->r);
  if (sqe == nullptr) {
    return;
  }
  io_uring_prep_poll_add(sqe, fd, POLLOUT);
  io_uring_sqe_set_data64(sqe, data_of(poll_out, s.seq, fd));
  s.out_armed = true;
}

void uring_backend::cancel_op(int fd, const source& s, op o) noexcept {
  if (!live_) {
    return;  // armed at start(); nothing in flight after finish()
  }
  io_uring_sqe* sqe = next_sqe(ring_->r);
  if (sqe == nullptr) {
    return;
  }
  io_uring_prep_cancel64(sqe, data_of(o, s.seq, fd), 0);
  io_uring_sqe_set_data64(sqe, data_of(cancel, 0, 0));
}

void uring_backend::arm_wake() noexcept {
  if (!live_) {
    return;  // armed at start(); nothing in flight after finish()
  }
  io_uring_sqe* sqe = next_sqe(ring_->r);
  if (sqe == nullptr) {
    return;
  }
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(sqe, data_of(wake_read, 0, 0));
}

std::error_code uring_backend::watch_listener(int fd, io_key key) noexcept {
  return watch(fd, key, source_kind::listener, true, false);
}

std::error_code uring_backend::watch_stream(int fd, io_key key, stream_interest want) noexcept {
  return watch(fd, key, source_kind::stream, want.receive, want.send);
}

std::error_code uring_backend::change_stream(int fd, io_key key, stream_interest want) noexcept {
  source* s = find(fd);
  if (s == nullptr || s->kind != source_kind::stream || s->key != key) {
    return std::make_error_code(std::errc::no_such_file_or_directory);  // as epoll_ctl's ENOENT
  }
  s->want_in = want.receive;
  s->want_out = want.send;
  if (!want.receive && s->in_armed) {
    // Bytes the receive took before the cancel still complete: the loop holds them.
    cancel_op(fd, *s, recv);
    s->in_armed = false;
  }
  if (!want.send && s->out_armed) {
    cancel_op(fd, *s, poll_out);
    s->out_armed = false;
  }
  if (want.receive && s->hup_armed) {
    cancel_op(fd, *s, poll_hup);
    s->hup_armed = false;
  }
  arm(fd, *s);
  return {};
}

std::error_code uring_backend::watch_connect(int fd, io_key key) noexcept {
  return watch(fd, key, source_kind::connect, false, true);
}

std::error_code uring_backend::connect(int fd, io_key key, const sockaddr* to,
                                       socklen_t length) noexcept {
  if (!live_) {
    return std::make_error_code(std::errc::operation_not_permitted);  // (dials run on the loop)
  }
  if (const std::error_code ec = watch(fd, key, source_kind::connect, false, false)) {
    return ec;
  }
  source& s = sources_[static_cast<std::size_t>(fd)];
  io_uring_sqe* sqe = next_sqe(ring_->r);
  if (sqe == nullptr) {
    s.kind = source_kind::none;
    return std::make_error_code(std::errc::resource_unavailable_try_again);
  }
  io_uring_prep_connect(sqe, fd, to, length);
  io_uring_sqe_set_data64(sqe, data_of(connect_op, s.seq, fd));
  s.out_armed = true;
  return {};
}

std::error_code uring_backend::watch_datagram(int fd, io_key key) noexcept {
  return watch(fd, key, source_kind::datagram, true, false);
}

std::error_code uring_backend::change_datagram(int fd, io_key key, bool receive) noexcept {
  source* s = find(fd);
  if (s == nullptr || s->kind != source_kind::datagram || s->key != key) {
    return std::make_error_code(std::errc::no_such_file_or_directory);
  }
  s->want_in = receive;
  if (!receive && s->in_armed) {
    cancel_op(fd, *s, recvmsg_op);  // (datagrams that completed before it: the loop holds them)
    s->in_armed = false;
  }
  arm(fd, *s);
  return {};
}

std::error_code uring_backend::unwatch(int fd) noexcept {
  source* s = find(fd);
  if (s == nullptr || s->kind == source_kind::none) {
    return std::make_error_code(std::errc::no_such_file_or_directory);
  }
  // What is in flight is cancelled; whatever still completes for the fd carries the old
  // sequence number and is dropped (a send's buffer is freed then).
  if (s->in_armed) {
    cancel_op(fd, *s,
              s->kind == source_kind::stream                           ? recv
              : s->kind == source_kind::datagram                       ? recvmsg_op
              : s->kind == source_kind::listener && !s->accept_by_poll ? accept_op
                                                                       : poll_in);
  }
  if (s->out_armed) {
    cancel_op(fd, *s, s->kind == source_kind::connect && !s->want_out ? connect_op : poll_out);
  }
  if (s->hup_armed) {
    cancel_op(fd, *s, poll_hup);
  }
  if (s->send_submitted) {
    cancel_op(fd, *s, send_op);
    try {
      orphans_.push_back({data_of(send_op, s->seq, fd), s->send_block});
    } catch (const std::bad_alloc&) {
      // Leaked rather than freed under the kernel.
    }
    s->send_block = {};
  } else {
    release_send_block(*s);  // (staged bytes that never went: the close drops them)
  }
  s->send_len = s->send_off = 0;
  s->send_submitted = false;
  s->kind = source_kind::none;
  s->in_armed = s->out_armed = s->hup_armed = false;
  // Submitted now, while the fd is still open: an entry queued for it (a receive armed, a send)
  // names it by number, and once it is closed the number may be a new socket's by the next
  // enter. The cancels go with them.
  if (live_ && io_uring_sq_ready(&ring_->r) != 0) {
    (void)io_uring_submit(&ring_->r);
  }
  return {};
}

result<std::size_t> uring_backend::wait(int timeout_ms) {
  submit_staged();
  io_uring_cqe* cqe = nullptr;
  int rc = 0;
  if (timeout_ms == 0) {
    rc = io_uring_submit_and_get_events(&ring_->r);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
    rc = io_uring_submit_and_wait_timeout(&ring_->r, &cqe, 1, timeout_ms < 0 ? nullptr : &ts,
                                          nullptr);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
    return std::error_code(-rc, std::system_category());
  }
  return std::size_t{io_uring_cq_ready(&ring_->r)};
}

void uring_backend::submit_staged() noexcept {
  for (const std::uint32_t fd : staged_) {
    source& s = sources_[fd];  // (listed by stage(): inside the table)
    if (s.kind == source_kind::stream && s.send_len != 0 && !s.send_submitted) {
      start_send(static_cast<int>(fd), s);
    }
  }
  staged_.clear();
}

void uring_backend::wake() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN: the counter is full, so a wake-up is pending anyway.
  (void)::write(wake_fd_.get(), &one, sizeof(one));
}

}  // namespace actnet::detail
