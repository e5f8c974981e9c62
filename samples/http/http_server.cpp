// http_server: HTTP/1.1 with keep-alive and pipelining, TechEmpower's /plaintext and /json, 404
// for the rest. Every complete request in a read is answered, in order, and the answers leave
// in one write. Bad input gets its status and a close: 400 malformed, 413 body over 1 MiB, 431
// head over 8 KiB, 501 Transfer-Encoding, 505 other HTTP versions.
#include <actnet/actors/connection.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>

#include "http_parser.hpp"
#include "sample_main.hpp"

namespace {

namespace http = actnet::samples::http;

/// "Date: <IMF-fixdate>\r\n", formatted once a second per thread.
std::string_view date_header() {
  thread_local std::time_t cached_second = 0;
  thread_local char line[64] = {};
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    cached_second = now;
    std::tm utc{};
    gmtime_r(&now, &utc);
    length = std::strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &utc);
  }
  return {line, length};
}

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

void respond(std::string& out, int status, std::string_view type, std::string_view body,
             bool close) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason(status);
  out += "\r\nServer: actnet\r\n";
  out += date_header();
  out += "Content-Type: ";
  out += type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n";
  out += body;
}

// The most requests one handler answers: a read holding more (a pipelined flood) is answered a
// slice at a time, the rest after the loop's other work (a message to itself).
constexpr int requests_per_slice = 256;

class http_connection final : public actnet::connection {
 public:
  actnet::samples::slicer slices;  // the requests past a slice: a message to this connection

  void on_data() override {
    const std::string_view bytes = actnet::samples::contiguous(peek_all(), joined_);
    out_.clear();
    std::size_t used = 0;
    bool closing = false;
    for (int answered = 0; !closing; ++answered) {
      if (answered == requests_per_slice && slices.later(*this)) {
        break;
      }
      const http::parse_result r = http::parse(bytes.substr(used));
      if (r.status == http::parse_status::incomplete) {
        break;
      }
      if (r.status == http::parse_status::failed) {
        respond(out_, r.error, "text/plain", reason(r.error), true);
        closing = true;
        break;
      }
      used += r.req.size;
      closing = !r.req.keep_alive;
      route(r.req, closing);
    }
    if (!out_.empty()) {
      (void)write(out_);
    }
    (void)discard(used);
    if (closing) {
      close();  // after the answers are sent
    }
  }

 private:
  void route(const http::request& req, bool close) {
    if (req.target == "/plaintext") {
      respond(out_, 200, "text/plain", "Hello, World!", close);
    } else if (req.target == "/json") {
      respond(out_, 200, "application/json", R"({"message":"Hello, World!"})", close);
    } else {
      respond(out_, 404, "text/plain", "Not Found", close);
    }
  }

  std::string out_;     // this read's answers, sent in one write
  std::string joined_;  // the inbound bytes when they wrap in the ring
};

constexpr std::string_view usage =
    R"(usage: http_server [--listen URL]... [--loops N] [--backend B] [--lb STRATEGY] [--cpus LIST]
  --listen URL   tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT or unix://PATH (repeatable;
                 default tcp://127.0.0.1:7000; port 0 picks a free port)
  --loops N      loop threads (0 = one per hardware thread; default 0)
  --backend B    epoll (default), io_uring or automatic
  --lb STRATEGY  round_robin (default), source_addr_hash or least_connections
  --cpus LIST    pin loop i to the i-th CPU of LIST (e.g. 0,1; round and round)
  --busy-poll N  microseconds a loop polls before it sleeps (0, the default: off)
  --keepalive-timeout MS
                 close a connection after this long with nothing read or written (default
                 60000, nginx's 75 s rounded down; 0: never)
HTTP/1.1 (and 1.0) with keep-alive and pipelining. GET /plaintext answers "Hello, World!",
/json {"message":"Hello, World!"}, anything else 404. Heads over 8 KiB get 431, bodies over
1 MiB 413, malformed requests 400, Transfer-Encoding 501; each of those closes the connection.
Prints "listening on URL" per listener; SIGINT or SIGTERM stops it.
)";

}  // namespace

int main(int argc, char** argv) {
  long long keepalive_ms = 60000;
  auto flags =
      actnet::samples::parse_flags(argc, argv, usage, [&](std::string_view f, const char* value) {
        if (f == "--keepalive-timeout" && value != nullptr) {
          keepalive_ms = actnet::samples::number_flag(f, value, 0);
          return 2;
        }
        return 0;
      });
  // An idle kept-alive connection (or one whose client went quiet mid-request) is closed, so
  // clients that vanish without a FIN do not hold connections for ever.
  flags.options.connection_timeouts.idle = std::chrono::milliseconds(keepalive_ms);
  if (flags.tls) {
    flags.tls->alpn = {"http/1.1"};  // HTTPS: the one protocol this server speaks
  }
  return actnet::samples::serve<http_connection>(flags);
}
