// redis_server: a Redis-protocol (RESP2) string store, shared-nothing. The keyspace is a sharded
// service (engine::spawn_sharded): one shard actor per loop, owning the keys for_key gives it.
// A command for a key of this loop's shard runs on it at once (sharded_ref::local); one for
// another shard is asked of it (connection::ask), and its answer comes back to the connection,
// which sends replies in request order whatever order the answers arrive in. Multi-key
// commands fan out to the shards they touch and gather the parts.
#include <actnet/actors/actor.hpp>
#include <actnet/actors/connection.hpp>
#include <actnet/actors/engine.hpp>
#include <actnet/actors/task.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "resp.hpp"
#include "sample_main.hpp"
#include "table.hpp"

namespace {

namespace resp = actnet::samples::resp;
using actnet::samples::redis::table;
using namespace std::chrono_literals;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// -- the keyspace ------------------------------------------------------------------------------

struct value {
  std::string data;
  std::int64_t expires_at = 0;  // steady-clock ms; 0: never
};

/// One loop's part of the keyspace: an actor, so only its loop touches it.
class shard final : public actnet::actor {
 public:
  table<value> keys;

  /// Active expiry: a few buckets every 100 ms, from start to stop.
  void on_start() override { expire_later(); }

  /// The live value of `key`, or null (an expired one is removed on the way).
  value* find(std::string_view key, std::int64_t now) {
    value* v = keys.find(key);
    if (v != nullptr && v->expires_at != 0 && v->expires_at <= now) {
      (void)keys.erase(key);
      return nullptr;
    }
    return v;
  }

  /// Sets `key`, over its value if it has one (reusing that value's storage).
  void set(std::string_view key, std::string_view data, std::int64_t expires_at) {
    if (value* v = keys.find(key)) {
      v->data.assign(data);
      v->expires_at = expires_at;
    } else {
      keys.insert_new(key, value{std::string(data), expires_at});
    }
  }

  /// Every 100 ms: samples 64 buckets and drops the expired keys there (Redis's active
  /// expiry), so keys nobody reads again do not stay forever.
  void expire_some(std::int64_t now) {
    for (std::size_t n = 0; n < 64; ++n) {
      auto& map = keys.segment(expiry_segment);
      if (expiry_bucket >= map.bucket_count()) {
        expiry_segment = (expiry_segment + 1) % table<value>::segments;
        expiry_bucket = 0;
        continue;
      }
      for (auto it = map.begin(expiry_bucket); it != map.end(expiry_bucket);) {
        const std::string& key = it->first;
        ++it;  // the erase below invalidates only the erased element
        if (const auto found = map.find(key);
            found->second.expires_at != 0 && found->second.expires_at <= now) {
          map.erase(found);
          keys.erased();
        }
      }
      ++expiry_bucket;
    }
  }

 private:
  void expire_later() {
    (void)after(100ms, [](actnet::actor& self) {
      auto& s = static_cast<shard&>(self);
      s.expire_some(now_ms());
      s.expire_later();
    });
  }
  std::size_t expiry_segment = 0;  // active expiry: the next bucket to sample
  std::size_t expiry_bucket = 0;
};

struct keyspace {
  actnet::sharded_ref<shard> shards;  // shard i on loop i
  /// The shard of `key`, as shards.for_key picks it (actnet::stable_hash: FNV-1a, cheaper than
  /// the tables' hash and independent of it, so the keys of one shard still spread over its
  /// table's buckets); no hashing with one shard.
  [[nodiscard]] std::size_t owner_of(std::string_view key) const {
    if (shards.size() == 1) {
      return 0;
    }
    return static_cast<std::size_t>(actnet::stable_hash(key) % shards.size());
  }
};

// -- helpers -----------------------------------------------------------------------------------

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return u;
}

std::optional<std::int64_t> to_int(std::string_view s) {
  std::int64_t n = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return n;
}

/// Redis's glob (* ? [abc] [^a-z] and \ escapes), matched without recursion: on a mismatch the
/// last * takes one more character and matching goes on after it, so a match costs at most
/// (pattern length) steps per character of the string, never the exponential backtracking of a
/// recursive matcher (Redis's CVE-2022-36021). Resumable: run(steps) does at most `steps`
/// steps and says `unfinished` when they ran out; the next run goes on from there.
class glob_matcher {
 public:
  enum class verdict : std::uint8_t { match, no_match, unfinished };

  glob_matcher(std::string_view pattern, std::string_view text) : p_(pattern), s_(text) {}
  /// The text moved (the matcher keeps its place in it): for a copy of a key.
  void rebind(std::string_view text) { s_ = text; }

  verdict run(std::size_t& steps) {
    while (si_ < s_.size()) {
      if (steps == 0) {
        return verdict::unfinished;
      }
      --steps;
      if (pi_ < p_.size() && p_[pi_] == '*') {
        star_p_ = pi_++;
        star_s_ = si_;
        continue;
      }
      if (pi_ < p_.size()) {
        if (const std::size_t length = token_matches(s_[si_]); length > 0) {
          pi_ += length;
          ++si_;
          continue;
        }
      }
      if (star_p_ == npos) {
        return verdict::no_match;
      }
      pi_ = star_p_ + 1;  // the last * takes one more character
      si_ = ++star_s_;
    }
    while (pi_ < p_.size() && p_[pi_] == '*') {
      ++pi_;
    }
    return pi_ == p_.size() ? verdict::match : verdict::no_match;
  }

 private:
  static constexpr std::size_t npos = std::string_view::npos;

  // The length of the pattern's token at pi_ (? [class] \x or a character) when it matches
  // `c`; 0 when it does not.
  [[nodiscard]] std::size_t token_matches(char c) const {
    const std::string_view p = p_.substr(pi_);
    switch (p[0]) {
      case '?':
        return 1;
      case '[': {
        std::size_t i = 1;
        const bool negate = i < p.size() && p[i] == '^';
        i += negate ? 1 : 0;
        bool match = false;
        while (i < p.size() && p[i] != ']') {
          if (p[i] == '\\' && i + 1 < p.size()) {
            match |= p[i + 1] == c;
            i += 2;
          } else if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
            const char lo = std::min(p[i], p[i + 2]);
            const char hi = std::max(p[i], p[i + 2]);
            match |= c >= lo && c <= hi;
            i += 3;
          } else {
            match |= p[i] == c;
            ++i;
          }
        }
        return match != negate ? std::min(i + 1, p.size()) : 0;
      }
      case '\\':
        if (p.size() > 1) {
          return p[1] == c ? 2 : 0;
        }
        return c == '\\' ? 1 : 0;
      default:
        return p[0] == c ? 1 : 0;
    }
  }

  std::string_view p_;
  std::string_view s_;
  std::size_t pi_ = 0;
  std::size_t si_ = 0;
  std::size_t star_p_ = npos;  // the last * seen, and where in the text it began to take
  std::size_t star_s_ = 0;
};

/// Whether `text` matches `pattern` (no step limit: for tests and small inputs).
[[maybe_unused]] bool glob(std::string_view pattern, std::string_view text) {
  std::size_t steps = std::numeric_limits<std::size_t>::max();
  return glob_matcher(pattern, text).run(steps) == glob_matcher::verdict::match;
}

// -- KEYS, in slices --

/// The work one slice of a KEYS scan may do on a shard's loop, about a millisecond: matcher
/// steps (a character of a key against the pattern), a step a bucket visited and
/// keys_step_per_key a key (its visit, and its copy when it matches).
inline constexpr std::size_t keys_slice_steps = std::size_t{1} << 18;
inline constexpr std::size_t keys_step_per_key = 16;

/// Where a shard's KEYS scan is, between slices.
struct keys_cursor {
  actnet::samples::redis::table_cursor where;
  std::string held_key;  // a key whose match ran out of steps, copied, and its matcher
  std::optional<glob_matcher> held;
  std::size_t drop = 0;  // keys found in earlier slices that are void (their segment grew)
  bool done = false;
};

/// One slice of a shard's KEYS scan: the live keys matching `pattern` from the cursor on, until
/// the steps run out or the table ends.
struct keys_slice {
  std::vector<std::string> found;
  keys_cursor cursor;
};

keys_slice scan_keys(shard& s, const std::string& pattern, keys_cursor at, std::int64_t now) {
  using actnet::samples::redis::visit;
  keys_slice r;
  // (KEYS, not atomic as Redis's, may miss or repeat a key written during it.)
  at.drop = s.keys.resume(at.where);
  if (at.drop > 0) {
    at.held.reset();  // its segment is scanned again
    at.held_key.clear();
  }
  const auto leave = [&](bool done) {
    r.cursor = std::move(at);
    r.cursor.done = done;
    if (r.cursor.held) {
      r.cursor.held->rebind(r.cursor.held_key);
    }
    return std::move(r);
  };
  std::size_t steps = keys_slice_steps;
  if (at.held) {  // a long key's match, where the last slice left it
    at.held->rebind(at.held_key);
    const glob_matcher::verdict verdict = at.held->run(steps);
    if (verdict == glob_matcher::verdict::unfinished) {
      return leave(false);
    }
    if (verdict == glob_matcher::verdict::match) {
      r.found.push_back(at.held_key);
      ++at.where.found_here;
    }
    at.where.done_in_bucket.push_back(std::move(at.held_key));  // then the bucket's others
    at.held.reset();
    at.held_key.clear();
  }
  const bool done = s.keys.scan(at.where, steps, [&](const std::string& key, const value& v) {
    if (v.expires_at != 0 && v.expires_at <= now) {
      return visit::skip;
    }
    steps -= std::min(steps, keys_step_per_key);
    glob_matcher m(pattern, key);
    switch (m.run(steps)) {
      case glob_matcher::verdict::match:
        r.found.push_back(key);
        return visit::keep;
      case glob_matcher::verdict::no_match:
        return visit::skip;
      case glob_matcher::verdict::unfinished:
        break;
    }
    // The rest of this key's match goes on in the next slice, on a copy; then the rest of its
    // bucket.
    at.held_key = key;
    at.held = m;
    return visit::stop;
  });
  return leave(done);
}

/// The reply of the commands that add up a count from each shard (DBSIZE, DEL, EXISTS).
std::string sum_reply(const std::vector<std::int64_t>& parts) {
  std::int64_t total = 0;
  for (const std::int64_t p : parts) {
    total += p;
  }
  std::string r;
  resp::integer(r, total);
  return r;
}

/// The reply to a command whose key lives on a shard whose mailbox is full
/// (engine_options::mailbox_cap): the command did not run there.
constexpr std::string_view busy_reply = "-ERR busy: a shard's mailbox is full, try again\r\n";
constexpr std::string_view internal_error_reply = "-ERR internal error\r\n";

std::string wrong_args(std::string_view command) {
  std::string e = "ERR wrong number of arguments for '";
  for (const char c : command) {
    e += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return e + "' command";
}

// -- the connection ----------------------------------------------------------------------------

class redis_connection final : public actnet::connection {
 public:
  explicit redis_connection(keyspace* ks) : ks_(ks) {}

  /// A client that half-closes after its commands (`redis-cli < file` may) still gets every
  /// reply, those from other shards included: the connection closes once they are out.
  void on_peer_shutdown() override {
    quitting_ = true;
    flush_ready();
  }

  void on_data() override {
    if (quitting_) {
      // After QUIT or a protocol error, while replies from other shards are still to come:
      // what the client sends is dropped, and not read (it would fill the inbound buffer).
      (void)discard(inbound_buffered());
      pause_reading();
      return;
    }
    if (holding_ || inbound_buffered() < needed_) {
      return;
    }
    const std::string_view bytes = actnet::samples::contiguous(peek_all(), joined_);
    std::size_t used = 0;
    needed_ = 0;
    while (!quitting_ && !holding_) {
      resp::parse_result r = resp::parse(bytes.substr(used), std::move(spare_args_));
      if (r.status == resp::parse_status::incomplete) {
        needed_ = r.needed;
        spare_args_ = std::move(r.args);
        break;
      }
      if (r.status == resp::parse_status::failed) {
        std::string reply;
        resp::error(reply, "ERR " + r.error);
        answer_now(std::move(reply));
        quitting_ = true;  // a protocol error ends the connection, as in Redis
        break;
      }
      used += r.size;
      if (!r.args.empty()) {
        execute(r.args);
      }
      spare_args_ = std::move(r.args);
    }
    (void)discard(quitting_ ? inbound_buffered() : used);
    if (quitting_) {
      pause_reading();
    }
    flush_ready();
  }

 private:
  // -- replies in request order --

  /// A reply known now: straight to the batch when nothing waits before it.
  void answer_now(std::string reply) {
    if (waiting_.empty()) {
      out_ += reply;
    } else {
      waiting_.push_back({std::move(reply), true});
    }
  }
  /// A place for a reply that comes later; returns its sequence number.
  std::uint64_t answer_later() {
    waiting_.push_back({});
    return first_waiting_ + waiting_.size() - 1;
  }
  void fill(std::uint64_t seq, std::string reply) {
    auto& slot = waiting_[seq - first_waiting_];
    slot.reply = std::move(reply);
    slot.ready = true;
    flush_ready();
  }
  void flush_ready() {
    while (!waiting_.empty() && waiting_.front().ready) {
      out_ += waiting_.front().reply;
      waiting_.pop_front();
      ++first_waiting_;
    }
    if (!out_.empty()) {
      (void)write(out_);
      out_.clear();
    }
    if (quitting_ && waiting_.empty()) {
      close();  // after the replies
    }
  }

  // -- running work on shards --

  /// Runs `fn(out, shard&, key, arg, now)` for `key` on the loop that owns it, `fn` appending
  /// its reply to `out`. On this loop it runs at once, on the views given, writing straight
  /// into the batch when no earlier reply is waiting; for another loop, key and arg are copied
  /// into an ask and the reply takes its place in order when it comes.
  template <class Fn>
  void on_key(std::string_view key, std::string_view arg, Fn fn) {
    const std::size_t index = ks_->owner_of(key);
    if (shard* here = local(index); here != nullptr) {
      if (waiting_.empty()) {
        fn(out_, *here, key, arg, now_ms());
      } else {
        std::string reply;
        fn(reply, *here, key, arg, now_ms());
        answer_now(std::move(reply));
      }
      return;
    }
    const std::uint64_t seq = answer_later();
    const std::error_code refused = ask(
        ks_->shards.on(index),
        [k = std::string(key), a = std::string(arg), fn](shard& s) {
          std::string reply;
          fn(reply, s, k, a, now_ms());
          return reply;
        },
        [this, seq](actnet::result<std::string> r) {
          fill(seq, r ? std::move(*r) : std::string(internal_error_reply));
        });
    if (refused) {
      fill(seq, std::string(busy_reply));  // the owner's mailbox is full: `then` never runs
    }
  }

  /// Runs `part(shard_index, shard&, now)` on each shard in `indices` and replies with
  /// `combine(parts)` once every part is in (parts in the order of `indices`).
  template <class Part, class PartFn, class Combine>
  void fan_out(const std::vector<std::size_t>& indices, PartFn part, Combine combine) {
    struct gather {
      std::vector<Part> parts;
      std::size_t missing = 0;
      std::string_view failure;  // a part is missing: the command fails as a whole, with this
    };
    auto g = std::make_shared<gather>();
    g->parts.resize(indices.size());
    g->missing = indices.size();
    std::optional<std::uint64_t> seq;
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const std::size_t index = indices[k];
      if (shard* here = local(index); here != nullptr) {
        g->parts[k] = part(index, *here, now_ms());
        --g->missing;
        continue;
      }
      if (!seq) {
        seq = answer_later();
      }
      const auto part_done = [this, g, s = *seq, combine] {
        if (--g->missing == 0) {
          fill(s, g->failure.empty() ? combine(g->parts) : std::string(g->failure));
        }
      };
      const std::error_code refused = ask(
          ks_->shards.on(index), [index, part](shard& s) { return part(index, s, now_ms()); },
          [g, k, part_done](actnet::result<Part> r) {
            if (r) {
              g->parts[k] = std::move(*r);
            } else {
              g->failure = internal_error_reply;
            }
            part_done();
          });
      if (refused) {
        g->failure = busy_reply;  // the owner's mailbox is full: that part never comes
        part_done();
      }
    }
    if (!seq) {
      answer_now(combine(g->parts));
    }
  }

  [[nodiscard]] std::vector<std::size_t> all_shards() const {
    std::vector<std::size_t> v(ks_->shards.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      v[i] = i;
    }
    return v;
  }

  /// Keys grouped by shard: the shards, and for each the keys' positions in `keys`.
  void group(const std::vector<std::string>& keys, std::vector<std::size_t>& indices,
             std::vector<std::vector<std::size_t>>& positions) const {
    std::map<std::size_t, std::vector<std::size_t>> by_shard;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      by_shard[ks_->owner_of(keys[i])].push_back(i);
    }
    for (auto& [index, at] : by_shard) {
      indices.push_back(index);
      positions.push_back(std::move(at));
    }
  }

  // -- commands --

  void execute(const std::vector<std::string_view>& args) {
    // The name upper-cased on the stack: no command is longer than 15 characters.
    char name[16] = {};
    const std::size_t length = std::min(args[0].size(), sizeof name - 1);
    for (std::size_t i = 0; i < length; ++i) {
      const char c = args[0][i];
      name[i] = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
    }
    const std::string_view cmd =
        args[0].size() < sizeof name ? std::string_view(name, length) : std::string_view();
    const std::size_t n = args.size();
    std::string reply;
    const auto arity = [&](bool ok) {
      if (!ok) {
        resp::error(reply, wrong_args(args[0]));
        answer_now(std::move(reply));
      }
      return ok;
    };
    if (cmd == "GET") {
      if (arity(n == 2)) {
        get(args[1]);
      }
    } else if (cmd == "SET") {
      if (arity(n >= 3)) {
        set(args);
      }
    } else if (cmd == "PING") {
      if (arity(n <= 2)) {
        n == 1 ? resp::simple(reply, "PONG") : resp::bulk(reply, args[1]);
        answer_now(std::move(reply));
      }
    } else if (cmd == "ECHO") {
      if (arity(n == 2)) {
        resp::bulk(reply, args[1]);
        answer_now(std::move(reply));
      }
    } else if (cmd == "INCR" || cmd == "DECR") {
      if (arity(n == 2)) {
        incr_by(args[1], cmd == "INCR" ? 1 : -1);
      }
    } else if (cmd == "INCRBY" || cmd == "DECRBY") {
      if (arity(n == 3)) {
        const std::optional<std::int64_t> by = to_int(args[2]);
        if (!by || (cmd == "DECRBY" && *by == std::numeric_limits<std::int64_t>::min())) {
          resp::error(reply, "ERR value is not an integer or out of range");
          answer_now(std::move(reply));
        } else {
          incr_by(args[1], cmd == "INCRBY" ? *by : -*by);
        }
      }
    } else if (cmd == "DEL" || cmd == "EXISTS") {
      if (arity(n >= 2)) {
        count_keys(args, cmd == "DEL");
      }
    } else if (cmd == "MSET") {
      if (arity(n >= 3 && n % 2 == 1)) {
        mset(args);
      }
    } else if (cmd == "MGET") {
      if (arity(n >= 2)) {
        mget(args);
      }
    } else if (cmd == "EXPIRE") {
      if (arity(n == 3)) {
        expire(args);
      }
    } else if (cmd == "TTL") {
      if (arity(n == 2)) {
        ttl(args[1]);
      }
    } else if (cmd == "DBSIZE") {
      if (arity(n == 1)) {
        fan_out<std::int64_t>(
            all_shards(),
            [](std::size_t, shard& s, std::int64_t) { return std::int64_t(s.keys.size()); },
            sum_reply);
      }
    } else if (cmd == "FLUSHALL" || cmd == "FLUSHDB") {
      if (arity(n <= 2)) {
        fan_out<std::int64_t>(
            all_shards(),
            [e = &owner()](std::size_t, shard& s, std::int64_t) {
              // The old table is freed on a worker thread: a large one would hold the loop.
              auto old = std::make_shared<table<value>>();
              s.keys.clear_into(*old);
              if (e->workers().submit([old]() mutable { old.reset(); })) {
                old.reset();  // no worker to take it: freed here
              }
              return std::int64_t{0};
            },
            [](const std::vector<std::int64_t>&) { return std::string("+OK\r\n"); });
      }
    } else if (cmd == "KEYS") {
      if (arity(n == 2)) {
        keys(std::string(args[1]));
      }
    } else if (cmd == "COPY") {
      if (arity(n == 3 || n == 4)) {
        if (n == 4 && upper(args[3]) != "REPLACE") {
          resp::error(reply, "ERR syntax error");
          answer_now(std::move(reply));
        } else {
          (void)copy(answer_later(), std::string(args[1]), std::string(args[2]), n == 4);
        }
      }
    } else if (cmd == "QUIT") {
      resp::simple(reply, "OK");
      answer_now(std::move(reply));
      quitting_ = true;
    } else if (cmd == "SELECT") {
      if (arity(n == 2)) {
        args[1] == "0" ? resp::simple(reply, "OK")
                       : resp::error(reply, "ERR DB index is out of range");
        answer_now(std::move(reply));
      }
    } else if (cmd == "COMMAND") {
      resp::array_header(reply, 0);  // enough for redis-cli's probe at start
      answer_now(std::move(reply));
    } else if (cmd == "CONFIG") {
      config(args);
    } else if (cmd == "CLIENT") {
      client(args);
    } else if (cmd == "HELLO") {
      hello(args);
    } else {
      std::string e =
          "ERR unknown command '" + std::string(args[0]) + "', with args beginning with: ";
      for (std::size_t i = 1; i < n && e.size() < 200; ++i) {
        e += "'" + std::string(args[i].substr(0, 40)) + "' ";
      }
      resp::error(reply, e);
      answer_now(std::move(reply));
    }
  }

  void get(std::string_view key) {
    on_key(key, {},
           [](std::string& out, shard& s, std::string_view k, std::string_view, std::int64_t now) {
             if (const value* v = s.find(k, now)) {
               resp::bulk(out, v->data);
             } else {
               resp::null_bulk(out);
             }
           });
  }

  void set(const std::vector<std::string_view>& args) {
    std::int64_t ttl_ms = 0;
    bool nx = false;
    bool xx = false;
    for (std::size_t i = 3; i < args.size(); ++i) {
      const std::string opt = upper(args[i]);
      if ((opt == "EX" || opt == "PX") && i + 1 < args.size() && ttl_ms == 0) {
        const std::optional<std::int64_t> t = to_int(args[++i]);
        const std::int64_t limit = std::numeric_limits<std::int64_t>::max() / 1000 / 4;
        if (!t || *t <= 0 || *t > limit) {
          std::string r;
          resp::error(r, "ERR invalid expire time in 'set' command");
          answer_now(std::move(r));
          return;
        }
        ttl_ms = opt == "EX" ? *t * 1000 : *t;
      } else if (opt == "NX" && !xx) {
        nx = true;
      } else if (opt == "XX" && !nx) {
        xx = true;
      } else {
        std::string r;
        resp::error(r, "ERR syntax error");
        answer_now(std::move(r));
        return;
      }
    }
    on_key(args[1], args[2],
           [ttl_ms, nx, xx](std::string& out, shard& s, std::string_view key, std::string_view data,
                            std::int64_t now) {
             if (nx || xx) {
               const bool exists = s.find(key, now) != nullptr;
               if ((nx && exists) || (xx && !exists)) {
                 resp::null_bulk(out);
                 return;
               }
             }
             const std::int64_t expires = ttl_ms == 0 ? 0 : now + ttl_ms;
             s.set(key, data, expires);
             resp::simple(out, "OK");
           });
  }

  void incr_by(std::string_view key, std::int64_t by) {
    on_key(
        key, {},
        [by](std::string& out, shard& s, std::string_view k, std::string_view, std::int64_t now) {
          value* v = s.find(k, now);
          std::int64_t current = 0;
          if (v != nullptr) {
            const std::optional<std::int64_t> n = to_int(v->data);
            if (!n) {
              resp::error(out, "ERR value is not an integer or out of range");
              return;
            }
            current = *n;
          }
          if ((by > 0 && current > std::numeric_limits<std::int64_t>::max() - by) ||
              (by < 0 && current < std::numeric_limits<std::int64_t>::min() - by)) {
            resp::error(out, "ERR increment or decrement would overflow");
            return;
          }
          current += by;
          if (v != nullptr) {
            v->data = std::to_string(current);  // keeps its expiry, as Redis does
          } else {
            s.keys.insert_new(k, value{std::to_string(current), 0});
          }
          resp::integer(out, current);
        });
  }

  void count_keys(const std::vector<std::string_view>& args, bool remove) {
    std::vector<std::string> keys(args.begin() + 1, args.end());
    std::vector<std::size_t> indices;
    std::vector<std::vector<std::size_t>> positions;
    group(keys, indices, positions);
    auto per_shard = std::make_shared<std::vector<std::vector<std::string>>>();
    for (const auto& at : positions) {
      per_shard->emplace_back();
      for (const std::size_t i : at) {
        per_shard->back().push_back(keys[i]);
      }
    }
    std::map<std::size_t, std::size_t> slot_of;  // shard -> its keys in per_shard
    for (std::size_t k = 0; k < indices.size(); ++k) {
      slot_of[indices[k]] = k;
    }
    fan_out<std::int64_t>(
        indices,
        [per_shard, slot_of, remove](std::size_t index, shard& s, std::int64_t now) {
          std::int64_t n = 0;
          for (const std::string& key : (*per_shard)[slot_of.at(index)]) {
            if (s.find(key, now) != nullptr) {
              ++n;
              if (remove) {
                (void)s.keys.erase(key);
              }
            }
          }
          return n;
        },
        sum_reply);
  }

  void mset(const std::vector<std::string_view>& args) {
    std::vector<std::string> keys;
    for (std::size_t i = 1; i < args.size(); i += 2) {
      keys.emplace_back(args[i]);
    }
    std::vector<std::size_t> indices;
    std::vector<std::vector<std::size_t>> positions;
    group(keys, indices, positions);
    auto pairs =
        std::make_shared<std::map<std::size_t, std::vector<std::pair<std::string, std::string>>>>();
    for (std::size_t k = 0; k < indices.size(); ++k) {
      for (const std::size_t i : positions[k]) {
        (*pairs)[indices[k]].emplace_back(keys[i], std::string(args[2 * i + 2]));
      }
    }
    fan_out<std::int64_t>(
        indices,
        [pairs](std::size_t index, shard& s, std::int64_t) {
          for (const auto& [key, data] : pairs->at(index)) {
            s.keys.assign(key, value{data, 0});  // later pairs win, as in Redis
          }
          return std::int64_t{0};
        },
        [](const std::vector<std::int64_t>&) { return std::string("+OK\r\n"); });
  }

  void mget(const std::vector<std::string_view>& args) {
    auto keys = std::make_shared<std::vector<std::string>>(args.begin() + 1, args.end());
    std::vector<std::size_t> indices;
    std::vector<std::vector<std::size_t>> positions;
    group(*keys, indices, positions);
    auto where = std::make_shared<std::map<std::size_t, std::vector<std::size_t>>>();
    for (std::size_t k = 0; k < indices.size(); ++k) {
      (*where)[indices[k]] = positions[k];
    }
    using found = std::vector<std::pair<std::size_t, std::optional<std::string>>>;
    fan_out<found>(
        indices,
        [keys, where](std::size_t index, shard& s, std::int64_t now) {
          found part;
          for (const std::size_t i : where->at(index)) {
            const value* v = s.find((*keys)[i], now);
            part.emplace_back(i, v != nullptr ? std::optional<std::string>(v->data) : std::nullopt);
          }
          return part;
        },
        [count = keys->size()](const std::vector<found>& parts) {
          std::vector<const std::optional<std::string>*> ordered(count, nullptr);
          for (const found& part : parts) {
            for (const auto& [i, v] : part) {
              ordered[i] = &v;
            }
          }
          std::string r;
          resp::array_header(r, count);
          for (const auto* v : ordered) {
            (v != nullptr && v->has_value()) ? resp::bulk(r, **v) : resp::null_bulk(r);
          }
          return r;
        });
  }

  void expire(const std::vector<std::string_view>& args) {
    const std::optional<std::int64_t> seconds = to_int(args[2]);
    if (!seconds || *seconds > std::numeric_limits<std::int64_t>::max() / 1000 / 4 ||
        *seconds < std::numeric_limits<std::int64_t>::min() / 1000 / 4) {
      std::string r;
      resp::error(r, "ERR value is not an integer or out of range");
      answer_now(std::move(r));
      return;
    }
    on_key(args[1], {},
           [secs = *seconds](std::string& out, shard& s, std::string_view key, std::string_view,
                             std::int64_t now) {
             value* v = s.find(key, now);
             if (v == nullptr) {
               resp::integer(out, 0);
               return;
             }
             if (secs <= 0) {
               (void)s.keys.erase(key);  // an expiry in the past deletes, as in Redis
             } else {
               v->expires_at = now + secs * 1000;
             }
             resp::integer(out, 1);
           });
  }

  void ttl(std::string_view key) {
    on_key(key, {},
           [](std::string& out, shard& s, std::string_view k, std::string_view, std::int64_t now) {
             const value* v = s.find(k, now);
             if (v == nullptr) {
               resp::integer(out, -2);
             } else if (v->expires_at == 0) {
               resp::integer(out, -1);
             } else {
               resp::integer(out, (v->expires_at - now + 500) / 1000);
             }
           });
  }

  /// COPY source destination [REPLACE]: two answers in turn, the source's value from its shard,
  /// then the write on the destination's; a coroutine (actnet::task) says it in that order. Not
  /// atomic across the two shards: a write to either key between the steps may come first
  /// (Redis Cluster refuses keys of two slots instead). The value's expiry goes with it.
  actnet::task copy(std::uint64_t seq, std::string from, std::string to, bool replace) {
    hold();  // the commands after it wait: they must see the copy
    std::string reply;
    // Each awaitable is named before its co_await: g++ 12 mishandles a temporary that owns a
    // string (this lambda's capture) inside a co_await expression (see the README).
    auto read = ask(ks_->shards.on(ks_->owner_of(from)), [from](shard& s) {
      const value* v = s.find(from, now_ms());
      return v != nullptr ? std::optional<value>(*v) : std::nullopt;
    });
    actnet::result<std::optional<value>> found = co_await read;
    if (!found) {
      reply = failure_reply(found.error());
    } else if (!*found) {
      resp::integer(reply, 0);  // no such source
    } else {
      auto write =
          ask(ks_->shards.on(ks_->owner_of(to)), [to, v = std::move(**found), replace](shard& s) {
            if (!replace && s.find(to, now_ms()) != nullptr) {
              return false;
            }
            s.set(to, v.data, v.expires_at);
            return true;
          });
      const actnet::result<bool> copied = co_await write;
      if (!copied) {
        reply = failure_reply(copied.error());
      } else {
        resp::integer(reply, *copied ? 1 : 0);
      }
    }
    fill(seq, std::move(reply));
    unhold();
  }
  /// A command that runs in steps holds the ones after it (they stay in the inbound buffer,
  /// and the socket is not read meanwhile) until it is done.
  void hold() {
    holding_ = true;
    pause_reading();
  }
  void unhold() {
    holding_ = false;
    if (!quitting_) {
      resume_reading();
      wake();  // on_data again, for what waited
    }
  }
  /// The reply to an ask that failed: refused by a full mailbox, or its handler threw.
  static std::string_view failure_reply(std::error_code ec) {
    return ec == make_error_code(actnet::errc::queue_full) ? busy_reply : internal_error_reply;
  }

  /// KEYS: each shard scanned in slices of bounded work (keys_slice_steps), one ask a slice,
  /// so that neither a large keyspace nor a costly pattern holds a loop: its other requests are
  /// served between slices. A table segment that grew between slices is scanned again.
  void keys(std::string pattern) {
    struct gather {
      std::string pattern;
      std::vector<std::vector<std::string>> found;  // by shard
      std::size_t missing = 0;
      std::string_view failure;
    };
    auto g = std::make_shared<gather>();
    g->pattern = std::move(pattern);
    g->found.resize(ks_->shards.size());
    g->missing = ks_->shards.size();
    const std::uint64_t seq = answer_later();
    for (std::size_t index = 0; index < ks_->shards.size(); ++index) {
      scan_next(g, seq, index, keys_cursor{});
    }
  }
  template <class Gather>
  void scan_next(const std::shared_ptr<Gather>& g, std::uint64_t seq, std::size_t index,
                 keys_cursor at) {
    const auto shard_done = [this, g, seq] {
      if (--g->missing > 0) {
        return;
      }
      if (!g->failure.empty()) {
        fill(seq, std::string(g->failure));
        return;
      }
      std::size_t total = 0;
      for (const auto& part : g->found) {
        total += part.size();
      }
      std::string r;
      resp::array_header(r, total);
      for (const auto& part : g->found) {
        for (const std::string& k : part) {
          resp::bulk(r, k);
        }
      }
      fill(seq, std::move(r));
    };
    const std::error_code refused = ask(
        ks_->shards.on(index),
        [g, at = std::move(at)](shard& s) mutable {
          return scan_keys(s, g->pattern, std::move(at), now_ms());
        },
        [this, g, seq, index, shard_done](actnet::result<keys_slice> r) {
          if (!r) {
            g->failure = internal_error_reply;
            shard_done();
            return;
          }
          std::vector<std::string>& found = g->found[index];
          found.resize(found.size() - r->cursor.drop);  // a segment scanned again
          std::move(r->found.begin(), r->found.end(), std::back_inserter(found));
          if (r->cursor.done) {
            shard_done();
          } else {
            scan_next(g, seq, index, std::move(r->cursor));
          }
        });
    if (refused) {
      g->failure = busy_reply;  // the owner's mailbox is full: that shard's part never comes
      shard_done();
    }
  }

  void client(const std::vector<std::string_view>& args) {
    std::string r;
    const std::string sub = args.size() > 1 ? upper(args[1]) : "";
    if (sub == "SETNAME" || sub == "SETINFO" || sub == "NO-EVICT" || sub == "NO-TOUCH") {
      resp::simple(r, "OK");
    } else if (sub == "GETNAME") {
      resp::null_bulk(r);
    } else if (sub == "ID") {
      resp::integer(r, static_cast<std::int64_t>(fd()));
    } else {
      resp::error(r, "ERR unknown subcommand or wrong number of arguments for 'client' command");
    }
    answer_now(std::move(r));
  }

  /// CONFIG GET for what redis-benchmark asks (persistence: none); other parameters are absent.
  void config(const std::vector<std::string_view>& args) {
    std::string r;
    if (args.size() < 3 || upper(args[1]) != "GET") {
      resp::error(r, "ERR CONFIG supports GET only here");
      answer_now(std::move(r));
      return;
    }
    std::vector<std::pair<std::string_view, std::string_view>> found;
    for (std::size_t i = 2; i < args.size(); ++i) {
      if (glob(args[i], "save")) {
        found.emplace_back("save", "");
      }
      if (glob(args[i], "appendonly")) {
        found.emplace_back("appendonly", "no");
      }
    }
    resp::array_header(r, found.size() * 2);
    for (const auto& [name, setting] : found) {
      resp::bulk(r, name);
      resp::bulk(r, setting);
    }
    answer_now(std::move(r));
  }

  void hello(const std::vector<std::string_view>& args) {
    std::string r;
    if (args.size() > 1 && args[1] != "2") {
      resp::error(r, "NOPROTO sorry, this protocol version is not supported");
    } else {
      resp::array_header(r, 14);
      resp::bulk(r, "server");
      resp::bulk(r, "redis");
      resp::bulk(r, "version");
      resp::bulk(r, "7.0.0");
      resp::bulk(r, "proto");
      resp::integer(r, 2);
      resp::bulk(r, "id");
      resp::integer(r, static_cast<std::int64_t>(fd()));
      resp::bulk(r, "mode");
      resp::bulk(r, "standalone");
      resp::bulk(r, "role");
      resp::bulk(r, "master");
      resp::bulk(r, "modules");
      resp::array_header(r, 0);
    }
    answer_now(std::move(r));
  }

  /// Shard `index` when it is this loop's and has started (to use at once), else null. Kept
  /// once found: it outlives every connection (nothing stops it but the engine, after the
  /// connections). Until it has started, commands for it are asked of it, as of the others.
  [[nodiscard]] shard* local(std::size_t index) noexcept {
    if (index != loop().index()) {
      return nullptr;
    }
    if (local_ == nullptr) [[unlikely]] {
      local_ = ks_->shards.local();
    }
    return local_;
  }

  struct pending {
    std::string reply;
    bool ready = false;
  };
  keyspace* ks_;
  shard* local_ = nullptr;  // this loop's shard, once started (see local())
  std::string out_;
  std::string joined_;
  std::vector<std::string_view> spare_args_;  // the parser's argument list, kept for reuse
  std::deque<pending> waiting_;  // replies behind one that another loop still has to answer
  std::uint64_t first_waiting_ = 0;
  std::size_t needed_ = 0;  // bytes to wait for before parsing again
  bool quitting_ = false;   // QUIT or a protocol error: close once the replies are out
  bool holding_ = false;    // a command in steps (COPY) runs: the next ones wait for it
};

constexpr std::string_view usage =
    R"(usage: redis_server [--listen URL]... [--loops N] [--backend B] [--lb STRATEGY] [--cpus LIST]
                    [--busy-poll N] [--mailbox-cap N]
  --listen URL   tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT or unix://PATH (repeatable;
                 default tcp://127.0.0.1:7000; port 0 picks a free port)
  --loops N      loop threads, one keyspace shard each (0 = one per hardware thread)
  --backend B    epoll (default), io_uring or automatic
  --lb STRATEGY  round_robin (default), source_addr_hash or least_connections
  --cpus LIST    pin loop i to the i-th CPU of LIST (e.g. 0,1; round and round)
  --busy-poll N  microseconds a loop polls before it sleeps (0, the default: off)
  --mailbox-cap N  messages a loop's mailbox holds before it refuses more (default 262144);
                 a command for a shard whose mailbox is full is answered "-ERR busy"
RESP2 and inline commands: PING, ECHO, SET [EX|PX] [NX|XX], GET, DEL, EXISTS, INCR, DECR,
INCRBY, DECRBY, MSET, MGET, EXPIRE, TTL, DBSIZE, FLUSHALL, KEYS, COPY, QUIT, SELECT 0, and enough
of COMMAND, CONFIG, CLIENT and HELLO for redis-cli and redis-benchmark. Strings only; nothing
is persisted. Prints "listening on URL" per listener; SIGINT or SIGTERM stops it.
)";

}  // namespace

int main(int argc, char** argv) {
  long long mailbox_cap = 0;  // the engine's default
  auto flags =
      actnet::samples::parse_flags(argc, argv, usage, [&](std::string_view f, const char* value) {
        if (f == "--mailbox-cap" && value != nullptr) {
          mailbox_cap = actnet::samples::number_flag(f, value, 1);
          return 2;
        }
        return 0;
      });
  if (mailbox_cap > 0) {
    flags.options.mailbox_cap = static_cast<std::size_t>(mailbox_cap);
  }
  keyspace ks;  // outlives the engine, whose connections and timers point at it
  return actnet::samples::serve<redis_connection>(
      flags, [&ks](actnet::engine& e) { ks.shards = e.spawn_sharded<shard>(); }, &ks);
}
