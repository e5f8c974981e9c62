// socket: listeners on every transport, accept, unix socket files, and each option setter read
// back with getsockopt. Loopback only.
#include "actnet/reactor/socket.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace actnet {
namespace {

using namespace std::chrono_literals;

/// A fresh directory under /tmp, removed with everything in it at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    std::string name = "/tmp/actnet-socket-test-XXXXXX";
    if (::mkdtemp(name.data()) != nullptr) {
      path_ = name;
    }
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    if (!path_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  [[nodiscard]] bool ok() const { return !path_.empty(); }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// An abstract unix name no other test run uses.
std::string unique_abstract_name() {
  static std::atomic<int> counter{0};
  return "actnet-socket-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::string errno_text() {
  return std::system_category().message(errno);
}

int int_option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0) << errno_text();
  return value;
}

bool non_blocking(int fd) {
  return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}
bool close_on_exec(int fd) {
  return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

/// A plain blocking client of `a`'s kind, connected (stream) or bound nowhere (udp).
unique_fd connect_to(const address& a) {
  const int type = a.transport() == transport::udp ? SOCK_DGRAM : SOCK_STREAM;
  unique_fd fd(::socket(a.family(), type | SOCK_CLOEXEC, 0));
  if (fd && ::connect(fd.get(), a.data(), a.size()) != 0) {
    fd.reset();
  }
  return fd;
}

/// Waits (without a deadline that could fail a slow machine, but not forever) for `fd` to be
/// readable, then accepts.
result<unique_fd> accept_when_ready(int listen_fd) {
  pollfd p{listen_fd, POLLIN, 0};
  (void)::poll(&p, 1, 10'000);
  return accept_connection(listen_fd);
}

/// The listener's own address: the one it was opened with, but with the port the kernel chose.
address bound_address(int fd, const address& a) {
  const auto local = local_address(fd, a.transport());
  EXPECT_TRUE(local) << local.error().message();
  return local ? a.with_port(local->port()) : address();
}

bool ipv6_loopback_available() {
  const unique_fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return false;
  }
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
}

TEST(socket, somaxconn_is_a_usable_backlog) {
  const int n = somaxconn();
  EXPECT_GT(n, 0);
  EXPECT_LE(n, 65535);
}

TEST(socket, a_tcp_listener_on_port_zero_gets_a_port_and_accepts_a_connection) {
  const auto a = address::parse("tcp://127.0.0.1:0");
  auto listener = open_listener(a, {});
  ASSERT_TRUE(listener) << listener.error().message();
  EXPECT_TRUE(non_blocking(listener->get()));
  EXPECT_TRUE(close_on_exec(listener->get()));
  EXPECT_EQ(int_option(listener->get(), SOL_SOCKET, SO_ACCEPTCONN), 1);

  const auto local = local_address(listener->get(), transport::tcp);
  ASSERT_TRUE(local) << local.error().message();
  EXPECT_NE(local->port(), 0);
  EXPECT_EQ(local->to_string(), "tcp://127.0.0.1:" + std::to_string(local->port()));

  const unique_fd client = connect_to(*local);
  ASSERT_TRUE(client) << errno_text();
  auto accepted = accept_when_ready(listener->get());
  ASSERT_TRUE(accepted) << accepted.error().message();
  EXPECT_TRUE(non_blocking(accepted->get()));
  EXPECT_TRUE(close_on_exec(accepted->get()));

  ASSERT_EQ(::write(client.get(), "ping", 4), 4);
  pollfd p{accepted->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10'000), 1);
  char buf[8] = {};
  EXPECT_EQ(::read(accepted->get(), buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
}

TEST(socket, peer_address_of_an_accepted_socket_equals_the_clients_local_address) {
  auto listener = open_listener(address::parse("tcp://127.0.0.1:0"), {});
  ASSERT_TRUE(listener) << listener.error().message();
  const auto local = local_address(listener->get(), transport::tcp);
  ASSERT_TRUE(local);
  const unique_fd client = connect_to(*local);
  ASSERT_TRUE(client) << errno_text();
  auto accepted = accept_when_ready(listener->get());
  ASSERT_TRUE(accepted) << accepted.error().message();

  const auto peer = peer_address(accepted->get(), transport::tcp);
  const auto client_local = local_address(client.get(), transport::tcp);
  ASSERT_TRUE(peer) << peer.error().message();
  ASSERT_TRUE(client_local) << client_local.error().message();
  EXPECT_EQ(*peer, *client_local);
  EXPECT_EQ(peer->to_string(), client_local->to_string());

  // And the other way round: the client's peer is the listener's address.
  const auto client_peer = peer_address(client.get(), transport::tcp);
  ASSERT_TRUE(client_peer);
  EXPECT_EQ(*client_peer, *local);
}

TEST(socket, pending_error_says_how_a_non_blocking_connect_ended) {
  // A port nobody listens on: the connect is refused, and SO_ERROR says so once.
  auto listener = open_listener(address::parse("tcp://127.0.0.1:0"), {});
  ASSERT_TRUE(listener) << listener.error().message();
  const auto local = local_address(listener->get(), transport::tcp);
  ASSERT_TRUE(local);
  listener->reset();  // the port is free now
  const unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int rc = ::connect(fd.get(), local->data(), local->size());
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd.get(), POLLOUT, 0};
    ASSERT_EQ(::poll(&p, 1, 10'000), 1);
    EXPECT_EQ(pending_error(fd.get()), std::errc::connection_refused);
  } else {
    EXPECT_EQ(errno, ECONNREFUSED);
  }
  EXPECT_FALSE(pending_error(fd.get()));  // reading it cleared it
  EXPECT_EQ(pending_error(-1), std::errc::bad_file_descriptor);
}

TEST(socket, accept_connection_with_nothing_pending_would_block) {
  auto listener = open_listener(address::parse("tcp://127.0.0.1:0"), {});
  ASSERT_TRUE(listener) << listener.error().message();
  const auto accepted = accept_connection(listener->get());
  EXPECT_FALSE(accepted);
  EXPECT_EQ(accepted.error(), std::errc::resource_unavailable_try_again);
}

TEST(socket, accept_connection_on_a_bad_fd_reports_the_error) {
  const auto accepted = accept_connection(-1);
  EXPECT_FALSE(accepted);
  EXPECT_EQ(accepted.error(), std::errc::bad_file_descriptor);
}

TEST(socket, a_tcp6_listener_is_ipv6_only_and_accepts_over_ipv6_loopback) {
  if (!ipv6_loopback_available()) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  const auto a = address::parse("tcp6://[::1]:0");
  auto listener = open_listener(a, {});
  ASSERT_TRUE(listener) << listener.error().message();
  EXPECT_EQ(int_option(listener->get(), IPPROTO_IPV6, IPV6_V6ONLY), 1);
  const auto bound = bound_address(listener->get(), a);
  EXPECT_NE(bound.port(), 0);
  EXPECT_EQ(bound.to_string(), "tcp6://[::1]:" + std::to_string(bound.port()));

  const unique_fd client = connect_to(bound);
  ASSERT_TRUE(client) << errno_text();
  auto accepted = accept_when_ready(listener->get());
  ASSERT_TRUE(accepted) << accepted.error().message();
  const auto peer = peer_address(accepted->get(), transport::tcp);
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->family(), AF_INET6);
}

TEST(socket, a_plain_tcp_listener_on_an_ipv6_address_is_dual_stack) {
  if (!ipv6_loopback_available()) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  auto listener = open_listener(address::parse("tcp://[::]:0"), {});
  ASSERT_TRUE(listener) << listener.error().message();
  EXPECT_EQ(int_option(listener->get(), IPPROTO_IPV6, IPV6_V6ONLY), 0);
}

TEST(socket, a_udp_listener_is_a_bound_datagram_socket) {
  const auto a = address::parse("udp://127.0.0.1:0");
  auto bound = open_listener(a, {});
  ASSERT_TRUE(bound) << bound.error().message();
  EXPECT_EQ(int_option(bound->get(), SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
  EXPECT_TRUE(non_blocking(bound->get()));
  const auto local = bound_address(bound->get(), a);
  ASSERT_NE(local.port(), 0);

  const unique_fd client = connect_to(local);
  ASSERT_TRUE(client) << errno_text();
  ASSERT_EQ(::send(client.get(), "hello", 5, 0), 5);
  pollfd p{bound->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10'000), 1);
  char buf[8] = {};
  EXPECT_EQ(::recv(bound->get(), buf, sizeof buf, 0), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
}

TEST(socket, a_unix_path_listener_accepts_and_reports_its_path) {
  const temp_dir dir;
  ASSERT_TRUE(dir.ok());
  const auto a = address::parse("unix://" + dir.file("s.sock"));
  auto listener = open_listener(a, {});
  ASSERT_TRUE(listener) << listener.error().message();
  const auto local = local_address(listener->get(), transport::unix_stream);
  ASSERT_TRUE(local) << local.error().message();
  EXPECT_EQ(*local, a);

  const unique_fd client = connect_to(a);
  ASSERT_TRUE(client) << errno_text();
  auto accepted = accept_when_ready(listener->get());
  ASSERT_TRUE(accepted) << accepted.error().message();
  const auto peer = peer_address(accepted->get(), transport::unix_stream);
  ASSERT_TRUE(peer) << peer.error().message();
  EXPECT_EQ(peer->family(), AF_UNIX);  // an unbound client has no name
  EXPECT_EQ(peer->to_string(), "unix://");
}

TEST(socket, a_unix_path_listener_removes_a_stale_socket_file) {
  const temp_dir dir;
  ASSERT_TRUE(dir.ok());
  const auto a = address::parse("unix://" + dir.file("stale.sock"));
  {
    // A server that died without unlinking: its socket file stays, nobody listens.
    auto dead = open_listener(a, {});
    ASSERT_TRUE(dead) << dead.error().message();
  }
  struct stat st {};
  ASSERT_EQ(::lstat(dir.file("stale.sock").c_str(), &st), 0);
  ASSERT_TRUE(S_ISSOCK(st.st_mode));

  auto listener = open_listener(a, {});
  ASSERT_TRUE(listener) << listener.error().message();
  const unique_fd client = connect_to(a);
  EXPECT_TRUE(client) << errno_text();
}

TEST(socket, a_unix_path_listener_refuses_to_delete_a_regular_file) {
  const temp_dir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.file("precious.txt");
  std::ofstream(path) << "keep me";
  const auto listener = open_listener(address::parse("unix://" + path), {});
  EXPECT_FALSE(listener);
  EXPECT_EQ(listener.error(), std::errc::file_exists);
  std::ifstream in(path);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");
}

TEST(socket, a_unix_path_a_live_listener_holds_is_in_use) {
  const temp_dir dir;
  ASSERT_TRUE(dir.ok());
  const auto a = address::parse("unix://" + dir.file("live.sock"));
  auto first = open_listener(a, {});
  ASSERT_TRUE(first) << first.error().message();
  const auto second = open_listener(a, {});
  EXPECT_FALSE(second);
  EXPECT_EQ(second.error(), std::errc::address_in_use);

  // The first listener still owns its file and works.
  const unique_fd client = connect_to(a);
  EXPECT_TRUE(client) << errno_text();
}

TEST(socket, a_unix_abstract_listener_accepts_without_a_file) {
  const auto a = address::parse("unix://@" + unique_abstract_name());
  auto listener = open_listener(a, {});
  ASSERT_TRUE(listener) << listener.error().message();
  const auto local = local_address(listener->get(), transport::unix_stream);
  ASSERT_TRUE(local) << local.error().message();
  EXPECT_TRUE(local->abstract());
  EXPECT_EQ(*local, a);

  const unique_fd client = connect_to(a);
  ASSERT_TRUE(client) << errno_text();
  auto accepted = accept_when_ready(listener->get());
  EXPECT_TRUE(accepted) << accepted.error().message();
}

TEST(socket, reuse_port_lets_two_listeners_bind_the_same_port) {
  socket_options o;
  o.reuse_port = true;
  const auto a = address::parse("tcp://127.0.0.1:0");
  auto first = open_listener(a, o);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(int_option(first->get(), SOL_SOCKET, SO_REUSEPORT), 1);
  const auto shared = bound_address(first->get(), a);
  auto second = open_listener(shared, o);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(bound_address(second->get(), a), shared);
}

TEST(socket, without_reuse_port_a_second_listener_on_the_port_is_refused) {
  const auto a = address::parse("tcp://127.0.0.1:0");
  auto first = open_listener(a, {});
  ASSERT_TRUE(first) << first.error().message();
  const auto second = open_listener(bound_address(first->get(), a), {});
  EXPECT_FALSE(second);
  EXPECT_EQ(second.error(), std::errc::address_in_use);
}

TEST(socket, open_listener_applies_its_options) {
  socket_options o;
  o.reuse_addr = true;
  o.tcp_nodelay = true;
  o.keepalive = {true, 30s, 5s, 4};
  o.recv_buffer = 64 * 1024;
  o.send_buffer = 32 * 1024;
  o.backlog = 16;
  auto listener = open_listener(address::parse("tcp://127.0.0.1:0"), o);
  ASSERT_TRUE(listener) << listener.error().message();
  const int fd = listener->get();
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_REUSEADDR), 1);
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_REUSEPORT), 0);
  EXPECT_NE(int_option(fd, IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
  EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
  EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
  EXPECT_GE(int_option(fd, SOL_SOCKET, SO_RCVBUF), 64 * 1024);
  EXPECT_GE(int_option(fd, SOL_SOCKET, SO_SNDBUF), 32 * 1024);
}

TEST(socket, accepted_connections_inherit_nodelay_and_keepalive_from_the_listener) {
  socket_options o;
  o.tcp_nodelay = true;
  o.keepalive = {true, 30s, 5s, 4};
  auto listener = open_listener(address::parse("tcp://127.0.0.1:0"), o);
  ASSERT_TRUE(listener) << listener.error().message();
  const auto local = local_address(listener->get(), transport::tcp);
  ASSERT_TRUE(local);
  const unique_fd client = connect_to(*local);
  ASSERT_TRUE(client) << errno_text();
  auto accepted = accept_when_ready(listener->get());
  ASSERT_TRUE(accepted) << accepted.error().message();
  const int fd = accepted->get();
  EXPECT_NE(int_option(fd, IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
  EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
  EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
}

TEST(socket, open_listener_refuses_an_empty_address_and_negative_options) {
  EXPECT_EQ(open_listener(address(), {}).error(), std::errc::invalid_argument);
  const auto a = address::parse("tcp://127.0.0.1:0");
  socket_options o;
  o.backlog = -1;
  EXPECT_EQ(open_listener(a, o).error(), std::errc::invalid_argument);
  o = {};
  o.recv_buffer = -1;
  EXPECT_EQ(open_listener(a, o).error(), std::errc::invalid_argument);
  o = {};
  o.keepalive = {true, 0s, 1s, 1};
  EXPECT_EQ(open_listener(a, o).error(), std::errc::invalid_argument);
}

/// A connected TCP pair over loopback for the option setters.
class socket_option : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = open_listener(address::parse("tcp://127.0.0.1:0"), {});
    ASSERT_TRUE(l) << l.error().message();
    listener_ = std::move(*l);
    const auto local = local_address(listener_.get(), transport::tcp);
    ASSERT_TRUE(local);
    client_ = connect_to(*local);
    ASSERT_TRUE(client_) << errno_text();
  }
  [[nodiscard]] int fd() const { return client_.get(); }

 private:
  unique_fd listener_;
  unique_fd client_;
};

TEST_F(socket_option, set_nodelay_turns_tcp_nodelay_on_and_off) {
  ASSERT_FALSE(set_nodelay(fd(), true));
  EXPECT_NE(int_option(fd(), IPPROTO_TCP, TCP_NODELAY), 0);
  ASSERT_FALSE(set_nodelay(fd(), false));
  EXPECT_EQ(int_option(fd(), IPPROTO_TCP, TCP_NODELAY), 0);
}

TEST_F(socket_option, set_keepalive_sets_idle_interval_and_count) {
  ASSERT_FALSE(set_keepalive(fd(), {true, 600s, 60s, 10}));
  EXPECT_EQ(int_option(fd(), SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(int_option(fd(), IPPROTO_TCP, TCP_KEEPIDLE), 600);
  EXPECT_EQ(int_option(fd(), IPPROTO_TCP, TCP_KEEPINTVL), 60);
  EXPECT_EQ(int_option(fd(), IPPROTO_TCP, TCP_KEEPCNT), 10);

  ASSERT_FALSE(set_keepalive(fd(), {}));
  EXPECT_EQ(int_option(fd(), SOL_SOCKET, SO_KEEPALIVE), 0);
}

TEST_F(socket_option, set_keepalive_enabled_with_a_zero_value_is_invalid_and_changes_nothing) {
  EXPECT_EQ(set_keepalive(fd(), {true, 0s, 0s, 0}), std::errc::invalid_argument);
  EXPECT_EQ(set_keepalive(fd(), {true, 0s, 10s, 3}), std::errc::invalid_argument);
  EXPECT_EQ(set_keepalive(fd(), {true, 10s, 0s, 3}), std::errc::invalid_argument);
  EXPECT_EQ(set_keepalive(fd(), {true, 10s, 10s, 0}), std::errc::invalid_argument);
  EXPECT_EQ(int_option(fd(), SOL_SOCKET, SO_KEEPALIVE), 0);
  // Disabled, the timings are not looked at.
  EXPECT_FALSE(set_keepalive(fd(), {false, 0s, 0s, 0}));
}

TEST_F(socket_option, set_recv_and_send_buffer_get_at_least_what_was_asked) {
  ASSERT_FALSE(set_recv_buffer(fd(), 128 * 1024));
  ASSERT_FALSE(set_send_buffer(fd(), 96 * 1024));
  // The kernel doubles the value for its own bookkeeping.
  EXPECT_GE(int_option(fd(), SOL_SOCKET, SO_RCVBUF), 128 * 1024);
  EXPECT_GE(int_option(fd(), SOL_SOCKET, SO_SNDBUF), 96 * 1024);
  EXPECT_EQ(set_recv_buffer(fd(), 0), std::errc::invalid_argument);
  EXPECT_EQ(set_send_buffer(fd(), -1), std::errc::invalid_argument);
}

TEST_F(socket_option, set_linger_sets_and_clears_so_linger) {
  const auto linger_option = [this] {
    ::linger value{-1, -1};
    socklen_t len = sizeof value;
    EXPECT_EQ(::getsockopt(fd(), SOL_SOCKET, SO_LINGER, &value, &len), 0);
    return value;
  };
  ASSERT_FALSE(set_linger(fd(), 5s));
  EXPECT_EQ(linger_option().l_onoff, 1);
  EXPECT_EQ(linger_option().l_linger, 5);
  ASSERT_FALSE(set_linger(fd(), 0s));
  EXPECT_EQ(linger_option().l_onoff, 1);
  EXPECT_EQ(linger_option().l_linger, 0);
  ASSERT_FALSE(set_linger(fd(), std::nullopt));
  EXPECT_EQ(linger_option().l_onoff, 0);
  EXPECT_EQ(set_linger(fd(), -1s), std::errc::invalid_argument);
}

TEST_F(socket_option, set_reuse_addr_and_set_reuse_port_read_back) {
  ASSERT_FALSE(set_reuse_addr(fd(), true));
  EXPECT_EQ(int_option(fd(), SOL_SOCKET, SO_REUSEADDR), 1);
  ASSERT_FALSE(set_reuse_addr(fd(), false));
  EXPECT_EQ(int_option(fd(), SOL_SOCKET, SO_REUSEADDR), 0);
  ASSERT_FALSE(set_reuse_port(fd(), true));
  EXPECT_EQ(int_option(fd(), SOL_SOCKET, SO_REUSEPORT), 1);
  ASSERT_FALSE(set_reuse_port(fd(), false));
  EXPECT_EQ(int_option(fd(), SOL_SOCKET, SO_REUSEPORT), 0);
}

TEST(socket, setters_on_a_closed_fd_report_bad_file_descriptor) {
  EXPECT_EQ(set_nodelay(-1, true), std::errc::bad_file_descriptor);
  EXPECT_EQ(set_keepalive(-1, {true, 1s, 1s, 1}), std::errc::bad_file_descriptor);
  EXPECT_EQ(set_recv_buffer(-1, 1024), std::errc::bad_file_descriptor);
  EXPECT_EQ(set_send_buffer(-1, 1024), std::errc::bad_file_descriptor);
  EXPECT_EQ(set_linger(-1, 1s), std::errc::bad_file_descriptor);
  EXPECT_EQ(set_reuse_addr(-1, true), std::errc::bad_file_descriptor);
  EXPECT_EQ(set_reuse_port(-1, true), std::errc::bad_file_descriptor);
  EXPECT_EQ(local_address(-1, transport::tcp).error(), std::errc::bad_file_descriptor);
}

TEST(socket, local_address_with_the_wrong_transport_is_refused) {
  auto listener = open_listener(address::parse("tcp://127.0.0.1:0"), {});
  ASSERT_TRUE(listener) << listener.error().message();
  EXPECT_EQ(local_address(listener->get(), transport::unix_stream).error(),
            std::errc::address_family_not_supported);
}

TEST(socket, peer_address_of_an_unconnected_socket_is_not_connected) {
  auto listener = open_listener(address::parse("tcp://127.0.0.1:0"), {});
  ASSERT_TRUE(listener) << listener.error().message();
  EXPECT_EQ(peer_address(listener->get(), transport::tcp).error(), std::errc::not_connected);
}

}  // namespace
}  // namespace actnet
