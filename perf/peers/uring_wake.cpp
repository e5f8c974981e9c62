// uring_wake: what one thread's wake-up of another costs between two io_uring rings, the two
// ways a loop on io_uring can wake a sleeping loop: a write to the other's eventfd (which the
// other ring has a read armed on, as actnet's loops do), or an IORING_OP_MSG_RING from the
// sender's own ring, sent with the io_uring_enter that also waits for the answer. Two threads
// ping-pong: each round trip is two wake-ups of a thread asleep in io_uring_enter. Modes run
// interleaved; prints microseconds a round trip per run and the median per mode.
//
//   uring_wake [--trips N] [--runs R]
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

constexpr std::uint64_t wake_tag = 1;
constexpr std::uint64_t message_tag = 2;

// One side: a ring (single issuer, deferred task work, as actnet's loops set theirs up) and an
// eventfd with a read armed on it.
struct side {
  io_uring ring{};
  int event_fd = -1;
  std::uint64_t value = 0;

  void open() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (const int r = io_uring_queue_init_params(256, &ring, &p); r < 0) {
      throw std::system_error(-r, std::generic_category(), "io_uring_queue_init_params");
    }
    event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  void close() {
    io_uring_queue_exit(&ring);
    ::close(event_fd);
  }
  void arm_read() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, event_fd, &value, sizeof value, 0);
    io_uring_sqe_set_data64(sqe, wake_tag);
  }
  // Submits what is queued and sleeps until a completion with `tag` came (re-arming the read
  // when it is the eventfd's).
  void wait_for(std::uint64_t tag) {
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      if (const int r = io_uring_submit_and_wait(&ring, 1); r < 0 && r != -EINTR) {
        throw std::system_error(-r, std::generic_category(), "io_uring_submit_and_wait");
      }
      bool got = false;
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        ++seen;
        if (cqe->res < 0 && cqe->user_data != 0) {
          std::fprintf(stderr, "completion %llu: %s\n",
                       static_cast<unsigned long long>(cqe->user_data), std::strerror(-cqe->res));
          std::exit(1);
        }
        got = got || cqe->user_data == tag;
      }
      io_uring_cq_advance(&ring, seen);
      if (got) {
        if (tag == wake_tag) {
          arm_read();
        }
        return;
      }
    }
  }
};

enum class mode { eventfd, msg_ring };

// Wakes `to` from `from`'s thread.
void wake(side& from, side& to, mode m) {
  if (m == mode::eventfd) {
    const std::uint64_t one = 1;
    if (::write(to.event_fd, &one, sizeof one) != sizeof one) {
      std::perror("write");
      std::exit(1);
    }
    return;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&from.ring);
  io_uring_prep_msg_ring(sqe, to.ring.ring_fd, 0, message_tag, 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;  // the sender's own completion only on failure
  io_uring_sqe_set_data64(sqe, 0);
}

// Microseconds a round trip over `trips` round trips.
double run(mode m, int trips) {
  side a;
  side b;
  const std::uint64_t tag = m == mode::eventfd ? wake_tag : message_tag;
  // Each ring is set up on the thread that submits to it (SINGLE_ISSUER). b's ring stays open
  // until a has had its last answer, so no wake-up goes to a closed ring.
  a.open();
  std::atomic<bool> b_ready{false};
  std::atomic<bool> a_done{false};
  std::thread other([&] {
    b.open();
    b.arm_read();
    io_uring_submit(&b.ring);
    b_ready = true;
    for (int i = 0; i < trips; ++i) {
      b.wait_for(tag);
      wake(b, a, m);
    }
    io_uring_submit(&b.ring);
    while (!a_done.load()) {
      std::this_thread::yield();
    }
    b.close();
  });
  while (!b_ready.load()) {
    std::this_thread::yield();
  }
  a.arm_read();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < trips; ++i) {
    wake(a, b, m);
    a.wait_for(tag);
  }
  const std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
  a_done = true;
  other.join();
  a.close();
  return took.count() / trips;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int trips = 100'000;
  int runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--trips") {
      trips = std::atoi(argv[i + 1]);
    } else if (flag == "--runs") {
      runs = std::atoi(argv[i + 1]);
    }
  }
  std::vector<double> by_eventfd;
  std::vector<double> by_msg_ring;
  std::printf("run,eventfd_us,msg_ring_us,ratio\n");
  for (int r = 0; r < runs; ++r) {
    by_eventfd.push_back(run(mode::eventfd, trips));
    by_msg_ring.push_back(run(mode::msg_ring, trips));
    std::printf("%d,%.3f,%.3f,%.3f\n", r + 1, by_eventfd.back(), by_msg_ring.back(),
                by_msg_ring.back() / by_eventfd.back());
  }
  std::printf("median,%.3f,%.3f,%.3f\n", median(by_eventfd), median(by_msg_ring),
              median(by_msg_ring) / median(by_eventfd));
}
