// samples/chat: 50 clients on two loops, each line reaching every other client exactly once and
// in order; /nick and /msg across loops; bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "actors/test_util.hpp"
#include "samples/sample_process.hpp"

namespace actnet {
namespace {

/// A blocking chat client that reads whole lines (20 s receive timeout, as connect_to sets).
class chat_client {
 public:
  explicit chat_client(const address& server) : fd_(test::connect_to(server)) {}
  chat_client(const chat_client&) = delete;
  chat_client& operator=(const chat_client&) = delete;
  chat_client(chat_client&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), buffered_(std::move(other.buffered_)) {}
  ~chat_client() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  [[nodiscard]] bool connected() const { return fd_ >= 0; }
  bool send(std::string_view text) { return test::send_all(fd_, text); }
  /// The next line without its "\n"; "<closed>" at end of stream, "<timeout>" after 20 s.
  std::string line() {
    for (;;) {
      if (const std::size_t end = buffered_.find('\n'); end != std::string::npos) {
        std::string l = buffered_.substr(0, end);
        buffered_.erase(0, end + 1);
        return l;
      }
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n == 0) {
        return "<closed>";
      }
      if (n < 0) {
        return "<timeout>";
      }
      buffered_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  /// The next line that is not a notice ("* ...").
  std::string chat_line() {
    for (;;) {
      std::string l = line();
      if (!l.starts_with("* ")) {
        return l;
      }
    }
  }
  /// The name the server gave out, from its welcome notice.
  std::string welcome() {
    const std::string l = line();
    const std::string prefix = "* welcome, you are ";
    return l.starts_with(prefix) ? l.substr(prefix.size()) : "<no welcome: " + l + ">";
  }
  void close() {
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::string buffered_;
};

test::sample_process start_chat() {
  return test::sample_process(ACTNET_CHAT_SERVER,
                              {"--listen", "tcp://127.0.0.1:0", "--loops", "2"});
}

TEST(chat_sample, fifty_clients_on_two_loops_every_line_reaches_every_other_client_once) {
  test::sample_process server = start_chat();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  constexpr int clients = 50;
  constexpr int lines = 20;
  // Everyone is in (welcomed) before anyone speaks, so every line has 49 listeners.
  std::vector<chat_client> people;
  std::vector<std::string> names;
  for (int i = 0; i < clients; ++i) {
    people.emplace_back(server.bound);
    ASSERT_TRUE(people.back().connected());
    names.push_back(people.back().welcome());
    ASSERT_FALSE(names.back().starts_with("<")) << names.back();
  }
  std::vector<std::future<std::string>> results;
  for (int i = 0; i < clients; ++i) {
    results.push_back(std::async(std::launch::async, [&, i]() -> std::string {
      chat_client& me = people[static_cast<std::size_t>(i)];
      // The lines in uneven pieces, cut mid-line, so the server reassembles them.
      std::string all;
      for (int j = 0; j < lines; ++j) {
        all += "line " + std::to_string(j) + " from client " + std::to_string(i) + "\n";
      }
      for (std::size_t at = 0, piece = 7; at < all.size(); at += piece, piece += 13) {
        if (!me.send(std::string_view(all).substr(at, piece))) {
          return "send failed";
        }
      }
      std::map<std::string, int> next;  // per sender: the next line number expected
      for (int k = 0; k < (clients - 1) * lines; ++k) {
        const std::string l = me.chat_line();
        const std::size_t colon = l.find(": line ");
        if (colon == std::string::npos) {
          return "unexpected line: " + l;
        }
        const std::string sender = l.substr(0, colon);
        if (sender == names[static_cast<std::size_t>(i)]) {
          return "got its own line back: " + l;
        }
        int& expected = next[sender];
        if (l.substr(colon + 2, l.find(" from") - colon - 2) !=
            "line " + std::to_string(expected)) {
          return "out of order or repeated from " + sender + ": " + l;
        }
        ++expected;
      }
      if (next.size() != static_cast<std::size_t>(clients - 1)) {
        return "heard " + std::to_string(next.size()) + " senders";
      }
      for (const auto& [sender, n] : next) {
        if (n != lines) {
          return sender + " sent " + std::to_string(n) + " lines";
        }
      }
      return "";
    }));
  }
  for (int i = 0; i < clients; ++i) {
    EXPECT_EQ(results[static_cast<std::size_t>(i)].get(), "") << "client " << i;
  }
  people.clear();
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(chat_sample, nick_and_private_messages_go_across_loops) {
  test::sample_process server = start_chat();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  // Round-robin: alice and carol on loop 0, bob on loop 1.
  chat_client alice(server.bound);
  ASSERT_NE(alice.welcome()[0], '<');
  chat_client bob(server.bound);
  ASSERT_NE(bob.welcome()[0], '<');
  chat_client carol(server.bound);
  ASSERT_NE(carol.welcome()[0], '<');

  ASSERT_TRUE(alice.send("/nick alice\n"));
  EXPECT_EQ(alice.line(), "* you are now alice");
  ASSERT_TRUE(bob.send("/nick bob\n"));
  EXPECT_EQ(bob.line(), "* you are now bob");
  ASSERT_TRUE(carol.send("/nick bob\n"));
  EXPECT_EQ(carol.line(), "* name taken: bob");
  ASSERT_TRUE(carol.send("/nick carol\n"));
  EXPECT_EQ(carol.line(), "* you are now carol");

  // The private line, then a public one sent right behind it: bob gets both, in that order.
  ASSERT_TRUE(alice.send("/msg bob hi there\nafter\n"));
  EXPECT_EQ(bob.line(), "alice (private): hi there");
  EXPECT_EQ(bob.line(), "alice: after");
  EXPECT_EQ(carol.line(), "alice: after");

  ASSERT_TRUE(alice.send("/msg nobody hello\n"));
  EXPECT_EQ(alice.line(), "* no such user: nobody");
  ASSERT_TRUE(alice.send("/nick guest7\n"));
  EXPECT_EQ(alice.line(), "* names are 1-32 letters, digits, - or _, and not guest...");
  ASSERT_TRUE(alice.send("/nick two words\n"));
  EXPECT_EQ(alice.line(), "* names are 1-32 letters, digits, - or _, and not guest...");
  ASSERT_TRUE(alice.send("/shout x\n/msg bob\n"));
  EXPECT_EQ(alice.line(), "* unknown command (try /nick name or /msg name text)");
  EXPECT_EQ(alice.line(), "* usage: /msg name text");

  // bob leaves: his name is free again (released at close, on the loop that owns it).
  bob.close();
  bool renamed = false;
  for (int attempt = 0; attempt < 200 && !renamed; ++attempt) {
    ASSERT_TRUE(carol.send("/nick bob\n"));
    const std::string l = carol.line();
    renamed = l == "* you are now bob";
    if (!renamed) {
      ASSERT_EQ(l, "* name taken: bob");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  EXPECT_TRUE(renamed);
  ASSERT_TRUE(alice.send("/msg bob back?\n"));
  EXPECT_EQ(carol.line(), "alice (private): back?");
  ASSERT_TRUE(carol.send("/msg carol x\n"));
  EXPECT_EQ(carol.line(), "* no such user: carol") << "the old name was released";
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(chat_sample, a_line_over_4096_bytes_is_refused_and_the_connection_closed) {
  test::sample_process server = start_chat();
  ASSERT_EQ(server.addresses.size(), 1U) << server.first_line;
  chat_client loud(server.bound);
  ASSERT_NE(loud.welcome()[0], '<');
  chat_client quiet(server.bound);
  ASSERT_NE(quiet.welcome()[0], '<');
  chat_client listener(server.bound);
  ASSERT_NE(listener.welcome()[0], '<');
  ASSERT_TRUE(loud.send(std::string(5000, 'x')));
  EXPECT_EQ(loud.line(), "* line too long (at most 4096 bytes)");
  EXPECT_EQ(loud.line(), "<closed>");
  // The others are still served.
  ASSERT_TRUE(quiet.send("still here\n"));
  const std::string heard = listener.chat_line();
  EXPECT_TRUE(heard.ends_with(": still here")) << heard;
  const int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace actnet
