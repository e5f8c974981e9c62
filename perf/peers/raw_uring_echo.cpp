// raw_uring_echo: the perf harness's io_uring echo server, the limit of the io_uring model as a
// skilled engineer writes it with liburing 2.3: one ring per loop thread (single issuer, task work
// deferred to the wait), multishot accept, multishot receive into a ring of provided buffers, one
// send in flight per connection, one submit-and-wait per batch of completions. With --loops N > 1
// each loop has its own SO_REUSEPORT listener on the same port, and the kernel spreads the
// connections.
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "peer_common.hpp"

namespace {

constexpr unsigned sq_entries = 256;
// Every armed multishot receive can post a completion per batch: room for many connections.
constexpr unsigned cq_entries = 16384;
// As actnet's defaults: a buffer as large as a 64 KiB message, so one completion carries it.
constexpr unsigned buffer_count = 64;  // provided buffers per loop, a power of two
constexpr unsigned buffer_size = 64 * 1024;
constexpr std::uint16_t buffer_group = 0;  // each ring has its own group ids
// Bytes received while a send is in flight beyond which receiving pauses until the socket takes
// them, so a client that does not read cannot make the server buffer without bound.
constexpr std::size_t queued_limit = 1024 * 1024;
constexpr std::uint32_t max_slots = 1U << 24;  // what fits in user_data beside generation and op

using peers::die;

using peers::bound_url;
using peers::die_errno;
using peers::listen_address;
using peers::open_listener;
using peers::parse_listen;

// user_data: generation << 32 | slot << 8 | op. The generation tells a connection from an
// earlier one in the same slot, so a cancel aimed at the old one cannot hit the new one.
enum op : std::uint8_t { op_accept, op_signal, op_recv, op_send, op_cancel };

std::uint64_t user_data(op o, std::uint32_t slot = 0, std::uint32_t generation = 0) {
  return (std::uint64_t{generation} << 32) | (std::uint64_t{slot} << 8) | o;
}

class echo_server {
 public:
  // Constructed on the thread that runs it: the ring accepts submissions from that one only.
  echo_server(int listen_fd, bool is_tcp, int signal_fd)
      : listen_fd_(listen_fd), signal_fd_(signal_fd), is_tcp_(is_tcp) {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = cq_entries;
    int r = io_uring_queue_init_params(sq_entries, &ring_, &p);
    if (r == -EINVAL) {  // before Linux 6.1
      p = io_uring_params{};
      p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
      p.cq_entries = cq_entries;
      r = io_uring_queue_init_params(sq_entries, &ring_, &p);
    }
    if (r < 0) {
      die_errno("io_uring_queue_init_params", -r);
    }
    io_uring_register_ring_fd(&ring_);  // saves a descriptor lookup per enter; optional

    // The buffer ring's entries on their own page, then the buffers.
    buffer_memory_size_ = 4096 + std::size_t{buffer_count} * buffer_size;
    void* memory = ::mmap(nullptr, buffer_memory_size_, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      die_errno("mmap");
    }
    buffer_ring_ = static_cast<io_uring_buf_ring*>(memory);
    buffers_ = static_cast<char*>(memory) + 4096;
    io_uring_buf_ring_init(buffer_ring_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(memory);
    reg.ring_entries = buffer_count;
    reg.bgid = buffer_group;
    if ((r = io_uring_register_buf_ring(&ring_, &reg, 0)) < 0) {
      die_errno("io_uring_register_buf_ring", -r);
    }
    for (unsigned id = 0; id < buffer_count; ++id) {
      give_back(static_cast<std::uint16_t>(id));
    }
    io_uring_buf_ring_advance(buffer_ring_, returned_);
    returned_ = 0;
    // Held only to be given up when accept runs out of descriptors: see on_accept.
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  ~echo_server() {
    io_uring_queue_exit(&ring_);  // cancels what is still in flight
    for (const connection& c : slots_) {
      if (c.fd >= 0) {
        ::close(c.fd);
      }
    }
    ::munmap(buffer_ring_, buffer_memory_size_);
    if (spare_fd_ >= 0) {
      ::close(spare_fd_);
    }
  }

  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;

  // Runs until SIGINT or SIGTERM.
  void run() {
    arm_accept();
    // A one-shot poll leaves the signal pending, so the signalfd wakes every loop's ring.
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_poll_add(sqe, signal_fd_, POLLIN);
    io_uring_sqe_set_data64(sqe, user_data(op_signal));
    while (!stopping_) {
      const int r = io_uring_submit_and_wait(&ring_, 1);
      if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
        die_errno("io_uring_submit_and_wait", -r);
      }
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_cqe* cqe = nullptr;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        on_completion(*cqe);
        ++seen;
      }
      io_uring_cq_advance(&ring_, seen);
      // The buffers of this batch, all back before the next wait.
      io_uring_buf_ring_advance(buffer_ring_, returned_);
      returned_ = 0;
    }
  }

 private:
  struct connection {
    int fd = -1;
    std::uint32_t generation = 0;
    bool receiving = false;  // the multishot receive is armed
    bool sending = false;    // a send is in flight: one at most, so the bytes keep their order
    bool paused = false;     // receive cancelled until `queued` goes out
    bool closing = false;    // closed once nothing is in flight
    // The kernel reads `out` while the send is in flight, so it must not grow (and move) then:
    // what arrives meanwhile waits in `queued`, which becomes `out` when the send completes.
    // Both keep their capacity, so a steady echo allocates nothing.
    std::vector<char> out;
    std::size_t out_sent = 0;
    std::vector<char> queued;
  };

  io_uring_sqe* next_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {  // full: hand the kernel what is there mid-batch
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void give_back(std::uint16_t id) {
    io_uring_buf_ring_add(buffer_ring_, buffers_ + std::size_t{id} * buffer_size, buffer_size, id,
                          io_uring_buf_ring_mask(buffer_count), returned_);
    ++returned_;
  }

  void arm_accept() {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, user_data(op_accept));
  }

  void arm_recv(std::uint32_t slot) {
    connection& c = slots_[slot];
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffer_group;
    io_uring_sqe_set_data64(sqe, user_data(op_recv, slot, c.generation));
    c.receiving = true;
  }

  void send_out(std::uint32_t slot) {
    connection& c = slots_[slot];
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_send(sqe, c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, user_data(op_send, slot, c.generation));
    c.sending = true;
  }

  void on_completion(const io_uring_cqe& cqe) {
    const std::uint64_t data = io_uring_cqe_get_data64(&cqe);
    const auto slot = static_cast<std::uint32_t>((data >> 8) & (max_slots - 1));
    switch (static_cast<op>(data & 0xff)) {
      case op_accept:
        return on_accept(cqe);
      case op_signal:
        stopping_ = true;
        return;
      case op_recv:
        return on_recv(slot, cqe);
      case op_send:
        return on_send(slot, cqe.res);
      case op_cancel:
        return;  // the cancelled operations report on their own
    }
  }

  void on_accept(const io_uring_cqe& cqe) {
    if (cqe.res >= 0) {
      add_connection(cqe.res);
    } else if ((cqe.res == -EMFILE || cqe.res == -ENFILE) && spare_fd_ >= 0) {
      // Out of descriptors: free the spare, accept and drop the connection, so its client hears
      // of it now rather than after a timeout, and take the spare back.
      ::close(spare_fd_);
      const int dropped = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (dropped >= 0) {
        ::close(dropped);
      }
      spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    } else if (cqe.res == -EINVAL) {
      die("multishot accept: " + std::string(std::strerror(EINVAL)) + " (needs Linux 5.19+)");
    } else if (cqe.res != -ECONNABORTED && cqe.res != -EAGAIN && cqe.res != -EINTR) {
      std::fprintf(stderr, "raw_uring_echo: accept: %s\n", std::strerror(-cqe.res));
    }
    if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
      arm_accept();
    }
  }

  void add_connection(int fd) {
    if (is_tcp_) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    std::uint32_t slot = 0;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else if (slots_.size() < max_slots) {
      slot = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      ::close(fd);
      return;
    }
    slots_[slot].fd = fd;
    arm_recv(slot);
  }

  void on_recv(std::uint32_t slot, const io_uring_cqe& cqe) {
    connection& c = slots_[slot];
    if ((cqe.flags & IORING_CQE_F_BUFFER) != 0) {
      const auto id = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
      if (cqe.res > 0 && !c.closing) {
        const char* bytes = buffers_ + std::size_t{id} * buffer_size;
        echo(slot, bytes, static_cast<std::size_t>(cqe.res));
      }
      give_back(id);  // copied out: the kernel may fill it again
    }
    if ((cqe.flags & IORING_CQE_F_MORE) != 0) {
      return;
    }
    c.receiving = false;
    if (c.closing) {
      release_if_idle(slot);
    } else if (cqe.res == 0 || (cqe.res < 0 && cqe.res != -ENOBUFS && cqe.res != -ECANCELED)) {
      close_connection(slot);  // end of stream or an error
    } else if (!c.paused) {
      arm_recv(slot);  // the kernel ended it (out of buffers, or a cancel that is moot now)
    }
  }

  void echo(std::uint32_t slot, const char* bytes, std::size_t n) {
    connection& c = slots_[slot];
    if (!c.sending) {
      c.out.assign(bytes, bytes + n);
      c.out_sent = 0;
      send_out(slot);
      return;
    }
    c.queued.insert(c.queued.end(), bytes, bytes + n);
    if (c.queued.size() > queued_limit && c.receiving && !c.paused) {
      c.paused = true;
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_cancel64(sqe, user_data(op_recv, slot, c.generation), 0);
      io_uring_sqe_set_data64(sqe, user_data(op_cancel));
    }
  }

  void on_send(std::uint32_t slot, int res) {
    connection& c = slots_[slot];
    c.sending = false;
    if (c.closing) {
      release_if_idle(slot);
      return;
    }
    if (res < 0) {
      close_connection(slot);
      return;
    }
    c.out_sent += static_cast<std::size_t>(res);
    if (c.out_sent < c.out.size()) {
      send_out(slot);  // a short send: the rest goes first
      return;
    }
    c.out.clear();
    c.out_sent = 0;
    std::swap(c.out, c.queued);
    if (!c.out.empty()) {
      send_out(slot);
    }
    if (c.paused) {  // the backlog is on its way: receive again
      c.paused = false;
      if (!c.receiving) {
        arm_recv(slot);
      }
    }
  }

  // Cancels what is in flight; the slot is freed when the last of it has reported, so no
  // completion lands in a slot that holds another connection by then.
  void close_connection(std::uint32_t slot) {
    connection& c = slots_[slot];
    if (c.closing) {
      return;
    }
    c.closing = true;
    if (c.receiving || c.sending) {
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_cancel_fd(sqe, c.fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, user_data(op_cancel));
    }
    release_if_idle(slot);
  }

  void release_if_idle(std::uint32_t slot) {
    connection& c = slots_[slot];
    if (c.receiving || c.sending) {
      return;
    }
    ::close(c.fd);
    c.fd = -1;
    ++c.generation;
    c.paused = false;
    c.closing = false;
    c.out.clear();
    c.out_sent = 0;
    c.queued.clear();
    free_.push_back(slot);
  }

  int listen_fd_;
  int signal_fd_;
  bool is_tcp_;
  bool stopping_ = false;
  int spare_fd_ = -1;
  io_uring ring_{};
  io_uring_buf_ring* buffer_ring_ = nullptr;
  char* buffers_ = nullptr;
  std::size_t buffer_memory_size_ = 0;
  int returned_ = 0;  // buffers given back since the last advance
  std::vector<connection> slots_;
  std::vector<std::uint32_t> free_;
};

}  // namespace

constexpr const char* usage =
    "usage: raw_uring_echo --listen tcp://HOST:PORT | unix://PATH [--loops N]\n";

int main(int argc, char** argv) {
  const auto [url, loops] = peers::parse_args(argc, argv, usage);
  peers::raise_nofile_limit();

  // Blocked before anything else, so the signals wait in the signalfd instead of killing us.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    die_errno("sigprocmask");
  }
  const int signal_fd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    die_errno("signalfd");
  }

  listen_address a = parse_listen(url);
  if (loops > 1 && !a.is_tcp) {
    die("--loops above 1 needs a tcp:// address (one SO_REUSEPORT listener per loop)");
  }
  std::vector<int> listeners{open_listener(a, loops > 1)};
  const std::string bound = bound_url(listeners[0], a);
  if (loops > 1) {
    // The others bind the port the first one got (port 0 asks the kernel for one).
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(listeners[0], reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      die_errno("getsockname");
    }
    std::memcpy(&a.storage, &ss, len);
    a.length = len;
    while (static_cast<long>(listeners.size()) < loops) {
      listeners.push_back(open_listener(a, true));
    }
  }
  std::printf("listening on %s\n", bound.c_str());
  std::fflush(stdout);
  {
    // Every loop polls the signalfd: a signal makes all of them return.
    std::vector<std::thread> others;
    for (std::size_t i = 1; i < listeners.size(); ++i) {
      others.emplace_back([&, i] {
        echo_server server(listeners[i], a.is_tcp, signal_fd);
        server.run();
      });
    }
    {
      echo_server server(listeners[0], a.is_tcp, signal_fd);
      server.run();
    }
    for (std::thread& t : others) {
      t.join();
    }
  }
  for (const int fd : listeners) {
    ::close(fd);
  }
  ::close(signal_fd);
  if (!a.is_tcp) {
    ::unlink(a.unix_path.c_str());
  }
  return 0;
}
