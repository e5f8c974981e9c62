// libuv_echo: the perf harness's libuv peer, an echo server as a skilled libuv user writes it:
// one uv_loop per thread, a shared 64 KiB read buffer per loop, uv_try_write before uv_write.
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <uv.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "peer_common.hpp"

namespace {

constexpr std::size_t read_buffer_size = 64 * 1024;

using peers::die;

void check(int status, const char* what) {
  if (status < 0) {
    die(std::string(what) + ": " + uv_strerror(status));
  }
}

// One per thread. Nothing in it is touched by another thread except `stop`, whose uv_async_send
// is libuv's one thread-safe call.
struct loop_context {
  uv_loop_t loop{};
  uv_tcp_t listener{};
  uv_async_t stop{};
  uv_thread_t thread{};
  // Every read lands here and is echoed (or copied out) before the callback returns, so one
  // buffer serves all the loop's connections and a read allocates nothing.
  std::array<char, read_buffer_size> read_buffer{};
};

struct connection {
  uv_tcp_t tcp{};
  // At most one write is in flight: reading stops while it is, so one request and one copy
  // of the unsent rest are enough.
  uv_write_t write_request{};
  std::vector<char> pending;
};

uv_stream_t* as_stream(uv_tcp_t* tcp) {
  return reinterpret_cast<uv_stream_t*>(tcp);
}
uv_handle_t* as_handle(uv_tcp_t* tcp) {
  return reinterpret_cast<uv_handle_t*>(tcp);
}

void on_connection_closed(uv_handle_t* handle) {
  delete static_cast<connection*>(handle->data);
}

void close_connection(connection* c) {
  if (!uv_is_closing(as_handle(&c->tcp))) {
    uv_close(as_handle(&c->tcp), on_connection_closed);
  }
}

void on_alloc(uv_handle_t* handle, std::size_t /*suggested*/, uv_buf_t* buf) {
  auto* ctx = static_cast<loop_context*>(handle->loop->data);
  buf->base = ctx->read_buffer.data();
  buf->len = ctx->read_buffer.size();
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

void on_write(uv_write_t* request, int status) {
  auto* c = static_cast<connection*>(request->data);
  // Given back rather than cleared: an idle connection should cost no buffer.
  std::vector<char>().swap(c->pending);
  if (status < 0) {
    close_connection(c);  // also the path of UV_ECANCELED, when the handle is already closing
    return;
  }
  const int r = uv_read_start(as_stream(&c->tcp), on_alloc, on_read);
  if (r < 0) {
    close_connection(c);
  }
}

// Writes straight from the shared buffer; what the socket refuses is copied, reading pauses
// until it is written, so a client that does not read cannot make the server buffer without
// bound.
void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<connection*>(stream->data);
  if (nread < 0) {
    close_connection(c);  // UV_EOF or an error
    return;
  }
  if (nread == 0) {
    return;  // EAGAIN: libuv reports it, nothing to do
  }
  const uv_buf_t out = uv_buf_init(buf->base, static_cast<unsigned int>(nread));
  int written = uv_try_write(stream, &out, 1);
  if (written == nread) {
    return;
  }
  if (written == UV_EAGAIN) {
    written = 0;
  } else if (written < 0) {
    close_connection(c);
    return;
  }
  c->pending.assign(buf->base + written, buf->base + nread);
  const uv_buf_t rest =
      uv_buf_init(c->pending.data(), static_cast<unsigned int>(c->pending.size()));
  uv_read_stop(stream);
  c->write_request.data = c;
  if (uv_write(&c->write_request, stream, &rest, 1, on_write) < 0) {
    std::vector<char>().swap(c->pending);
    close_connection(c);
  }
}

void on_new_connection(uv_stream_t* server, int status) {
  if (status < 0) {
    std::fprintf(stderr, "libuv_echo: accept: %s\n", uv_strerror(status));
    return;
  }
  auto* c = new connection;
  c->tcp.data = c;
  check(uv_tcp_init(server->loop, &c->tcp), "uv_tcp_init");
  if (uv_accept(server, as_stream(&c->tcp)) != 0) {
    close_connection(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start(as_stream(&c->tcp), on_alloc, on_read) != 0) {
    close_connection(c);
  }
}

// Runs on the loop being stopped: closing the listener here keeps every handle on its own loop.
void on_stop(uv_async_t* async) {
  auto* ctx = static_cast<loop_context*>(async->loop->data);
  if (!uv_is_closing(as_handle(&ctx->listener))) {
    uv_close(as_handle(&ctx->listener), nullptr);
  }
  uv_stop(async->loop);
}

// The signals are watched on the first loop only; every loop, that one included, stops itself.
void on_signal(uv_signal_t* signal, int /*signum*/) {
  auto* contexts = static_cast<std::vector<std::unique_ptr<loop_context>>*>(signal->data);
  for (auto& ctx : *contexts) {
    uv_async_send(&ctx->stop);
  }
}

// Closes whatever is still open (connections, the loop's own handles) and lets the close
// callbacks run, so uv_loop_close finds the loop empty.
void close_loop(uv_loop_t* loop) {
  uv_walk(
      loop,
      [](uv_handle_t* handle, void* /*arg*/) {
        if (uv_is_closing(handle)) {
          return;
        }
        const bool is_connection = handle->type == UV_TCP && handle->data != nullptr;
        uv_close(handle, is_connection ? on_connection_closed : nullptr);
      },
      nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  check(uv_loop_close(loop), "uv_loop_close");
}

void run_loop(void* arg) {
  auto* ctx = static_cast<loop_context*>(arg);
  uv_run(&ctx->loop, UV_RUN_DEFAULT);
}

struct listen_address {
  sockaddr_storage storage{};
  std::string host;
};

listen_address parse_listen(std::string_view url) {
  const auto [host, port] = peers::split_tcp_url(url);
  listen_address a;
  a.host = host;
  const int p = port;
  if (uv_ip4_addr(host.c_str(), p, reinterpret_cast<sockaddr_in*>(&a.storage)) != 0 &&
      uv_ip6_addr(host.c_str(), p, reinterpret_cast<sockaddr_in6*>(&a.storage)) != 0) {
    die("--listen: '" + host + "' is not an IPv4 or IPv6 literal");
  }
  return a;
}

void set_port(sockaddr_storage& storage, std::uint16_t port_network_order) {
  if (storage.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&storage)->sin_port = port_network_order;
  } else {
    reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = port_network_order;
  }
}

// The address the kernel actually bound, so a caller that asked for port 0 can connect.
std::string bound_url(uv_tcp_t* listener, sockaddr_storage& bound) {
  int len = sizeof bound;
  check(uv_tcp_getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &len),
        "uv_tcp_getsockname");
  std::array<char, 64> host{};
  if (bound.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&bound);
    uv_ip4_name(v4, host.data(), host.size());
    return "tcp://" + std::string(host.data()) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&bound);
  uv_ip6_name(v6, host.data(), host.size());
  return "tcp://[" + std::string(host.data()) + "]:" + std::to_string(ntohs(v6->sin6_port));
}

// With several loops each has its own listener on the same port and the kernel spreads the
// connections (SO_REUSEPORT, which libuv 1.44 has no flag for, so it is set on the raw socket
// before the bind).
void open_listener(loop_context& ctx, const sockaddr_storage& address, bool reuse_port) {
  check(uv_tcp_init_ex(&ctx.loop, &ctx.listener, address.ss_family), "uv_tcp_init_ex");
  if (reuse_port) {
    uv_os_fd_t fd{};
    check(uv_fileno(as_handle(&ctx.listener), &fd), "uv_fileno");
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      die(std::string("setsockopt SO_REUSEPORT: ") + std::strerror(errno));
    }
  }
  check(uv_tcp_bind(&ctx.listener, reinterpret_cast<const sockaddr*>(&address), 0), "bind");
  check(uv_listen(as_stream(&ctx.listener), SOMAXCONN, on_new_connection), "listen");
}

}  // namespace

int main(int argc, char** argv) {
  const auto [url, loops] =
      peers::parse_args(argc, argv, "usage: libuv_echo --listen tcp://HOST:PORT [--loops N]\n");
  peers::raise_nofile_limit();
  // uv_try_write uses write(), which raises SIGPIPE on a reset connection; the error code is
  // what the read and write callbacks act on.
  ::signal(SIGPIPE, SIG_IGN);

  listen_address address = parse_listen(url);
  std::vector<std::unique_ptr<loop_context>> contexts;
  std::string listening;
  for (long i = 0; i < loops; ++i) {
    auto& ctx = *contexts.emplace_back(std::make_unique<loop_context>());
    check(uv_loop_init(&ctx.loop), "uv_loop_init");
    ctx.loop.data = &ctx;
    check(uv_async_init(&ctx.loop, &ctx.stop, on_stop), "uv_async_init");
    open_listener(ctx, address.storage, loops > 1);
    if (i == 0) {
      // Port 0 means "any": the other loops must share the port the first one was given.
      sockaddr_storage bound{};
      listening = bound_url(&ctx.listener, bound);
      set_port(address.storage, bound.ss_family == AF_INET
                                    ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                    : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    }
  }

  uv_loop_t* first = &contexts.front()->loop;
  std::array<uv_signal_t, 2> signals{};
  const std::array<int, 2> signal_numbers{SIGINT, SIGTERM};
  for (std::size_t i = 0; i < signals.size(); ++i) {
    check(uv_signal_init(first, &signals[i]), "uv_signal_init");
    signals[i].data = &contexts;
    check(uv_signal_start(&signals[i], on_signal, signal_numbers[i]), "uv_signal_start");
  }

  std::printf("listening on %s\n", listening.c_str());
  std::fflush(stdout);

  for (std::size_t i = 1; i < contexts.size(); ++i) {
    check(uv_thread_create(&contexts[i]->thread, run_loop, contexts[i].get()), "uv_thread_create");
  }
  run_loop(contexts.front().get());
  for (std::size_t i = 1; i < contexts.size(); ++i) {
    uv_thread_join(&contexts[i]->thread);
  }
  for (auto& ctx : contexts) {
    close_loop(&ctx->loop);
  }
  return 0;
}
