// libFuzzer target for the http_server sample's request parser (samples/http/http_parser.hpp):
// every result is one of the documented outcomes, a request's fields are views into the bytes
// it was parsed from and agree with them, and a stream parses to the same requests (and the
// same error) whether the server reads it whole or in two reads.
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <system_error>

#include "fuzz_check.hpp"
#include "samples/http/http_parser.hpp"
#include "stream_input.hpp"

namespace actnet::fuzz {
namespace {

namespace http = samples::http;

// What the inputs reached, printed at exit as evidence (and each is a branch in this
// instrumented code, so libFuzzer keeps the input that first gets there).
struct milestones {
  std::uint64_t requests = 0;          // complete requests
  std::uint64_t with_body = 0;         // ... with a body
  std::uint64_t pipelined = 0;         // a second request in the same bytes
  std::uint64_t split_complete = 0;    // the first read already held a whole request
  std::uint64_t split_incomplete = 0;  // the first read ended inside a request
  std::uint64_t head_limit = 0;        // heads of more than max_head / 2 bytes, complete or not
  std::uint64_t status_400 = 0;
  std::uint64_t status_413 = 0;
  std::uint64_t status_431 = 0;
  std::uint64_t status_501 = 0;
  std::uint64_t status_505 = 0;

  milestones() = default;
  milestones(const milestones&) = delete;
  milestones& operator=(const milestones&) = delete;
  ~milestones() {
    std::fprintf(stderr,
                 "actnet fuzz milestones: requests=%llu with_body=%llu pipelined=%llu "
                 "split_complete=%llu split_incomplete=%llu head_limit=%llu 400=%llu 413=%llu "
                 "431=%llu 501=%llu 505=%llu\n",
                 as_ull(requests), as_ull(with_body), as_ull(pipelined), as_ull(split_complete),
                 as_ull(split_incomplete), as_ull(head_limit), as_ull(status_400),
                 as_ull(status_413), as_ull(status_431), as_ull(status_501), as_ull(status_505));
  }

 private:
  static unsigned long long as_ull(std::uint64_t v) { return v; }
};
milestones reached;

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// RFC 9110 tchar, spelled out here rather than taken from the parser under test.
bool is_tchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A header name compared the way HTTP does: ASCII letters in any case.
bool is_named(std::string_view name, std::string_view lower_case) {
  return name.size() == lower_case.size() &&
         std::equal(name.begin(), name.end(), lower_case.begin(), [](char c, char l) {
           return (c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) == l;
         });
}

// RFC 9110 field-content: no control character but HT.
bool is_field_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 0x20 || c == '\t') && u != 0x7f;
}

void count_failure(int status) {
  switch (status) {
    case 400:
      ++reached.status_400;
      break;
    case 413:
      ++reached.status_413;
      break;
    case 431:
      ++reached.status_431;
      break;
    case 501:
      ++reached.status_501;
      break;
    case 505:
      ++reached.status_505;
      break;
    default:
      ACTNET_FUZZ_FAIL("a status outside the documented set");
  }
}

// A complete request against the bytes `in` it was parsed from.
void check_request(std::string_view in, const http::request& r) {
  ACTNET_FUZZ_CHECK(r.size > 0 && r.size <= in.size());
  ACTNET_FUZZ_CHECK(r.body.size() <= http::max_body && r.body.size() < r.size);
  const std::size_t head = r.size - r.body.size();
  ACTNET_FUZZ_CHECK(head >= 4 && head <= http::max_head);
  // The head ends at the first empty line, and the body follows it.
  ACTNET_FUZZ_CHECK(in.find("\r\n\r\n") == head - 4);
  ACTNET_FUZZ_CHECK(r.body.data() == in.data() + head);
  const std::string_view head_bytes = in.substr(0, head);

  // The request line, rebuilt from the fields, is the first line.
  ACTNET_FUZZ_CHECK(!r.method.empty() && r.method.data() == in.data());
  for (const char c : r.method) {
    ACTNET_FUZZ_CHECK(is_tchar(c));
  }
  ACTNET_FUZZ_CHECK(r.target.data() == in.data() + r.method.size() + 1);
  ACTNET_FUZZ_CHECK(in[r.method.size()] == ' ');
  ACTNET_FUZZ_CHECK(!r.target.empty());
  for (const char c : r.target) {
    ACTNET_FUZZ_CHECK(c != ' ' && is_field_char(c) && c != '\t');
  }
  ACTNET_FUZZ_CHECK(r.minor_version == 0 || r.minor_version == 1);
  const std::size_t version_at = r.method.size() + 1 + r.target.size();
  const std::string_view version = r.minor_version == 1 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n";
  ACTNET_FUZZ_CHECK(in.substr(version_at, version.size()) == version);

  // Each header is a line of its own: name, colon, trimmed value.
  ACTNET_FUZZ_CHECK(r.header_count <= http::max_headers);
  bool has_connection = false;
  bool has_length = false;
  std::size_t line_start = version_at + version.size();
  for (std::size_t i = 0; i < r.header_count; ++i) {
    const http::header& h = r.headers[i];
    ACTNET_FUZZ_CHECK(within(h.name, head_bytes) && within(h.value, head_bytes));
    ACTNET_FUZZ_CHECK(h.name.data() == in.data() + line_start);
    ACTNET_FUZZ_CHECK(!h.name.empty() && in[line_start + h.name.size()] == ':');
    for (const char c : h.name) {
      ACTNET_FUZZ_CHECK(is_tchar(c));
    }
    const std::size_t line_end = in.find("\r\n", line_start);
    const std::size_t value_at = offset_in(h.value, in);
    ACTNET_FUZZ_CHECK(value_at > line_start + h.name.size() &&
                      value_at + h.value.size() <= line_end);
    for (std::size_t at = line_start + h.name.size() + 1; at < value_at; ++at) {
      ACTNET_FUZZ_CHECK(is_ows(in[at]));
    }
    for (std::size_t at = value_at + h.value.size(); at < line_end; ++at) {
      ACTNET_FUZZ_CHECK(is_ows(in[at]));
    }
    ACTNET_FUZZ_CHECK(h.value.empty() || (!is_ows(h.value.front()) && !is_ows(h.value.back())));
    for (const char c : h.value) {
      ACTNET_FUZZ_CHECK(is_field_char(c));
    }
    ACTNET_FUZZ_CHECK(!is_named(h.name, "transfer-encoding"));
    has_connection = has_connection || is_named(h.name, "connection");
    if (is_named(h.name, "content-length")) {
      std::size_t n = 0;
      const auto [ptr, ec] = std::from_chars(h.value.data(), h.value.data() + h.value.size(), n);
      ACTNET_FUZZ_CHECK(ec == std::errc() && ptr == h.value.data() + h.value.size());
      ACTNET_FUZZ_CHECK(n == r.body.size());
      has_length = true;
    }
    line_start = line_end + 2;
  }
  ACTNET_FUZZ_CHECK(line_start == head - 2);  // every line of the head is a header
  ACTNET_FUZZ_CHECK(has_length || r.body.empty());
  if (!has_connection) {
    ACTNET_FUZZ_CHECK(r.keep_alive == (r.minor_version == 1));
  }
  ++reached.requests;
  if (!r.body.empty()) {
    ++reached.with_body;
  }
  if (head > http::max_head / 2) {
    ++reached.head_limit;
  }
}

// Any result against the bytes `in` it was parsed from.
void check_result(std::string_view in, const http::parse_result& r) {
  switch (r.status) {
    case http::parse_status::complete:
      ACTNET_FUZZ_CHECK(r.error == 0);
      check_request(in, r.req);
      return;
    case http::parse_status::incomplete: {
      ACTNET_FUZZ_CHECK(r.error == 0);
      ACTNET_FUZZ_CHECK(r.req.size == 0);
      // Waiting for more is only right while the head may still end within its limit.
      const std::size_t head_end = in.find("\r\n\r\n");
      ACTNET_FUZZ_CHECK(in.size() <= http::max_head ||
                        (head_end != std::string_view::npos && head_end + 4 <= http::max_head));
      if (in.size() > http::max_head / 2) {
        ++reached.head_limit;
      }
      return;
    }
    case http::parse_status::failed:
      ACTNET_FUZZ_CHECK(r.req.size == 0);
      count_failure(r.error);
      return;
  }
  ACTNET_FUZZ_FAIL("a status outside the enum");
}

// Whether two requests are the same, each by offsets into the bytes it was parsed from.
bool same_request(const http::request& a, std::string_view a_in, const http::request& b,
                  std::string_view b_in) {
  const auto same_view = [&](std::string_view x, std::string_view y) {
    return x.size() == y.size() && offset_in(x, a_in) == offset_in(y, b_in);
  };
  if (a.size != b.size || a.header_count != b.header_count || a.keep_alive != b.keep_alive ||
      a.minor_version != b.minor_version || !same_view(a.method, b.method) ||
      !same_view(a.target, b.target) || !same_view(a.body, b.body)) {
    return false;
  }
  for (std::size_t i = 0; i < a.header_count; ++i) {
    if (!same_view(a.headers[i].name, b.headers[i].name) ||
        !same_view(a.headers[i].value, b.headers[i].value)) {
      return false;
    }
  }
  return true;
}

// A stream of a million tiny requests (a run of one byte) checks nothing its first few do not,
// and would slow the fuzzer to a crawl: the loops stop after this many.
constexpr std::size_t max_requests = 64;

// The server's loop over a stream, twice in step: once over all of it, once over what its first
// read held. Each parse of the first read's bytes that is complete or failed must be what the
// whole stream gives at the same offset: more bytes never change a request already whole, nor
// turn an error into something else.
void parse_in_step(std::string_view whole, std::string_view first) {
  std::size_t at = 0;
  for (std::size_t requests = 0; requests < max_requests; ++requests) {
    const std::string_view rest = whole.substr(at);
    const http::parse_result w = http::parse(rest);
    check_result(rest, w);
    if (at <= first.size()) {
      const std::string_view first_rest = first.substr(at);
      const http::parse_result p = http::parse(first_rest);
      check_result(first_rest, p);
      if (p.status == http::parse_status::complete) {
        ++reached.split_complete;
        ACTNET_FUZZ_CHECK(w.status == http::parse_status::complete);
        ACTNET_FUZZ_CHECK(same_request(p.req, first_rest, w.req, rest));
      } else if (p.status == http::parse_status::failed) {
        ACTNET_FUZZ_CHECK(w.status == http::parse_status::failed);
        ACTNET_FUZZ_CHECK(w.error == p.error);
      } else if (!first_rest.empty()) {
        ++reached.split_incomplete;
      }
    }
    if (w.status != http::parse_status::complete) {
      return;  // the server waits for more, or answers the error and closes
    }
    if (requests == 1) {
      ++reached.pipelined;
    }
    at += w.req.size;  // at least 4 bytes each time (check_request), so the loop ends
    ACTNET_FUZZ_CHECK(at <= whole.size());
  }
}

}  // namespace
}  // namespace actnet::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace actnet::fuzz;
  static stream_input in(std::size_t{2} << 20);  // a body of 1 MiB and more
  in.decode(data, size);
  static fenced_bytes whole;
  static fenced_bytes first;
  parse_in_step(whole.hold(in.stream), first.hold(std::string_view(in.stream).substr(0, in.cut)));
  return 0;
}
