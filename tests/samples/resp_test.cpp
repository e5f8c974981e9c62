// The redis_server sample's RESP parser: multibulk and inline requests, split at every byte,
// and the protocol errors Redis answers before closing.
#include "redis/resp.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace actnet::samples::resp {
namespace {

std::vector<std::string> args_of(const parse_result& r) {
  return {r.args.begin(), r.args.end()};
}

TEST(resp, a_multibulk_request) {
  const std::string in = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n*1\r\n";
  const parse_result r = parse(in);
  ASSERT_EQ(r.status, parse_status::complete);
  EXPECT_EQ(args_of(r), (std::vector<std::string>{"SET", "key", "va\r\nl"})) << "binary-safe";
  EXPECT_EQ(r.size, in.size() - 4) << "the next request's bytes are left";
}

TEST(resp, inline_requests) {
  const parse_result r = parse("  set  key\tvalue \r\nPING\n");
  ASSERT_EQ(r.status, parse_status::complete);
  EXPECT_EQ(args_of(r), (std::vector<std::string>{"set", "key", "value"}));
  EXPECT_EQ(parse("PING\n").size, 5U);
  EXPECT_TRUE(parse("\r\n").args.empty()) << "an empty line is no command";
  EXPECT_EQ(parse("PING").status, parse_status::incomplete);
}

TEST(resp, a_request_split_at_every_byte_is_incomplete_until_its_last) {
  const std::string in = "*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\n";
  for (std::size_t cut = 0; cut < in.size(); ++cut) {
    const parse_result partial = parse(std::string_view(in).substr(0, cut));
    ASSERT_EQ(partial.status, parse_status::incomplete) << "cut at " << cut;
    EXPECT_LE(partial.needed, in.size()) << "cut at " << cut;
  }
  const parse_result whole = parse(in);
  ASSERT_EQ(whole.status, parse_status::complete);
  EXPECT_EQ(args_of(whole), (std::vector<std::string>{"ECHO", "hello world"}));
}

TEST(resp, a_large_value_says_how_many_bytes_to_wait_for) {
  const std::string head = "*2\r\n$3\r\nSET\r\n$1000000\r\n";
  const parse_result r = parse(head + std::string(1000, 'x'));
  ASSERT_EQ(r.status, parse_status::incomplete);
  EXPECT_EQ(r.needed, head.size() + 1000000 + 2);
}

// Found by the fuzzer: an inline request of more than 64 KiB was refused while its newline had
// not arrived, but parsed when it had, so whether the server answered it hung on the reads.
TEST(resp, an_inline_request_past_64_kib_is_refused_however_its_bytes_arrive) {
  const std::string line(max_inline + 1, 'a');
  for (const std::string& in : {line, line + "\n", line + "\r\n"}) {
    const parse_result r = parse(in);
    EXPECT_EQ(r.status, parse_status::failed) << in.size() << " bytes";
    EXPECT_EQ(r.error, "Protocol error: too big inline request") << in.size() << " bytes";
  }
  const parse_result longest = parse(std::string(max_inline, 'a') + "\n");
  ASSERT_EQ(longest.status, parse_status::complete) << "a line of 64 KiB is allowed";
  EXPECT_EQ(longest.args.at(0).size(), max_inline);
}

TEST(resp, protocol_errors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"*x\r\n", "Protocol error: invalid multibulk length"},
      {"*-5\r\n", "Protocol error: invalid multibulk length"},
      {"*2000000\r\n", "Protocol error: invalid multibulk length"},
      {"*1\r\n*1\r\n$4\r\nPING\r\n", "Protocol error: expected '$', got '*'"},  // nesting
      {"*1\r\n:4\r\n", "Protocol error: expected '$', got ':'"},
      {"*1\r\n$x\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"},  // over 512 MB
      {"*1\r\n$4\r\nPINGxx", "Protocol error: bulk string not terminated by CRLF"},
      {"*" + std::string(40, '1'), "Protocol error: invalid multibulk length"},
      {std::string(70000, 'a'), "Protocol error: too big inline request"},
  };
  for (const auto& [in, error] : cases) {
    const parse_result r = parse(in);
    EXPECT_EQ(r.status, parse_status::failed) << in.substr(0, 40);
    EXPECT_EQ(r.error, error) << in.substr(0, 40);
  }
  EXPECT_EQ(parse("*1\r\n$536870912\r\n").status, parse_status::incomplete) << "512 MB is allowed";
}

}  // namespace
}  // namespace actnet::samples::resp
