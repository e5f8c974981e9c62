// An HTTP/1.1 request parser for the http_server sample: whole requests from the bytes buffered
// so far, so a request split across reads at any byte is simply "incomplete" until its last
// byte arrives. The head (request line and headers) is at most 8 KiB, so parsing it again when
// more bytes come costs little and keeps the parser stateless.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <string_view>

namespace actnet::samples::http {

/// Limits from the issue: a head past 8 KiB is 431, a body past 1 MiB is 413.
inline constexpr std::size_t max_head = 8 * 1024;
inline constexpr std::size_t max_body = 1024 * 1024;
inline constexpr std::size_t max_headers = 64;

struct header {
  std::string_view name;
  std::string_view value;
};

/// A parsed request: views into the bytes given to parse().
struct request {
  std::string_view method;
  std::string_view target;
  int minor_version = 1;  // HTTP/1.<minor>
  std::array<header, max_headers> headers{};
  std::size_t header_count = 0;
  std::string_view body;
  bool keep_alive = true;
  std::size_t size = 0;  // bytes this request took, head and body

  [[nodiscard]] std::string_view find(std::string_view name) const noexcept;
};

enum class parse_status { complete, incomplete, failed };

/// What parse() found: a complete request, a need for more bytes, or a failure with the status
/// to answer (400 malformed, 413 body too large, 431 head too large, 501 a Transfer-Encoding
/// this server does not decode, 505 a version other than HTTP/1.0 or 1.1).
struct parse_result {
  parse_status status = parse_status::incomplete;
  int error = 0;
  request req;
};

/// Parses the request at the start of `in`.
parse_result parse(std::string_view in) noexcept;

// -- implementation ----------------------------------------------------------------------------

namespace detail {

inline bool ieq(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    x = (x >= 'A' && x <= 'Z') ? static_cast<char>(x - 'A' + 'a') : x;
    y = (y >= 'A' && y <= 'Z') ? static_cast<char>(y - 'A' + 'a') : y;
    if (x != y) {
      return false;
    }
  }
  return true;
}

/// RFC 9110 token characters (method and header names).
inline bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return extra.find(c) != std::string_view::npos;
}

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
inline bool lists(std::string_view value, std::string_view token) noexcept {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    if (ieq(trim(value.substr(0, comma)), token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    value.remove_prefix(comma + 1);
  }
  return false;
}

inline parse_result fail(int status) noexcept {
  parse_result r;
  r.status = parse_status::failed;
  r.error = status;
  return r;
}

}  // namespace detail

inline std::string_view request::find(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < header_count; ++i) {
    if (detail::ieq(headers[i].name, name)) {
      return headers[i].value;
    }
  }
  return {};
}

inline parse_result parse(std::string_view in) noexcept {
  using detail::fail;
  // Only the first max_head bytes can hold the head, and nothing past them is looked at: what
  // a parse says about the head then does not depend on how many more bytes have arrived, so
  // the status is the same whether the request came in one read or many.
  const std::string_view window = in.substr(0, max_head);
  const std::size_t head_end = window.find("\r\n\r\n");
  // Lines end with CRLF: a bare LF in the head is malformed (and would hide the head's end).
  const std::string_view scanned = window.substr(0, head_end);
  for (std::size_t lf = scanned.find('\n'); lf != std::string_view::npos;
       lf = scanned.find('\n', lf + 1)) {
    if (lf == 0 || scanned[lf - 1] != '\r') {
      return fail(400);
    }
  }
  if (head_end == std::string_view::npos) {
    // Not complete yet; but a head that cannot fit is refused now, not after 8 KiB more.
    return in.size() > max_head ? fail(431) : parse_result{};
  }
  parse_result out;
  request& r = out.req;
  std::string_view head = in.substr(0, head_end + 2);  // each line ends with \r\n

  // Request line: method SP target SP HTTP/1.x
  const std::size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  head.remove_prefix(line_end + 2);
  const std::size_t sp1 = line.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos) {
    return fail(400);
  }
  r.method = line.substr(0, sp1);
  for (const char c : r.method) {
    if (!detail::is_tchar(c)) {
      return fail(400);
    }
  }
  line.remove_prefix(sp1 + 1);
  const std::size_t sp2 = line.find(' ');
  if (sp2 == 0 || sp2 == std::string_view::npos) {
    return fail(400);
  }
  r.target = line.substr(0, sp2);
  for (const char c : r.target) {
    if (c <= ' ' || c == 0x7f) {  // (a char from 0x80 up is negative: raw non-ASCII is refused)
      return fail(400);
    }
  }
  const std::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return fail(400);
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
    return fail(505);
  }
  r.minor_version = version[7] - '0';
  r.keep_alive = r.minor_version == 1;

  // Headers: name ":" OWS value OWS
  std::size_t content_length = 0;
  bool has_length = false;
  while (!head.empty()) {
    const std::size_t end = head.find("\r\n");
    const std::string_view field = head.substr(0, end);
    head.remove_prefix(end + 2);
    const std::size_t colon = field.find(':');
    if (colon == 0 || colon == std::string_view::npos) {
      return fail(400);
    }
    const std::string_view name = field.substr(0, colon);
    for (const char c : name) {
      if (!detail::is_tchar(c)) {
        return fail(400);  // also a space before the colon (RFC 9112 5.1)
      }
    }
    const std::string_view value = detail::trim(field.substr(colon + 1));
    for (const char c : value) {
      // Controls are refused; bytes from 0x80 up (obs-text: UTF-8, Latin-1) are allowed.
      const auto u = static_cast<unsigned char>(c);
      if ((u < ' ' && u != '\t') || u == 0x7f) {
        return fail(400);
      }
    }
    if (r.header_count == max_headers) {
      return fail(431);
    }
    r.headers[r.header_count++] = {name, value};
    if (detail::ieq(name, "content-length")) {
      std::size_t n = 0;
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() ||
          (has_length && n != content_length)) {
        return fail(400);  // not a number, or two that disagree
      }
      content_length = n;
      has_length = true;
    } else if (detail::ieq(name, "transfer-encoding")) {
      return fail(501);  // chunked request bodies are not decoded by this sample
    } else if (detail::ieq(name, "connection")) {
      if (detail::lists(value, "close")) {
        r.keep_alive = false;
      } else if (detail::lists(value, "keep-alive")) {
        r.keep_alive = true;
      }
    }
  }
  if (content_length > max_body) {
    return fail(413);
  }
  const std::size_t body_start = head_end + 4;
  if (in.size() - body_start < content_length) {
    return out;  // the body is still coming
  }
  r.body = in.substr(body_start, content_length);
  r.size = body_start + content_length;
  out.status = parse_status::complete;
  return out;
}

}  // namespace actnet::samples::http
