// RESP2 for the redis_server sample: requests (multibulk arrays of bulk strings, and inline
// commands) parsed from the bytes buffered so far, and the replies' encodings.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace actnet::samples::resp {

/// Limits: Redis's own for a bulk string (512 MB) and an inline command (64 KiB); at most
/// 32,768 arguments, where Redis takes 1024 * 1024, so that one request's work (a multi-key
/// command's lookups, its parse) stays a few milliseconds of a loop's time.
inline constexpr std::size_t max_bulk = std::size_t{512} << 20;
inline constexpr std::size_t max_args = std::size_t{32} << 10;
inline constexpr std::size_t max_inline = std::size_t{64} << 10;

enum class parse_status { complete, incomplete, failed };

/// One request: its arguments (views into the parsed bytes) and its size; or, incomplete, how
/// many bytes at least must be buffered before parsing again is worth it (so a large value
/// arriving in many reads is not re-parsed from the start each time); or the protocol error to
/// answer before closing.
struct parse_result {
  parse_status status = parse_status::incomplete;
  std::vector<std::string_view> args;
  std::size_t size = 0;
  std::size_t needed = 0;
  std::string error;  // "Protocol error: ..." (sent as -ERR <error>)
};

namespace detail {

/// The number on a line that starts at `at` (after its type byte) and ends with \r\n: the
/// position after the \r\n, or npos while the line is incomplete; `ok` false when malformed.
/// (Digits are read by hand: this runs three times per request, and std::from_chars and a
/// search for "\r\n" cost several times more.)
inline std::size_t number_line(std::string_view in, std::size_t at, std::int64_t& n, bool& ok) {
  std::size_t i = at;
  const bool negative = i < in.size() && in[i] == '-';
  i += negative ? 1 : 0;
  const std::size_t digits_from = i;
  std::uint64_t value = 0;
  while (i < in.size() && in[i] >= '0' && in[i] <= '9' && i - digits_from < 18) {
    value = value * 10 + static_cast<std::uint64_t>(in[i] - '0');
    ++i;
  }
  if (i + 1 >= in.size()) {  // the line is not complete yet (or ends right after the digits)
    ok = i < in.size() ? (in[i] == '\r' || (in[i] >= '0' && in[i] <= '9')) && i - at < 32
                       : i - at < 32;
    return std::string_view::npos;
  }
  ok = i > digits_from && in[i] == '\r' && in[i + 1] == '\n';
  n = negative ? -static_cast<std::int64_t>(value) : static_cast<std::int64_t>(value);
  return i + 2;
}

inline parse_result fail(std::string what) {
  parse_result r;
  r.status = parse_status::failed;
  r.error = "Protocol error: " + std::move(what);
  return r;
}

}  // namespace detail

/// Parses the request at the start of `in`. `reuse`: a vector whose capacity the arguments
/// may take over (pass back the previous result's, and a steady stream of requests parses
/// without allocating).
inline parse_result parse(std::string_view in, std::vector<std::string_view> reuse = {}) {
  parse_result r;
  reuse.clear();
  r.args = std::move(reuse);
  if (in.empty()) {
    return r;
  }
  if (in[0] != '*') {  // an inline command: words on one line
    // The line must end within max_inline + 1 bytes, and nothing past them is looked at: a line
    // too long is refused whether or not its newline has arrived, so the answer does not
    // depend on how the bytes were read.
    const std::size_t end = in.substr(0, max_inline + 1).find('\n');
    if (end == std::string_view::npos) {
      return in.size() > max_inline ? detail::fail("too big inline request") : r;
    }
    std::string_view line = in.substr(0, end);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    while (!line.empty()) {
      const std::size_t start = line.find_first_not_of(" \t");
      if (start == std::string_view::npos) {
        break;
      }
      line.remove_prefix(start);
      const std::size_t stop = line.find_first_of(" \t");
      r.args.push_back(line.substr(0, stop));
      line.remove_prefix(stop == std::string_view::npos ? line.size() : stop);
    }
    r.status = parse_status::complete;
    r.size = end + 1;
    return r;
  }
  bool ok = true;
  std::int64_t count = 0;
  std::size_t at = detail::number_line(in, 1, count, ok);
  if (!ok || (at != std::string_view::npos && (count < 0 || count > std::int64_t(max_args)))) {
    return detail::fail("invalid multibulk length");
  }
  if (at == std::string_view::npos) {
    return r;
  }
  r.args.reserve(static_cast<std::size_t>(std::min<std::int64_t>(count, 1024)));
  for (std::int64_t i = 0; i < count; ++i) {
    if (at >= in.size()) {
      r.args.clear();
      return r;
    }
    if (in[at] != '$') {
      return detail::fail(std::string("expected '$', got '") + in[at] + "'");  // nesting too
    }
    std::int64_t length = 0;
    const std::size_t data = detail::number_line(in, at + 1, length, ok);
    if (!ok ||
        (data != std::string_view::npos && (length < 0 || length > std::int64_t(max_bulk)))) {
      return detail::fail("invalid bulk length");
    }
    if (data == std::string_view::npos) {
      r.args.clear();
      return r;
    }
    const std::size_t end = data + static_cast<std::size_t>(length);
    if (in.size() < end + 2) {
      r.args.clear();
      r.needed = end + 2;  // nothing to gain from parsing again before this many bytes
      return r;
    }
    if (in[end] != '\r' || in[end + 1] != '\n') {
      return detail::fail("bulk string not terminated by CRLF");
    }
    r.args.push_back(in.substr(data, static_cast<std::size_t>(length)));
    at = end + 2;
  }
  r.status = parse_status::complete;
  r.size = at;
  return r;
}

// -- replies -----------------------------------------------------------------------------------

inline void simple(std::string& out, std::string_view s) {
  out += '+';
  out += s;
  out += "\r\n";
}
inline void error(std::string& out, std::string_view s) {
  out += '-';
  out += s;
  out += "\r\n";
}
inline void integer(std::string& out, std::int64_t n) {
  out += ':';
  out += std::to_string(n);
  out += "\r\n";
}
inline void bulk(std::string& out, std::string_view s) {
  out += '$';
  out += std::to_string(s.size());
  out += "\r\n";
  out += s;
  out += "\r\n";
}
inline void null_bulk(std::string& out) {
  out += "$-1\r\n";
}
inline void array_header(std::string& out, std::size_t n) {
  out += '*';
  out += std::to_string(n);
  out += "\r\n";
}

}  // namespace actnet::samples::resp
