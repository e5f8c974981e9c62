// The system calls on the per-message path, without glibc's cancellation-point wrapping.
#pragma once

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>

namespace actnet::detail {

// In a multi-threaded process glibc's read/send/sendmsg switch thread cancellation on and off
// around every call (about 60 instructions each; callgrind). actnet never cancels threads, so
// the loops call the kernel through syscall(2), which is not a cancellation point. Same results,
// same errno.

inline ssize_t sys_read(int fd, void* buf, std::size_t n) noexcept {
  return ::syscall(SYS_read, fd, buf, n);
}

inline ssize_t sys_send(int fd, const void* buf, std::size_t n, int flags) noexcept {
  return ::syscall(SYS_sendto, fd, buf, n, flags, nullptr, 0);
}

inline ssize_t sys_sendmsg(int fd, const msghdr* msg, int flags) noexcept {
  return ::syscall(SYS_sendmsg, fd, msg, flags);
}

}  // namespace actnet::detail
