// kcp_session: KCP's state machine (ikcp's behaviour: acks with the echoed timestamp, RTO from
// a smoothed RTT, fast resend, window probing, slow start and congestion avoidance).
#include "actnet/reactor/kcp_session.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>

namespace actnet::detail {

namespace {

constexpr std::uint32_t rto_nodelay_min = 30;  // ms
constexpr std::uint32_t rto_normal_min = 100;
constexpr std::uint32_t rto_initial = 200;
constexpr std::uint32_t rto_max = 60'000;
constexpr std::uint32_t probe_initial = 7'000;  // the first window probe after the peer's 0
constexpr std::uint32_t probe_limit = 120'000;
constexpr std::size_t fast_ack_comparisons = 4096;   // a datagram's votes for fast resends, at most
constexpr std::uint32_t fast_resend_limit = 5;       // a segment is fast-resent while sent <= this
constexpr std::uint32_t initial_remote_window = 32;  // until the peer says (kcp-go's default)
constexpr std::size_t max_mtu = 65'507;              // the largest UDP payload over IPv4

// Sequence numbers and times compare modulo 2^32.
constexpr std::int32_t diff(std::uint32_t later, std::uint32_t earlier) noexcept {
  return static_cast<std::int32_t>(later - earlier);
}

// flush's datagram buffer: one per thread, shared by the conversations it flushes one at a
// time, so an idle conversation holds none.
std::span<std::byte> flush_buffer() {
  thread_local std::vector<std::byte> buffer(max_mtu);
  return buffer;
}

}  // namespace

kcp_session::kcp_session(std::uint32_t conv, const kcp_options& options, output_fn output)
    : output_(std::move(output)),
      mtu_(std::clamp<std::size_t>(options.mtu, kcp_header::size + 1, max_mtu)),
      mss_(mtu_ - kcp_header::size),
      conv_(conv),
      interval_(
          static_cast<std::uint32_t>(std::clamp<std::int64_t>(options.interval.count(), 10, 5000))),
      fast_resend_(options.fast_resend),
      send_window_(std::max<std::uint32_t>(options.send_window, 1)),
      receive_window_(std::clamp<std::uint32_t>(options.receive_window, 1, 65'535)),
      min_rto_(options.nodelay ? rto_nodelay_min : rto_normal_min),
      remote_window_(initial_remote_window),
      incr_(static_cast<std::uint32_t>(mss_)),
      rto_(rto_initial),
      nodelay_(options.nodelay),
      congestion_control_(options.congestion_control) {}

std::uint16_t kcp_session::free_window() const noexcept {
  const std::size_t used = rcv_queue_.size();
  return used < receive_window_ ? static_cast<std::uint16_t>(receive_window_ - used) : 0;
}

kcp_input kcp_session::input(std::span<const std::byte> datagram, std::uint32_t now) {
  current_ = now;
  if (datagram.size() < kcp_header::size) {
    return kcp_input::truncated;
  }
  const std::uint32_t una_before = snd_una_;
  // This datagram's acks, for the fast resend's count (the thread's: a conversation holds none).
  thread_local std::vector<std::pair<std::uint32_t, std::uint32_t>> acks_in;
  acks_in.clear();
  kcp_input verdict = kcp_input::ok;
  while (datagram.size() >= kcp_header::size) {
    const kcp_header h = *read_kcp_header(datagram);
    if (h.conv != conv_) {
      verdict = kcp_input::wrong_conv;
      break;
    }
    datagram = datagram.subspan(kcp_header::size);
    if (h.len > datagram.size()) {
      verdict = kcp_input::truncated;
      break;
    }
    if (h.cmd != kcp_command::push && h.cmd != kcp_command::ack &&
        h.cmd != kcp_command::window_probe && h.cmd != kcp_command::window_tell) {
      verdict = kcp_input::bad_command;
      break;
    }
    const std::span<const std::byte> data = datagram.first(h.len);
    datagram = datagram.subspan(h.len);
    ++counters_.segments_in;
    remote_window_ = h.wnd;
    acknowledged_through(h.una);
    switch (h.cmd) {
      case kcp_command::ack:
        if (diff(current_, h.ts) >= 0) {
          measured_rtt(diff(current_, h.ts));
        }
        if (acknowledged(h.sn)) {
          acks_in.emplace_back(h.sn, h.ts);
        }
        break;
      case kcp_command::push:
        if (diff(h.sn, rcv_nxt_ + receive_window_) >= 0) {
          ++counters_.out_of_window;  // not acknowledged: the peer must send it again
          break;
        }
        if (acks_.size() >= 2 * static_cast<std::size_t>(receive_window_)) {
          flush_acks();  // (duplicates flooding in between two flushes: bounded)
        }
        acks_.emplace_back(h.sn, h.ts);
        if (diff(h.sn, rcv_nxt_) >= 0) {
          take_push(h.sn, data);
        } else {
          ++counters_.duplicates;
        }
        break;
      case kcp_command::window_probe:
        probe_ |= probe_tell;
        break;
      case kcp_command::window_tell:
        break;  // (its window was read above, as every segment's)
    }
  }
  if (verdict == kcp_input::ok && !datagram.empty()) {
    verdict = kcp_input::truncated;  // bytes after the last segment, too few for a header
  }
  if (!acks_in.empty()) {
    count_fast_acks(acks_in);
  }
  if (diff(snd_una_, una_before) > 0 && cwnd_ < remote_window_) {
    grow_window();
  }
  return verdict;
}

void kcp_session::acknowledged_through(std::uint32_t una) noexcept {
  while (!snd_buf_.empty() && diff(una, snd_buf_.front().sn) > 0) {
    if (!snd_buf_.front().acked) {
      send_bytes_ -= snd_buf_.front().data.size();
    }
    snd_buf_.pop_front();
  }
  drop_acked_front();
}

bool kcp_session::acknowledged(std::uint32_t sn) noexcept {
  if (snd_buf_.empty() || diff(sn, snd_una_) < 0 || diff(sn, snd_nxt_) >= 0) {
    return false;
  }
  // In flight, sequence numbers are one apart from the front's.
  const auto at = static_cast<std::size_t>(sn - snd_buf_.front().sn);
  if (at >= snd_buf_.size() || snd_buf_[at].acked) {
    return false;
  }
  snd_buf_[at].acked = true;
  send_bytes_ -= snd_buf_[at].data.size();
  std::vector<std::byte>().swap(snd_buf_[at].data);  // freed now, not when the front moves
  drop_acked_front();
  return true;
}

void kcp_session::drop_acked_front() noexcept {
  while (!snd_buf_.empty() && snd_buf_.front().acked) {
    snd_buf_.pop_front();
  }
  snd_una_ = snd_buf_.empty() ? snd_nxt_ : snd_buf_.front().sn;
}

void kcp_session::count_fast_acks(
    std::span<const std::pair<std::uint32_t, std::uint32_t>> acks) noexcept {
  // Each ack of a later segment sent no earlier counts once for a segment still unacknowledged,
  // as kcp-go counts them: a datagram of acks past a hole is as many votes as it has acks, so a
  // hole is resent after one such datagram, not two. Only acks that acknowledged a segment are
  // here (a duplicate is no news). The segments still unacknowledged before the latest ack are
  // the holes (and the reordered), few; a segment needs no more votes than its resend asks for,
  // and a datagram gets a bounded number of comparisons (a peer whose acks' times lie, or a
  // very wide window, cannot make a datagram cost more): holes past it wait for their timeout.
  const std::uint32_t enough = std::max<std::uint32_t>(fast_resend_, 1);
  std::size_t budget = fast_ack_comparisons;
  std::uint32_t max_sn = acks.front().first;
  for (const auto& [sn, ts] : acks) {
    if (diff(sn, max_sn) > 0) {
      max_sn = sn;
    }
  }
  for (out_segment& s : snd_buf_) {
    if (diff(max_sn, s.sn) <= 0 || budget == 0) {
      break;
    }
    if (s.acked) {
      continue;
    }
    for (const auto& [sn, ts] : acks) {
      if (budget == 0 || s.fast_acks >= enough) {
        break;
      }
      --budget;
      if (diff(sn, s.sn) > 0 && diff(ts, s.ts) >= 0) {
        ++s.fast_acks;
      }
    }
    // Due for a fast (or, with nothing more to send, an early) resend at the next flush.
    if (s.fast_acks != 0 && s.sends <= fast_resend_limit &&
        ((fast_resend_ != 0 && s.fast_acks >= fast_resend_) || snd_queue_.empty())) {
      resend_due_ = true;
    }
  }
}

void kcp_session::measured_rtt(std::int32_t rtt) noexcept {
  const auto r = static_cast<std::uint32_t>(rtt);
  if (srtt_ == 0) {
    srtt_ = std::max<std::uint32_t>(r, 1);
    rttval_ = r / 2;
  } else {
    const std::uint32_t delta = r > srtt_ ? r - srtt_ : srtt_ - r;
    rttval_ = (3 * rttval_ + delta) / 4;
    srtt_ = std::max<std::uint32_t>((7 * srtt_ + r) / 8, 1);
  }
  const std::uint64_t rto =
      std::uint64_t{srtt_} + std::max<std::uint64_t>(interval_, 4ULL * rttval_);
  rto_ = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(rto, min_rto_, rto_max));
}

void kcp_session::take_push(std::uint32_t sn, std::span<const std::byte> data) {
  // Out-of-order segments are few and usually arrive in order: look from the back.
  auto at = rcv_buf_.end();
  while (at != rcv_buf_.begin()) {
    const auto before = std::prev(at);
    if (before->sn == sn) {
      ++counters_.duplicates;
      return;
    }
    if (diff(sn, before->sn) > 0) {
      break;
    }
    at = before;
  }
  rcv_buf_.insert(at, in_segment{sn, std::vector<std::byte>(data.begin(), data.end())});
  move_to_queue();
}

void kcp_session::move_to_queue() {
  while (!rcv_buf_.empty() && rcv_buf_.front().sn == rcv_nxt_ &&
         rcv_queue_.size() < receive_window_) {
    rcv_queue_.push_back(std::move(rcv_buf_.front().data));
    rcv_buf_.pop_front();
    ++rcv_nxt_;
  }
}

void kcp_session::grow_window() noexcept {
  const auto mss = static_cast<std::uint32_t>(mss_);
  if (cwnd_ < ssthresh_) {
    ++cwnd_;  // slow start
    incr_ += mss;
  } else {
    incr_ = std::max(incr_, mss);
    incr_ += mss * mss / incr_ + mss / 16;  // congestion avoidance: about one a window
    if ((cwnd_ + 1) * mss <= incr_) {
      cwnd_ = (incr_ + mss - 1) / mss;
    }
  }
  if (cwnd_ > remote_window_) {
    cwnd_ = remote_window_;
    incr_ = remote_window_ * mss;
  }
}

void kcp_session::send(std::span<const std::byte> bytes) {
  send_bytes_ += bytes.size();
  if (!snd_queue_.empty() && snd_queue_.back().data.size() < mss_) {
    std::vector<std::byte>& last = snd_queue_.back().data;
    const std::size_t n = std::min(mss_ - last.size(), bytes.size());
    last.insert(last.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    bytes = bytes.subspan(n);
  }
  while (!bytes.empty()) {
    const std::size_t n = std::min(mss_, bytes.size());
    out_segment s;
    s.data.reserve(n < mss_ ? std::min<std::size_t>(mss_, 256) : n);
    s.data.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    snd_queue_.push_back(std::move(s));
    bytes = bytes.subspan(n);
  }
}

void kcp_session::update(std::uint32_t now) {
  current_ = now;
  if (!updated_) {
    updated_ = true;
    next_flush_ = now;
  }
  std::int32_t slap = diff(now, next_flush_);
  if (slap >= 10'000 || slap < -10'000) {  // the clock jumped: start again from now
    next_flush_ = now;
    slap = 0;
  }
  if (slap >= 0) {
    next_flush_ += interval_;
    if (diff(now, next_flush_) >= 0) {
      next_flush_ = now + interval_;
    }
    flush(now);
  } else if (resend_pending_ && diff(now, first_resend_) >= 0) {
    flush(now);  // a resend due before the next interval's flush: at its time, as kcp-go does
  }
}

std::uint32_t kcp_session::next_update(std::uint32_t now) const noexcept {
  if (!updated_) {
    return now;
  }
  std::uint32_t flush_at = next_flush_;
  if (std::abs(diff(now, flush_at)) >= 10'000) {
    flush_at = now;
  }
  if (diff(now, flush_at) >= 0) {
    return now;
  }
  std::int32_t wait =
      std::min<std::int32_t>(diff(flush_at, now), static_cast<std::int32_t>(interval_));
  // A resend due sooner is sent at its time (the time may be stale, a segment acknowledged
  // since: that update flushes for nothing, once).
  if (resend_pending_) {
    wait = std::min(wait, std::max<std::int32_t>(diff(first_resend_, now), 0));
  }
  return now + static_cast<std::uint32_t>(wait);
}

void kcp_session::put(const kcp_header& h, std::span<const std::byte> data) {
  const std::size_t need = kcp_header::size + data.size();
  if (out_used_ + need > mtu_) {
    emit();
  }
  write_kcp_header(h, out_.subspan(out_used_));
  if (!data.empty()) {
    std::memcpy(out_.data() + out_used_ + kcp_header::size, data.data(), data.size());
  }
  out_used_ += need;
}

void kcp_session::emit() {
  if (out_used_ != 0) {
    const std::size_t n = std::exchange(out_used_, 0);
    output_(out_.first(n));
  }
}

void kcp_session::flush_acks() {
  out_ = flush_buffer();
  put_acks();
  emit();
}

void kcp_session::put_acks() {
  kcp_header h;
  h.conv = conv_;
  h.cmd = kcp_command::ack;
  h.wnd = free_window();
  h.una = rcv_nxt_;
  for (const auto& [sn, ts] : acks_) {
    h.sn = sn;
    h.ts = ts;
    put(h, {});
  }
  acks_.clear();
}

void kcp_session::flush(std::uint32_t now) {
  current_ = now;
  out_ = flush_buffer();
  put_acks();  // first: the peer's retransmissions wait on them
  kcp_header h;
  h.conv = conv_;
  h.wnd = free_window();
  h.una = rcv_nxt_;

  // A peer with no window left is asked for it now and then (7 s, then half as long again
  // each time, up to 2 min), in case the segment that reopened it was lost.
  if (remote_window_ == 0) {
    if (probe_wait_ == 0) {
      probe_wait_ = probe_initial;
      probe_at_ = current_ + probe_wait_;
    } else if (diff(current_, probe_at_) >= 0) {
      probe_wait_ = std::min(probe_wait_ + probe_wait_ / 2, probe_limit);
      probe_at_ = current_ + probe_wait_;
      probe_ |= probe_ask;
    }
  } else {
    probe_at_ = 0;
    probe_wait_ = 0;
  }
  if ((probe_ & probe_ask) != 0) {
    h.cmd = kcp_command::window_probe;
    put(h, {});
  }
  if ((probe_ & probe_tell) != 0) {
    h.cmd = kcp_command::window_tell;
    put(h, {});
  }
  probe_ = 0;

  // Into flight, as far as the windows allow.
  std::uint32_t window = std::min(send_window_, remote_window_);
  if (congestion_control_) {
    window = std::min(window, cwnd_);
  }
  bool new_segments = false;
  while (!snd_queue_.empty() && diff(snd_nxt_, snd_una_ + window) < 0) {
    out_segment s = std::move(snd_queue_.front());
    snd_queue_.pop_front();
    s.sn = snd_nxt_++;
    snd_buf_.push_back(std::move(s));
    new_segments = true;
  }

  const std::uint32_t resend_after =
      fast_resend_ > 0 ? fast_resend_ : std::numeric_limits<std::uint32_t>::max();
  const std::uint32_t rto_slack = nodelay_ ? 0 : rto_ >> 3;
  bool lost = false;
  bool fast = false;
  // A tail-loss probe (TCP's TLP, RFC 8985): the last segment in flight with nothing queued
  // behind it has no later segment whose acks would show it lost, so only its timeout (30 ms
  // at least) would send it again. Once, after twice the smoothed round trip (an interval at
  // least, the pace at which a peer may hold its acks), it is sent again: the copy or its ack
  // gets through, or the ack shows the holes before it, which the early resend then fills.
  const out_segment* tail = nullptr;
  if (snd_queue_.empty() && srtt_ != 0 && !snd_buf_.empty()) {
    auto at = snd_buf_.end();
    while (at != snd_buf_.begin() && tail == nullptr) {
      --at;
      tail = at->acked ? nullptr : &*at;
    }
  }
  const std::uint32_t probe_after = std::max(2 * srtt_, interval_);
  h.cmd = kcp_command::push;
  resend_pending_ = false;
  resend_due_ = false;
  for (out_segment& s : snd_buf_) {
    if (s.acked) {
      continue;
    }
    bool send_now = false;
    const bool probe = &s == tail && s.sends == 1;
    if (s.sends == 0) {
      send_now = true;
      s.rto = rto_;
      s.resend_at = current_ + s.rto + rto_slack;
    } else if (diff(current_, s.resend_at) >= 0) {
      send_now = true;
      // No delay: the timeout grows by half the current estimate each time, as kcp-go's does
      // (ikcp's by half its own, which soon leaves a twice-lost segment waiting far longer).
      s.rto = std::min(nodelay_ ? s.rto + rto_ / 2 : s.rto + std::max(s.rto, rto_), rto_max);
      s.resend_at = current_ + s.rto;
      s.fast_acks = 0;  // (votes for the send that timed out)
      lost = true;
      ++counters_.retransmits;
    } else if ((s.fast_acks >= resend_after || (s.fast_acks > 0 && !new_segments)) &&
               s.sends <= fast_resend_limit) {
      // Fast resend; or early resend, as kcp-go does: with nothing new to send, no further
      // acks will come to reach the threshold (the end of a burst), so one later ack will do.
      send_now = true;
      s.fast_acks = 0;
      s.rto = rto_;  // a resend the acks asked for: its timeout starts again from the estimate
      s.resend_at = current_ + s.rto;
      fast = true;
      ++counters_.fast_retransmits;
    } else if (probe && diff(current_, s.ts + probe_after) >= 0) {
      send_now = true;  // (not a loss: the window stays)
      ++counters_.tail_probes;
    }
    if (send_now) {
      ++s.sends;
      s.ts = current_;
      h.sn = s.sn;
      h.ts = s.ts;
      h.len = static_cast<std::uint32_t>(s.data.size());
      put(h, s.data);
      h.len = 0;
      ++counters_.data_segments_out;
      if (s.sends >= dead_link) {
        dead_ = true;
      }
    }
    std::uint32_t due = s.resend_at;
    if (&s == tail && s.sends == 1 && diff(s.ts + probe_after, due) < 0) {
      due = s.ts + probe_after;  // (the tail's probe, not sent yet)
    }
    if (!resend_pending_ || diff(due, first_resend_) < 0) {
      first_resend_ = due;
      resend_pending_ = true;
    }
  }
  emit();

  const auto mss = static_cast<std::uint32_t>(mss_);
  if (fast) {  // a loss seen through later acks: halve, then add what was resent
    ssthresh_ = std::max<std::uint32_t>((snd_nxt_ - snd_una_) / 2, 2);
    cwnd_ = ssthresh_ + std::min(resend_after, remote_window_);
    incr_ = cwnd_ * mss;
  }
  if (lost) {  // a timeout: start again from one segment
    ssthresh_ = std::max<std::uint32_t>(cwnd_ / 2, 2);
    cwnd_ = 1;
    incr_ = mss;
  }
  if (cwnd_ < 1) {
    cwnd_ = 1;
    incr_ = mss;
  }
}

}  // namespace actnet::detail
