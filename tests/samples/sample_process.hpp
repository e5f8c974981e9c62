// A sample server run as a user would: a child process whose "listening on URL" lines give its
// addresses, stopped with SIGTERM.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <actnet/reactor/address.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace actnet::test {

/// What a command printed (stdout and stderr) and its exit code (-1 when it did not exit).
struct command_outcome {
  int exit_code = -1;
  std::string output;
};

/// Runs `command` through the shell to its end (the command bounds its own time).
inline command_outcome run_command(const std::string& command) {
  command_outcome o;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    return o;
  }
  char chunk[4096];
  while (std::fgets(chunk, sizeof chunk, p) != nullptr) {
    o.output += chunk;
  }
  const int status = ::pclose(p);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

struct sample_process {
  pid_t pid = -1;
  FILE* out = nullptr;
  std::string first_line;
  address bound;                   // the first listener's
  std::vector<address> addresses;  // every listener's, in --listen order

  /// Runs `binary args...` (with an fd limit when asked) and reads `listeners` lines of
  /// "listening on URL" (fewer if it fails first; first_line says what it printed).
  sample_process(const char* binary, const std::vector<std::string>& args, rlim_t fd_limit = 0,
                 std::size_t listeners = 1) {
    int fds[2];
    if (::pipe(fds) != 0) {
      return;
    }
    std::vector<char*> argv{const_cast<char*>(binary)};  // NOLINT: execv's signature
    for (const std::string& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));  // NOLINT
    }
    argv.push_back(nullptr);
    pid = ::fork();
    if (pid == 0) {
      if (fd_limit > 0) {
        const rlimit limit{fd_limit, fd_limit};
        ::setrlimit(RLIMIT_NOFILE, &limit);
      }
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execv(binary, argv.data());
      std::_Exit(127);
    }
    ::close(fds[1]);
    out = ::fdopen(fds[0], "r");
    for (std::size_t i = 0; i < listeners && out != nullptr; ++i) {
      char line[256] = {};
      if (std::fgets(line, sizeof line, out) == nullptr) {
        break;
      }
      const std::string text = line;
      if (i == 0) {
        first_line = text;
      }
      if (text.rfind("listening on ", 0) != 0) {
        break;
      }
      // "listening on URL", maybe followed by " (TLS)".
      const std::string url = text.substr(13, text.find_first_of(" \n", 13) - 13);
      addresses.push_back(address::parse(url));
    }
    if (!addresses.empty()) {
      bound = addresses.front();
    }
  }
  sample_process(const sample_process&) = delete;
  sample_process& operator=(const sample_process&) = delete;
  ~sample_process() {
    if (pid > 0) {
      (void)stop();
    }
    if (out != nullptr) {
      std::fclose(out);
    }
  }

  /// SIGTERM, then the exit status (as from waitpid).
  int stop() {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return status;
  }
};

}  // namespace actnet::test
