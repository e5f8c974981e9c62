// The byte-layer seam (the place of TLS and KCP): a connection actor reads and writes through a
// layer exactly as on a plain stream. Each behaviour runs over no layer, a pass-through layer,
// a framing layer that changes the bytes, holds decoded bytes back and answers on its own, and
// TLS (against a blocking OpenSSL client); each in both epoll modes.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/actors/detail/byte_layer.hpp>
#include <actnet/actors/detail/tls_layer.hpp>
#include <actnet/actors/engine.hpp>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "actors/stream_end.hpp"
#include "actors/test_util.hpp"
#include "actors/tls_certs.hpp"

namespace actnet {
namespace {

using test::connect_to;
using test::eventually;
using test::running_engine;

// -- the framing layer's wire format --

// Records: [payload length, 2 bytes big-endian][type, 1 byte][payload, each byte xor 0x5a].
enum class record : std::uint8_t { data = 0, ping = 1, pong = 2, end = 3 };
constexpr char mask = 0x5a;
constexpr std::size_t max_payload = 4096;
constexpr std::size_t header = 3;

std::string frame(record type, std::string_view payload) {
  std::string out;
  out.push_back(static_cast<char>(payload.size() >> 8U));
  out.push_back(static_cast<char>(payload.size() & 0xffU));
  out.push_back(static_cast<char>(type));
  for (const char c : payload) {
    out.push_back(static_cast<char>(c ^ mask));
  }
  return out;
}

std::string frame_data(std::string_view plain) {
  std::string out;
  for (std::size_t at = 0; at < plain.size(); at += max_payload) {
    out += frame(record::data, plain.substr(at, max_payload));
  }
  return out;
}

// Whole records out of a byte stream.
class deframer {
 public:
  void feed(std::string_view bytes) { pending_.append(bytes); }
  // The next whole record; nullopt while it is incomplete; bad_message for a length past the
  // limit.
  result<std::optional<std::pair<record, std::string>>> next() {
    if (pending_.size() < header) {
      return std::optional<std::pair<record, std::string>>{};
    }
    const std::size_t length =
        (static_cast<std::size_t>(static_cast<unsigned char>(pending_[0])) << 8U) |
        static_cast<unsigned char>(pending_[1]);
    if (length > max_payload) {
      return std::make_error_code(std::errc::bad_message);
    }
    if (pending_.size() < header + length) {
      return std::optional<std::pair<record, std::string>>{};
    }
    std::string payload = pending_.substr(header, length);
    for (char& c : payload) {
      c = static_cast<char>(c ^ mask);
    }
    const auto type = static_cast<record>(pending_[2]);
    pending_.erase(0, header + length);
    return std::optional{std::pair{type, std::move(payload)}};
  }

 private:
  std::string pending_;
};

std::string_view text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};  // NOLINT
}

// Hands out what it holds, at most `max_out` bytes a call.
std::size_t hand_out(std::string& held, std::span<std::byte> plain, std::size_t max_out) {
  const std::size_t n = std::min({held.size(), plain.size(), max_out});
  std::memcpy(plain.data(), held.data(), n);
  held.erase(0, n);
  return n;
}

// -- the layers --

// Decodes data records, at most `max_out` plain bytes a call (holding the rest); answers a ping
// with a pong by itself; ends with an end record.
class framing_layer final : public detail::byte_layer {
 public:
  explicit framing_layer(std::size_t max_out) : max_out_(max_out) {}

  result<std::size_t> decode(std::span<const std::byte> wire, std::span<std::byte> plain,
                             elastic_buffer& reply) override {
    in_.feed(text(wire));
    for (;;) {
      auto r = in_.next();
      if (!r) {
        return r.error();
      }
      if (!*r) {
        break;
      }
      auto& [type, payload] = **r;
      if (type == record::data) {
        held_ += payload;
      } else if (type == record::ping) {
        if (const std::error_code ec = reply.write(frame(record::pong, payload))) {
          return ec;
        }
      } else {
        return std::make_error_code(std::errc::bad_message);  // a client sends no other
      }
    }
    return hand_out(held_, plain, max_out_);
  }
  [[nodiscard]] bool holds_plain() const noexcept override { return !held_.empty(); }
  std::error_code encode(std::span<const std::byte> plain, elastic_buffer& wire) override {
    return wire.write(frame_data(text(plain)));
  }
  std::error_code encode_end(elastic_buffer& wire) override {
    return wire.write(frame(record::end, {}));
  }

 private:
  std::size_t max_out_;
  deframer in_;
  std::string held_;
};

// The wire is the plain bytes: the layered path with nothing changed.
class pass_through_layer final : public detail::byte_layer {
 public:
  result<std::size_t> decode(std::span<const std::byte> wire, std::span<std::byte> plain,
                             elastic_buffer& /*reply*/) override {
    held_.append(text(wire));
    return hand_out(held_, plain, held_.size());
  }
  [[nodiscard]] bool holds_plain() const noexcept override { return !held_.empty(); }
  std::error_code encode(std::span<const std::byte> plain, elastic_buffer& wire) override {
    return wire.write(plain);
  }

 private:
  std::string held_;
};

enum class layer_kind : std::uint8_t { none, pass_through, framing, tls };

// The TLS cases' certificates, made once for the process.
test::test_pki& suite_pki() {
  static test::test_pki pki;
  return pki;
}
const test::test_pki::files& server_certificate() {
  static const test::test_pki::files files = suite_pki().issue("server", "localhost", {});
  return files;
}
SSL_CTX* client_context() {
  static const test::tls_client_context context(suite_pki().ca_file());
  return context.get();
}

// A blocking client that speaks the layer's wire format (TLS: an OpenSSL client on the socket).
class peer {
 public:
  peer(const address& server, layer_kind kind)
      : conn_(connect_to(server), kind == layer_kind::tls ? client_context() : nullptr),
        kind_(kind) {}

  [[nodiscard]] bool connected() const { return conn_.ok(); }
  [[nodiscard]] int fd() const { return conn_.fd(); }
  // Ends this side's sending: the FIN (TLS: close_notify first, as a clean end needs).
  bool shut_write() { return conn_.shut_write(); }

  bool send(std::string_view plain) {
    return conn_.send_all(kind_ == layer_kind::framing ? frame_data(plain) : plain);
  }
  bool send_wire(std::string_view wire) { return test::send_all(conn_.fd(), wire); }
  // Reads until `n` plain bytes came (fewer on end, error or the receive timeout).
  std::string receive(std::size_t n) {
    while (plain_.size() < n && fill()) {
    }
    std::string out = plain_.substr(0, std::min(n, plain_.size()));
    plain_.erase(0, out.size());
    return out;
  }
  // Reads to the socket's end: the plain bytes that came first; ended() then says whether the
  // framing layer's end record preceded the end.
  std::string receive_to_end() {
    while (fill()) {
    }
    return std::exchange(plain_, {});
  }
  [[nodiscard]] bool ended() const {
    return kind_ == layer_kind::framing || kind_ == layer_kind::tls ? end_record_ : eof_;
  }
  [[nodiscard]] bool eof() const { return eof_; }
  [[nodiscard]] const std::string& pongs() const { return pongs_; }

  // One receive: false at the end, on an error or at the receive timeout.
  bool fill() {
    char chunk[65536];  // NOLINT(cppcoreguidelines-avoid-c-arrays)
    const ssize_t n = conn_.recv_some(chunk, sizeof chunk);
    if (kind_ == layer_kind::tls && n <= 0) {
      // close_notify, then (at the next read) the socket's end.
      end_record_ = end_record_ || n == 0;
      char c = 0;
      eof_ = ::recv(conn_.fd(), &c, 1, 0) == 0;
      return false;
    }
    if (n <= 0) {
      eof_ = n == 0;
      return false;
    }
    const std::string_view bytes(chunk, static_cast<std::size_t>(n));
    if (kind_ != layer_kind::framing) {
      plain_.append(bytes);
      return true;
    }
    in_.feed(bytes);
    for (;;) {
      auto r = in_.next();
      if (!r || !*r) {
        return static_cast<bool>(r);
      }
      auto& [type, payload] = **r;
      if (type == record::data && !end_record_) {
        plain_ += payload;
      } else if (type == record::pong) {
        pongs_ += payload;
      } else {
        end_record_ = true;  // (data after it would be a bug: dropped, so the test fails)
      }
    }
  }

  test::stream_end conn_;
  layer_kind kind_;
  deframer in_;
  std::string plain_;
  std::string pongs_;
  bool end_record_ = false;
  bool eof_ = false;
};

// What the server's connections saw, for the test's thread.
struct server_log {
  std::mutex lock;
  std::string received;
  std::error_code closed_with;
  std::atomic<int> closes{0};
  std::atomic<int> unwritable{0};
  std::atomic<int> writable_again{0};
  std::atomic<int> data_calls{0};

  void add(std::string_view bytes) {
    const std::scoped_lock hold(lock);
    received.append(bytes);
  }
  std::string all() {
    const std::scoped_lock hold(lock);
    return received;
  }
};

// A connection that records its close in the test's log.
class logged : public connection {
 public:
  explicit logged(server_log* log) : log_(log) {}
  void on_close(std::error_code reason) override {
    {
      const std::scoped_lock hold(log_->lock);
      log_->closed_with = reason;
    }
    ++log_->closes;
  }

 protected:
  server_log* log_;
};

// Echoes whole lines: peek_all to find the end of a line, next() to take it. With `offloaded`,
// each line goes through the worker pool (offload_write); with `pausing`, reading pauses after
// each line and resumes a millisecond later.
class line_echo : public logged {
 public:
  line_echo(server_log* log, bool offloaded, bool pausing)
      : logged(log), offloaded_(offloaded), pausing_(pausing) {}

  void on_data() override {
    ++log_->data_calls;
    for (;;) {
      const byte_views all = peek_all();
      std::string joined(text(all.first));
      joined += text(all.second);
      const std::size_t end = joined.find('\n');
      if (end == std::string::npos) {
        return;
      }
      const result<byte_views> line = next(end + 1);
      ASSERT_TRUE(line.has_value());
      if (offloaded_) {
        ASSERT_FALSE(offload_write([copy = joined.substr(0, end + 1)] { return copy; }));
      } else {
        ASSERT_FALSE(write(*line));
      }
      if (pausing_) {
        pause_reading();
        after(std::chrono::milliseconds(1), [](connection& c) {
          c.resume_reading();
          c.wake();  // the lines still buffered in the ring
        });
        return;
      }
    }
  }

 private:
  bool offloaded_;
  bool pausing_;
};

// On "go": writes `size` pattern bytes at once, past the high watermark.
class bulk_sender : public connection {
 public:
  bulk_sender(server_log* log, std::size_t size) : log_(log), size_(size) {}
  // A fixed, small send buffer: the kernel's autotuning could otherwise take the whole reply
  // from a slow build before the outbound buffer reaches the high watermark.
  void on_open() override { ASSERT_FALSE(set_send_buffer(64 * 1024)); }
  void on_data() override {
    (void)next_all();
    constexpr std::size_t chunk = 64 * 1024;
    for (std::size_t at = 0; at < size_; at += chunk) {
      const std::string part = test::pattern_bytes(at, std::min(chunk, size_ - at));
      ASSERT_FALSE(write(std::string_view(part)));
    }
  }
  void on_writable_changed(bool writable) override {
    ++(writable ? log_->writable_again : log_->unwritable);
    connection::on_writable_changed(writable);
  }

 private:
  server_log* log_;
  std::size_t size_;
};

// Greets and shuts its writing at once; keeps reading what the peer sends after.
class greet_and_shut : public logged {
 public:
  explicit greet_and_shut(server_log* log) : logged(log) {}
  void on_open() override {
    ASSERT_FALSE(write(std::string_view("hello")));
    ASSERT_FALSE(shutdown_write());
    EXPECT_EQ(write(std::string_view("more")), errc::connection_closed);
  }
  void on_data() override {
    const byte_views all = next_all();
    log_->add(text(all.first));
    log_->add(text(all.second));
  }
};

class byte_layers : public ::testing::TestWithParam<std::tuple<layer_kind, bool>> {
 protected:
  [[nodiscard]] layer_kind kind() const { return std::get<0>(GetParam()); }
  [[nodiscard]] engine_options options() const {
    engine_options o = test::small_options();
    o.edge_triggered = std::get<1>(GetParam());
    return o;
  }
  // Listens with connections from `make`, through this case's layer (the framing layer hands
  // out `max_out` bytes a decode).
  address listen(engine& e, engine::factory make, std::size_t max_out = SIZE_MAX) {
    switch (kind()) {
      case layer_kind::none:
        break;
      case layer_kind::pass_through:
        make = detail::layered(std::move(make), [] {
          return std::unique_ptr<detail::byte_layer>(std::make_unique<pass_through_layer>());
        });
        break;
      case layer_kind::framing:
        make = detail::layered(std::move(make), [max_out] {
          return std::unique_ptr<detail::byte_layer>(std::make_unique<framing_layer>(max_out));
        });
        break;
      case layer_kind::tls: {
        tls_options o;
        o.cert_file = server_certificate().cert;
        o.key_file = server_certificate().key;
        std::shared_ptr<detail::tls_context> context =
            detail::make_tls_server(o, nullptr, std::make_shared<detail::tls_counters>());
        make =
            detail::layered(std::move(make), [context] { return detail::make_tls_layer(context); });
        break;
      }
    }
    return e.listen("tcp://127.0.0.1:0", std::move(make));
  }
  // Sends `count` lines in one piece to a line_echo and expects them all back, in order.
  void echo_lines_at_once(std::size_t count, bool offloaded, bool pausing,
                          std::size_t max_out = SIZE_MAX);
};

std::string lines(std::size_t count) {
  std::string all;
  for (std::size_t i = 0; i < count; ++i) {
    all += "line " + std::to_string(i) + ' ' + test::pattern_bytes(i, i % 97) + '\n';
  }
  return all;
}

void byte_layers::echo_lines_at_once(std::size_t count, bool offloaded, bool pausing,
                                     std::size_t max_out) {
  server_log log;
  running_engine e(options());
  const address bound = listen(
      *e, [&] { return std::make_unique<line_echo>(&log, offloaded, pausing); }, max_out);
  e.start();
  peer p(bound, kind());
  ASSERT_TRUE(p.connected());
  const std::string all = lines(count);
  ASSERT_TRUE(p.send(all));
  EXPECT_EQ(p.receive(all.size()), all);
}

TEST_P(byte_layers, lines_sent_in_pieces_are_peeked_taken_and_echoed_in_order) {
  server_log log;
  running_engine e(options());
  const address bound = listen(*e, [&] { return std::make_unique<line_echo>(&log, false, false); });
  e.start();
  peer p(bound, kind());
  ASSERT_TRUE(p.connected());
  const std::string all = lines(2000);
  // Pieces of 1 to 1,000 bytes: lines cut across reads and records.
  std::size_t at = 0;
  for (std::size_t size = 1; at < all.size(); size = size * 7 % 1000 + 1) {
    ASSERT_TRUE(p.send(std::string_view(all).substr(at, size)));
    at += size;
  }
  EXPECT_EQ(p.receive(all.size()), all);
}

TEST_P(byte_layers, offload_write_results_arrive_in_order) {
  echo_lines_at_once(500, /*offloaded=*/true, /*pausing=*/false);
}

TEST_P(byte_layers, paused_reading_holds_what_came_and_the_resume_delivers_it) {
  // The framing layer hands out 5 bytes a decode: most of each read waits in the layer across
  // the pauses.
  echo_lines_at_once(300, /*offloaded=*/false, /*pausing=*/true, 5);
}

TEST_P(byte_layers, a_reply_past_the_high_watermark_pauses_then_arrives_whole) {
  server_log log;
  engine_options o = options();
  o.outbound_high_watermark = 256 * 1024;
  o.outbound_low_watermark = 64 * 1024;
  running_engine e(o);
  constexpr std::size_t size = 4 * 1024 * 1024;
  const address bound = listen(*e, [&] { return std::make_unique<bulk_sender>(&log, size); });
  e.start();
  peer p(bound, kind());
  ASSERT_TRUE(p.connected());
  const int small = 16 * 1024;
  ASSERT_EQ(::setsockopt(p.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  ASSERT_TRUE(p.send("go"));
  ASSERT_TRUE(eventually([&] { return log.unwritable > 0; }));
  const std::string got = p.receive(size);
  ASSERT_EQ(got.size(), size);
  EXPECT_EQ(got, test::pattern_bytes(0, size));
  EXPECT_TRUE(eventually([&] { return log.writable_again > 0; }));
}

TEST_P(byte_layers, shutdown_write_ends_the_output_and_reading_goes_on) {
  server_log log;
  running_engine e(options());
  const address bound = listen(*e, [&] { return std::make_unique<greet_and_shut>(&log); });
  e.start();
  peer p(bound, kind());
  ASSERT_TRUE(p.connected());
  EXPECT_EQ(p.receive_to_end(), "hello");
  EXPECT_TRUE(p.ended());
  EXPECT_TRUE(p.eof());
  ASSERT_TRUE(p.send("after the fin"));
  EXPECT_TRUE(eventually([&] { return log.all() == "after the fin"; }));
  ASSERT_TRUE(p.shut_write());
  ASSERT_TRUE(eventually([&] { return log.closes == 1; }));
  const std::scoped_lock hold(log.lock);
  EXPECT_EQ(log.closed_with, errc::end_of_stream);
}

TEST_P(byte_layers, the_peers_fin_closes_after_the_reply) {
  server_log log;
  running_engine e(options());
  const address bound = listen(*e, [&] { return std::make_unique<line_echo>(&log, false, false); });
  e.start();
  peer p(bound, kind());
  ASSERT_TRUE(p.connected());
  ASSERT_TRUE(p.send("last words\n"));
  ASSERT_TRUE(p.shut_write());
  EXPECT_EQ(p.receive_to_end(), "last words\n");
  EXPECT_TRUE(p.ended());
  ASSERT_TRUE(eventually([&] { return log.closes == 1; }));
  const std::scoped_lock hold(log.lock);
  EXPECT_EQ(log.closed_with, errc::end_of_stream);
}

std::string name(const ::testing::TestParamInfo<std::tuple<layer_kind, bool>>& info) {
  static constexpr std::array<const char*, 4> kinds{"plain", "pass_through", "framing", "tls"};
  return std::string(kinds.at(static_cast<std::size_t>(std::get<0>(info.param)))) +
         (std::get<1>(info.param) ? "_edge" : "_level");
}

INSTANTIATE_TEST_SUITE_P(transports, byte_layers,
                         ::testing::Combine(::testing::Values(layer_kind::none,
                                                              layer_kind::pass_through,
                                                              layer_kind::framing, layer_kind::tls),
                                            ::testing::Bool()),
                         name);

// -- what only a transforming layer does --

address listen_framed(engine& e, server_log& log) {
  return e.listen("tcp://127.0.0.1:0",
                  detail::layered([&] { return std::make_unique<line_echo>(&log, false, false); },
                                  [] { return std::make_unique<framing_layer>(SIZE_MAX); }));
}

TEST(byte_layer, the_layer_answers_on_its_own_and_on_data_sees_only_data) {
  server_log log;
  running_engine e;
  const address bound = listen_framed(*e, log);
  e.start();
  peer p(bound, layer_kind::framing);
  ASSERT_TRUE(p.connected());
  ASSERT_TRUE(p.send_wire(frame(record::ping, "one") + frame_data("a line\n") +
                          frame(record::ping, "two")));
  EXPECT_EQ(p.receive(7), "a line\n");
  while (p.pongs().size() < 6 && p.fill()) {
  }
  EXPECT_EQ(p.pongs(), "onetwo");
  EXPECT_EQ(log.data_calls, 1);
}

TEST(byte_layer, a_decode_error_closes_the_connection_with_it) {
  server_log log;
  running_engine e;
  const address bound = listen_framed(*e, log);
  e.start();
  peer p(bound, layer_kind::framing);
  ASSERT_TRUE(p.connected());
  ASSERT_TRUE(p.send_wire(std::string("\xff\xff\x00", 3)));  // a length past the limit
  ASSERT_TRUE(eventually([&] { return log.closes == 1; }));
  {
    const std::scoped_lock hold(log.lock);
    EXPECT_EQ(log.closed_with, std::errc::bad_message);
  }
  EXPECT_EQ(p.receive_to_end(), "");
  EXPECT_EQ(log.data_calls, 0);
}

// Refuses to encode more than 4 bytes at once.
class short_writes_layer final : public detail::byte_layer {
 public:
  result<std::size_t> decode(std::span<const std::byte> /*wire*/, std::span<std::byte> /*plain*/,
                             elastic_buffer& /*reply*/) override {
    return std::size_t{0};
  }
  [[nodiscard]] bool holds_plain() const noexcept override { return false; }
  std::error_code encode(std::span<const std::byte> plain, elastic_buffer& wire) override {
    if (plain.size() > 4) {
      return std::make_error_code(std::errc::message_size);
    }
    return wire.write(plain);
  }
};

// Writes a short greeting, then one the layer refuses.
class refused_writer : public logged {
 public:
  explicit refused_writer(server_log* log) : logged(log) {}
  void on_open() override {
    EXPECT_FALSE(write(std::string_view("hi")));
    EXPECT_EQ(write(std::string_view("too long")), std::errc::message_size);
  }
};

TEST(byte_layer, an_encode_error_fails_the_write_and_closes_the_connection_with_it) {
  server_log log;
  running_engine e;
  const address bound = e->listen(
      "tcp://127.0.0.1:0", detail::layered([&] { return std::make_unique<refused_writer>(&log); },
                                           [] { return std::make_unique<short_writes_layer>(); }));
  e.start();
  peer p(bound, layer_kind::pass_through);
  ASSERT_TRUE(p.connected());
  ASSERT_TRUE(eventually([&] { return log.closes == 1; }));
  {
    const std::scoped_lock hold(log.lock);
    EXPECT_EQ(log.closed_with, std::errc::message_size);
  }
  EXPECT_EQ(p.receive_to_end(), "hi");  // what went before the refused write still arrives
}

TEST(byte_layer, a_factory_that_makes_nothing_closes_the_socket_and_the_engine_serves_on) {
  server_log log;
  running_engine e;
  bool first = true;
  const address bound =
      e->listen("tcp://127.0.0.1:0", detail::layered(
                                         [&]() -> std::unique_ptr<connection> {
                                           if (std::exchange(first, false)) {
                                             return nullptr;
                                           }
                                           return std::make_unique<line_echo>(&log, false, false);
                                         },
                                         [] { return std::make_unique<pass_through_layer>(); }));
  e.start();
  peer refused(bound, layer_kind::pass_through);
  ASSERT_TRUE(refused.connected());
  EXPECT_EQ(refused.receive_to_end(), "");
  peer served(bound, layer_kind::pass_through);
  ASSERT_TRUE(served.connected());
  ASSERT_TRUE(served.send("still here\n"));
  EXPECT_EQ(served.receive(11), "still here\n");
}

}  // namespace
}  // namespace actnet
