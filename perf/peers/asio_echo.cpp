// asio_echo: the perf harness's Boost.Asio peer, the canonical Asio echo server as a skilled user
// tunes it: one single-threaded io_context per thread, async_read_some then async_write.
// Includes the Asio headers it uses, not <boost/asio.hpp>: in 1.74 that pulls in awaitable.hpp,
// which misses <utility> under g++ 12 in C++20 mode.
#include <sys/socket.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "peer_common.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using error_code = boost::system::error_code;

// Asio has no buffer shared between connections, so each session owns one; 16 KiB holds a
// pipelined burst of small messages without costing an idle connection much.
constexpr std::size_t session_buffer_size = 16 * 1024;

// Not in Asio's option list; its documented way to add one.
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

using peers::die;

// Reads, then writes back everything read, then reads again: the next read starts only when
// the write is done, so a client that does not read stops the server reading from it.
class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket socket) noexcept : socket_(std::move(socket)) {}

  void start() { read(); }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](const error_code& ec, std::size_t n) {
                              if (!ec) {
                                self->write(n);
                              }
                            });
  }

  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(buffer_.data(), n),
                      [self = shared_from_this()](const error_code& ec, std::size_t /*n*/) {
                        if (!ec) {
                          self->read();
                        }
                      });
  }

  tcp::socket socket_;
  std::array<char, session_buffer_size> buffer_;
};

// One per thread: its own io_context (concurrency hint 1: only this thread runs it, so Asio
// can skip cross-thread hand-offs) and its own acceptor.
struct worker {
  asio::io_context context{1};
  tcp::acceptor acceptor{context};
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](const error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) {
        return;  // the acceptor was closed: shutting down
      }
      if (!ec) {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<session>(std::move(socket))->start();
      }
      accept();
    });
  }

  // Called on this worker's own thread, so the acceptor is only ever touched there.
  void stop() {
    error_code ignored;
    acceptor.close(ignored);
    context.stop();
  }
};

// With several workers each has its own listener on the same port and the kernel spreads the
// connections between them (SO_REUSEPORT, set before the bind).
void open_acceptor(tcp::acceptor& acceptor, const tcp::endpoint& endpoint, bool share_port) {
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  if (share_port) {
    acceptor.set_option(reuse_port(true));
  }
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
}

tcp::endpoint parse_listen(std::string_view url) {
  const auto [host, port] = peers::split_tcp_url(url);
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    die("--listen: '" + host + "' is not an IPv4 or IPv6 literal");
  }
  return {address, static_cast<std::uint16_t>(port)};
}

// The address the kernel actually bound, so a caller that asked for port 0 can connect.
std::string bound_url(const tcp::endpoint& bound) {
  const std::string host = bound.address().to_string();
  const std::string port = std::to_string(bound.port());
  return bound.address().is_v6() ? "tcp://[" + host + "]:" + port : "tcp://" + host + ":" + port;
}

}  // namespace

int main(int argc, char** argv) {
  const auto [url, loops] =
      peers::parse_args(argc, argv, "usage: asio_echo --listen tcp://HOST:PORT [--loops N]\n");
  peers::raise_nofile_limit();

  tcp::endpoint endpoint = parse_listen(url);
  // A list: workers hold an io_context, which cannot move.
  std::list<worker> workers;
  std::string listening;
  try {
    for (long i = 0; i < loops; ++i) {
      worker& w = workers.emplace_back();
      open_acceptor(w.acceptor, endpoint, loops > 1);
      if (i == 0) {
        // Port 0 means "any": the other workers must share the port the first one was given.
        endpoint = w.acceptor.local_endpoint();
        listening = bound_url(endpoint);
      }
      w.accept();
    }
  } catch (const boost::system::system_error& e) {
    die(std::string("listen: ") + e.what());
  }

  // Watched on the first worker's context; each worker is stopped on its own thread.
  worker& first = workers.front();
  asio::signal_set signals(first.context, SIGINT, SIGTERM);
  signals.async_wait([&workers](const error_code& ec, int /*signum*/) {
    if (ec) {
      return;
    }
    for (worker& w : workers) {
      asio::post(w.context, [&w] { w.stop(); });
    }
  });

  std::printf("listening on %s\n", listening.c_str());
  std::fflush(stdout);

  for (auto it = std::next(workers.begin()); it != workers.end(); ++it) {
    it->thread = std::thread([&w = *it] { w.context.run(); });
  }
  first.context.run();
  for (worker& w : workers) {
    if (w.thread.joinable()) {
      w.thread.join();
    }
  }
  return 0;
}
