// samples/echo: the sample contract, run as a user would: a process that prints its address,
// echoes, and exits 0 on SIGTERM.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ACTNET_HAS_ASAN 1
#endif
#endif
#ifndef ACTNET_HAS_ASAN
#define ACTNET_HAS_ASAN 0
#endif

namespace actnet {
namespace {

// echo_server as a child process, started with `loops` loops (and an fd limit when asked).
struct echo_process : test::sample_process {
  explicit echo_process(const char* loops, rlim_t fd_limit = 0, const char* lb = "round_robin",
                        const char* cpus = "")
      : sample_process(
            ACTNET_ECHO_SERVER,
            {"--listen", "tcp://127.0.0.1:0", "--loops", loops, "--lb", lb, "--cpus", cpus},
            fd_limit) {}
};

// A process in which io_uring_setup fails with EPERM, as under a seccomp filter (Docker's
// default profile) or kernel.io_uring_disabled: echo_server with `backend`, its stdout and
// stderr on `out`. Filtering needs no privilege (no_new_privs).
struct no_uring_process {
  pid_t pid = -1;
  FILE* out = nullptr;
  explicit no_uring_process(const char* backend) {
    int fds[2];
    if (::pipe(fds) != 0) {
      return;
    }
    pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::dup2(fds[1], STDERR_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      // NOLINTBEGIN: the kernel's BPF macros
      sock_filter filter[] = {
          BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      };
      sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
      // NOLINTEND
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
          ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        std::_Exit(126);
      }
      const char* argv[] = {ACTNET_ECHO_SERVER, "--loops",           "1",    "--backend", backend,
                            "--listen",         "tcp://127.0.0.1:0", nullptr};
      const char* envp[] = {"ACTNET_LOG=info", nullptr};  // (and no ACTNET_BACKEND)
      ::execve(ACTNET_ECHO_SERVER, const_cast<char**>(argv), const_cast<char**>(envp));  // NOLINT
      std::_Exit(127);
    }
    ::close(fds[1]);
    out = ::fdopen(fds[0], "r");
  }
  no_uring_process(const no_uring_process&) = delete;
  no_uring_process& operator=(const no_uring_process&) = delete;
  ~no_uring_process() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      (void)wait();
    }
    if (out != nullptr) {
      std::fclose(out);
    }
  }
  // The next line it printed (empty at its end).
  std::string line() const {
    char buf[512] = {};
    return out != nullptr && std::fgets(buf, sizeof buf, out) != nullptr ? buf : "";
  }
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return status;
  }
};

TEST(echo_sample, where_io_uring_is_refused_asking_for_it_fails_and_automatic_serves_on_epoll) {
  {
    no_uring_process refused("io_uring");
    std::string all;
    for (std::string l = refused.line(); !l.empty(); l = refused.line()) {
      all += l;
    }
    const int status = refused.wait();
    ASSERT_TRUE(WIFEXITED(status)) << all;
    EXPECT_EQ(WEXITSTATUS(status), 1) << all;
    EXPECT_NE(all.find("backend = io_uring"), std::string::npos) << all;
    EXPECT_NE(all.find("missing: permission to make a ring"), std::string::npos) << all;
  }
  no_uring_process fallback("automatic");
  std::string before;
  std::string l = fallback.line();
  for (; !l.empty() && l.rfind("listening on ", 0) != 0; l = fallback.line()) {
    before += l;
  }
  ASSERT_EQ(l.rfind("listening on tcp://", 0), 0U) << before << l;
  EXPECT_NE(before.find("io_uring cannot run here"), std::string::npos) << before;
  EXPECT_NE(before.find("run on epoll"), std::string::npos) << before;
  const address bound = address::parse(l.substr(13, l.size() - 14));
  const int fd = test::connect_to(bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "on epoll"));
  EXPECT_EQ(test::recv_exact(fd, 8), "on epoll");
  ::close(fd);
  ::kill(fallback.pid, SIGTERM);
  const int status = fallback.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(echo_sample, prints_its_address_echoes_and_stops_cleanly_on_sigterm) {
  echo_process server("2");
  ASSERT_EQ(server.first_line.rfind("listening on tcp://127.0.0.1:", 0), 0U) << server.first_line;
  const int fd = test::connect_to(server.bound);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(fd, "hello, echo"));
  EXPECT_EQ(test::recv_exact(fd, 11), "hello, echo");
  ::close(fd);
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(echo_sample, serves_tcp_udp_and_unix_listeners_at_once) {
  const std::string path = "/tmp/actnet-echo-sample-" + std::to_string(::getpid()) + ".sock";
  test::sample_process server(ACTNET_ECHO_SERVER,
                              {"--loops", "2", "--listen", "tcp://127.0.0.1:0", "--listen",
                               "udp://127.0.0.1:0", "--listen", "unix://" + path},
                              0, 3);
  ASSERT_EQ(server.addresses.size(), 3U) << server.first_line;
  for (const std::size_t i : {0, 2}) {
    const int fd = test::connect_to(server.addresses[i]);
    ASSERT_GE(fd, 0) << server.addresses[i].to_string();
    ASSERT_TRUE(test::send_all(fd, "stream echo"));
    EXPECT_EQ(test::recv_exact(fd, 11), "stream echo");
    ::close(fd);
  }
  const test::udp_client client(server.addresses[1]);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(client.send("datagram " + std::to_string(i)));
    EXPECT_EQ(client.receive(), "datagram " + std::to_string(i));
  }
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file goes with the server";
}

TEST(echo_sample, serves_with_each_load_balancing_strategy_and_rejects_an_unknown_one) {
  for (const char* lb : {"round_robin", "source_addr_hash", "least_connections"}) {
    echo_process server("2", 0, lb);
    ASSERT_EQ(server.first_line.rfind("listening on ", 0), 0U) << lb << ": " << server.first_line;
    std::vector<int> fds;
    for (int i = 0; i < 4; ++i) {
      fds.push_back(test::connect_to(server.bound));
      ASSERT_GE(fds.back(), 0) << lb;
      ASSERT_TRUE(test::send_all(fds.back(), "ping"));
      EXPECT_EQ(test::recv_exact(fds.back(), 4), "ping") << lb;
    }
    for (const int fd : fds) {
      ::close(fd);
    }
    const int status = server.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << lb;
  }
  {
    // Pinned to the first CPU this test may use.
    cpu_set_t set;
    CPU_ZERO(&set);
    ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
    int first = 0;
    while (!CPU_ISSET(first, &set)) {
      ++first;
    }
    const std::string cpus = std::to_string(first);
    echo_process pinned("2", 0, "round_robin", cpus.c_str());
    const int fd = test::connect_to(pinned.bound);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(test::send_all(fd, "pinned"));
    EXPECT_EQ(test::recv_exact(fd, 6), "pinned");
    ::close(fd);
  }
  echo_process bad("1", 0, "fastest");
  EXPECT_TRUE(bad.first_line.empty()) << bad.first_line;  // refused before listening
  int status = 0;
  ::waitpid(bad.pid, &status, 0);
  bad.pid = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
}

long cpu_ticks(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) {
    return -1;
  }
  char buf[1024] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const std::string stat(buf, n);
  // Fields after the command name (which ends with ')'): state is field 3, utime 14, stime 15.
  std::size_t pos = stat.rfind(')') + 2;
  long fields[13] = {};
  for (int i = 0; i < 13 && pos < stat.size(); ++i) {
    const std::size_t next = stat.find(' ', pos);
    if (i >= 11) {
      fields[i] = std::stol(stat.substr(pos, next - pos));
    }
    pos = next + 1;
  }
  return fields[11] + fields[12];
}

// Out of fds, the acceptor must neither spin on the listener (it stays readable while
// connections queue) nor stop serving once fds are free again.
TEST(echo_sample, out_of_file_descriptors_it_drops_connections_without_spinning_and_recovers) {
#if defined(__SANITIZE_ADDRESS__) || ACTNET_HAS_ASAN
  GTEST_SKIP() << "AddressSanitizer's runtime needs file descriptors of its own (it probes memory "
                  "through a pipe), so a sanitized server cannot run out of them cleanly; this "
                  "test runs in the release, debug and tsan presets";
#endif
  // stdio, epoll, eventfds, the listener and the spare fd leave room for a few connections.
  echo_process server("1", 24);
  ASSERT_TRUE(server.bound.valid()) << server.first_line;
  const address bound = server.bound;
  const pid_t pid = server.pid;

  std::vector<int> clients;
  for (int i = 0; i < 60; ++i) {  // far more than the server can hold
    const int fd = test::connect_to(bound);
    if (fd >= 0) {
      clients.push_back(fd);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it hit EMFILE
  const long before = cpu_ticks(pid);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const long used = cpu_ticks(pid) - before;
  // A spinning acceptor burns a whole core (~100 ticks a second); an idle one next to nothing.
  EXPECT_LT(used, 50) << "the server used " << used << " ticks in a second: is it spinning?";

  for (const int fd : clients) {
    ::close(fd);
  }
  ASSERT_TRUE(test::eventually([&] {
    const int fd = test::connect_to(bound);
    if (fd < 0) {
      return false;
    }
    const bool echoed = test::send_all(fd, "back") && test::recv_exact(fd, 4) == "back";
    ::close(fd);
    return echoed;
  }));
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace actnet
