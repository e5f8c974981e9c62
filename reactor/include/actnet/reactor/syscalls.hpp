// The system calls on the per-message path, without glibc's cancellation-point wrapping.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace actnet::detail {

// In a multi-threaded process glibc's read/send/sendmsg/epoll_wait switch thread cancellation
// on and off around every call (about 60 instructions each; callgrind), and even syscall(2)
// costs a call and a dozen instructions of argument shuffling. actnet never cancels threads, so
// on x86-64 the loops enter the kernel inline; elsewhere through syscall(2). Same results, same
// errno.

#if defined(__x86_64__)

inline long raw_syscall(long nr, long a, long b, long c, long d = 0, long e = 0,
                        long f = 0) noexcept {
  long ret = 0;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  if (ret < 0 && ret > -4096) [[unlikely]] {
    errno = static_cast<int>(-ret);
    return -1;
  }
  return ret;
}

#else

inline long raw_syscall(long nr, long a, long b, long c, long d = 0, long e = 0,
                        long f = 0) noexcept {
  return ::syscall(nr, a, b, c, d, e, f);
}

#endif

// NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): system call arguments are longs.
inline ssize_t sys_read(int fd, void* buf, std::size_t n) noexcept {
  return raw_syscall(SYS_read, fd, reinterpret_cast<long>(buf), static_cast<long>(n));
}

inline ssize_t sys_send(int fd, const void* buf, std::size_t n, int flags) noexcept {
  return raw_syscall(SYS_sendto, fd, reinterpret_cast<long>(buf), static_cast<long>(n), flags);
}

inline ssize_t sys_sendmsg(int fd, const msghdr* msg, int flags) noexcept {
  return raw_syscall(SYS_sendmsg, fd, reinterpret_cast<long>(msg), flags);
}

// accept4 and close are cancellation points in libc, whose wrappers cost some 70 instructions a
// connection in pthread_enable/disable_asynccancel (callgrind): the loops use neither. Under
// ThreadSanitizer they go through libc all the same: it follows each fd's life through its
// interceptors, and an fd it did not see closed looks like a race when its number is reused.
#if defined(__SANITIZE_THREAD__)
#define ACTNET_FD_LIFE_THROUGH_LIBC 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTNET_FD_LIFE_THROUGH_LIBC 1
#endif
#endif

inline int sys_accept4(int fd, sockaddr* peer, socklen_t* length, int flags) noexcept {
#ifdef ACTNET_FD_LIFE_THROUGH_LIBC
  return ::accept4(fd, peer, length, flags);
#else
  return static_cast<int>(raw_syscall(SYS_accept4, fd, reinterpret_cast<long>(peer),
                                      reinterpret_cast<long>(length), flags));
#endif
}

inline int sys_close(int fd) noexcept {
#ifdef ACTNET_FD_LIFE_THROUGH_LIBC
  return ::close(fd);
#else
  return static_cast<int>(raw_syscall(SYS_close, fd, 0, 0));
#endif
}

/// The kernel's "not now" for a non-blocking socket (EAGAIN, EWOULDBLOCK): wait for readiness.
[[nodiscard]] inline bool would_block(int e) noexcept {
  return e == EAGAIN || e == EWOULDBLOCK;
}

inline int sys_epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) noexcept {
  constexpr long no_mask = 0;
  constexpr long mask_size = 8;  // the kernel's sigset size; unused without a mask
  return static_cast<int>(raw_syscall(SYS_epoll_pwait, epfd, reinterpret_cast<long>(events), max,
                                      timeout_ms, no_mask, mask_size));
}
// NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)

}  // namespace actnet::detail
