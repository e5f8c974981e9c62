// libFuzzer target for the redis_server sample's RESP parser (samples/redis/resp.hpp): every
// result is one of the documented outcomes with arguments that are views into the request, a
// stream parses to the same requests (and the same error) whether the server reads it whole or
// in two reads, "needed" never asks for a byte that could have changed the answer, and every
// request, encoded again as a multibulk array (and as an inline command), parses back to the
// same arguments.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.hpp"
#include "samples/redis/resp.hpp"
#include "stream_input.hpp"

namespace actnet::fuzz {
namespace {

namespace resp = samples::resp;

// What the inputs reached, printed at exit as evidence (and each is a branch in this
// instrumented code, so libFuzzer keeps the input that first gets there).
struct milestones {
  std::uint64_t multibulk = 0;         // complete multibulk requests
  std::uint64_t inline_commands = 0;   // complete inline requests
  std::uint64_t pipelined = 0;         // a second request in the same bytes
  std::uint64_t split_complete = 0;    // the first read already held a whole request
  std::uint64_t split_incomplete = 0;  // the first read ended inside a request
  std::uint64_t needed = 0;            // incomplete, with a byte count to wait for
  std::uint64_t long_inline = 0;       // inline bytes past max_inline / 2, complete or not
  std::uint64_t errors = 0;            // protocol errors

  milestones() = default;
  milestones(const milestones&) = delete;
  milestones& operator=(const milestones&) = delete;
  ~milestones() {
    std::fprintf(stderr,
                 "actnet fuzz milestones: multibulk=%llu inline=%llu pipelined=%llu "
                 "split_complete=%llu split_incomplete=%llu needed=%llu long_inline=%llu "
                 "errors=%llu\n",
                 as_ull(multibulk), as_ull(inline_commands), as_ull(pipelined),
                 as_ull(split_complete), as_ull(split_incomplete), as_ull(needed),
                 as_ull(long_inline), as_ull(errors));
  }

 private:
  static unsigned long long as_ull(std::uint64_t v) { return v; }
};
milestones reached;

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// The errors resp.hpp answers with.
bool is_documented_error(std::string_view e) {
  constexpr std::string_view prefix = "Protocol error: ";
  if (e.substr(0, prefix.size()) != prefix) {
    return false;
  }
  e.remove_prefix(prefix.size());
  constexpr std::string_view expected = "expected '$', got '";
  if (e.size() == expected.size() + 2 && e.substr(0, expected.size()) == expected) {
    return e.back() == '\'' && e[expected.size()] != '$';
  }
  return e == "invalid multibulk length" || e == "invalid bulk length" ||
         e == "bulk string not terminated by CRLF" || e == "too big inline request";
}

std::string as_multibulk(const std::vector<std::string_view>& args) {
  std::string out;
  resp::array_header(out, args.size());
  for (const std::string_view a : args) {
    resp::bulk(out, a);
  }
  return out;
}

bool same_args(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b) {
  return a == b;  // by content
}

// A request encoded again parses back, whole, to the same arguments.
void check_encoded_again(std::string_view encoded, const std::vector<std::string_view>& args) {
  static fenced_bytes bytes;
  const resp::parse_result again = resp::parse(bytes.hold(encoded));
  ACTNET_FUZZ_CHECK(again.status == resp::parse_status::complete);
  ACTNET_FUZZ_CHECK(again.size == encoded.size());
  ACTNET_FUZZ_CHECK(same_args(again.args, args));
}

// A complete request against the bytes `in` it was parsed from.
void check_request(std::string_view in, const resp::parse_result& r) {
  ACTNET_FUZZ_CHECK(r.size > 0 && r.size <= in.size());
  ACTNET_FUZZ_CHECK(r.needed == 0 && r.error.empty());
  const std::string_view request = in.substr(0, r.size);
  for (const std::string_view a : r.args) {
    ACTNET_FUZZ_CHECK(within(a, request));
  }
  const std::string multibulk = as_multibulk(r.args);
  if (in[0] == '*') {
    ++reached.multibulk;
    // Each argument is a bulk string: its data right after a \r\n, and a \r\n right after it.
    std::size_t after_previous = 0;
    for (const std::string_view a : r.args) {
      const std::size_t at = offset_in(a, request);
      ACTNET_FUZZ_CHECK(at >= after_previous + 4 && request.substr(at - 2, 2) == "\r\n");
      ACTNET_FUZZ_CHECK(request.substr(at + a.size(), 2) == "\r\n");
      after_previous = at + a.size() + 2;
    }
    ACTNET_FUZZ_CHECK(after_previous == 0 || after_previous == r.size);
    // Numbers written the shortest way: never longer than the request as it came.
    ACTNET_FUZZ_CHECK(multibulk.size() <= r.size);
  } else {
    ++reached.inline_commands;
    // One line: words without blanks, in order, and only blanks (or the \r) between them.
    ACTNET_FUZZ_CHECK(request.find('\n') == r.size - 1);
    ACTNET_FUZZ_CHECK(r.size <= resp::max_inline + 1);  // the line and its \n
    std::size_t after_previous = 0;
    for (const std::string_view a : r.args) {
      ACTNET_FUZZ_CHECK(!a.empty());
      for (const char c : a) {
        ACTNET_FUZZ_CHECK(!is_blank(c) && c != '\n');
      }
      const std::size_t at = offset_in(a, request);
      ACTNET_FUZZ_CHECK(at >= after_previous);
      for (std::size_t i = after_previous; i < at; ++i) {
        ACTNET_FUZZ_CHECK(is_blank(request[i]));
      }
      after_previous = at + a.size();
    }
    for (std::size_t i = after_previous; i + 1 < r.size; ++i) {
      ACTNET_FUZZ_CHECK(is_blank(request[i]) || (request[i] == '\r' && i + 2 == r.size));
    }
    if (r.size > resp::max_inline / 2) {
      ++reached.long_inline;
    }
    // Again as an inline command, unless its first word would read as a multibulk header. It
    // ends in \r\n when the last word ends in \r (a lone \n would give that \r up) or the
    // request did; the result is then never longer than the request.
    if (r.args.empty() || r.args.front().front() != '*') {
      std::string line;
      for (const std::string_view a : r.args) {
        line += line.empty() ? "" : " ";
        line += a;
      }
      const bool crlf = (!r.args.empty() && r.args.back().back() == '\r') ||
                        (r.size >= 2 && request[r.size - 2] == '\r');
      line += crlf ? "\r\n" : "\n";
      ACTNET_FUZZ_CHECK(line.size() <= r.size);
      check_encoded_again(line, r.args);
    }
  }
  check_encoded_again(multibulk, r.args);
}

// Any result against the bytes `in` it was parsed from.
void check_result(std::string_view in, const resp::parse_result& r) {
  switch (r.status) {
    case resp::parse_status::complete:
      check_request(in, r);
      return;
    case resp::parse_status::incomplete:
      ACTNET_FUZZ_CHECK(r.args.empty() && r.size == 0 && r.error.empty());
      // Waiting is only right for a request that may still end within the limits.
      if (!in.empty() && in[0] != '*') {
        ACTNET_FUZZ_CHECK(in.find('\n') == std::string_view::npos);
        ACTNET_FUZZ_CHECK(in.size() <= resp::max_inline);
        if (in.size() > resp::max_inline / 2) {
          ++reached.long_inline;
        }
      }
      ACTNET_FUZZ_CHECK(r.needed == 0 || r.needed > in.size());
      if (r.needed != 0) {
        ++reached.needed;
        ACTNET_FUZZ_CHECK(in[0] == '*');
      }
      return;
    case resp::parse_status::failed:
      ++reached.errors;
      ACTNET_FUZZ_CHECK(r.args.empty() && r.size == 0 && r.needed == 0);
      ACTNET_FUZZ_CHECK(is_documented_error(r.error));
      return;
  }
  ACTNET_FUZZ_FAIL("a status outside the enum");
}

// Whether two requests have the same arguments at the same offsets, each into the bytes it was
// parsed from.
bool same_request(const resp::parse_result& a, std::string_view a_in, const resp::parse_result& b,
                  std::string_view b_in) {
  if (a.size != b.size || a.args.size() != b.args.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.args.size(); ++i) {
    if (a.args[i].size() != b.args[i].size() ||
        offset_in(a.args[i], a_in) != offset_in(b.args[i], b_in)) {
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
// whole stream gives at the same offset; one that is incomplete and needs more bytes than the
// whole stream has must stay incomplete, needing as many. The loop over the whole stream hands
// each result's vector to the next parse, as the server does.
void parse_in_step(std::string_view whole, std::string_view first) {
  std::size_t at = 0;
  std::vector<std::string_view> reuse;
  for (std::size_t requests = 0; requests < max_requests; ++requests) {
    const std::string_view rest = whole.substr(at);
    resp::parse_result w = resp::parse(rest, std::move(reuse));
    check_result(rest, w);
    if (at <= first.size()) {
      const std::string_view first_rest = first.substr(at);
      const resp::parse_result p = resp::parse(first_rest);
      check_result(first_rest, p);
      if (p.status == resp::parse_status::complete) {
        ++reached.split_complete;
        ACTNET_FUZZ_CHECK(w.status == resp::parse_status::complete);
        ACTNET_FUZZ_CHECK(same_request(p, first_rest, w, rest));
      } else if (p.status == resp::parse_status::failed) {
        ACTNET_FUZZ_CHECK(w.status == resp::parse_status::failed);
        ACTNET_FUZZ_CHECK(w.error == p.error);
      } else {
        if (!first_rest.empty()) {
          ++reached.split_incomplete;
        }
        if (p.needed > rest.size()) {
          ACTNET_FUZZ_CHECK(w.status == resp::parse_status::incomplete);
          ACTNET_FUZZ_CHECK(w.needed == p.needed);
        }
      }
    }
    if (w.status != resp::parse_status::complete) {
      return;  // the server waits for more, or answers the error and closes
    }
    if (requests == 1) {
      ++reached.pipelined;
    }
    at += w.size;  // at least one byte each time (check_request), so the loop ends
    ACTNET_FUZZ_CHECK(at <= whole.size());
    reuse = std::move(w.args);
  }
}

}  // namespace
}  // namespace actnet::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace actnet::fuzz;
  static stream_input in(std::size_t{128} << 10);  // inline lines of 64 KiB and more
  in.decode(data, size);
  static fenced_bytes whole;
  static fenced_bytes first;
  parse_in_step(whole.hold(in.stream), first.hold(std::string_view(in.stream).substr(0, in.cut)));
  return 0;
}
