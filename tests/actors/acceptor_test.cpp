// acceptor: takes every waiting connection, and out of file descriptors drops them one by one
// (the peer sees its connection end) instead of leaving the listener readable for ever.
#include "actnet/actors/detail/acceptor.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/reactor/address.hpp>
#include <actnet/reactor/socket.hpp>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace actnet::detail {
namespace {

struct listening {
  unique_fd fd;
  address bound;
};

listening listen_on_loopback() {
  result<unique_fd> fd = open_listener(address::parse("tcp://127.0.0.1:0"), socket_options{});
  EXPECT_TRUE(fd.has_value());
  result<address> bound = local_address(fd->get(), transport::tcp);
  EXPECT_TRUE(bound.has_value());
  return {std::move(*fd), *bound};
}

unique_fd connect_to(const address& to) {
  unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), to.data(), to.size()), 0) << std::strerror(errno);
  return fd;
}

TEST(acceptor, takes_every_waiting_connection_then_reports_drained) {
  const listening l = listen_on_loopback();
  std::vector<unique_fd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect_to(l.bound));
  }
  acceptor a;
  std::vector<unique_fd> taken;
  std::vector<std::string> drops;
  auto take = [&](unique_fd fd, const sockaddr_storage& peer, socklen_t length) {
    EXPECT_EQ(peer.ss_family, AF_INET);
    EXPECT_EQ(length, sizeof(sockaddr_in));
    taken.push_back(std::move(fd));
  };
  auto drop = [&](std::string_view why) { drops.emplace_back(why); };
  EXPECT_FALSE(a.accept_from(l.fd.get(), take, drop));
  EXPECT_EQ(taken.size(), 3U);
  EXPECT_TRUE(drops.empty());
  EXPECT_FALSE(a.accept_from(l.fd.get(), take, drop));  // nothing waits: drained at once
  EXPECT_EQ(taken.size(), 3U);
}

TEST(acceptor, out_of_fds_it_drops_each_connection_and_the_peer_sees_it_end) {
  const listening l = listen_on_loopback();
  std::vector<unique_fd> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(connect_to(l.bound));
  }
  acceptor a;  // its spare fd is open before the table fills
  // The sanitizers' first look at an error category's vtable reads files: take it now, while
  // there are fds.
  EXPECT_FALSE(std::make_error_code(std::errc::too_many_files_open).message().empty());
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  // Fill the fd table up to a lowered limit, so the next accept fails with EMFILE.
  std::vector<unique_fd> filler;
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(::dup(0));  // the lowest free fd, now taken
  filler.emplace_back(static_cast<int>(low.rlim_cur));
  low.rlim_cur += 8;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  for (;;) {
    const int fd = ::dup(0);
    if (fd < 0) {
      break;
    }
    filler.emplace_back(fd);
  }
  std::vector<unique_fd> taken;
  std::vector<std::string> drops;
  auto take = [&](unique_fd fd, const sockaddr_storage&, socklen_t) {
    taken.push_back(std::move(fd));
  };
  auto drop = [&](std::string_view why) { drops.emplace_back(why); };
  const std::error_code ec = a.accept_from(l.fd.get(), take, drop);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_FALSE(ec);  // both dropped through the spare fd, then nothing waited
  EXPECT_TRUE(taken.empty());
  ASSERT_EQ(drops.size(), 2U);
  EXPECT_NE(drops[0].find("open files"), std::string::npos) << drops[0];
  for (const unique_fd& c : clients) {
    char byte = 0;
    EXPECT_EQ(::read(c.get(), &byte, 1), 0);  // the server closed it: end of stream
  }
  // With fds again, the listener serves on.
  filler.clear();
  const unique_fd late = connect_to(l.bound);
  EXPECT_FALSE(a.accept_from(l.fd.get(), take, drop));
  EXPECT_EQ(taken.size(), 1U);
}

TEST(acceptor, a_socket_that_is_not_listening_is_an_error_to_pause_on) {
  acceptor a;
  const unique_fd not_listening(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  auto take = [](unique_fd, const sockaddr_storage&, socklen_t) {};
  auto drop = [](std::string_view) {};
  EXPECT_EQ(a.accept_from(not_listening.get(), take, drop), std::errc::invalid_argument);
}

}  // namespace
}  // namespace actnet::detail
