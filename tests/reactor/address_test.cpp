// address: parsing every scheme, printing back, resolving names, and the message each mistake
// gives.
#include "actnet/reactor/address.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace actnet {
namespace {

const sockaddr_in& as_v4(const address& a) {
  return *reinterpret_cast<const sockaddr_in*>(a.data());
}

const sockaddr_in6& as_v6(const address& a) {
  return *reinterpret_cast<const sockaddr_in6*>(a.data());
}

const sockaddr_un& as_unix(const address& a) {
  return *reinterpret_cast<const sockaddr_un*>(a.data());
}

std::string ipv4_text(const address& a) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &as_v4(a).sin_addr, text, sizeof text);
  return text;
}

std::string ipv6_text(const address& a) {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, &as_v6(a).sin6_addr, text, sizeof text);
  return text;
}

TEST(address, an_empty_address_is_not_valid) {
  const address a;
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(a.family(), AF_UNSPEC);
  EXPECT_EQ(a.size(), 0U);
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.scheme(), "");
  EXPECT_EQ(a.to_string(), "");
  EXPECT_EQ(a, address());
}

TEST(address, a_tcp_url_parses_to_an_ipv4_endpoint) {
  const auto a = address::parse("tcp://127.0.0.1:8080");
  ASSERT_TRUE(a.valid());
  EXPECT_EQ(a.transport(), transport::tcp);
  EXPECT_EQ(a.scheme(), "tcp");
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.size(), sizeof(sockaddr_in));
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(ntohs(as_v4(a).sin_port), 8080);
  EXPECT_EQ(ipv4_text(a), "127.0.0.1");
  EXPECT_FALSE(a.v6_only());
  EXPECT_FALSE(a.abstract());
}

TEST(address, a_tcp4_url_parses_to_an_ipv4_endpoint) {
  const auto a = address::parse("tcp4://10.1.2.3:1");
  EXPECT_EQ(a.transport(), transport::tcp);
  EXPECT_EQ(a.scheme(), "tcp4");
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(ipv4_text(a), "10.1.2.3");
  EXPECT_EQ(a.port(), 1);
  EXPECT_FALSE(a.v6_only());
}

TEST(address, a_tcp6_url_parses_to_an_ipv6_only_endpoint) {
  const auto a = address::parse("tcp6://[::1]:65535");
  EXPECT_EQ(a.transport(), transport::tcp);
  EXPECT_EQ(a.scheme(), "tcp6");
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.size(), sizeof(sockaddr_in6));
  EXPECT_EQ(ipv6_text(a), "::1");
  EXPECT_EQ(a.port(), 65535);
  EXPECT_TRUE(a.v6_only());
}

TEST(address, an_ipv6_literal_in_brackets_under_plain_tcp_is_dual_stack) {
  const auto a = address::parse("tcp://[2001:db8::7]:443");
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(ipv6_text(a), "2001:db8::7");
  EXPECT_EQ(a.port(), 443);
  EXPECT_FALSE(a.v6_only());
}

TEST(address, udp_schemes_parse_like_their_tcp_counterparts) {
  const auto udp = address::parse("udp://127.0.0.1:53");
  EXPECT_EQ(udp.transport(), transport::udp);
  EXPECT_EQ(udp.scheme(), "udp");
  EXPECT_EQ(udp.family(), AF_INET);
  EXPECT_EQ(udp.port(), 53);

  const auto udp4 = address::parse("udp4://127.0.0.1:53");
  EXPECT_EQ(udp4.transport(), transport::udp);
  EXPECT_EQ(udp4.scheme(), "udp4");
  EXPECT_EQ(udp4.family(), AF_INET);

  const auto udp6 = address::parse("udp6://[::1]:53");
  EXPECT_EQ(udp6.transport(), transport::udp);
  EXPECT_EQ(udp6.scheme(), "udp6");
  EXPECT_EQ(udp6.family(), AF_INET6);
  EXPECT_TRUE(udp6.v6_only());
}

TEST(address, an_ipv6_zone_names_the_interface_by_name_or_index) {
  const unsigned lo = ::if_nametoindex("lo");
  if (lo == 0) {
    GTEST_SKIP() << "no loopback interface named lo";
  }
  const auto named = address::parse("tcp6://[fe80::1%lo]:80");
  EXPECT_EQ(ipv6_text(named), "fe80::1");
  EXPECT_EQ(as_v6(named).sin6_scope_id, lo);
  EXPECT_EQ(named.to_string(), "tcp6://[fe80::1%lo]:80");

  const auto numbered = address::parse("tcp6://[fe80::1%" + std::to_string(lo) + "]:80");
  EXPECT_EQ(numbered, named);
}

TEST(address, port_zero_is_allowed) {
  const auto a = address::parse("tcp://127.0.0.1:0");
  EXPECT_TRUE(a.valid());
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(address::parse("udp6://[::1]:0").port(), 0);
}

TEST(address, an_empty_host_with_a_port_means_every_local_address) {
  const auto any4 = address::parse("tcp://:9000");
  EXPECT_EQ(any4.family(), AF_INET);
  EXPECT_EQ(ipv4_text(any4), "0.0.0.0");
  EXPECT_EQ(any4.port(), 9000);

  const auto any6 = address::parse("udp6://:9000");
  EXPECT_EQ(any6.family(), AF_INET6);
  EXPECT_EQ(ipv6_text(any6), "::");
  EXPECT_TRUE(any6.v6_only());
}

TEST(address, schemes_are_case_insensitive_and_kept_in_lower_case) {
  const auto a = address::parse("TCP6://[::1]:80");
  EXPECT_EQ(a.scheme(), "tcp6");
  EXPECT_EQ(a, address::parse("tcp6://[::1]:80"));
}

TEST(address, a_unix_url_holds_an_absolute_path) {
  const auto a = address::parse("unix:///tmp/actnet.sock");
  EXPECT_EQ(a.transport(), transport::unix_stream);
  EXPECT_EQ(a.scheme(), "unix");
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(std::string(as_unix(a).sun_path), "/tmp/actnet.sock");
  // The path and its terminating NUL.
  EXPECT_EQ(a.size(), offsetof(sockaddr_un, sun_path) + std::strlen("/tmp/actnet.sock") + 1);
  EXPECT_EQ(a.port(), 0);
  EXPECT_FALSE(a.abstract());
  EXPECT_FALSE(a.v6_only());
}

TEST(address, a_unix_url_holds_a_relative_path) {
  const auto a = address::parse("unix://run/actnet.sock");
  EXPECT_EQ(std::string(as_unix(a).sun_path), "run/actnet.sock");
  EXPECT_FALSE(a.abstract());
}

TEST(address, a_unix_url_with_an_at_sign_is_an_abstract_name) {
  const auto a = address::parse("unix://@actnet-test");
  EXPECT_TRUE(a.abstract());
  EXPECT_EQ(as_unix(a).sun_path[0], '\0');
  EXPECT_EQ(std::string(as_unix(a).sun_path + 1, std::strlen("actnet-test")), "actnet-test");
  // A leading NUL, then the name with no terminator: the length is part of the name.
  EXPECT_EQ(a.size(), offsetof(sockaddr_un, sun_path) + 1 + std::strlen("actnet-test"));
}

TEST(address, the_longest_unix_path_that_fits_is_accepted) {
  const std::string path(sizeof(sockaddr_un::sun_path) - 1, 'p');
  EXPECT_EQ(address::parse("unix://" + path).to_string(), "unix://" + path);
  EXPECT_EQ(address::parse("unix://@" + path).to_string(), "unix://@" + path);
}

TEST(address, to_string_round_trips_through_parse) {
  for (const std::string url : {"tcp://127.0.0.1:8080", "tcp4://192.168.0.1:0", "tcp6://[::1]:8080",
                                "tcp://[::1]:1", "tcp://0.0.0.0:9000", "udp://127.0.0.1:53",
                                "udp4://127.0.0.1:53", "udp6://[fe80::1:2:3:4]:53",
                                "unix:///tmp/s.sock", "unix://relative/s.sock", "unix://@name"}) {
    SCOPED_TRACE(url);
    const auto a = address::parse(url);
    EXPECT_EQ(a.to_string(), url);
    EXPECT_EQ(address::parse(a.to_string()), a);
  }
}

TEST(address, addresses_are_equal_when_scheme_and_endpoint_are) {
  EXPECT_EQ(address::parse("tcp://127.0.0.1:80"), address::parse("tcp://127.0.0.1:80"));
  EXPECT_NE(address::parse("tcp://127.0.0.1:80"), address::parse("tcp://127.0.0.1:81"));
  EXPECT_NE(address::parse("tcp://127.0.0.1:80"), address::parse("tcp://127.0.0.2:80"));
  EXPECT_NE(address::parse("tcp://127.0.0.1:80"), address::parse("udp://127.0.0.1:80"));
  EXPECT_NE(address::parse("tcp://127.0.0.1:80"), address::parse("tcp4://127.0.0.1:80"));
  EXPECT_NE(address::parse("tcp://[::1]:80"), address::parse("tcp6://[::1]:80"));
  EXPECT_NE(address::parse("unix://@a"), address::parse("unix://a"));
}

TEST(address, with_port_changes_only_the_port) {
  const auto a = address::parse("tcp6://[::1]:0");
  const auto b = a.with_port(4242);
  EXPECT_EQ(b.port(), 4242);
  EXPECT_EQ(b.to_string(), "tcp6://[::1]:4242");
  EXPECT_EQ(b.scheme(), a.scheme());
  EXPECT_EQ(b.v6_only(), a.v6_only());
  EXPECT_EQ(b.with_port(0), a);
  EXPECT_EQ(a.port(), 0);  // the original is untouched

  EXPECT_EQ(address::parse("udp://127.0.0.1:1").with_port(2), address::parse("udp://127.0.0.1:2"));
}

TEST(address, with_port_leaves_unix_and_empty_addresses_unchanged) {
  const auto a = address::parse("unix:///tmp/s.sock");
  EXPECT_EQ(a.with_port(80), a);
  EXPECT_EQ(address().with_port(80), address());
}

TEST(address, localhost_resolves_to_ipv4_under_tcp4_and_first_under_tcp) {
  const auto v4 = address::parse("tcp4://localhost:80");
  EXPECT_EQ(v4.family(), AF_INET);
  EXPECT_EQ(ipv4_text(v4), "127.0.0.1");
  EXPECT_EQ(v4.port(), 80);

  // Plain tcp prefers IPv4 when the name has both.
  const auto any = address::parse("udp://localhost:80");
  EXPECT_EQ(any.family(), AF_INET);
  EXPECT_EQ(ipv4_text(any), "127.0.0.1");
}

TEST(address, localhost_under_tcp6_resolves_only_to_ipv6) {
  address v6;
  try {
    v6 = address::parse("tcp6://localhost:80");
  } catch (const std::invalid_argument& e) {
    // Refused for want of an IPv6 address, not answered with an IPv4 one.
    EXPECT_NE(std::string(e.what()).find("to an IPv6 address"), std::string::npos) << e.what();
    GTEST_SKIP() << "localhost has no IPv6 address here: " << e.what();
  }
  EXPECT_EQ(v6.family(), AF_INET6);
  EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&as_v6(v6).sin6_addr)) << ipv6_text(v6);
  EXPECT_TRUE(v6.v6_only());
}

TEST(address, the_documented_messages_read_exactly) {
  const auto message = [](const std::string& url) -> std::string {
    try {
      (void)address::parse(url);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no exception";
  };
  EXPECT_EQ(message("tulip://x"),
            "actnet: address 'tulip://x': unsupported protocol 'tulip' (use tcp, tcp4, tcp6, udp, "
            "udp4, udp6 or unix)");
  EXPECT_EQ(message("tcp://"), "actnet: address 'tcp://': missing host");
  EXPECT_EQ(message("tcp://localhost:8080/foo"),
            "actnet: address 'tcp://localhost:8080/foo': unexpected path '/foo'");
  EXPECT_EQ(message(":foo"),
            "actnet: address ':foo': missing scheme (expected e.g. tcp://127.0.0.1:8080)");
}

struct bad_input {
  const char* name;     // the test's name suffix
  std::string url;      // what is parsed
  std::string shown;    // how the message quotes it (control characters escaped)
  const char* problem;  // a fragment of the message
};

class bad_address : public ::testing::TestWithParam<bad_input> {};

TEST_P(bad_address, throws_invalid_argument_quoting_the_address_and_naming_the_problem) {
  const bad_input& in = GetParam();
  try {
    const auto a = address::parse(in.url);
    FAIL() << "parsed into " << a.to_string();
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'" + in.shown + "'"), std::string::npos) << what;
    EXPECT_NE(what.find(in.problem), std::string::npos) << what;
  }
}

std::vector<bad_input> bad_inputs() {
  const std::string long_name(sizeof(sockaddr_un::sun_path), 'x');
  return {
      {"unsupported_protocol", "tulip://howdy", "tulip://howdy", "unsupported protocol 'tulip'"},
      {"no_scheme_at_all", "howdy", "howdy", "missing scheme"},
      {"colon_without_scheme", ":foo", ":foo", "missing scheme"},
      {"empty_scheme", "://127.0.0.1:80", "://127.0.0.1:80", "missing scheme"},
      {"empty", "", "", "missing scheme"},
      {"no_host", "tcp://", "tcp://", "missing host"},
      {"a_path_on_tcp", "tcp://localhost:8080/foo", "tcp://localhost:8080/foo",
       "unexpected path '/foo'"},
      {"no_port", "tcp://localhost", "tcp://localhost", "missing port"},
      {"empty_port", "tcp://127.0.0.1:", "tcp://127.0.0.1:", "missing port"},
      {"no_port_after_brackets", "tcp6://[::1]", "tcp6://[::1]", "missing port"},
      {"service_name_port", "tcp://127.0.0.1:http", "tcp://127.0.0.1:http", "bad port 'http'"},
      {"port_too_big", "udp://127.0.0.1:65536", "udp://127.0.0.1:65536", "bad port '65536'"},
      {"port_far_too_big", "tcp://127.0.0.1:99999999999", "tcp://127.0.0.1:99999999999",
       "bad port"},
      {"negative_port", "tcp://127.0.0.1:-1", "tcp://127.0.0.1:-1", "bad port '-1'"},
      {"trailing_newline", "tcp://127.0.0.1\n", "tcp://127.0.0.1\\n", "control character"},
      {"space_in_host", "tcp://127.0.0.1 :80", "tcp://127.0.0.1 :80", "whitespace"},
      {"tab_after_port", "tcp://127.0.0.1:80\t", "tcp://127.0.0.1:80\\t", "whitespace"},
      {"nul_byte", std::string("unix:///tmp/a\0b", 15), "unix:///tmp/a\\x00b", "control character"},
      {"empty_unix_path", "unix://", "unix://", "empty unix path"},
      {"empty_abstract_name", "unix://@", "unix://@", "empty abstract socket name"},
      {"unix_path_too_long", "unix:///" + long_name, "unix:///" + long_name, "longer than"},
      {"abstract_name_too_long", "unix://@" + long_name, "unix://@" + long_name, "longer than"},
      {"unresolvable_host", "tcp://no-such-host.invalid:80", "tcp://no-such-host.invalid:80",
       "cannot resolve host 'no-such-host.invalid': "},
      {"unresolvable_host_of_a_family", "udp4://no-such-host.invalid:80",
       "udp4://no-such-host.invalid:80",
       "cannot resolve host 'no-such-host.invalid' to an IPv4 address: "},
      {"ipv6_literal_under_tcp4", "tcp4://[::1]:80", "tcp4://[::1]:80", "needs IPv4"},
      {"ipv4_literal_under_tcp6", "tcp6://127.0.0.1:80", "tcp6://127.0.0.1:80", "needs IPv6"},
      {"ipv6_without_brackets", "tcp://::1:80", "tcp://::1:80", "needs brackets"},
      {"unclosed_bracket", "tcp://[::1:80", "tcp://[::1:80", "missing ']'"},
      {"ipv4_in_brackets", "tcp://[127.0.0.1]:80", "tcp://[127.0.0.1]:80",
       "is not an IPv6 address"},
      {"text_after_brackets", "tcp://[::1]x:80", "tcp://[::1]x:80", "after ']'"},
      {"empty_zone", "tcp6://[fe80::1%]:80", "tcp6://[fe80::1%]:80", "empty zone"},
      {"unknown_zone", "tcp6://[fe80::1%nosuchif9]:80", "tcp6://[fe80::1%nosuchif9]:80",
       "unknown network interface 'nosuchif9'"},
  };
}

INSTANTIATE_TEST_SUITE_P(address, bad_address, ::testing::ValuesIn(bad_inputs()),
                         [](const ::testing::TestParamInfo<bad_input>& input) {
                           return std::string(input.param.name);
                         });

TEST(address, from_sockaddr_reads_an_ipv4_endpoint) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(8080);
  ASSERT_EQ(::inet_pton(AF_INET, "127.0.0.1", &in.sin_addr), 1);
  const auto a =
      address::from_sockaddr(transport::tcp, reinterpret_cast<const sockaddr*>(&in), sizeof in);
  EXPECT_EQ(a.scheme(), "tcp");
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.to_string(), "tcp://127.0.0.1:8080");
  EXPECT_EQ(a, address::parse("tcp://127.0.0.1:8080"));
}

TEST(address, from_sockaddr_reads_an_ipv6_endpoint) {
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(53);
  in6.sin6_addr = in6addr_loopback;
  const auto a =
      address::from_sockaddr(transport::udp, reinterpret_cast<const sockaddr*>(&in6), sizeof in6);
  EXPECT_EQ(a.transport(), transport::udp);
  EXPECT_EQ(a.scheme(), "udp");
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_FALSE(a.v6_only());
  EXPECT_EQ(a.to_string(), "udp://[::1]:53");
  EXPECT_EQ(a, address::parse("udp://[::1]:53"));
}

TEST(address, from_sockaddr_reads_a_unix_path_with_or_without_its_nul) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/tmp/s.sock");
  const auto* sa = reinterpret_cast<const sockaddr*>(&un);
  const auto base = offsetof(sockaddr_un, sun_path);
  const auto with_nul =
      address::from_sockaddr(transport::unix_stream, sa, static_cast<socklen_t>(base + 12));
  const auto without_nul =
      address::from_sockaddr(transport::unix_stream, sa, static_cast<socklen_t>(base + 11));
  const auto whole_struct = address::from_sockaddr(transport::unix_stream, sa, sizeof un);
  EXPECT_EQ(with_nul, address::parse("unix:///tmp/s.sock"));
  EXPECT_EQ(without_nul, with_nul);
  EXPECT_EQ(whole_struct, with_nul);
  EXPECT_EQ(with_nul.to_string(), "unix:///tmp/s.sock");
}

// Linux lets a path fill all of sun_path with no NUL, and getsockname then reports it with the
// NUL the kernel keeps after it: a length one byte past sockaddr_un. from_sockaddr refused that
// length (so local_address and peer_address failed for such a socket), and given the path
// without the NUL it counted one anyway, into a size that bind and connect refuse (EINVAL).
TEST(address, from_sockaddr_reads_a_path_that_fills_sun_path_as_linux_reports_it) {
  std::string path = "/tmp/actnet-address-test-" + std::to_string(::getpid()) + "-";
  path.resize(sizeof(sockaddr_un::sun_path), 'p');
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  ::unlink(path.c_str());
  ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&un), sizeof un), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  sockaddr_storage reported{};
  socklen_t len = sizeof reported;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&reported), &len), 0);

  for (const socklen_t given : {len, socklen_t{sizeof un}}) {
    SCOPED_TRACE(given);
    address a;
    EXPECT_NO_THROW(a = address::from_sockaddr(transport::unix_stream,
                                               reinterpret_cast<const sockaddr*>(&reported),
                                               given));
    EXPECT_EQ(a.size(), sizeof un);
    EXPECT_EQ(a.to_string(), "unix://" + path);
    const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(client, 0);
    EXPECT_EQ(::connect(client, a.data(), a.size()), 0) << std::strerror(errno);
    ::close(client);
  }
  ::close(listener);
  ::unlink(path.c_str());
}

// Found by the fuzzer: a relative path starting with '@' (a peer bound to "@relative.sock")
// printed as "unix://@relative.sock", which parses into the abstract name "relative.sock": a
// different socket, and no error to say so.
TEST(address, a_unix_path_starting_with_an_at_sign_does_not_print_as_an_abstract_name) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "@relative.sock");
  const auto a = address::from_sockaddr(
      transport::unix_stream, reinterpret_cast<const sockaddr*>(&un),
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::strlen("@relative.sock") + 1));
  EXPECT_FALSE(a.abstract());
  EXPECT_EQ(a.to_string(), "unix://./@relative.sock");
  const auto again = address::parse(a.to_string());
  EXPECT_FALSE(again.abstract());
  EXPECT_EQ(std::string(as_unix(again).sun_path), "./@relative.sock") << "the same file";
  EXPECT_EQ(again.to_string(), a.to_string());
}

TEST(address, from_sockaddr_reads_an_abstract_name) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, "\0name", 5);
  const auto a =
      address::from_sockaddr(transport::unix_stream, reinterpret_cast<const sockaddr*>(&un),
                             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 5));
  EXPECT_TRUE(a.abstract());
  EXPECT_EQ(a.to_string(), "unix://@name");
  EXPECT_EQ(a, address::parse("unix://@name"));
}

TEST(address, from_sockaddr_reads_an_unnamed_unix_socket) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  const auto a = address::from_sockaddr(
      transport::unix_stream, reinterpret_cast<const sockaddr*>(&un), sizeof(sa_family_t));
  EXPECT_TRUE(a.valid());
  EXPECT_FALSE(a.abstract());
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(a.to_string(), "unix://");
}

TEST(address, from_sockaddr_refuses_what_does_not_fit_the_transport) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  const auto* sa = reinterpret_cast<const sockaddr*>(&in);
  EXPECT_THROW((void)address::from_sockaddr(transport::unix_stream, sa, sizeof in),
               std::invalid_argument);
  EXPECT_THROW((void)address::from_sockaddr(transport::tcp, sa, sizeof in - 1),
               std::invalid_argument);
  EXPECT_THROW((void)address::from_sockaddr(transport::tcp, nullptr, sizeof in),
               std::invalid_argument);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  EXPECT_THROW((void)address::from_sockaddr(transport::tcp, reinterpret_cast<const sockaddr*>(&un),
                                            sizeof un),
               std::invalid_argument);
}

}  // namespace
}  // namespace actnet
