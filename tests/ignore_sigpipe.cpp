// Test binaries write to sockets whose peer may be gone: the error must come back as EPIPE,
// not kill the process (the engine does the same at start-up).
#include <csignal>

namespace {
const bool sigpipe_ignored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
}  // namespace
