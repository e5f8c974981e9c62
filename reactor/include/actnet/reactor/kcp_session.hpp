// kcp_session: one KCP conversation's state machine, with no I/O of its own: datagrams in
// (input), bytes out to the reader (receive), bytes in from the writer (send), datagrams out
// through the output function at each flush. The caller owns the socket and the clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "actnet/reactor/kcp.hpp"
#include "actnet/unique_function.hpp"

namespace actnet::detail {

/// Why input() refused a datagram (the segments before the bad one in it stay applied, as in
/// ikcp; the rest is dropped).
enum class kcp_input : std::uint8_t {
  ok,
  truncated,    // shorter than a header, or a length past the datagram's end
  wrong_conv,   // another conversation's
  bad_command,  // not push, ack, window probe or window tell
};

/// What one conversation has seen and done (for metrics and tests).
struct kcp_counters {
  std::uint64_t segments_in = 0;        // segments accepted by input
  std::uint64_t data_segments_out = 0;  // push segments sent, retransmissions included
  std::uint64_t retransmits = 0;        // resent at their timeout
  std::uint64_t fast_retransmits = 0;   // resent after later acks (fast or early resend)
  std::uint64_t tail_probes = 0;        // last segments in flight resent once, at 2 round trips
  std::uint64_t out_of_window = 0;      // pushes past the receive window, dropped
  std::uint64_t duplicates = 0;         // pushes received before
};

/// A conversation's queue of segments: a vector and the index of its front, so an empty queue
/// holds no memory (an idle conversation's four queues would hold some 2.3 KB as std::deques,
/// which allocate at construction). Popped slots are reclaimed when they are half the vector,
/// and the storage is released when the queue empties from more than a few entries.
template <class T>
class segment_queue {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  [[nodiscard]] bool empty() const noexcept { return head_ == items_.size(); }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size() - head_; }
  /// Entries its storage holds (0 when it holds none).
  [[nodiscard]] std::size_t capacity() const noexcept { return items_.capacity(); }
  T& front() noexcept { return items_[head_]; }
  [[nodiscard]] const T& front() const noexcept { return items_[head_]; }
  T& back() noexcept { return items_.back(); }
  T& operator[](std::size_t i) noexcept { return items_[head_ + i]; }
  iterator begin() noexcept { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() noexcept { return items_.end(); }
  [[nodiscard]] const_iterator begin() const noexcept {
    return items_.begin() + static_cast<std::ptrdiff_t>(head_);
  }
  [[nodiscard]] const_iterator end() const noexcept { return items_.end(); }

  void push_back(T&& item) { items_.push_back(std::move(item)); }
  iterator insert(iterator at, T&& item) { return items_.insert(at, std::move(item)); }
  void pop_front() noexcept {
    items_[head_] = T{};  // (its bytes go now)
    if (++head_ == items_.size()) {
      head_ = 0;
      if (items_.capacity() > kept) {
        std::vector<T>().swap(items_);  // a burst is over: its storage goes back
      } else {
        items_.clear();
      }
    } else if (head_ >= kept && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

 private:
  static constexpr std::size_t kept = 4;  // capacity kept when the queue empties
  std::vector<T> items_;
  std::size_t head_ = 0;
};

/// One conversation (ikcp's state machine, written from the protocol's description). Times are
/// the caller's clock in milliseconds, modulo 2^32 (the wire carries 32 bits). Not thread-safe:
/// one owner.
class kcp_session {
 public:
  /// Sends one datagram (at most mtu bytes); called from flush only.
  using output_fn = unique_function<void(std::span<const std::byte>)>;
  /// A segment sent this many times without an ack: the peer is taken for gone (dead()).
  static constexpr std::uint32_t dead_link = 20;

  /// `options` checked by the caller (check_kcp_options).
  kcp_session(std::uint32_t conv, const kcp_options& options, output_fn output);

  [[nodiscard]] std::uint32_t conv() const noexcept { return conv_; }
  [[nodiscard]] std::size_t mss() const noexcept { return mss_; }
  [[nodiscard]] std::uint32_t send_window() const noexcept { return send_window_; }

  /// Takes one datagram from the peer at time `now`.
  kcp_input input(std::span<const std::byte> datagram, std::uint32_t now);
  /// Queues bytes to send, as a stream: they fill the last queued segment first.
  void send(std::span<const std::byte> bytes);
  /// Hands the bytes received in order to `take(std::span<const std::byte>)`, a segment at a
  /// time, until there are no more or `take` returns false (the reader is full: the rest waits,
  /// and the window told to the peer shrinks). Returns the bytes taken.
  template <class Take>
  std::size_t receive(Take&& take);
  /// Whether bytes wait to be received.
  [[nodiscard]] bool readable() const noexcept { return !rcv_queue_.empty(); }

  /// Flushes when the interval has passed since the last flush, or a segment's resend is due
  /// (call it at next_update()).
  void update(std::uint32_t now);
  /// Sends what is due now: acks, window probes, new segments the windows allow, resends.
  void flush(std::uint32_t now);
  /// When update() must run next: its next flush, or a segment's resend if sooner (now, at the
  /// latest the next interval).
  [[nodiscard]] std::uint32_t next_update(std::uint32_t now) const noexcept;
  /// Whether a flush would send anything or anything waits for an ack or a resend: a
  /// conversation with no work needs no update until input or send.
  [[nodiscard]] bool has_work() const noexcept {
    return !snd_queue_.empty() || !snd_buf_.empty() || !acks_.empty() || probe_ != 0 ||
           remote_window_ == 0;
  }

  /// Segments queued that the windows have not let out yet.
  [[nodiscard]] bool sends_waiting() const noexcept { return !snd_queue_.empty(); }
  /// Acks that came in have made a segment due for a fast resend (best sent now, not at the
  /// next interval: the peer's window waits on it).
  [[nodiscard]] bool resend_due() const noexcept { return resend_due_; }
  /// Acks owed to the peer (sent at the next flush).
  [[nodiscard]] std::size_t acks_owed() const noexcept { return acks_.size(); }
  /// Segments queued or in flight (not yet acknowledged).
  [[nodiscard]] std::size_t unacknowledged() const noexcept {
    return snd_queue_.size() + snd_buf_.size();
  }
  /// Bytes queued or in flight.
  [[nodiscard]] std::size_t unacknowledged_bytes() const noexcept { return send_bytes_; }
  /// A segment was sent dead_link times without an ack.
  [[nodiscard]] bool dead() const noexcept { return dead_; }
  /// The smoothed round-trip time and the retransmission timeout, in ms.
  [[nodiscard]] std::uint32_t srtt() const noexcept { return srtt_; }
  [[nodiscard]] std::uint32_t rto() const noexcept { return rto_; }
  [[nodiscard]] std::uint32_t congestion_window() const noexcept { return cwnd_; }
  [[nodiscard]] std::uint32_t remote_window() const noexcept { return remote_window_; }
  [[nodiscard]] const kcp_counters& counters() const noexcept { return counters_; }

 private:
  struct out_segment {
    std::uint32_t sn = 0;
    std::uint32_t ts = 0;
    std::uint32_t resend_at = 0;
    std::uint32_t rto = 0;
    std::uint32_t fast_acks = 0;
    std::uint32_t sends = 0;
    bool acked = false;
    std::vector<std::byte> data;
  };
  struct in_segment {
    std::uint32_t sn = 0;
    std::vector<std::byte> data;
  };
  static constexpr std::uint8_t probe_ask = 1;   // ask the peer for its window
  static constexpr std::uint8_t probe_tell = 2;  // tell the peer this side's window

  [[nodiscard]] std::uint16_t free_window() const noexcept;
  void acknowledged_through(std::uint32_t una) noexcept;  // every sn before una
  bool acknowledged(std::uint32_t sn) noexcept;           // true: newly
  void drop_acked_front() noexcept;
  void count_fast_acks(std::span<const std::pair<std::uint32_t, std::uint32_t>> acks) noexcept;
  void measured_rtt(std::int32_t rtt) noexcept;
  void take_push(std::uint32_t sn, std::span<const std::byte> data);
  void move_to_queue();
  void grow_window() noexcept;
  // flush's parts: a segment into the output buffer (which is sent first when it would
  // overflow), the buffer sent, the acks owed put into it; flush_acks sends them at once.
  void put(const kcp_header& h, std::span<const std::byte> data);
  void emit();
  void put_acks();
  void flush_acks();

  // (Largest first: no padding between them.)
  output_fn output_;
  segment_queue<out_segment> snd_queue_;  // not sent yet: no sn
  segment_queue<out_segment> snd_buf_;    // in flight: sn from snd_buf_.front().sn, one apart
  segment_queue<in_segment> rcv_buf_;     // received ahead of rcv_nxt_, in sn order
  segment_queue<std::vector<std::byte>> rcv_queue_;            // in order, for the reader
  std::vector<std::pair<std::uint32_t, std::uint32_t>> acks_;  // (sn, ts) to acknowledge
  std::span<std::byte> out_;  // flush's buffer (the thread's), and what of it is used
  std::size_t out_used_ = 0;
  kcp_counters counters_;
  std::size_t mtu_;
  std::size_t mss_;
  std::size_t send_bytes_ = 0;

  std::uint32_t conv_;
  std::uint32_t interval_;
  std::uint32_t fast_resend_;
  std::uint32_t send_window_;
  std::uint32_t receive_window_;
  std::uint32_t min_rto_;
  std::uint32_t snd_una_ = 0;  // the oldest unacknowledged sn
  std::uint32_t snd_nxt_ = 0;  // the next sn to give
  std::uint32_t rcv_nxt_ = 0;  // the next sn to receive in order
  std::uint32_t remote_window_;
  std::uint32_t cwnd_ = 1;
  std::uint32_t incr_;
  std::uint32_t ssthresh_ = 2;
  std::uint32_t srtt_ = 0;
  std::uint32_t rttval_ = 0;
  std::uint32_t rto_;
  std::uint32_t current_ = 0;
  std::uint32_t next_flush_ = 0;
  std::uint32_t first_resend_ = 0;  // the earliest segment's resend time, at the last flush
  std::uint32_t probe_at_ = 0;
  std::uint32_t probe_wait_ = 0;
  bool nodelay_;
  bool congestion_control_;
  bool updated_ = false;
  bool resend_pending_ = false;  // first_resend_ holds (segments waited for acks then)
  bool dead_ = false;
  bool resend_due_ = false;  // a fast resend waits for the next flush
  std::uint8_t probe_ = 0;   // probe_ask, probe_tell
};

template <class Take>
std::size_t kcp_session::receive(Take&& take) {
  const bool was_full = rcv_queue_.size() >= receive_window_;
  std::size_t taken = 0;
  while (!rcv_queue_.empty()) {
    const std::vector<std::byte>& front = rcv_queue_.front();
    if (!take(std::span<const std::byte>(front))) {
      break;
    }
    taken += front.size();
    rcv_queue_.pop_front();
  }
  move_to_queue();
  if (was_full && rcv_queue_.size() < receive_window_) {
    probe_ |= probe_tell;  // the peer may have stopped at a full window: it has opened
  }
  return taken;
}

}  // namespace actnet::detail
