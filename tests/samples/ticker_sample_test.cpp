// samples/ticker: every connection receives the time once per interval, on every loop.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

// One line: "YYYY-MM-DDTHH:MM:SS.mmmZ\n" (25 bytes).
std::string read_line(int fd) {
  std::string line;
  char c = 0;
  while (line.size() < 64 && ::recv(fd, &c, 1, 0) == 1) {
    line += c;
    if (c == '\n') {
      break;
    }
  }
  return line;
}

TEST(ticker_sample, every_connection_on_every_loop_gets_the_time_each_interval) {
  test::sample_process server(ACTNET_TICKER_SERVER, {"--listen", "tcp://127.0.0.1:0", "--loops",
                                                     "2", "--interval-ms", "50"});
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  std::vector<int> fds;
  for (int i = 0; i < 6; ++i) {  // round-robin: three on each loop
    fds.push_back(test::connect_to(server.bound));
    ASSERT_GE(fds.back(), 0);
  }
  const std::regex time_line(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n)");
  for (const int fd : fds) {
    std::string previous;
    for (int tick = 0; tick < 3; ++tick) {
      const std::string line = read_line(fd);
      EXPECT_TRUE(std::regex_match(line, time_line)) << "'" << line << "'";
      EXPECT_GE(line, previous) << "the time goes forward";
      previous = line;
    }
  }
  // A closed connection leaves its loop's list; the others keep ticking.
  ::close(fds.front());
  fds.erase(fds.begin());
  for (const int fd : fds) {
    EXPECT_FALSE(read_line(fd).empty());
    ::close(fd);
  }
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(ticker_sample, rejects_an_interval_below_one_millisecond) {
  test::sample_process server(ACTNET_TICKER_SERVER, {"--interval-ms", "0"});
  EXPECT_TRUE(server.addresses.empty());
  int status = 0;
  ::waitpid(server.pid, &status, 0);
  server.pid = -1;
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace actnet
