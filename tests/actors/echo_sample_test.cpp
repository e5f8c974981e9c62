// samples/echo: the sample contract, run as a user would: a process that prints its address,
// echoes, and exits 0 on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "actors/test_util.hpp"

namespace actnet {
namespace {

TEST(echo_sample, prints_its_address_echoes_and_stops_cleanly_on_sigterm) {
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    ::execl(ACTNET_ECHO_SERVER, ACTNET_ECHO_SERVER, "--listen", "tcp://127.0.0.1:0", "--loops", "2",
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(out[1]);
  FILE* lines = ::fdopen(out[0], "r");
  char line[256] = {};
  ASSERT_NE(std::fgets(line, sizeof line, lines), nullptr);
  const std::string first(line);
  ASSERT_EQ(first.rfind("listening on tcp://127.0.0.1:", 0), 0U) << first;
  const address bound = address::parse(first.substr(13, first.size() - 14));
  const int fd = test::connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "hello, echo"));
  EXPECT_EQ(test::recv_exact(fd, 11), "hello, echo");
  ::close(fd);
  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::fclose(lines);
}

}  // namespace
}  // namespace actnet
