// offloads: connection::offload's job on a loop: a sequence number per submission, and the
// results run back in that order (offload_order), forgotten when the connection closes.
#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/loop_jobs.hpp"
#include "actnet/actors/event_loop.hpp"
#include "guarded.hpp"

namespace actnet::detail {

offloads::offloads(event_loop& loop) : loop_(loop) {
  loop.observe(*this, loop_core::closes);
}

std::uint64_t offloads::next(const connection& c) {
  tracking_ = true;  // (false again once nothing is in flight)
  return order_.next(loop_core::id_of(c));
}

void offloads::unused(const connection& c, std::uint64_t seq) noexcept {
  order_.unused(loop_core::id_of(c), seq);
  tracking_ = !order_.empty();
}

void offloads::arrived(connection& c, std::uint64_t seq, unique_function<void()> deliver) {
  // A continuation may offload again or close c; one that throws is logged, and the results
  // queued behind it still run.
  order_.arrived(loop_core::id_of(c), seq, std::move(deliver),
                 [this, &c](unique_function<void()>& d) {
                   (void)guarded(loop_, "an offload's continuation", d);
                   return c.is_open();
                 });
  tracking_ = !order_.empty();
}

void offloads::closed(connection& c, std::error_code /*reason*/, bool /*stopping*/) noexcept {
  order_.forget(loop_core::id_of(c));  // later results find no connection
  tracking_ = !order_.empty();
}

}  // namespace actnet::detail
