// Helpers for the KCP tests (tests/actors/kcp_test.cpp, tests/reactor/kcp_interop_test.cpp): the
// byte pattern every sender sends (kcp_peer's too), and a connection that sends it and collects
// what comes back.
#pragma once

#include <gtest/gtest.h>

#include <actnet/actors/connection.hpp>
#include <chrono>
#include <cstddef>
#include <future>
#include <mutex>
#include <span>
#include <system_error>
#include <vector>

namespace actnet::test {

/// Byte i of the pattern: (i*131 + (i>>8)*7) mod 256, as tests/tools/kcp_peer makes it.
inline std::byte kcp_pattern_byte(std::size_t i) {
  return static_cast<std::byte>((i * 131 + (i >> 8) * 7) & 0xff);
}
inline std::vector<std::byte> kcp_pattern(std::size_t n) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) {
    b[i] = kcp_pattern_byte(i);
  }
  return b;
}

/// Checks that `got` is exactly the first `total` bytes of the pattern (the first wrong byte
/// named).
inline void expect_kcp_pattern(const std::vector<std::byte>& got, std::size_t total) {
  ASSERT_EQ(got.size(), total);
  for (std::size_t i = 0; i < total; ++i) {
    if (got[i] != kcp_pattern_byte(i)) {
      ADD_FAILURE() << "byte " << i << " differs";
      return;
    }
  }
}

/// Echoes every byte back.
class kcp_echo final : public connection {
  void on_data() override { (void)write(next_all()); }
};

/// KCP's fast mode (no delay, 10 ms interval, fast resend after 2 acks, no congestion window)
/// or its normal mode (kcp_options' defaults), as kcp_peer sets them: windows of 128 both ways.
inline kcp_options kcp_mode(bool fast) {
  kcp_options o;
  if (fast) {
    o.nodelay = true;
    o.interval = std::chrono::milliseconds(10);
    o.fast_resend = 2;
    o.congestion_control = false;
  }
  o.send_window = 128;
  o.receive_window = 128;
  return o;
}

/// What a sender saw, for the test thread: the bytes that came back (`done` once `expected` of
/// them have) and its close.
struct echo_record {
  std::mutex mutex;
  std::vector<std::byte> got;
  std::size_t expected = 0;
  std::promise<void> done;
  bool told = false;
  int closes = 0;
  std::error_code close_reason;

  void take(const byte_views& in) {
    const std::lock_guard lock(mutex);
    for (const auto part : {in.first, in.second}) {
      got.insert(got.end(), part.begin(), part.end());
    }
    if (got.size() >= expected && !told) {
      told = true;
      done.set_value();
    }
  }
  void closed(std::error_code reason) {
    const std::lock_guard lock(mutex);
    close_reason = reason;
    ++closes;
  }
};

/// Sends `total` bytes of the pattern in writes of `chunk` from on_open and records what comes
/// back.
class pattern_sender : public connection {
 public:
  pattern_sender(echo_record* r, std::size_t total, std::size_t chunk)
      : record_(r), total_(total), chunk_(chunk) {}
  void on_open() override {
    const std::vector<std::byte> all = kcp_pattern(total_);
    for (std::size_t at = 0; at < total_; at += chunk_) {
      (void)write(std::span(all).subspan(at, std::min(chunk_, total_ - at)));
    }
  }
  void on_data() override { record_->take(next_all()); }
  void on_close(std::error_code reason) override { record_->closed(reason); }

 private:
  echo_record* record_;
  std::size_t total_;
  std::size_t chunk_;
};

}  // namespace actnet::test
