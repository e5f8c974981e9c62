// engine: validating options, listening, starting and stopping the loops.
#include "actnet/actors/engine.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <csignal>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "actnet/actors/detail/byte_layer.hpp"
#include "actnet/actors/detail/kcp_state.hpp"
#include "actnet/actors/detail/tls_layer.hpp"
#include "actnet/error.hpp"
#include "engine_options.hpp"
#include "log.hpp"
#include "watchdog.hpp"

namespace actnet {
namespace {

std::shared_ptr<spdlog::logger> logger_for(const engine_options& o) {
  std::shared_ptr<spdlog::logger> l = o.logger;
  if (l == nullptr) {
    if (!o.log_level) {
      return {std::shared_ptr<spdlog::logger>(), &detail::log()};  // actnet's, not owned
    }
    l = detail::log().clone("actnet");
  }
  if (o.log_level) {
    l->set_level(*o.log_level);
  }
  return l;
}

}  // namespace

engine::engine(engine_options options)
    : options_(detail::checked_options(std::move(options))), logger_(logger_for(options_)) {
  if (const std::string missing = detail::resolve_backend(options_); !missing.empty()) {
    logger_->info("io_uring cannot run here (missing: {}); the loops run on epoll", missing);
  }
  std::signal(SIGPIPE, SIG_IGN);
  balancer_ = options_.custom_balancer ? options_.custom_balancer(options_.loops)
                                       : make_balancer(options_.balancing, options_.loops);
  if (balancer_ == nullptr || balancer_->targets() != options_.loops) {
    throw std::invalid_argument(
        "actnet: engine option custom_balancer must return a balancer over " +
        std::to_string(options_.loops) + " loop(s)");
  }
  workers_ = std::make_unique<worker_pool>(options_.workers, options_.worker_queue_cap);
  loops_.reserve(options_.loops);
  for (std::size_t i = 0; i < options_.loops; ++i) {
    loops_.push_back(std::make_unique<event_loop>(*this, i, options_));
  }
}

engine::~engine() {
  stop();
  std::unique_lock lock(run_mutex_);
  run_done_.wait(lock, [this] { return run_finished_; });
  close_listeners();  // when run() was never called
}

void engine::close_listeners() noexcept {
  const std::lock_guard lock(listener_fds_);
  for (listener& l : listeners_) {
    if (l.fd && l.bound.transport() == transport::unix_stream && !l.bound.abstract()) {
      const auto* un = reinterpret_cast<const sockaddr_un*>(l.bound.data());
      ::unlink(un->sun_path);  // the socket file goes with its listener
    }
    l.fd.reset();
  }
}

address engine::listen(std::string_view url, factory make, const listen_options& options) {
  if (running_.load()) {
    throw std::logic_error("actnet: listen('" + std::string(url) + "') after run()");
  }
  const std::optional<detail::tls_url> secure = detail::parse_tls_url(url);
  const std::optional<std::string> kcp = detail::kcp_plain_url(url);
  const address wanted = address::parse(secure ? std::string_view(secure->plain)
                                        : kcp  ? std::string_view(*kcp)
                                               : url);
  const auto bad = [&](const std::string& what) {
    throw std::invalid_argument("actnet: listen('" + std::string(url) + "'): " + what);
  };
  listen_options effective = options;
  if (options.kcp && !kcp) {
    bad("listen_options::kcp needs a kcp://, kcp4:// or kcp6:// address");
  }
  if (kcp) {
    if (wanted.multicast()) {
      bad("KCP over a multicast group");
    }
    // A conversation per peer and conversation id: UDP's sessions, routed by both.
    effective.kcp = options.kcp.value_or(kcp_options{});
    effective.udp_sessions = true;
    try {
      detail::check_kcp_options(*effective.kcp, options_.read_buffer_size);
    } catch (const std::invalid_argument& e) {
      bad(e.what());
    }
  }
  if (secure.has_value() != options.tls.has_value()) {
    bad(secure ? "a tls address needs listen_options::tls"
               : "listen_options::tls needs a tls://, tls4://, tls6:// or tls+unix:// address");
  }
  std::shared_ptr<detail::tls_listener_context> tls;
  std::shared_ptr<detail::tls_counters> tls_counts;
  if (options.tls) {
    tls_counts = std::make_shared<detail::tls_counters>();
    try {
      tls = std::make_shared<detail::tls_listener_context>(
          detail::make_tls_server(*options.tls, logger_, tls_counts));
    } catch (const std::invalid_argument& e) {
      bad(e.what());
    }
    make =
        detail::layered(std::move(make), [tls] { return detail::make_tls_layer(tls->current()); });
  }
  if (options.udp_sessions && wanted.transport() != transport::udp) {
    bad("udp_sessions is for udp addresses");
  }
  if (options.session_idle_timeout.count() <= 0 ||
      options.session_idle_timeout > std::chrono::hours(24 * 365)) {
    bad("session_idle_timeout = " + std::to_string(options.session_idle_timeout.count()) +
        " ms: must be positive and at most a year");
  }
  if (options.max_sessions == 0) {
    bad("max_sessions = 0: must be at least 1");
  }
  socket_options socket = options_.socket;
  if (wanted.transport() == transport::udp && !wanted.multicast() && loops_.size() > 1) {
    socket.reuse_port = true;  // a socket per loop
  }
  if (wanted.multicast()) {
    socket.reuse_port = false;  // one socket: a group's datagrams reach every socket bound to it
  }
  result<unique_fd> fd = open_listener(wanted, socket);
  if (!fd) {
    throw std::system_error(fd.error(), "actnet: cannot listen on '" + std::string(url) + "'");
  }
  const result<address> local = local_address(fd->get(), wanted.transport());
  const address bound = local ? *local : wanted;
  std::vector<unique_fd> siblings;
  if (wanted.transport() == transport::udp && !wanted.multicast()) {
    for (std::size_t k = 1; k < loops_.size(); ++k) {
      result<unique_fd> sibling = open_listener(wanted.with_port(bound.port()), socket);
      if (!sibling) {
        throw std::system_error(
            sibling.error(),
            "actnet: UDP socket for loop " + std::to_string(k) + " on '" + std::string(url) + "'");
      }
      siblings.push_back(std::move(*sibling));
    }
  }
  listeners_.push_back({bound, std::move(*fd), std::move(make), wanted, effective,
                        std::move(siblings), std::move(tls), std::move(tls_counts)});
  return listeners_.back().bound;
}

void engine::open_datagram_sockets(std::size_t index) {
  listener& l = listeners_[index];
  // The engine keeps the bound socket (for dup_listener); loop 0's actor owns a duplicate.
  const int copy = ::fcntl(l.fd.get(), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    throw std::system_error(errno, std::system_category(),
                            "actnet: UDP socket on '" + l.bound.to_string() + "'");
  }
  for (std::size_t k = 0; k < loops_.size(); ++k) {
    unique_fd fd = k == 0 ? unique_fd(copy) : std::move(l.siblings.at(k - 1));
    loops_[k]->post_fn(
        [index, owned = std::move(fd)](event_loop& loop, connection*, std::error_code) mutable {
          loop.datagrams_.open(index, std::move(owned));
        });
    if (l.siblings.empty()) {
      break;  // one socket serves this address
    }
  }
  l.siblings.clear();
}

void engine::pin_thread(std::size_t loop) const noexcept {
  if (options_.cpu_affinity.empty()) {
    return;
  }
  const int cpu = options_.cpu_affinity[loop % options_.cpu_affinity.size()];
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (const int err = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set); err != 0) {
    logger().warn("loop {}: cannot pin to CPU {}: {}", loop, cpu,
                  std::error_code(err, std::system_category()).message());
  }
}

std::error_code engine::enroll(int fd, factory make) {
  unique_fd owned(fd);
  const auto sys_error = [] { return std::error_code(errno, std::system_category()); };
  int type = 0;
  int domain = 0;
  socklen_t size = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0) {
    return sys_error();  // not a socket (ENOTSOCK), or not an fd (EBADF)
  }
  size = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) != 0) {
    return sys_error();
  }
  if (type != SOCK_STREAM) {
    return std::make_error_code(std::errc::wrong_protocol_type);  // datagrams come with UDP
  }
  if (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX) {
    return std::make_error_code(std::errc::address_family_not_supported);
  }
  sockaddr_storage peer{};
  socklen_t peer_length = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0) {  // NOLINT
    return sys_error();  // not connected: ENOTCONN
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
      ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    return sys_error();
  }
  const transport t = domain == AF_UNIX ? transport::unix_stream : transport::tcp;
  if (t == transport::tcp && options_.socket.tcp_nodelay) {
    (void)set_nodelay(fd, true);
  }
  balancer_assignment to =
      balancer_->assign(reinterpret_cast<const sockaddr*>(&peer), peer_length);  // NOLINT
  // The engine's own message, as an accepted connection's: a full mailbox does not refuse it.
  loops_[to.target]->post_fn(
      [fd = std::move(owned), make = std::move(make), lease = std::move(to.lease)](
          event_loop& loop, connection*, std::error_code) mutable {
        loop.adopt(std::move(fd), make, std::move(lease));
      });
  return {};
}

void engine::socket_actor_closed(std::size_t index, std::size_t loop) noexcept {
  if (loop == 0) {  // loop 0's socket is a duplicate of this one: both must go
    const std::lock_guard lock(listener_fds_);
    listeners_[index].fd.reset();
  }
}

void engine::dial(std::string_view url, factory make, const dial_options& options, dial_done done) {
  if (const std::optional<std::string> kcp = detail::kcp_plain_url(url)) {
    dial_options with = options;
    if (!with.kcp) {
      with.kcp.emplace();
    }
    dial(address::parse(*kcp), std::move(make), with, std::move(done));
    return;
  }
  const std::optional<detail::tls_url> secure = detail::parse_tls_url(url);
  if (!secure) {
    dial(address::parse(url), std::move(make), options, std::move(done));
    return;
  }
  dial_options with = options;
  if (!with.tls) {
    with.tls.emplace();
  }
  if (with.tls->server_name.empty()) {
    with.tls->server_name = secure->host;
  }
  dial(address::parse(secure->plain), std::move(make), with, std::move(done));
}

void engine::reload_tls(std::size_t index, const tls_options& options) {
  if (index >= listeners_.size() || listeners_[index].tls == nullptr) {
    throw std::out_of_range("actnet: reload_tls(" + std::to_string(index) +
                            "): not a TLS listener");
  }
  listener& l = listeners_[index];
  // Made whole first: a bad file throws here, and the listener keeps what it has.
  l.tls->replace(detail::make_tls_server(options, logger_, l.tls_counts));
  logger_->info("listener {}: TLS settings reloaded", l.bound.to_string());
}

tls_stats engine::tls_stats_of(std::size_t index) const {
  if (index >= listeners_.size() || listeners_[index].tls_counts == nullptr) {
    throw std::out_of_range("actnet: tls_stats_of(" + std::to_string(index) +
                            "): not a TLS listener");
  }
  const detail::tls_counters& c = *listeners_[index].tls_counts;
  return {c.handshakes.load(std::memory_order_relaxed), c.failures.load(std::memory_order_relaxed)};
}

void engine::dial(const address& to, factory make, const dial_options& options, dial_done done) {
  if (options.tls) {
    if (to.transport() == transport::udp) {
      throw std::invalid_argument("actnet: dial('" + to.to_string() + "'): TLS over udp");
    }
    make = detail::tls_client_factory(std::move(make), *options.tls, to, logger_);
  }
  if (options.kcp) {
    if (to.transport() != transport::udp || to.multicast()) {
      throw std::invalid_argument("actnet: dial('" + to.to_string() + "'): KCP needs a udp peer");
    }
    try {
      detail::check_kcp_options(*options.kcp, options_.read_buffer_size);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("actnet: dial('" + to.to_string() + "'): " + e.what());
    }
    make = detail::kcp_client_factory(std::move(make), *options.kcp);
  }
  std::shared_ptr<detail::redial> again = prepare_dial(to, make, options, done);
  post_dial(to, std::move(make), options, std::move(done), std::move(again));
}

std::shared_ptr<detail::redial> engine::prepare_dial(const address& to, const factory& make,
                                                     const dial_options& options,
                                                     const dial_done& done) {
  if (!to.valid()) {
    throw std::invalid_argument("actnet: dial(): not a valid address");
  }
  if (options.timeout.count() < 0 || options.timeout > std::chrono::hours(24 * 365)) {
    throw std::invalid_argument("actnet: dial('" + to.to_string() +
                                "'): timeout = " + std::to_string(options.timeout.count()) +
                                " ms: must be between 0 (none) and a year");
  }
  if (!options.reconnect) {
    return nullptr;
  }
  const reconnect_policy& p = *options.reconnect;
  const auto year = std::chrono::hours(24 * 365);
  if (p.initial_delay.count() <= 0 || p.max_delay < p.initial_delay || p.max_delay > year ||
      !(p.multiplier >= 1.0 && p.multiplier <= 1000.0)) {
    throw std::invalid_argument(
        "actnet: dial('" + to.to_string() +
        "'): reconnect: initial_delay = " + std::to_string(p.initial_delay.count()) +
        " ms, max_delay = " + std::to_string(p.max_delay.count()) +
        " ms, multiplier = " + std::to_string(p.multiplier) +
        ": need 0 < initial_delay <= max_delay <= a year and 1 <= multiplier <= 1000");
  }
  return std::make_shared<detail::redial>(detail::redial{to, make, options, done, 0});
}

void engine::post_dial(const address& to, factory make, const dial_options& options, dial_done done,
                       std::shared_ptr<detail::redial> again) {
  if (stop_requested_.load()) {  // a dial after stop(): answered now, not at destruction
    done(make_error_code(errc::engine_stopped));
    return;
  }
  // If the loop never runs it (the engine stopped first), the request says so as it goes.
  struct request {
    address to;
    factory make;
    dial_options options;
    dial_done done;
    balancer_lease lease;
    std::shared_ptr<detail::redial> again;
    request(address a, factory m, dial_options o, dial_done d, balancer_lease l,
            std::shared_ptr<detail::redial> r)
        : to(a),
          make(std::move(m)),
          options(std::move(o)),
          done(std::move(d)),
          lease(std::move(l)),
          again(std::move(r)) {}
    request(const request&) = delete;
    request& operator=(const request&) = delete;
    ~request() {
      if (done) {
        done(make_error_code(errc::engine_stopped));
      }
    }
  };
  // A reconnect of connection::dial stays on its loop; any other dial goes where the balancer says.
  balancer_assignment target = again && again->loop != SIZE_MAX
                                   ? balancer_->assign_to(again->loop)
                                   : balancer_->assign(to.data(), to.size());
  auto r = std::make_unique<request>(to, std::move(make), options, std::move(done),
                                     std::move(target.lease), std::move(again));
  // The engine's own message: a full mailbox does not refuse it (nor a reconnect).
  loops_[target.target]->post_fn(
      [r = std::move(r)](event_loop& loop, connection*, std::error_code) mutable {
        loop.dialer_.start(r->to, std::move(r->make), r->options, std::exchange(r->done, nullptr),
                           std::move(r->lease), std::move(r->again));
      });
}

result<unique_fd> engine::dup_listener(std::size_t index) const {
  const std::lock_guard lock(listener_fds_);
  if (index >= listeners_.size()) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (!listeners_[index].fd) {
    return std::make_error_code(std::errc::bad_file_descriptor);
  }
  const int copy = ::fcntl(listeners_[index].fd.get(), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    return std::error_code(errno, std::system_category());
  }
  return unique_fd(copy);
}

std::vector<address> engine::addresses() const {
  std::vector<address> out;
  for (const listener& l : listeners_) {
    out.push_back(l.bound);
  }
  return out;
}

std::size_t engine::count_connections() const noexcept {
  std::size_t n = 0;
  for (const auto& l : loops_) {
    n += l->connection_count();
  }
  return n;
}

engine_metrics engine::metrics() const {
  engine_metrics m;
  m.loops.reserve(loops_.size());
  for (const auto& l : loops_) {
    m.loops.push_back(l->read_metrics());
    m.total += m.loops.back();
  }
  m.worker_queue = workers_ != nullptr ? workers_->queued() : 0;
  return m;
}

void engine::stop() noexcept {
  if (stop_requested_.exchange(true)) {
    return;
  }
  for (const auto& l : loops_) {
    l->send(detail::message::stop());
  }
}

void engine::tick() {
  if (stop_requested_.load()) {
    return;
  }
  std::chrono::nanoseconds next{-1};
  try {
    next = on_tick_(*this);
  } catch (const std::exception& e) {
    logger().error("on_tick threw: {}; the ticker stops", e.what());
  }
  if (next >= std::chrono::nanoseconds::zero() && !stop_requested_.load()) {
    loops_[0]->after(next, [this] { tick(); });
  }
}

void engine::run() {
  if (running_.exchange(true)) {
    throw std::logic_error("actnet: engine::run() called twice");
  }
  {
    const std::lock_guard lock(run_mutex_);
    run_finished_ = false;
  }
  // However run() ends (a throw included), the destructor must not wait for it forever.
  struct finished_guard {
    engine& e;
    ~finished_guard() {
      const std::lock_guard lock(e.run_mutex_);
      e.run_finished_ = true;
      e.run_done_.notify_all();
    }
  } guard{*this};
  if (on_boot_) {
    on_boot_(*this);
  }
  // Listeners: loop 0 accepts for all (main reactor), or each loop has its own SO_REUSEPORT
  // socket on the same address; unix sockets cannot share a path, so loop 0 accepts those.
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    listener& l = listeners_[i];
    if (l.bound.transport() == transport::udp) {
      open_datagram_sockets(i);
      continue;
    }
    const bool shared = options_.reuse_port && l.bound.transport() == transport::tcp;
    loops_[0]->accepting_.add_listener(i, l.fd.get());
    if (!shared) {
      continue;
    }
    for (std::size_t k = 1; k < loops_.size(); ++k) {
      result<unique_fd> fd = open_listener(l.requested.with_port(l.bound.port()), options_.socket);
      if (!fd) {
        throw std::system_error(fd.error(),
                                "actnet: SO_REUSEPORT listener on '" + l.bound.to_string() + "'");
      }
      loops_[k]->accepting_.add_own_listener(i, std::move(*fd));
    }
  }
  if (on_tick_) {
    loops_[0]->after(std::chrono::nanoseconds::zero(), [this] { tick(); });
  }
  std::optional<detail::watchdog> watching;  // the stall detector's thread, while run() runs
  if (options_.stall_threshold.count() > 0) {
    watching.emplace(*this);
  }
  std::vector<std::thread> threads;
  for (std::size_t k = 1; k < loops_.size(); ++k) {
    threads.emplace_back([this, k] {
      pin_thread(k);
      loops_[k]->run();
    });
  }
  try {
    if (loops_[0]->backend_.is_uring()) {
      // Tearing a ring down leaves the kernel's clean-up work for the thread that made it,
      // which interrupts that thread's next blocking call with EINTR (a recv after run(), say):
      // loop 0 gets a thread of its own, so that thread is never the caller's.
      std::exception_ptr failed;
      std::thread own([this, &failed] {
        try {
          pin_thread(0);
          loops_[0]->run();
        } catch (...) {
          failed = std::current_exception();
        }
      });
      own.join();
      if (failed) {
        std::rethrow_exception(failed);
      }
    } else {
      pin_thread(0);
      loops_[0]->run();
    }
  } catch (...) {
    stop();
    for (std::thread& t : threads) {
      t.join();
    }
    close_listeners();
    throw;
  }
  stop();  // loop 0 can end without stop() only on a fatal poller error: take the others along
  for (std::thread& t : threads) {
    t.join();
  }
  // The loops have stopped: running jobs finish (their results find no loop and are counted
  // as dropped below), the rest are cancelled.
  workers_->stop();
  for (const auto& l : loops_) {
    l->drain_stopped();
  }
  close_listeners();
  if (on_shutdown_) {
    on_shutdown_(*this);
  }
}

}  // namespace actnet
