// samples/echo_client: drives the echo server over tcp, unix and kcp and passes; a wrong byte, an
// early close or a refused connection make it fail, saying why.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

using outcome = test::command_outcome;

/// Runs echo_client with `args` to the end (its own timeout bounds it).
outcome run_client(const std::string& args) {
  return test::run_command(std::string(ACTNET_ECHO_CLIENT) + " " + args);
}

TEST(echo_client_sample, verifies_every_byte_from_the_echo_server_over_tcp_and_unix) {
  const std::string path = "/tmp/actnet-echo-client-" + std::to_string(::getpid()) + ".sock";
  test::sample_process server(
      ACTNET_ECHO_SERVER,
      {"--listen", "tcp://127.0.0.1:0", "--listen", "unix://" + path, "--loops", "2"}, 0, 2);
  ASSERT_EQ(server.addresses.size(), 2U) << server.first_line;
  for (const address& a : server.addresses) {
    const outcome o = run_client("--connect " + a.to_string() +
                                 " --conns 50 --messages 200 --size 700 --pipeline 4 --loops 2");
    EXPECT_EQ(o.exit_code, 0) << o.output;
    EXPECT_NE(o.output.find("10000 messages echoed"), std::string::npos) << o.output;
    EXPECT_NE(o.output.find("; 0 failed connections"), std::string::npos) << o.output;
  }
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::unlink(path.c_str());
}

TEST(echo_client_sample, verifies_every_byte_from_the_echo_server_over_kcp_in_both_modes) {
  for (const std::string mode : {"fast", "normal"}) {
    test::sample_process server(
        ACTNET_ECHO_SERVER, {"--listen", "kcp://127.0.0.1:0", "--loops", "2", "--kcp-mode", mode},
        0, 1);
    ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
    const outcome o =
        run_client("--connect kcp://127.0.0.1:" + std::to_string(server.addresses[0].port()) +
                   " --kcp-mode " + mode + " --conns 20 --messages 100 --size 700 --pipeline 4");
    EXPECT_EQ(o.exit_code, 0) << o.output;
    EXPECT_NE(o.output.find("2000 messages echoed"), std::string::npos) << o.output;
    EXPECT_NE(o.output.find("; 0 failed connections"), std::string::npos) << o.output;
    const int status = server.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

TEST(echo_client_sample, a_refused_connection_fails_the_run) {
  const address closed = [] {
    engine e(test::small_options());
    return e.listen<connection>("tcp://127.0.0.1:0");  // bound, then closed with the engine
  }();
  const outcome o = run_client("--connect " + closed.to_string() + " --conns 3 --messages 5");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find("3 failed connections"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("connect failed: Connection refused"), std::string::npos) << o.output;
}

/// Echoes, but changes one byte of the 1000th it has echoed.
class corrupting_echo final : public connection {
  void on_data() override {
    const byte_views in = next_all();
    std::string copy(reinterpret_cast<const char*>(in.first.data()), in.first.size());
    copy.append(reinterpret_cast<const char*>(in.second.data()), in.second.size());
    if (seen_ < 1000 && seen_ + copy.size() >= 1000) {
      copy[999 - seen_] ^= 0x20;
    }
    seen_ += copy.size();
    (void)write(copy);
  }
  std::size_t seen_ = 0;
};

/// Echoes the first 10 bytes, then closes.
class quitting_echo final : public connection {
  void on_data() override {
    const std::size_t n = std::min<std::size_t>(10 - sent_, inbound_buffered());
    (void)write(*next(n));
    sent_ += n;
    if (sent_ == 10) {
      close();
    }
  }
  std::size_t sent_ = 0;
};

TEST(echo_client_sample, a_wrong_byte_or_an_early_close_fails_the_run_and_says_where) {
  test::running_engine e;
  const address corrupting = e->listen<corrupting_echo>("tcp://127.0.0.1:0");
  const address quitting = e->listen<quitting_echo>("tcp://127.0.0.1:0");
  e.start();
  const outcome wrong =
      run_client("--connect " + corrupting.to_string() + " --conns 1 --messages 20 --size 100");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("message 9 byte 99 is wrong"), std::string::npos) << wrong.output;
  const outcome early =
      run_client("--connect " + quitting.to_string() + " --conns 2 --messages 20 --size 5");
  EXPECT_EQ(early.exit_code, 1) << early.output;
  EXPECT_NE(early.output.find("closed after 2 of 20 messages"), std::string::npos) << early.output;
  EXPECT_NE(early.output.find("2 failed connections"), std::string::npos) << early.output;
}

}  // namespace
}  // namespace actnet
