// TLS: listeners and dials over OpenSSL, on every back end the suite runs on. Certificates are
// made at run time (tls_certs.hpp); a blocking OpenSSL client stands in for peers that
// misbehave in ways actnet's own client does not.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "actors/stream_end.hpp"
#include "actors/test_util.hpp"
#include "actors/tls_certs.hpp"

namespace actnet {
namespace {

using test::eventually;
using test::running_engine;

// What the connections of a test saw, from their loops' threads.
struct seen {
  std::mutex m;
  std::vector<tls_info> opened;  // tls() at on_open
  std::vector<std::error_code> closed;
  std::string received;  // a client's: every byte echoed back
  std::atomic<int> opens{0};
  std::atomic<int> closes{0};
  std::atomic<int> peer_shutdowns{0};

  std::vector<std::error_code> closes_seen() {
    const std::lock_guard lock(m);
    return closed;
  }
  std::optional<tls_info> first_open() {
    const std::lock_guard lock(m);
    return opened.empty() ? std::nullopt : std::optional(opened.front());
  }
};

// A connection that records its opening (with its tls()), the peer's end and its close.
class recorded : public connection {
 public:
  explicit recorded(seen* s) : s_(s) {}
  void on_open() override {
    {
      const std::lock_guard lock(s_->m);
      s_->opened.push_back(tls());
    }
    s_->opens.fetch_add(1);
  }
  void on_peer_shutdown() override {
    s_->peer_shutdowns.fetch_add(1);
    close();
  }
  void on_close(std::error_code reason) override {
    {
      const std::lock_guard lock(s_->m);
      s_->closed.push_back(reason);
    }
    s_->closes.fetch_add(1);
  }

 protected:
  seen* s_;
};

// Echoes.
class echo_conn : public recorded {
 public:
  using recorded::recorded;
  void on_data() override { (void)write(next_all()); }
};

// Sends `payload` at on_open and keeps what comes back; closes when all of it has (with
// `close_when_done`).
class sender_conn : public recorded {
 public:
  sender_conn(seen* s, std::string payload, bool close_when_done)
      : recorded(s), payload_(std::move(payload)), close_when_done_(close_when_done) {}
  void on_open() override {
    recorded::on_open();
    // In pieces, some larger than a TLS record.
    for (std::size_t at = 0; at < payload_.size(); at += 40'000) {
      (void)write(std::string_view(payload_).substr(at, 40'000));
    }
  }
  void on_data() override {
    const byte_views got = next_all();
    const std::lock_guard lock(s_->m);
    for (const std::span<const std::byte> part : {got.first, got.second}) {
      s_->received.append(reinterpret_cast<const char*>(part.data()), part.size());  // NOLINT
    }
    if (close_when_done_ && s_->received.size() >= payload_.size()) {
      close();
    }
  }

 private:
  std::string payload_;
  bool close_when_done_;
};

// A blocking OpenSSL client of 127.0.0.1:port that trusts `ca` (!ok() when its handshake
// failed); `max_version` caps the protocol (0: none).
struct raw_tls_client {
  test::tls_client_context context;
  test::stream_end conn;
  raw_tls_client(std::uint16_t port, const std::string& ca, int max_version = 0)
      : context(ca, max_version),
        conn(test::connect_to(address::parse("tcp://127.0.0.1:" + std::to_string(port))),
             context.get()) {}
  // Sends `text` and reads as many bytes back; what came.
  std::string round_trip(std::string_view text) {
    return conn.send_all(text) ? conn.recv_exact(text.size()) : std::string();
  }
};

class tls_fixture : public ::testing::Test {
 protected:
  tls_fixture() : server_files_(pki_.issue("server", "localhost", {"localhost"})) {}

  tls_options server_options() const {
    tls_options o;
    o.cert_file = server_files_.cert;
    o.key_file = server_files_.key;
    return o;
  }
  tls_options client_options() const {
    tls_options o;
    o.ca_file = pki_.ca_file();
    return o;
  }
  // A TLS echo listener on 127.0.0.1; its port.
  std::uint16_t listen_echo(running_engine& e, const tls_options& options, seen* s) {
    listen_options lo;
    lo.tls = options;
    return e->listen<echo_conn>(lo, "tls://127.0.0.1:0", s).port();
  }
  static std::string url(std::string_view host, std::uint16_t port) {
    return "tls://" + std::string(host) + ":" + std::to_string(port);
  }
  // Dials with a sender_conn; the dial's outcome.
  static result<conn_ref> dial_and_wait(running_engine& e, const std::string& to,
                                        const dial_options& options, seen* s,
                                        std::string payload = "hello",
                                        bool close_when_done = true) {
    std::mutex m;
    std::optional<result<conn_ref>> outcome;
    e->dial<sender_conn>(
        to, options,
        [&](result<conn_ref> r) {
          const std::lock_guard lock(m);
          outcome = r;
        },
        s, std::move(payload), close_when_done);
    const bool done = eventually([&] {
      const std::lock_guard lock(m);
      return outcome.has_value();
    });
    if (!done) {
      return make_error_code(errc::engine_stopped);
    }
    const std::lock_guard lock(m);
    return *outcome;
  }

  // A record for a connection that may outlive the scope that dialed it.
  seen& another() { return kept_.emplace_back(); }

  test::test_pki pki_;
  test::test_pki::files server_files_;
  std::deque<seen> kept_;  // (outlives the test's engine)
};

TEST_F(tls_fixture, a_megabyte_each_way_arrives_whole_and_both_sides_see_the_session) {
  seen server;
  seen client;
  running_engine e;
  tls_options so = server_options();
  so.alpn = {"h2", "http/1.1"};
  const std::uint16_t port = listen_echo(e, so, &server);
  e.start();
  const std::string payload = test::pattern_bytes(0, 1 << 20);
  dial_options d;
  d.tls = client_options();
  d.tls->alpn = {"http/1.1"};
  const result<conn_ref> r = dial_and_wait(e, url("localhost", port), d, &client, payload);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(eventually([&] { return client.closes.load() == 1 && server.closes.load() == 1; }));
  {
    const std::lock_guard lock(client.m);
    ASSERT_EQ(client.received.size(), payload.size());
    EXPECT_TRUE(client.received == payload);
  }
  const tls_info at_client = *client.first_open();
  const tls_info at_server = *server.first_open();
  EXPECT_EQ(at_client.version, "TLSv1.3");
  EXPECT_EQ(at_server.version, "TLSv1.3");
  EXPECT_FALSE(at_client.cipher.empty());
  EXPECT_EQ(at_client.alpn, "http/1.1");
  EXPECT_EQ(at_server.alpn, "http/1.1");
  EXPECT_EQ(at_server.server_name, "localhost");
  EXPECT_EQ(at_client.peer_subject, "CN=localhost");
  EXPECT_TRUE(at_server.peer_subject.empty());  // no client certificate
  // The client closed: close_notify, then the FIN; the server's echo then ends cleanly.
  EXPECT_EQ(client.closes_seen().front(), std::error_code{});
  EXPECT_EQ(server.closes_seen().front(), make_error_code(errc::end_of_stream));
  EXPECT_EQ(server.peer_shutdowns.load(), 1);
  EXPECT_EQ(e->tls_stats_of(0).handshakes, 1U);
  EXPECT_EQ(e->tls_stats_of(0).failures, 0U);
}

TEST_F(tls_fixture, tls_1_2_is_the_floor_and_works_when_the_client_asks_for_it_alone) {
  seen server;
  seen client;
  running_engine e;
  const std::uint16_t port = listen_echo(e, server_options(), &server);
  e.start();
  raw_tls_client old(port, pki_.ca_file(), TLS1_2_VERSION);
  ASSERT_TRUE(old.conn.ok());
  EXPECT_STREQ(SSL_get_version(old.conn.ssl()), "TLSv1.2");
  EXPECT_EQ(old.round_trip("ping"), "ping");
  EXPECT_EQ(server.first_open()->version, "TLSv1.2");
  (void)old.conn.shut_write();
}

TEST_F(tls_fixture, a_client_refuses_a_certificate_it_cannot_verify) {
  seen server;
  seen client;
  running_engine e;
  const std::uint16_t port = listen_echo(e, server_options(), &server);
  e.start();
  dial_options d;
  d.tls = tls_options{};  // the system's store, which does not know the test CA
  const result<conn_ref> r = dial_and_wait(e, url("localhost", port), d, &client);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::tls_certificate_rejected));
  EXPECT_EQ(client.opens.load(), 0);
  EXPECT_EQ(client.closes.load(), 0);  // never opened: no on_close
  ASSERT_TRUE(eventually([&] { return e->tls_stats_of(0).failures == 1; }));
  EXPECT_EQ(server.opens.load(), 0);
  EXPECT_EQ(server.closes.load(), 0);
}

TEST_F(tls_fixture, a_client_checks_the_name_it_dialed) {
  seen server;
  seen client;
  running_engine e;
  const std::uint16_t port = listen_echo(e, server_options(), &server);
  e.start();
  dial_options d;
  d.tls = client_options();
  d.tls->server_name = "elsewhere.test";
  const result<conn_ref> r = dial_and_wait(e, url("127.0.0.1", port), d, &client);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::tls_certificate_rejected));
  // By IP address: the certificate's IP SAN.
  dial_options by_ip_options;
  by_ip_options.tls = client_options();
  const result<conn_ref> by_ip = dial_and_wait(e, url("127.0.0.1", port), by_ip_options, &client);
  EXPECT_TRUE(by_ip) << by_ip.error().message();
}

TEST_F(tls_fixture, plaintext_to_a_tls_port_is_closed_counted_and_never_reaches_the_actor) {
  seen server;
  running_engine e;
  const std::uint16_t port = listen_echo(e, server_options(), &server);
  e.start();
  const int fd = test::connect_to(address::parse("tcp://127.0.0.1:" + std::to_string(port)));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  // The server answers with an alert at most, then closes.
  const std::string answer = test::read_to_end(fd);
  EXPECT_EQ(answer.find("HTTP"), std::string::npos);
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return e->tls_stats_of(0).failures == 1; }));
  // (Counted at the failure; the connection goes at the loop's next reap.)
  EXPECT_TRUE(eventually([&] { return e->count_connections() == 0; }));
  EXPECT_EQ(server.opens.load(), 0);
  EXPECT_EQ(server.closes.load(), 0);
}

TEST_F(tls_fixture, a_stalled_handshake_is_closed_at_its_timeout) {
  seen server;
  running_engine e;
  tls_options so = server_options();
  so.handshake_timeout = std::chrono::milliseconds(200);
  const std::uint16_t port = listen_echo(e, so, &server);
  e.start();
  const int fd = test::connect_to(address::parse("tcp://127.0.0.1:" + std::to_string(port)));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, std::string("\x16\x03\x01", 3)));  // a record's first bytes
  EXPECT_TRUE(test::peer_closed(fd));
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return e->tls_stats_of(0).failures == 1; }));
  EXPECT_EQ(server.opens.load(), 0);
}

TEST_F(tls_fixture, sni_picks_the_certificate_by_the_name_asked_for) {
  seen server;
  seen client;
  running_engine e;
  tls_options so = server_options();
  const test::test_pki::files a = pki_.issue("a", "a.test", {"a.test"});
  const test::test_pki::files b = pki_.issue("b", "wild.b.test", {"*.b.test"});
  so.sni = {{"a.test", a.cert, a.key}, {"*.b.test", b.cert, b.key}};
  const std::uint16_t port = listen_echo(e, so, &server);
  e.start();
  const auto subject_for = [&](const std::string& name) {
    seen& c = another();
    dial_options d;
    d.tls = client_options();
    d.tls->server_name = name;
    const result<conn_ref> r = dial_and_wait(e, url("127.0.0.1", port), d, &c);
    EXPECT_TRUE(r) << name << ": " << r.error().message();
    return r ? c.first_open()->peer_subject : std::string();
  };
  EXPECT_EQ(subject_for("a.test"), "CN=a.test");
  EXPECT_EQ(subject_for("api.b.test"), "CN=wild.b.test");
  EXPECT_EQ(subject_for("localhost"), "CN=localhost");  // no entry: the default
}

TEST_F(tls_fixture, a_required_client_certificate_is_checked) {
  seen server;
  running_engine e;
  tls_options so = server_options();
  so.client_certificates = client_auth::required;
  so.ca_file = pki_.ca_file();
  const std::uint16_t port = listen_echo(e, so, &server);
  e.start();
  seen& without = another();  // (outlives the engine)
  dial_options d;
  d.tls = client_options();
  // TLS 1.3: the client's handshake ends before the server has checked it; the server's
  // refusal then ends the connection before it carries anything.
  (void)dial_and_wait(e, url("localhost", port), d, &without);
  ASSERT_TRUE(eventually([&] { return e->tls_stats_of(0).failures == 1; }));
  EXPECT_EQ(server.opens.load(), 0);
  ASSERT_TRUE(eventually([&] { return without.opens.load() == 0 || without.closes.load() == 1; }));

  const test::test_pki::files mine = pki_.issue("client", "client one", {}, false);
  seen& with = another();  // (outlives the engine)
  d.tls->cert_file = mine.cert;
  d.tls->key_file = mine.key;
  const result<conn_ref> r = dial_and_wait(e, url("localhost", port), d, &with);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(eventually([&] { return server.opens.load() == 1; }));
  EXPECT_EQ(server.first_open()->peer_subject, "CN=client one");
}

TEST_F(tls_fixture, alpn_without_a_common_protocol_fails_the_handshake) {
  seen server;
  seen client;
  running_engine e;
  tls_options so = server_options();
  so.alpn = {"h2"};
  const std::uint16_t port = listen_echo(e, so, &server);
  e.start();
  dial_options d;
  d.tls = client_options();
  d.tls->alpn = {"redis"};
  const result<conn_ref> r = dial_and_wait(e, url("localhost", port), d, &client);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::tls_handshake_failed));
}

TEST_F(tls_fixture, a_reconnecting_dial_resumes_its_session) {
  running_engine e;
  listen_options lo;
  lo.tls = server_options();
  // Echoes once, then closes: the client's connection ends with end_of_stream, and its dial
  // connects again.
  struct echo_once : connection {
    void on_data() override {
      (void)write(next_all());
      close();
    }
  };
  const std::uint16_t port = e->listen<echo_once>(lo, "tls://127.0.0.1:0").port();
  e.start();
  seen& client = another();  // (outlives the engine)
  dial_options d;
  d.tls = client_options();
  d.reconnect = reconnect_policy{.initial_delay = std::chrono::milliseconds(10),
                                 .max_delay = std::chrono::milliseconds(10)};
  e->dial<sender_conn>(
      url("localhost", port), d, [](const result<conn_ref>&) {}, &client, std::string("x"), false);
  ASSERT_TRUE(eventually([&] { return client.opens.load() >= 3; }));
  e.stop();
  const std::lock_guard lock(client.m);
  EXPECT_FALSE(client.opened[0].resumed);
  EXPECT_TRUE(client.opened[1].resumed);
  EXPECT_TRUE(client.opened[2].resumed);
}

TEST_F(tls_fixture, a_reconnecting_dial_counts_failed_handshakes_and_gives_up) {
  seen server;
  seen client;
  running_engine e;
  const std::uint16_t port = listen_echo(e, server_options(), &server);
  e.start();
  dial_options d;
  d.tls = tls_options{};  // the system's store: every handshake fails
  d.reconnect = reconnect_policy{.initial_delay = std::chrono::milliseconds(5),
                                 .max_delay = std::chrono::milliseconds(5),
                                 .max_attempts = 3};
  std::mutex m;
  std::vector<std::error_code> told;
  e->dial<sender_conn>(
      url("localhost", port), d,
      [&](const result<conn_ref>& r) {
        const std::lock_guard lock(m);
        told.push_back(r ? std::error_code{} : r.error());
      },
      &client, std::string("x"), false);
  ASSERT_TRUE(eventually([&] { return e->tls_stats_of(0).failures >= 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // no fourth attempt comes
  EXPECT_EQ(e->tls_stats_of(0).failures, 3U);
  const std::lock_guard lock(m);
  ASSERT_EQ(told.size(), 3U);
  for (const std::error_code& ec : told) {
    EXPECT_EQ(ec, make_error_code(errc::tls_certificate_rejected));
  }
  EXPECT_EQ(client.opens.load(), 0);
}

TEST_F(tls_fixture, a_fin_without_close_notify_is_truncation_not_a_clean_end) {
  seen server;
  running_engine e;
  const std::uint16_t port = listen_echo(e, server_options(), &server);
  e.start();
  raw_tls_client peer(port, pki_.ca_file());
  ASSERT_TRUE(peer.conn.ok());
  ASSERT_EQ(peer.round_trip("ping"), "ping");
  ::shutdown(peer.conn.fd(), SHUT_WR);  // the FIN, without close_notify
  ASSERT_TRUE(eventually([&] { return server.closes.load() == 1; }));
  EXPECT_EQ(server.closes_seen().front(), make_error_code(errc::tls_truncated));
  EXPECT_EQ(server.peer_shutdowns.load(), 0);
}

TEST_F(tls_fixture, the_servers_close_sends_close_notify_which_the_client_sees_as_a_clean_end) {
  seen server;
  running_engine e;
  listen_options lo;
  lo.tls = server_options();
  // A server that closes at once after its handshake.
  struct closer : connection {
    void on_open() override {
      (void)write(std::string_view("bye"));
      close();
    }
  };
  const std::uint16_t port = e->listen<closer>(lo, "tls://127.0.0.1:0").port();
  e.start();
  seen& client = another();  // (outlives the engine)
  dial_options d;
  d.tls = client_options();
  const result<conn_ref> r = dial_and_wait(e, url("localhost", port), d, &client, "", false);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(eventually([&] { return client.closes.load() == 1; }));
  EXPECT_EQ(client.peer_shutdowns.load(), 1);
  // Its own close() after the peer's close_notify: a clean end.
  EXPECT_EQ(client.closes_seen().front(), make_error_code(errc::end_of_stream));
  const std::lock_guard lock(client.m);
  EXPECT_EQ(client.received, "bye");
}

TEST_F(tls_fixture, reload_swaps_the_certificate_for_new_connections_and_refuses_a_bad_file) {
  seen server;
  running_engine e;
  const std::uint16_t port = listen_echo(e, server_options(), &server);
  e.start();
  const auto subject = [&] {
    seen& c = another();
    dial_options d;
    d.tls = client_options();
    const result<conn_ref> r = dial_and_wait(e, url("localhost", port), d, &c);
    return r ? c.first_open()->peer_subject : r.error().message();
  };
  EXPECT_EQ(subject(), "CN=localhost");
  tls_options bad = server_options();
  bad.cert_file = pki_.dir() + "/missing.pem";
  try {
    e->reload_tls(0, bad);
    ADD_FAILURE() << "a missing file was taken";
  } catch (const std::invalid_argument& err) {
    EXPECT_NE(std::string(err.what()).find("missing.pem"), std::string::npos) << err.what();
  }
  EXPECT_EQ(subject(), "CN=localhost");  // the old context stays
  const test::test_pki::files next = pki_.issue("next", "next one", {"localhost"});
  tls_options good = server_options();
  good.cert_file = next.cert;
  good.key_file = next.key;
  e->reload_tls(0, good);
  EXPECT_EQ(subject(), "CN=next one");
  EXPECT_THROW(e->reload_tls(1, good), std::out_of_range);
}

// openssl s_server on a free loopback port with `cert` and `key`, reversing each line it gets
// (-rev); stopped (SIGTERM) and reaped with the object.
class s_server {
 public:
  s_server(const std::string& cert, const std::string& key) {
    const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof any;
    ::bind(probe, reinterpret_cast<sockaddr*>(&any), sizeof any);      // NOLINT
    ::getsockname(probe, reinterpret_cast<sockaddr*>(&any), &length);  // NOLINT
    port_ = ntohs(any.sin_port);
    ::close(probe);
    const std::string accept = "127.0.0.1:" + std::to_string(port_);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      ::execlp("openssl", "openssl", "s_server", "-accept", accept.c_str(), "-cert", cert.c_str(),
               "-key", key.c_str(), "-rev", "-quiet", static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    const address at = address::parse("tcp://" + accept);
    (void)eventually([&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const bool up = ::connect(fd, at.data(), at.size()) == 0;
      ::close(fd);
      return up;
    });
  }
  s_server(const s_server&) = delete;
  s_server& operator=(const s_server&) = delete;
  ~s_server() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

TEST_F(tls_fixture, against_openssl_s_server_a_bad_certificate_is_an_error_not_a_connection) {
  running_engine e;
  e.start();
  const auto dial_to = [&](const s_server& server, const std::string& name) {
    seen& c = another();
    dial_options d;
    d.tls = client_options();
    d.tls->server_name = name;
    return std::pair{dial_and_wait(e, url("127.0.0.1", server.port()), d, &c, "hello\n", true), &c};
  };
  {
    s_server good(server_files_.cert, server_files_.key);
    const auto [r, c] = dial_to(good, "localhost");
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_TRUE(eventually([&, c = c] {
      const std::lock_guard lock(c->m);
      return c->received.find("olleh") != std::string::npos;
    }));
    EXPECT_EQ(c->first_open()->peer_subject, "CN=localhost");
    // (s_server serves one connection at a time: the next once this one has closed.)
    ASSERT_TRUE(eventually([&, c = c] { return c->closes.load() == 1; }));
    const auto [wrong_name, ignored] = dial_to(good, "elsewhere.test");
    EXPECT_EQ(wrong_name.error(), make_error_code(errc::tls_certificate_rejected));
  }
  {
    const test::test_pki::files old = pki_.issue("old", "localhost", {"localhost"}, true, false,
                                                 /*expired=*/true);
    s_server expired(old.cert, old.key);
    const auto [r, c] = dial_to(expired, "localhost");
    EXPECT_EQ(r.error(), make_error_code(errc::tls_certificate_rejected));
    EXPECT_EQ(c->opens.load(), 0);
  }
  {
    const test::test_pki::files own =
        pki_.issue("own", "localhost", {"localhost"}, true, /*self_signed=*/true);
    s_server unknown(own.cert, own.key);
    const auto [r, c] = dial_to(unknown, "localhost");
    EXPECT_EQ(r.error(), make_error_code(errc::tls_certificate_rejected));
    EXPECT_EQ(c->opens.load(), 0);
  }
}

TEST_F(tls_fixture, a_reload_under_load_drops_no_connection_and_new_ones_get_the_new_certificate) {
  constexpr int threads = 4;
  constexpr int per_thread = 40;
  // Per thread: each dial's outcome, its subject, and whether the reload had returned before
  // the dial began.
  struct outcome {
    bool ok = false;
    bool after_reload = false;
    std::string subject;
  };
  std::array<std::deque<seen>, threads> records;
  std::array<std::vector<outcome>, threads> outcomes;
  seen server;
  running_engine e(test::small_options(2));
  const std::uint16_t port = listen_echo(e, server_options(), &server);
  e.start();
  const test::test_pki::files next = pki_.issue("next", "next one", {"localhost"});
  std::atomic<int> done{0};
  std::atomic<bool> reloaded{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        seen& c = records[t].emplace_back();
        outcome o;
        o.after_reload = reloaded.load();
        dial_options d;
        d.tls = client_options();
        d.tls->session_resumption = false;  // a full handshake each: the certificate is shown
        const result<conn_ref> r = dial_and_wait(e, url("localhost", port), d, &c, "x");
        o.ok = static_cast<bool>(r) && eventually([&] { return c.closes.load() == 1; }) &&
               c.closes_seen().front() == std::error_code{};
        o.subject = r ? c.first_open()->peer_subject : r.error().message();
        outcomes[t].push_back(o);
        done.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return done.load() >= threads * per_thread / 3; }));
  tls_options changed = server_options();
  changed.cert_file = next.cert;
  changed.key_file = next.key;
  e->reload_tls(0, changed);
  reloaded = true;
  for (std::thread& c : clients) {
    c.join();
  }
  int old_seen = 0;
  int new_seen = 0;
  for (const std::vector<outcome>& list : outcomes) {
    ASSERT_EQ(list.size(), static_cast<std::size_t>(per_thread));
    bool switched = false;
    for (const outcome& o : list) {
      EXPECT_TRUE(o.ok) << o.subject;
      if (o.after_reload) {
        EXPECT_EQ(o.subject, "CN=next one");
      }
      if (o.subject == "CN=next one") {
        switched = true;
        ++new_seen;
      } else {
        EXPECT_FALSE(switched) << "the old certificate after the new one";
        EXPECT_EQ(o.subject, "CN=localhost");
        ++old_seen;
      }
    }
  }
  EXPECT_GT(old_seen, 0);
  EXPECT_GT(new_seen, 0);
  EXPECT_EQ(e->tls_stats_of(0).failures, 0U);
}

// Writes `size` pattern bytes at on_open, in 64 KiB writes (past the outbound cap: closed).
class flooder : public recorded {
 public:
  flooder(seen* s, std::size_t size) : recorded(s), size_(size) {}
  void on_open() override {
    recorded::on_open();
    constexpr std::size_t chunk = 64 * 1024;
    for (std::size_t at = 0; at < size_ && is_open(); at += chunk) {
      (void)write(std::string_view(test::pattern_bytes(at, std::min(chunk, size_ - at))));
    }
  }

 private:
  std::size_t size_;
};

TEST_F(tls_fixture, a_reset_in_the_middle_of_a_large_reply_closes_only_that_connection) {
  seen flood;
  seen echo;
  running_engine e;
  listen_options lo;
  lo.tls = server_options();
  const std::uint16_t flood_port =
      e->listen<flooder>(lo, "tls://127.0.0.1:0", &flood, std::size_t{8} << 20).port();
  const std::uint16_t echo_port = listen_echo(e, server_options(), &echo);
  e.start();
  raw_tls_client victim(flood_port, pki_.ca_file());
  ASSERT_TRUE(victim.conn.ok());
  std::array<char, 4096> some{};
  ASSERT_GT(victim.conn.recv_some(some.data(), some.size()), 0);
  victim.conn.reset_on_close();
  victim.conn.close();  // an RST, with megabytes still to come
  ASSERT_TRUE(eventually([&] { return flood.closes.load() == 1; }));
  EXPECT_TRUE(static_cast<bool>(flood.closes_seen().front()));  // an error, not a clean end
  // Another connection on the same loop is served all the while.
  seen& client = another();  // (outlives the engine)
  dial_options d;
  d.tls = client_options();
  const std::string payload = test::pattern_bytes(0, 300'000);
  ASSERT_TRUE(dial_and_wait(e, url("localhost", echo_port), d, &client, payload));
  ASSERT_TRUE(eventually([&] { return client.closes.load() == 1; }));
  const std::lock_guard lock(client.m);
  EXPECT_TRUE(client.received == payload);
}

TEST_F(tls_fixture, a_peer_that_never_reads_meets_the_outbound_cap) {
  seen flood;
  engine_options o = test::small_options();
  o.outbound_cap = 1 << 20;
  running_engine e(o);
  listen_options lo;
  lo.tls = server_options();
  const std::uint16_t port =
      e->listen<flooder>(lo, "tls://127.0.0.1:0", &flood, std::size_t{16} << 20).port();
  e.start();
  raw_tls_client idle(port, pki_.ca_file());  // shakes hands, then reads nothing
  ASSERT_TRUE(idle.conn.ok());
  ASSERT_TRUE(eventually([&] { return flood.closes.load() == 1; }));
  EXPECT_EQ(flood.closes_seen().front(), make_error_code(errc::capacity_exceeded));
}

TEST(tls_options_check, bad_settings_are_refused_at_listen_naming_them) {
  engine e(test::small_options());
  listen_options lo;
  EXPECT_THROW((void)e.listen<connection>(lo, "tls://127.0.0.1:0"), std::invalid_argument);
  lo.tls = tls_options{};
  EXPECT_THROW((void)e.listen<connection>(lo, "tcp://127.0.0.1:0"), std::invalid_argument);
  lo.tls->cert_file = "/nonexistent/cert.pem";
  lo.tls->key_file = "/nonexistent/key.pem";
  try {
    (void)e.listen<connection>(lo, "tls://127.0.0.1:0");
    ADD_FAILURE() << "a missing certificate was taken";
  } catch (const std::invalid_argument& err) {
    EXPECT_NE(std::string(err.what()).find("/nonexistent/cert.pem"), std::string::npos);
  }
}

}  // namespace
}  // namespace actnet
