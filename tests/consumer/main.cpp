// Uses the installed headers and library: buffer a message, drain it through a pipe.
#include <unistd.h>

#include <actnet/buffers/elastic_buffer.hpp>
#include <actnet/buffers/ring_buffer.hpp>
#include <cstdio>
#include <string>

int main() {
  int fds[2];
  if (::pipe(fds) != 0) {
    return 2;
  }
  actnet::elastic_buffer out;
  if (out.write("hello from an installed actnet") || !out.drain_to(fds[1])) {
    return 3;
  }
  actnet::ring_buffer in;
  std::byte spill[256];
  const auto got = in.fill_from(fds[0], spill);
  ::close(fds[0]);
  ::close(fds[1]);
  if (!got || in.peek_all().to_string() != "hello from an installed actnet") {
    return 4;
  }
  std::puts("consumer: ok");
  return 0;
}
