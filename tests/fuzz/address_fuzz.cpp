// libFuzzer target for address::parse and address::from_sockaddr (reactor/src/address.cpp).
//
// An input is a URL: a rejected one throws std::invalid_argument quoting it, escaped, and
// nothing else; an accepted one has the scheme's transport and family, the port it was given,
// and prints back (to_string) into a URL that parses to an equal address and prints the same.
// from_sockaddr, given what the address holds, reads back the same endpoint.
//
// An input that starts with a NUL (a URL parse rejects at once) is a sockaddr instead, as a
// kernel might report it: 0x00, the transport (tcp, udp, unix_stream by the byte modulo 3),
// then `len` bytes. from_sockaddr must accept it exactly when its family fits the transport
// and `len` fits the family, keep what identifies the endpoint, and give an address that bind
// and connect take and that reads back from itself unchanged.
//
// Names are resolved by a stand-in for getaddrinfo defined here: a fuzzer must not send what
// it makes up to a DNS server, nor wait for one.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <actnet/reactor/address.hpp>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace actnet::fuzz {
namespace {

// What the inputs reached, printed at exit as evidence (and each is a branch in this
// instrumented code, so libFuzzer keeps the input that first gets there).
struct milestones {
  std::uint64_t ipv4 = 0;
  std::uint64_t ipv6 = 0;
  std::uint64_t zones = 0;     // IPv6 with a scope id
  std::uint64_t resolved = 0;  // hosts that went through getaddrinfo and were found
  std::uint64_t unix_paths = 0;
  std::uint64_t abstract = 0;
  std::uint64_t rejected = 0;
  std::uint64_t reported = 0;  // sockaddrs from_sockaddr accepted

  milestones() = default;
  milestones(const milestones&) = delete;
  milestones& operator=(const milestones&) = delete;
  ~milestones() {
    std::fprintf(stderr,
                 "actnet fuzz milestones: ipv4=%llu ipv6=%llu zones=%llu resolved=%llu "
                 "unix_paths=%llu abstract=%llu rejected=%llu reported=%llu\n",
                 as_ull(ipv4), as_ull(ipv6), as_ull(zones), as_ull(resolved), as_ull(unix_paths),
                 as_ull(abstract), as_ull(rejected), as_ull(reported));
  }

 private:
  static unsigned long long as_ull(std::uint64_t v) { return v; }
};
milestones reached;

// -- the stand-in resolver -----------------------------------------------------------------------

// A name's addresses, in the order getaddrinfo gives them.
struct known_name {
  std::string_view name;
  std::string_view addresses[2];
};

// "both.test" lists IPv6 first, so plain tcp must still pick its IPv4 address; "link.test" is
// link-local on interface 1 (lo), so its zone must print and parse back.
constexpr known_name known_names[] = {
    {"localhost", {"127.0.0.1", "::1"}}, {"both.test", {"2001:db8::2", "192.0.2.2"}},
    {"v4.test", {"192.0.2.4", {}}},      {"v6.test", {"2001:db8::6", {}}},
    {"link.test", {"fe80::1%1", {}}},
};

bool resolving = false;  // whether address::parse called getaddrinfo for this input

addrinfo* new_result(int family, const void* ip, std::uint32_t scope_id, const addrinfo* hints) {
  auto* ai = new addrinfo{};
  ai->ai_family = family;
  ai->ai_socktype = hints != nullptr ? hints->ai_socktype : 0;
  if (family == AF_INET) {
    auto* sa = new sockaddr_in{};
    sa->sin_family = AF_INET;
    std::memcpy(&sa->sin_addr, ip, sizeof sa->sin_addr);
    ai->ai_addr = reinterpret_cast<sockaddr*>(sa);
    ai->ai_addrlen = sizeof *sa;
  } else {
    auto* sa = new sockaddr_in6{};
    sa->sin6_family = AF_INET6;
    std::memcpy(&sa->sin6_addr, ip, sizeof sa->sin6_addr);
    sa->sin6_scope_id = scope_id;
    ai->ai_addr = reinterpret_cast<sockaddr*>(sa);
    ai->ai_addrlen = sizeof *sa;
  }
  return ai;
}

// Appends `text`'s address to the list at *tail if hints' family allows it.
void add_result(std::string_view text, const addrinfo* hints, addrinfo**& tail) {
  const int wanted = hints != nullptr ? hints->ai_family : AF_UNSPEC;
  const std::size_t percent = text.find('%');
  const std::string ip(text.substr(0, percent));
  const std::uint32_t scope_id =
      percent == std::string_view::npos ? 0 : static_cast<std::uint32_t>(text[percent + 1] - '0');
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, ip.c_str(), &v4) == 1 && wanted != AF_INET6) {
    *tail = new_result(AF_INET, &v4, 0, hints);
  } else if (::inet_pton(AF_INET6, ip.c_str(), &v6) == 1 && wanted != AF_INET) {
    *tail = new_result(AF_INET6, &v6, scope_id, hints);
  } else {
    return;
  }
  tail = &(*tail)->ai_next;
}

}  // namespace
}  // namespace actnet::fuzz

// Replaces the C library's (and ASan's interceptor, a weak alias) for the whole executable.
extern "C" int getaddrinfo(const char* node, const char* /*service*/, const addrinfo* hints,
                           addrinfo** res) {
  using namespace actnet::fuzz;
  resolving = true;
  *res = nullptr;
  addrinfo** tail = res;
  const std::string_view name = node != nullptr ? node : "";
  for (const known_name& known : known_names) {
    if (known.name == name) {
      for (const std::string_view a : known.addresses) {
        if (!a.empty()) {
          add_result(a, hints, tail);
        }
      }
    }
  }
  // Numbers in the forms inet_aton reads ("127.1", "0x7f000001"), as the C library's would.
  in_addr v4{};
  if (*res == nullptr && ::inet_aton(name.data(), &v4) == 1) {
    add_result(::inet_ntoa(v4), hints, tail);
  }
  return *res != nullptr ? 0 : EAI_NONAME;
}

extern "C" void freeaddrinfo(addrinfo* ai) noexcept {
  while (ai != nullptr) {
    addrinfo* next = ai->ai_next;
    if (ai->ai_family == AF_INET) {
      delete reinterpret_cast<sockaddr_in*>(ai->ai_addr);
    } else {
      delete reinterpret_cast<sockaddr_in6*>(ai->ai_addr);
    }
    delete ai;
    ai = next;
  }
}

namespace actnet::fuzz {
namespace {

// -- checks --------------------------------------------------------------------------------------

// The address as the documented messages quote it: control characters escaped.
std::string escaped(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4U];
      out += hex[u & 0xfU];
    } else {
      out += c;
    }
  }
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

// parse() on a URL it must accept: one that an address printed.
address parse_printed(const std::string& url) {
  try {
    return address::parse(url);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    ACTNET_FUZZ_FAIL("an address's to_string() does not parse");
  }
}

void check_ip(std::string_view url, std::string_view scheme, const address& a) {
  const bool v6_only = scheme.back() == '6';
  ACTNET_FUZZ_CHECK(a.transport() ==
                    (scheme.substr(0, 3) == "tcp" ? transport::tcp : transport::udp));
  ACTNET_FUZZ_CHECK(a.v6_only() == v6_only);
  ACTNET_FUZZ_CHECK(!v6_only || a.family() == AF_INET6);
  if (scheme.back() == '4' || a.family() == AF_INET) {
    ACTNET_FUZZ_CHECK(a.family() == AF_INET && !v6_only);
    ACTNET_FUZZ_CHECK(a.size() == sizeof(sockaddr_in));
    ++reached.ipv4;
  } else {
    ACTNET_FUZZ_CHECK(a.family() == AF_INET6);
    ACTNET_FUZZ_CHECK(a.size() == sizeof(sockaddr_in6));
    ++reached.ipv6;
    if (reinterpret_cast<const sockaddr_in6*>(a.data())->sin6_scope_id != 0) {
      ++reached.zones;
    }
  }
  // The port is the number after the last colon, as written.
  const std::string_view port_text = url.substr(url.rfind(':') + 1);
  unsigned port = 0;
  for (const char c : port_text) {
    ACTNET_FUZZ_CHECK(c >= '0' && c <= '9');
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  ACTNET_FUZZ_CHECK(!port_text.empty() && port_text.size() <= 5 && port <= 65535);
  ACTNET_FUZZ_CHECK(a.port() == port);
  const auto other_port = static_cast<std::uint16_t>(port ^ 0x5a5aU);
  ACTNET_FUZZ_CHECK(a.with_port(other_port).port() == other_port);
  ACTNET_FUZZ_CHECK(a.with_port(other_port).with_port(a.port()) == a);
  ACTNET_FUZZ_CHECK(a.with_port(other_port) != a);
  ACTNET_FUZZ_CHECK(!a.abstract());
  if (resolving) {
    ++reached.resolved;
  }
}

void check_unix(std::string_view rest, const address& a) {
  ACTNET_FUZZ_CHECK(a.transport() == transport::unix_stream && a.family() == AF_UNIX);
  ACTNET_FUZZ_CHECK(a.size() <= sizeof(sockaddr_un));
  ACTNET_FUZZ_CHECK(a.port() == 0 && !a.v6_only() && !a.multicast());
  ACTNET_FUZZ_CHECK(a.with_port(80) == a);
  const auto& un = *reinterpret_cast<const sockaddr_un*>(a.data());
  constexpr std::size_t path_at = offsetof(sockaddr_un, sun_path);
  ACTNET_FUZZ_CHECK(a.abstract() == (rest.front() == '@'));
  if (a.abstract()) {
    // A NUL, then the name, and the length says where it ends.
    ACTNET_FUZZ_CHECK(a.size() == path_at + rest.size());
    ACTNET_FUZZ_CHECK(un.sun_path[0] == '\0');
    ACTNET_FUZZ_CHECK(std::memcmp(un.sun_path + 1, rest.data() + 1, rest.size() - 1) == 0);
    ++reached.abstract;
  } else {
    // The path and its terminating NUL.
    ACTNET_FUZZ_CHECK(a.size() == path_at + rest.size() + 1);
    ACTNET_FUZZ_CHECK(std::memcmp(un.sun_path, rest.data(), rest.size()) == 0);
    ACTNET_FUZZ_CHECK(un.sun_path[rest.size()] == '\0');
    ++reached.unix_paths;
  }
}

void check_accepted(std::string_view url, const address& a) {
  ACTNET_FUZZ_CHECK(a.valid());
  // Schemes are case-insensitive and kept in lower case.
  const std::size_t separator = url.find("://");
  ACTNET_FUZZ_CHECK(separator != std::string_view::npos);
  const std::string scheme = lower(url.substr(0, separator));
  ACTNET_FUZZ_CHECK(a.scheme() == scheme);
  const std::string_view rest = url.substr(separator + 3);
  if (scheme == "unix") {
    check_unix(rest, a);
  } else {
    ACTNET_FUZZ_CHECK(scheme == "tcp" || scheme == "tcp4" || scheme == "tcp6" || scheme == "udp" ||
                      scheme == "udp4" || scheme == "udp6");
    check_ip(url, scheme, a);
  }

  // Printed, parsed again: the same address, printed the same. A unix path prints as written.
  const std::string printed = a.to_string();
  const address again = parse_printed(printed);
  ACTNET_FUZZ_CHECK(again == a);
  ACTNET_FUZZ_CHECK(again.to_string() == printed);
  if (scheme == "unix") {
    ACTNET_FUZZ_CHECK(printed == scheme + "://" + std::string(rest));
  }

  // What the kernel would report for it reads back as the same endpoint, under the generic
  // scheme ("tcp6" reads back as "tcp").
  const address reported = address::from_sockaddr(a.transport(), a.data(), a.size());
  ACTNET_FUZZ_CHECK(reported.size() == a.size() && reported.family() == a.family());
  ACTNET_FUZZ_CHECK(std::memcmp(reported.data(), a.data(), a.size()) == 0);
  ACTNET_FUZZ_CHECK(reported.transport() == a.transport() && !reported.v6_only());
  ACTNET_FUZZ_CHECK(reported.scheme() == (scheme == "unix" ? "unix" : scheme.substr(0, 3)));
  ACTNET_FUZZ_CHECK(parse_printed(reported.to_string()) == reported);
}

// -- from_sockaddr on raw bytes -------------------------------------------------------------------

// Whether from_sockaddr must accept `len` bytes of family `family` for transport `t`. A length
// past an IP family's sockaddr is not decided here (no kernel reports one).
enum class verdict { accept, reject, either };
verdict expected(transport t, const std::byte* bytes, std::size_t len) {
  if (len < sizeof(sa_family_t)) {
    return verdict::reject;
  }
  sa_family_t family = 0;
  std::memcpy(&family, bytes, sizeof family);
  if (t == transport::unix_stream) {
    if (family != AF_UNIX) {
      return verdict::reject;
    }
    // A path that fills sun_path may come with the NUL Linux keeps after it; an abstract name
    // has none.
    constexpr std::size_t path_at = offsetof(sockaddr_un, sun_path);
    const bool abstract = len > path_at && bytes[path_at] == std::byte{0};
    return len <= sizeof(sockaddr_un) + (abstract ? 0 : 1) ? verdict::accept : verdict::reject;
  }
  const std::size_t wanted = family == AF_INET    ? sizeof(sockaddr_in)
                             : family == AF_INET6 ? sizeof(sockaddr_in6)
                                                  : 0;
  if (wanted == 0 || len < wanted) {
    return verdict::reject;
  }
  return len == wanted ? verdict::accept : verdict::either;
}

// Whether the text parse() would need to read back a unix name is in its rules: not empty, not
// too long, no control character or space (which also rules out a NUL in an abstract name).
bool parses_back(std::string_view name) {
  if (name.empty() || name.size() > sizeof(sockaddr_un::sun_path) - 1) {
    return false;
  }
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      return false;
    }
  }
  return true;
}

void check_reported(transport t, const std::byte* bytes, std::size_t len, const address& a) {
  ACTNET_FUZZ_CHECK(a.valid() && a.transport() == t && !a.v6_only());
  const std::string_view scheme = t == transport::tcp   ? "tcp"
                                  : t == transport::udp ? "udp"
                                                        : "unix";
  ACTNET_FUZZ_CHECK(a.scheme() == scheme);
  sa_family_t family = 0;
  std::memcpy(&family, bytes, sizeof family);
  ACTNET_FUZZ_CHECK(a.family() == family);
  bool round_trips = false;
  if (family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, bytes, sizeof in);
    const auto& got = *reinterpret_cast<const sockaddr_in*>(a.data());
    ACTNET_FUZZ_CHECK(a.size() == sizeof in && a.port() == ntohs(in.sin_port));
    ACTNET_FUZZ_CHECK(got.sin_addr.s_addr == in.sin_addr.s_addr);
    round_trips = true;
  } else if (family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, bytes, sizeof in6);
    const auto& got = *reinterpret_cast<const sockaddr_in6*>(a.data());
    ACTNET_FUZZ_CHECK(a.size() == sizeof in6 && a.port() == ntohs(in6.sin6_port));
    ACTNET_FUZZ_CHECK(std::memcmp(&got.sin6_addr, &in6.sin6_addr, sizeof in6.sin6_addr) == 0);
    ACTNET_FUZZ_CHECK(got.sin6_scope_id == in6.sin6_scope_id);
    ACTNET_FUZZ_CHECK(got.sin6_flowinfo == in6.sin6_flowinfo);
    // The flow label does not print, and a zone prints as a name or up to nine digits.
    round_trips = in6.sin6_flowinfo == 0 && in6.sin6_scope_id < 1000000000;
  } else {
    // bind and connect take no more than a sockaddr_un (EINVAL).
    constexpr std::size_t path_at = offsetof(sockaddr_un, sun_path);
    constexpr std::size_t path_max = sizeof(sockaddr_un::sun_path);
    ACTNET_FUZZ_CHECK(a.size() >= path_at && a.size() <= sizeof(sockaddr_un));
    const std::size_t given = std::min(len - path_at, path_max);
    const char* name = reinterpret_cast<const char*>(bytes) + path_at;
    const char* kept = reinterpret_cast<const char*>(a.data()) + path_at;
    if (len <= path_at) {
      ACTNET_FUZZ_CHECK(a.size() == path_at);  // unnamed: "unix://"
      ACTNET_FUZZ_CHECK(a.to_string() == "unix://");
    } else if (name[0] == '\0') {
      // Abstract: the length is the name's, NULs and all.
      ACTNET_FUZZ_CHECK(a.abstract() && a.size() == path_at + given);
      ACTNET_FUZZ_CHECK(std::memcmp(kept, name, given) == 0);
      round_trips = parses_back(std::string_view(name + 1, given - 1));
      ++reached.abstract;
    } else {
      // A path: up to its NUL, and the NUL when it fits.
      const std::size_t path = ::strnlen(name, given);
      ACTNET_FUZZ_CHECK(!a.abstract() && a.size() == path_at + std::min(path + 1, path_max));
      ACTNET_FUZZ_CHECK(std::memcmp(kept, name, path) == 0);
      ACTNET_FUZZ_CHECK(path == path_max || kept[path] == '\0');
      const std::string text(name, path);
      if (text.front() == '@') {
        // Not as an abstract name: "./" keeps it a path to the same file.
        ACTNET_FUZZ_CHECK(a.to_string() == "unix://./" + text);
        if (parses_back("./" + text)) {
          const address again = parse_printed(a.to_string());
          ACTNET_FUZZ_CHECK(!again.abstract() && again.to_string() == a.to_string());
        }
      } else {
        ACTNET_FUZZ_CHECK(a.to_string() == "unix://" + text);
        round_trips = parses_back(text);
      }
      ++reached.unix_paths;
    }
  }
  // What an address holds reads back as the same address.
  ACTNET_FUZZ_CHECK(address::from_sockaddr(t, a.data(), a.size()) == a);
  const std::string printed = a.to_string();
  if (round_trips) {
    ACTNET_FUZZ_CHECK(parse_printed(printed) == a);
  }
}

void run_reported(const std::uint8_t* data, std::size_t size) {
  const auto t = static_cast<transport>(size > 1 ? data[1] % 3 : 0);
  const std::size_t len = size > 2 ? size - 2 : 0;
  // In an allocation of exactly `len` bytes, so ASan reports reading past them.
  const auto bytes = std::make_unique<std::byte[]>(len);
  std::memcpy(bytes.get(), data + size - len, len);
  const verdict want = expected(t, bytes.get(), len);
  address a;
  try {
    a = address::from_sockaddr(t, reinterpret_cast<const sockaddr*>(bytes.get()),
                               static_cast<socklen_t>(len));
  } catch (const std::invalid_argument&) {
    ++reached.rejected;
    ACTNET_FUZZ_CHECK(want != verdict::accept);
    return;
  } catch (...) {
    ACTNET_FUZZ_FAIL("from_sockaddr threw something other than std::invalid_argument");
  }
  ACTNET_FUZZ_CHECK(want != verdict::reject);
  ++reached.reported;
  check_reported(t, bytes.get(), len, a);
}

void check_rejected(std::string_view url, const std::invalid_argument& e) {
  ++reached.rejected;
  // "actnet: address '<url, escaped>': <problem>"
  const std::string what = e.what();
  const std::string quoted = "actnet: address '" + escaped(url) + "': ";
  ACTNET_FUZZ_CHECK(what.size() > quoted.size() && what.compare(0, quoted.size(), quoted) == 0);
}

}  // namespace
}  // namespace actnet::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace actnet::fuzz;
  resolving = false;
  if (size > 0 && data[0] == 0) {
    run_reported(data, size);
    return 0;
  }
  const std::string_view url(reinterpret_cast<const char*>(data), size);
  actnet::address a;
  try {
    a = actnet::address::parse(url);
  } catch (const std::invalid_argument& e) {
    check_rejected(url, e);
    return 0;
  } catch (...) {
    ACTNET_FUZZ_FAIL("parse threw something other than std::invalid_argument");
  }
  check_accepted(url, a);
  return 0;
}
