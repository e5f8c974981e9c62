// --metrics in every server sample: /metrics fetched with curl and checked by Prometheus's own
// promtool, and the echo server's counters against the traffic it served.
#include <gtest/gtest.h>
#include <unistd.h>

#include <actnet/reactor/address.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

// The http:// URL of the sample's "metrics on URL/metrics" line (after its listeners'), or "".
std::string metrics_url(test::sample_process& p) {
  char line[256] = {};
  if (p.out == nullptr || std::fgets(line, sizeof line, p.out) == nullptr) {
    return "";
  }
  const std::string text = line;
  if (text.rfind("metrics on tcp://", 0) != 0) {
    return "";
  }
  return "http://" + text.substr(17, text.find_first_of(" \n", 17) - 17);
}

// Fetches `url` with curl into a file of its own and checks it with promtool; the text, and
// promtool's verdict (its output, "" when the text passes).
struct scrape {
  std::string text;
  int promtool_exit = -1;
  std::string promtool_says;
};
scrape fetch(const std::string& url, bool close = false) {
  const std::string file = (std::filesystem::temp_directory_path() /
                            ("actnet-metrics-" + std::to_string(::getpid()) + ".txt"))
                               .string();
  scrape s;
  const test::command_outcome got = test::run_command(
      "curl -sS --fail --max-time 20 " + std::string(close ? "-H 'Connection: close' " : "") +
      "-o '" + file + "' '" + url + "'");
  if (got.exit_code != 0) {
    s.promtool_says = "curl: " + got.output;
    return s;
  }
  const test::command_outcome checked =
      test::run_command("promtool check metrics < '" + file + "'");
  s.promtool_exit = checked.exit_code;
  s.promtool_says = checked.output;
  if (FILE* f = std::fopen(file.c_str(), "r")) {
    char chunk[4096];
    for (std::size_t n = 0; (n = std::fread(chunk, 1, sizeof chunk, f)) > 0;) {
      s.text.append(chunk, n);
    }
    std::fclose(f);
  }
  std::filesystem::remove(file);
  return s;
}

struct sample_case {
  const char* name;
  const char* binary;
};

class metrics_sample : public ::testing::TestWithParam<sample_case> {};

TEST_P(metrics_sample, serves_metrics_that_promtool_accepts) {
  std::vector<std::string> args{"--listen", "tcp://127.0.0.1:0", "--loops",
                                "2",        "--metrics",         "tcp://127.0.0.1:0"};
  std::unique_ptr<test::sample_process> upstream;
  if (std::string_view(GetParam().name) == "proxy") {
    upstream = std::make_unique<test::sample_process>(
        ACTNET_ECHO_SERVER, std::vector<std::string>{"--listen", "tcp://127.0.0.1:0"});
    ASSERT_EQ(upstream->addresses.size(), 1U) << upstream->first_line;
    args.insert(args.end(), {"--upstream", upstream->bound.to_string()});
  }
  test::sample_process p(GetParam().binary, args);
  ASSERT_EQ(p.addresses.size(), 1U) << p.first_line;
  const std::string url = metrics_url(p);
  ASSERT_FALSE(url.empty());
  const scrape s = fetch(url);
  EXPECT_EQ(s.promtool_exit, 0) << s.promtool_says;
  EXPECT_EQ(s.promtool_says, "");
  // Two loops and their totals; the scrape's own connection is open.
  EXPECT_NE(s.text.find("actnet_connections_open{loop=\"1\"}"), std::string::npos) << s.text;
  EXPECT_NE(s.text.find("actnet_connections_open{loop=\"all\"} 1\n"), std::string::npos) << s.text;
  EXPECT_NE(s.text.find("actnet_loop_iteration_seconds_bucket{loop=\"all\",le=\"+Inf\"}"),
            std::string::npos);
  const int status = p.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

std::string sample_name(const ::testing::TestParamInfo<sample_case>& p) {
  return p.param.name;
}

INSTANTIATE_TEST_SUITE_P(samples, metrics_sample,
                         ::testing::Values(sample_case{"echo_server", ACTNET_ECHO_SERVER},
                                           sample_case{"http_server", ACTNET_HTTP_SERVER},
                                           sample_case{"redis_server", ACTNET_REDIS_SERVER},
                                           sample_case{"chat_server", ACTNET_CHAT_SERVER},
                                           sample_case{"ticker_server", ACTNET_TICKER_SERVER},
                                           sample_case{"echo_blocking", ACTNET_ECHO_BLOCKING},
                                           sample_case{"proxy", ACTNET_PROXY}),
                         sample_name);

TEST(metrics_sample_counts, the_echo_servers_counters_match_the_traffic_it_served) {
  test::sample_process p(ACTNET_ECHO_SERVER, {"--listen", "tcp://127.0.0.1:0", "--loops", "1",
                                              "--metrics", "tcp://127.0.0.1:0", "--count-io"});
  ASSERT_EQ(p.addresses.size(), 1U) << p.first_line;
  const std::string url = metrics_url(p);
  ASSERT_FALSE(url.empty());
  for (int i = 0; i < 3; ++i) {
    const int fd = test::connect_to(p.bound);
    ASSERT_GE(fd, 0);
    const std::string message = test::pattern_bytes(static_cast<std::size_t>(i) * 100, 100);
    ASSERT_TRUE(test::send_all(fd, message));
    EXPECT_EQ(test::recv_exact(fd, 100), message);
    ::close(fd);  // the server sees end_of_stream
  }
  // Three echo connections closed by their peers (end_of_stream); each scrape's own connection
  // is open while it is answered, then closed by the server (Connection: close: cause local).
  scrape s;
  int scrapes = 0;
  ASSERT_TRUE(test::eventually([&] {
    s = fetch(url, true);
    ++scrapes;
    return s.text.find(
               "actnet_connections_closed_total{cause=\"end_of_stream\",loop=\"all\"} 3\n") !=
           std::string::npos;
  })) << s.text;
  EXPECT_EQ(s.promtool_exit, 0) << s.promtool_says;
  const std::string connections = std::to_string(3 + scrapes);
  for (const std::string& line :
       {"actnet_connections_opened_total{loop=\"all\"} " + connections + "\n",
        "actnet_connections_accepted_total{loop=\"0\"} " + connections + "\n",
        std::string("actnet_connections_open{loop=\"all\"} 1\n"),
        std::string("actnet_connections_refused_total{loop=\"all\"} 0\n")}) {
    EXPECT_NE(s.text.find(line), std::string::npos) << line << " not in\n" << s.text;
  }
  // Bytes: the 300 echoed each way, and the scrapes' requests in (their answers go after).
  const std::string sent = "actnet_sent_bytes_total{loop=\"all\"} ";
  const std::size_t sent_at = s.text.find(sent);
  ASSERT_NE(sent_at, std::string::npos);
  EXPECT_GE(std::stoul(s.text.substr(sent_at + sent.size())), 300U);
  const int status = p.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace actnet
