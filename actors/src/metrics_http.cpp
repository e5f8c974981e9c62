// metrics_http: engine::metrics_text(), the loops' metrics in Prometheus's text format (the
// data model and the serializer are prometheus-cpp's: a snapshot is turned into its families at
// each scrape, so the loops never touch it), and serve_metrics()'s connection, a small HTTP/1.1
// server of GET /metrics.
#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <cctype>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "actnet/actors/engine.hpp"
#include "actnet/actors/metrics.hpp"

namespace actnet {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The families of one snapshot: each loop's series with its `loop` label, then the totals as
// loop="all" (leave those out of a sum over loops).
class families {
 public:
  explicit families(const engine_metrics& m) : m_(m) {}

  using field = std::uint64_t loop_metrics::*;

  void counter(std::string name, std::string help, field f, double scale = 1.0) {
    add(std::move(name), std::move(help), MetricType::Counter, [&](const loop_metrics& l) {
      ClientMetric c;
      c.counter.value = static_cast<double>(l.*f) * scale;
      return c;
    });
  }
  void gauge(std::string name, std::string help, field f) {
    add(std::move(name), std::move(help), MetricType::Gauge, [&](const loop_metrics& l) {
      ClientMetric c;
      c.gauge.value = static_cast<double>(l.*f);
      return c;
    });
  }
  void closes() {
    MetricFamily family{"actnet_connections_closed_total",
                        "Connections closed (on_close ran), by cause",
                        MetricType::Counter,
                        {}};
    each([&](const loop_metrics& l, const std::string& loop) {
      for (std::size_t i = 0; i < close_causes; ++i) {
        ClientMetric c;
        c.label = {{"cause", std::string(to_string(static_cast<close_cause>(i)))}, {"loop", loop}};
        c.counter.value = static_cast<double>(l.closed_by[i]);
        family.metric.push_back(std::move(c));
      }
    });
    list_.push_back(std::move(family));
  }
  void iteration_time() {
    add("actnet_loop_iteration_seconds",
        "Time a loop iteration was busy (running handlers and I/O), from waking to waiting",
        MetricType::Histogram, [&](const loop_metrics& l) {
          ClientMetric c;
          std::uint64_t cumulative = 0;
          for (std::size_t i = 0; i < iteration_buckets; ++i) {
            cumulative += l.iteration_time[i];
            c.histogram.bucket.push_back({cumulative, iteration_bucket_bound(i)});
          }
          c.histogram.sample_count = cumulative;
          c.histogram.sample_sum = static_cast<double>(l.busy_ns) / 1e9;
          return c;
        });
  }
  void engine_gauge(std::string name, std::string help, double value) {
    ClientMetric c;
    c.gauge.value = value;
    list_.push_back({std::move(name), std::move(help), MetricType::Gauge, {std::move(c)}});
  }
  [[nodiscard]] const std::vector<MetricFamily>& all() const { return list_; }

 private:
  template <class F>
  void each(F&& f) {
    for (std::size_t i = 0; i < m_.loops.size(); ++i) {
      f(m_.loops[i], std::to_string(i));
    }
    f(m_.total, std::string("all"));
  }
  template <class Make>
  void add(std::string name, std::string help, MetricType type, Make&& make) {
    MetricFamily family{std::move(name), std::move(help), type, {}};
    each([&](const loop_metrics& l, const std::string& loop) {
      ClientMetric c = make(l);
      c.label = {{"loop", loop}};
      family.metric.push_back(std::move(c));
    });
    list_.push_back(std::move(family));
  }

  const engine_metrics& m_;
  std::vector<MetricFamily> list_;
};

// -- GET /metrics --

constexpr std::size_t head_limit = std::size_t{8} * 1024;

bool equals_nocase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// One connection to serve_metrics' listener: HTTP/1.1 requests, in order, keep-alive unless
// the client asks otherwise; GET (or HEAD) /metrics gets the text, any other path 404, another
// method 405, a head over 8 KiB 431 and a request with a body 400 (then a close).
class metrics_endpoint final : public connection {
 public:
  void on_open() override {
    timeouts t = current_timeouts();  // (the engine's, if it sets any)
    t.idle = std::chrono::seconds(60);
    set_timeouts(t);
  }
  void on_data() override {
    while (is_open()) {
      const std::string buffered = peek_all().to_string();
      const std::size_t end = buffered.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (buffered.size() > head_limit) {
          answer("431 Request Header Fields Too Large", "head over 8 KiB\n", true);
        }
        return;
      }
      (void)discard(end + 4);
      respond(std::string_view(buffered).substr(0, end + 2));
    }
  }

 private:
  void respond(std::string_view head) {
    const std::size_t line_end = head.find("\r\n");
    const std::string_view line = head.substr(0, line_end);
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
      answer("400 Bad Request", "malformed request line\n", true);
      return;
    }
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    bool close_after = version != "HTTP/1.1";
    for (std::size_t at = line_end + 2; at < head.size();) {
      const std::size_t next = head.find("\r\n", at);
      const std::string_view header = head.substr(at, next - at);
      at = next + 2;
      const std::size_t colon = header.find(':');
      if (colon == std::string_view::npos) {
        continue;
      }
      const std::string_view name = header.substr(0, colon);
      std::string_view value = header.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
      }
      if (equals_nocase(name, "connection")) {
        close_after =
            close_after ? !equals_nocase(value, "keep-alive") : equals_nocase(value, "close");
      } else if ((equals_nocase(name, "content-length") && value != "0") ||
                 equals_nocase(name, "transfer-encoding")) {
        answer("400 Bad Request", "a request with a body\n", true);
        return;
      }
    }
    if (method != "GET" && method != "HEAD") {
      answer("405 Method Not Allowed", "GET /metrics\n", close_after, "Allow: GET, HEAD\r\n");
      return;
    }
    target = target.substr(0, target.find('?'));
    if (target != "/metrics") {
      answer("404 Not Found", "GET /metrics\n", close_after);
      return;
    }
    answer("200 OK", owner().metrics_text(), close_after,
           "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", method == "HEAD");
  }

  void answer(std::string_view status, const std::string& body, bool close_after,
              std::string_view headers = "Content-Type: text/plain; charset=utf-8\r\n",
              bool head_only = false) {
    std::string reply = "HTTP/1.1 ";
    reply.append(status).append("\r\n").append(headers);
    reply.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    reply.append(close_after ? "Connection: close\r\n\r\n" : "\r\n");
    if (!head_only) {
      reply.append(body);
    }
    (void)write(reply);
    if (close_after) {
      close();
    }
  }
};

}  // namespace

std::string engine::metrics_text() const {
  const engine_metrics m = metrics();
  families f(m);
  f.counter("actnet_connections_accepted_total", "Connections accepted from the listeners",
            &loop_metrics::accepted);
  f.counter("actnet_connections_refused_total",
            "Connections accepted and closed at once (max_connections, or no fd left)",
            &loop_metrics::refused);
  f.counter("actnet_connections_opened_total", "Connection actors opened (on_open ran)",
            &loop_metrics::opened);
  f.closes();
  f.gauge("actnet_connections_open", "Connection actors open now", &loop_metrics::open);
  f.gauge("actnet_connections_paused", "Open connections whose reading is paused",
          &loop_metrics::paused);
  if (options_.count_io) {
    f.counter("actnet_received_bytes_total", "Bytes read from stream sockets",
              &loop_metrics::bytes_in);
    f.counter("actnet_sent_bytes_total", "Bytes written to stream sockets",
              &loop_metrics::bytes_out);
    f.counter("actnet_read_calls_total",
              "Read system calls on stream sockets (io_uring: receive completions)",
              &loop_metrics::reads);
    f.counter("actnet_write_calls_total",
              "Write system calls on stream sockets (io_uring: send completions)",
              &loop_metrics::writes);
  }
  f.counter("actnet_messages_handled_total", "Messages a loop handled from its mailbox",
            &loop_metrics::messages);
  f.counter("actnet_messages_sent_total",
            "Messages a loop's handlers sent, to any loop (sends from other threads: none)",
            &loop_metrics::messages_sent);
  f.gauge("actnet_mailbox_depth", "Messages waiting in a loop's mailbox now (approximate)",
          &loop_metrics::mailbox_depth);
  f.gauge("actnet_mailbox_depth_max", "The most messages that waited at once",
          &loop_metrics::mailbox_high);
  f.counter("actnet_mailbox_refused_total", "Messages refused: the mailbox was full",
            &loop_metrics::messages_refused);
  f.counter("actnet_mailbox_dropped_total", "Messages dropped: their connection was gone",
            &loop_metrics::messages_dropped);
  f.gauge("actnet_offloads_in_flight", "Offloaded jobs submitted and not yet run",
          &loop_metrics::offloads_in_flight);
  f.gauge("actnet_timers", "Timers pending", &loop_metrics::timers);
  f.counter("actnet_udp_datagrams_dropped_total",
            "Datagrams dropped: from new peers past max_sessions",
            &loop_metrics::datagrams_dropped);
  f.counter("actnet_tls_handshakes_total", "TLS handshakes done", &loop_metrics::tls_handshakes);
  f.counter("actnet_tls_handshake_failures_total", "TLS handshakes failed, timed out or cut short",
            &loop_metrics::tls_failures);
  f.counter("actnet_loop_busy_seconds_total", "Time loops spent running handlers and I/O",
            &loop_metrics::busy_ns, 1e-9);
  f.counter("actnet_loop_wait_seconds_total", "Time loops spent waiting for work",
            &loop_metrics::wait_ns, 1e-9);
  f.iteration_time();
  f.counter("actnet_loop_stalls_total",
            "Loop iterations that ran past the stall threshold (a handler held the loop)",
            &loop_metrics::stalls);
  f.engine_gauge("actnet_worker_queue_depth", "Offloaded jobs waiting for a worker thread",
                 static_cast<double>(m.worker_queue));
  return prometheus::TextSerializer().Serialize(f.all());
}

address engine::serve_metrics(std::string_view url, const listen_options& options) {
  return listen<metrics_endpoint>(options, url);
}

}  // namespace actnet
