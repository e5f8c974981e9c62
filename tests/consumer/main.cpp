// An outside program on the installed package: the README's echo actor, served and checked.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <actnet/actors/engine.hpp>
#include <actnet/buffers/elastic_buffer.hpp>
#include <array>
#include <cstdio>
#include <string>
#include <thread>

class echo final : public actnet::connection {
  void on_data() override {
    const actnet::byte_views data = next_all();  // zero-copy views of what arrived
    const std::array parts{data.first, data.second};
    (void)writev(parts);  // to the socket now; what it refuses is buffered and sent later
  }
};

int main() {
  actnet::engine e({.loops = 2});
  const actnet::address bound = e.listen<echo>("tcp://127.0.0.1:0");
  std::thread server([&e] { e.run(); });

  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int rc = 3;
  if (::connect(fd, bound.data(), bound.size()) == 0) {
    const std::string msg = "hello from an installed actnet";
    std::string got(msg.size(), '\0');
    std::size_t n = 0;
    if (::send(fd, msg.data(), msg.size(), 0) == static_cast<ssize_t>(msg.size())) {
      while (n < got.size()) {
        const ssize_t r = ::recv(fd, got.data() + n, got.size() - n, 0);
        if (r <= 0) {
          break;
        }
        n += static_cast<std::size_t>(r);
      }
    }
    rc = got == msg ? 0 : 4;
  }
  ::close(fd);
  e.stop();
  server.join();
  std::puts(rc == 0 ? "consumer: ok" : "consumer: failed");
  return rc;
}
