// chat_server: line-based chat. Each line a client sends reaches every other client, on every
// loop, as "name: text", in the order it was sent (engine::broadcast). "/nick name" renames;
// "/msg name text" goes straight to that one client, whichever loop holds it.
//
// Who is called what lives in a sharded service (engine::spawn_sharded): one name_shard actor
// per loop, the name N owned by the shard for_key(N) picks, and touched by that actor only.
// Looking a name up or claiming one is an ask to its shard; while it is out, this client's later
// lines wait in its inbound buffer, so everything it sends keeps its order.
#include <actnet/actors/actor.hpp>
#include <actnet/actors/connection.hpp>
#include <actnet/actors/engine.hpp>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "sample_main.hpp"

namespace {

constexpr std::size_t max_line = 4096;  // longer: told, then closed
constexpr std::size_t max_name = 32;
constexpr int lines_per_slice = 256;  // the most lines one handler takes (see on_data)

/// The names one shard owns, and their clients. An actor: its loop runs it, one message at a
/// time, so it needs no lock.
class name_shard final : public actnet::actor {
 public:
  /// Whether `name` was free (it is `me`'s now).
  bool claim(const std::string& name, actnet::conn_ref me) {
    return names_.try_emplace(name, me).second;
  }
  /// Who holds `name` (an invalid ref for nobody).
  [[nodiscard]] actnet::conn_ref find(const std::string& name) const {
    const auto it = names_.find(name);
    return it == names_.end() ? actnet::conn_ref{} : it->second;
  }
  /// `name` is free again, unless someone other than `me` holds it by now.
  void release(const std::string& name, actnet::conn_ref me) {
    if (const auto it = names_.find(name); it != names_.end() && it->second == me) {
      names_.erase(it);
    }
  }

 private:
  std::unordered_map<std::string, actnet::conn_ref> names_;
};

/// What every client shares: the sharded names and the guest counter.
struct directory {
  actnet::sharded_ref<name_shard> shards;
  std::atomic<std::uint64_t> guests{0};

  [[nodiscard]] const actnet::actor_ref<name_shard>& owner_of(std::string_view name) const {
    return shards.for_key(name);
  }
};

/// Letters, digits, '-' and '_', 1 to 32 of them; "guest..." is kept for the names given out.
bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > max_name || name.starts_with("guest")) {
    return false;
  }
  for (const char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

class chat_client final : public actnet::connection {
 public:
  explicit chat_client(directory* names) : names_(names) {}

  void on_open() override {
    name_ = "guest" + std::to_string(names_->guests.fetch_add(1) + 1);
    // Guest names are unique and cannot be claimed with /nick: registering needs no answer.
    (void)names_->owner_of(name_).tell(
        [name = name_, me = ref()](name_shard& s) { (void)s.claim(name, me); });
    notice("welcome, you are " + name_);
  }

  actnet::samples::slicer slices;  // the lines past a slice: a message to this connection

  void on_data() override {
    for (int lines = 0; !waiting_ && is_open(); ++lines) {
      // A read of many short lines (each a broadcast) is handled a slice at a time: the rest
      // after the loop's other work, through a message to this connection (at once if its
      // mailbox is full).
      if (lines == lines_per_slice && slices.later(*this)) {
        return;
      }
      std::string line;
      if (!next_line(line)) {
        return;
      }
      handle(line);
    }
  }

  void on_close(std::error_code /*reason*/) override {
    release(name_);
    if (!claiming_.empty()) {
      // Its answer will not reach us now; this release reaches the shard after the claim.
      release(claiming_);
    }
  }

 private:
  // Takes one line (without "\n" or "\r\n") off the inbound bytes; false when none is complete.
  bool next_line(std::string& line) {
    const actnet::byte_views in = peek_all();
    std::size_t length = 0;
    for (const auto part : {in.first, in.second}) {
      for (const std::byte b : part) {
        if (b == std::byte{'\n'}) {
          line.resize(length);
          (void)read(std::as_writable_bytes(std::span(line)));
          (void)discard(1);
          if (!line.empty() && line.back() == '\r') {
            line.pop_back();
          }
          return true;
        }
        if (++length > max_line) {
          notice("line too long (at most " + std::to_string(max_line) + " bytes)");
          close();
          return false;
        }
      }
    }
    return false;
  }

  void handle(std::string_view line) {
    if (line.empty()) {
      return;
    }
    if (line.starts_with("/nick ")) {
      rename(line.substr(6));
    } else if (line.starts_with("/msg ")) {
      const std::string_view rest = line.substr(5);
      const std::size_t space = rest.find(' ');
      if (space == std::string_view::npos) {
        notice("usage: /msg name text");
      } else {
        tell_one(std::string(rest.substr(0, space)), rest.substr(space + 1));
      }
    } else if (line.starts_with('/')) {
      notice("unknown command (try /nick name or /msg name text)");
    } else {
      // Every other client on every loop, this sender's lines in the order it sent them.
      auto text = std::make_shared<const std::string>(name_ + ": " + std::string(line) + "\n");
      owner().broadcast<chat_client>([text, from = ref()](chat_client& c) {
        if (c.ref() != from) {
          (void)c.write(*text);
        }
      });
    }
  }

  void rename(std::string_view wanted) {
    if (!valid_name(wanted)) {
      notice("names are 1-32 letters, digits, - or _, and not guest...");
      return;
    }
    if (wanted == name_) {
      notice("you are " + name_ + " already");
      return;
    }
    // Claim the name on the loop that owns it; later lines wait for the answer.
    waiting_ = true;
    claiming_ = wanted;
    const std::error_code refused = ask(
        names_->owner_of(wanted),
        [name = std::string(wanted), me = ref()](name_shard& s) { return s.claim(name, me); },
        [this, name = std::string(wanted)](actnet::result<bool> claimed) {
          if (claimed && *claimed) {
            release(std::exchange(name_, name));
            notice("you are now " + name_);
          } else {
            notice("name taken: " + name);
          }
          claiming_.clear();
          resume();
        });
    if (refused) {  // the shard's mailbox is full: nothing asked
      notice("busy, try again: " + refused.message());
      claiming_.clear();
      resume();
    }
  }

  void tell_one(std::string to, std::string_view text) {
    waiting_ = true;
    const std::error_code refused = ask(
        names_->owner_of(to), [to](name_shard& s) { return s.find(to); },
        [this, to, line = name_ + " (private): " + std::string(text) + "\n"](
            actnet::result<actnet::conn_ref> found) {
          if (!found || !found->valid()) {
            notice("no such user: " + to);
          } else {
            // Straight to its connection actor, on whichever loop. Sent before any later line
            // of ours (both leave this loop in order); the answer only reports a client that
            // left meanwhile.
            ask<chat_client>(
                *found, [line](chat_client& c) { (void)c.write(line); },
                [this, to](std::error_code gone) {
                  if (gone) {
                    notice("no such user: " + to);
                  }
                });
          }
          resume();
        });
    if (refused) {
      notice("busy, try again: " + refused.message());
      resume();
    }
  }

  // The name goes back to its shard, unless someone else holds it by then.
  void release(const std::string& name) {
    (void)names_->owner_of(name).tell([name, me = ref()](name_shard& s) { s.release(name, me); });
  }

  void resume() {
    waiting_ = false;
    wake();  // on_data again for the lines that waited
  }

  void notice(const std::string& text) { (void)write("* " + text + "\n"); }

  directory* names_;
  std::string name_;
  std::string claiming_;  // a /nick whose answer has not come yet
  bool waiting_ = false;  // an ask is out: later lines wait for its answer
};

constexpr std::string_view usage =
    R"(usage: chat_server [--listen URL]... [--loops N] [--backend B] [--lb STRATEGY] [--cpus LIST]
  --listen URL   tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT or unix://PATH (repeatable;
                 default tcp://127.0.0.1:7000; port 0 picks a free port)
  --loops N      loop threads (0 = one per hardware thread; default 0)
  --backend B    epoll (default), io_uring or automatic
  --lb STRATEGY  round_robin (default), source_addr_hash or least_connections
  --cpus LIST    pin loop i to the i-th CPU of LIST (e.g. 0,1; round and round)
  --busy-poll N  microseconds a loop polls before it sleeps (0, the default: off)
Lines end with "\n" (at most 4096 bytes; a longer one closes the connection). Each line goes
to every other client as "name: text". Commands: /nick name, /msg name text. Lines from the
server that start with "* " are notices. Prints "listening on URL" per listener; SIGINT or
SIGTERM stops it.
)";

}  // namespace

int main(int argc, char** argv) {
  const auto flags = actnet::samples::parse_flags(argc, argv, usage);
  directory names;  // outlives the engine, whose connections point at it
  return actnet::samples::serve<chat_client>(
      flags, [&names](actnet::engine& e) { names.shards = e.spawn_sharded<name_shard>(); }, &names);
}
