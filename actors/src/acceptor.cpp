// acceptor: the spare fd that lets a loop drop connections when it is out of fds.
#include "actnet/actors/detail/acceptor.hpp"

#include <fcntl.h>

#include <cerrno>
#include <system_error>

#include "actnet/reactor/syscalls.hpp"

namespace actnet::detail {
namespace {

unique_fd open_spare() {
  unique_fd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!fd) {
    throw std::system_error(errno, std::system_category(), "actnet: cannot open a spare fd");
  }
  return fd;
}

}  // namespace

acceptor::acceptor() : spare_(open_spare()) {}

int acceptor::drop_with_spare(int listen_fd) noexcept {
  spare_.reset();
  const int fd = sys_accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  const int e = fd >= 0 ? 0 : errno;
  if (fd >= 0) {
    (void)sys_close(fd);  // the peer sees its connection end
  }
  spare_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return e;
}

}  // namespace actnet::detail
