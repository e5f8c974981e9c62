// proxy: a TCP / unix stream proxy. Each accepted connection dials the upstream from its own
// loop (connection::dial), so both sides of a pipe are actors of one loop and write to each
// other directly, with no copy through a mailbox. When either side closes, the other is closed
// once its pending output is flushed.
//
// Half-close: a peer's FIN is passed on. The other side shuts its writing once its pending
// output has gone (connection::shutdown_write), and the pipe carries on the other way until that
// peer's FIN too; then both sides close. So a client that sends its request and half-closes
// still gets the whole reply, and a server that says its last word first still hears the
// client out. A pipe with one way shut closes after --fin-timeout without traffic.
//
// Backpressure: when one side's output to its peer reaches the high watermark (the peer reads
// slower than the other side sends), the other side stops reading until that output falls to
// the low watermark; the kernel's buffers then push back on the fast sender. So a pipe buffers
// about a watermark per direction, whatever the speeds. The outbound cap (--outbound-cap) stays
// as the hard limit.
#include <actnet/actors/connection.hpp>
#include <actnet/actors/engine.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "sample_main.hpp"

namespace {

class downstream;
class upstream;

/// The two sides of one proxied connection; each side clears its own pointer in on_close.
struct pipe {
  downstream* front = nullptr;
  upstream* back = nullptr;
  std::chrono::milliseconds fin_timeout{0};
};

/// `from`'s peer sent its FIN: `to` (its partner) shuts its writing after its pending output.
/// When `to`'s peer has finished sending too, nothing more can flow: both close.
void pass_fin(actnet::connection& from, actnet::connection* to, const pipe& p) {
  if (to == nullptr) {
    from.close();
  } else if (to->peer_shut_down()) {
    if (to->inbound_buffered() > 0) {
      return;  // bytes that came before the upstream: `to`'s woken on_data passes them, then this
    }
    to->close();
    from.close();
  } else {
    (void)to->shutdown_write();
    if (p.fin_timeout.count() > 0) {  // one way is over: the other must not hang on for ever
      from.set_timeouts({.idle = p.fin_timeout});
      to->set_timeouts({.idle = p.fin_timeout});
    }
  }
}

/// The connection to the upstream server.
class upstream final : public actnet::connection {
 public:
  explicit upstream(std::shared_ptr<pipe> p) : pipe_(std::move(p)) {}
  void on_open() override;
  void on_data() override;
  void on_peer_shutdown() override;
  void on_writable_changed(bool writable) override;
  void on_close(std::error_code reason) override;

 private:
  std::shared_ptr<pipe> pipe_;
};

/// Pauses or resumes the side that fills `writable`'s output (its partner), not the side
/// itself, which must keep reading its peer's bytes (or that peer would stall).
void throttle(actnet::connection* partner, bool writable) {
  if (partner == nullptr) {
    return;
  }
  if (writable) {
    partner->resume_reading();
  } else {
    partner->pause_reading();
  }
}

/// An accepted client connection.
class downstream final : public actnet::connection {
 public:
  downstream(const std::string* upstream_url, const actnet::dial_options* dial,
             std::chrono::milliseconds fin_timeout)
      : url_(upstream_url), dial_(dial), fin_timeout_(fin_timeout) {}

  void on_open() override {
    pipe_ = std::make_shared<pipe>();
    pipe_->front = this;
    pipe_->fin_timeout = fin_timeout_;
    // The upstream connection lives on this loop. Bytes the client sends meanwhile wait in
    // this side's inbound buffer (bounded by the inbound cap).
    dial<upstream>(
        *url_, *dial_,
        [p = pipe_](actnet::result<actnet::conn_ref> r) {
          if (!r && p->front != nullptr) {
            p->front->close();  // no upstream: the client is told by the close
          }
        },
        pipe_);
  }

  void on_data() override {
    if (pipe_->back != nullptr) {
      (void)pipe_->back->write(next_all());  // past the cap, the upstream side closes
      if (peer_shut_down()) {
        pass_fin(*this, pipe_->back, *pipe_);  // the client's FIN came before the upstream
      }
    }
  }

  void on_peer_shutdown() override {
    // Before the upstream is there, what the client sent waits here, and its FIN with it:
    // upstream::on_open wakes this side, whose on_data passes both on (a failed dial closes).
    if (pipe_->back != nullptr) {
      pass_fin(*this, pipe_->back, *pipe_);
    }
  }

  void on_writable_changed(bool writable) override;

  void on_close(std::error_code /*reason*/) override {
    pipe_->front = nullptr;
    if (pipe_->back != nullptr) {
      pipe_->back->close();  // after what it still has to send upstream
    }
  }

 private:
  const std::string* url_;
  const actnet::dial_options* dial_;
  std::chrono::milliseconds fin_timeout_;
  std::shared_ptr<pipe> pipe_;
};

void upstream::on_open() {
  if (pipe_->front == nullptr) {
    close();  // the client left while we connected
    return;
  }
  pipe_->back = this;
  pipe_->front->wake();  // on_data again for what the client sent before the upstream was there
}

void upstream::on_data() {
  if (pipe_->front != nullptr) {
    (void)pipe_->front->write(next_all());
  }
}

void upstream::on_peer_shutdown() {
  pass_fin(*this, pipe_->front, *pipe_);
}

void upstream::on_writable_changed(bool writable) {
  throttle(pipe_->front, writable);  // the client sends faster than the upstream reads
}

void downstream::on_writable_changed(bool writable) {
  throttle(pipe_->back, writable);  // the upstream sends faster than the client reads
}

void upstream::on_close(std::error_code /*reason*/) {
  pipe_->back = nullptr;
  if (pipe_->front != nullptr) {
    pipe_->front->close();  // after what it still has to send to the client
  }
}

constexpr std::string_view usage =
    R"(usage: proxy --upstream URL [--listen URL]... [--loops N] [--backend B] [--lb STRATEGY] [--cpus LIST]
             [--outbound-cap BYTES] [--fin-timeout MS]
  --upstream URL       where to connect each client: tcp://HOST:PORT, tcp4://, tcp6:// or
                       unix://PATH; tls://HOST:PORT (tls4, tls6, tls+unix) for TLS to it
  --upstream-tls-ca FILE  the CA certificates that sign the upstream's (default: the
                       system's store); --upstream-tls-server-name NAME the name to check
  --listen URL         tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT or unix://PATH (repeatable;
                       default tcp://127.0.0.1:7000; port 0 picks a free port)
  --loops N            loop threads (0 = one per hardware thread; default 0)
  --backend B          epoll (default), io_uring or automatic
  --lb STRATEGY        round_robin (default), source_addr_hash or least_connections
  --cpus LIST          pin loop i to the i-th CPU of LIST (e.g. 0,1; round and round)
  --busy-poll N        microseconds a loop polls before it sleeps (0, the default: off)
  --outbound-cap BYTES the hard limit of what one side may buffer before both sides of that
                       pipe are closed (default 64 MiB); a slow reader normally pauses the
                       other side at the 1 MiB high watermark long before
  --fin-timeout MS     once one way of a pipe is shut (a half-close passed on), both sides
                       close after this long without traffic (default 60000; 0: never)
Each client connection gets its own upstream connection, on the same loop; bytes flow both ways.
A tls:// listener (with --tls-cert and --tls-key) terminates TLS: the upstream gets plain bytes.
When either side closes, the other closes after its pending output. A half-close (FIN) is passed
on after the pending output, and the other way carries on until its FIN too. Prints
"listening on URL" per listener; SIGINT or SIGTERM stops it.
)";

}  // namespace

int main(int argc, char** argv) {
  std::string upstream_url;
  actnet::tls_options upstream_tls;
  std::size_t outbound_cap = 0;
  long long fin_timeout_ms = 60000;
  auto flags =
      actnet::samples::parse_flags(argc, argv, usage, [&](std::string_view f, const char* value) {
        if (f == "--upstream" && value != nullptr) {
          upstream_url = value;
          return 2;
        }
        if (f == "--upstream-tls-ca" && value != nullptr) {
          upstream_tls.ca_file = value;
          return 2;
        }
        if (f == "--upstream-tls-server-name" && value != nullptr) {
          upstream_tls.server_name = value;
          return 2;
        }
        if (f == "--outbound-cap" && value != nullptr) {
          outbound_cap = std::strtoull(value, nullptr, 10);
          return 2;
        }
        if (f == "--fin-timeout" && value != nullptr) {
          fin_timeout_ms = actnet::samples::number_flag(f, value, 0);
          return 2;
        }
        return 0;
      });
  if (upstream_url.empty()) {
    std::fprintf(stderr, "--upstream URL is required (try --help)\n");
    return 2;
  }
  try {
    // A bad one is refused now, not per client.
    (void)actnet::address::parse(actnet::samples::plain_url(upstream_url));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "--upstream: %s\n", e.what());
    return 2;
  }
  if (outbound_cap != 0) {
    flags.options.outbound_cap = outbound_cap;
  }
  actnet::dial_options dial;
  if (upstream_url.starts_with("tls")) {
    dial.tls = upstream_tls;  // originates TLS: plain from the client, encrypted upstream
  }
  return actnet::samples::serve<downstream>(flags, {}, &upstream_url, &dial,
                                            std::chrono::milliseconds(fin_timeout_ms));
}
