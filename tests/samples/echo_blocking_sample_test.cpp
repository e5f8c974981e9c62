// samples/echo_blocking: 1,000 connections whose every chunk waits on a blocking call in the
// worker pool, echoed in order, with the loops free meanwhile.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

TEST(echo_blocking_sample, a_thousand_connections_each_get_two_chunks_back_in_order) {
  test::sample_process server(
      ACTNET_ECHO_BLOCKING,
      {"--listen", "tcp://127.0.0.1:0", "--loops", "2", "--delay-ms", "2", "--workers", "32"},
      4096);
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  constexpr int conns = 1000;
  std::vector<int> fds;
  for (int i = 0; i < conns; ++i) {
    const int fd = test::connect_to(server.bound);
    ASSERT_GE(fd, 0) << "connection " << i;
    fds.push_back(fd);
  }
  // Two chunks back to back on every connection: the second arrives while the first's job
  // waits, so on_data runs again meanwhile, and the replies must keep their order.
  for (int i = 0; i < conns; ++i) {
    const std::string first = "first-" + std::to_string(i) + ";";
    ASSERT_TRUE(test::send_all(fds[static_cast<std::size_t>(i)], first));
  }
  for (int i = 0; i < conns; ++i) {
    const std::string second = "second-" + std::to_string(i) + ";";
    ASSERT_TRUE(test::send_all(fds[static_cast<std::size_t>(i)], second));
  }
  for (int i = 0; i < conns; ++i) {
    const std::string expected =
        "first-" + std::to_string(i) + ";second-" + std::to_string(i) + ";";
    EXPECT_EQ(test::recv_exact(fds[static_cast<std::size_t>(i)], expected.size()), expected)
        << "connection " << i;
  }
  for (const int fd : fds) {
    ::close(fd);
  }
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace actnet
