// tls: TLS through OpenSSL 3 as a byte layer. A session reads wire bytes straight from the span
// the loop hands it and writes its records straight into the connection's outbound buffer,
// through a BIO of its own (no memory BIO, so an idle connection keeps no buffer of its own;
// SSL_MODE_RELEASE_BUFFERS gives OpenSSL's back).
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/logger.h>
#include <strings.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "actnet/actors/detail/tls_layer.hpp"
#include "actnet/error.hpp"

namespace actnet::detail {

namespace {

// Mozilla's "intermediate" TLS 1.2 suites: forward-secret AEAD only.
constexpr const char* default_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  if (e == 0) {
    return "no OpenSSL error";
  }
  std::array<char, 256> text{};
  ERR_error_string_n(e, text.data(), text.size());
  return text.data();
}

struct ssl_ctx_deleter {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_deleter>;

// A name a client asked for against an SNI entry: equal without case, or "*.rest" for one label
// in front of rest.
bool name_matches(std::string_view pattern, std::string_view name) {
  const auto equal = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
  };
  if (pattern.starts_with("*.")) {
    const std::size_t dot = name.find('.');
    return dot != std::string_view::npos && dot > 0 && equal(pattern.substr(1), name.substr(dot));
  }
  return equal(pattern, name);
}

// ALPN's wire form: each protocol prefixed with its length.
std::vector<unsigned char> alpn_wire(const std::vector<std::string>& protocols) {
  std::vector<unsigned char> wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255) {
      throw std::invalid_argument("tls: alpn protocol '" + p + "': must be 1 to 255 bytes");
    }
    wire.push_back(static_cast<unsigned char>(p.size()));
    wire.insert(wire.end(), p.begin(), p.end());
  }
  return wire;
}

}  // namespace

// One listener's or one dial's SSL_CTX, with what its callbacks need.
class tls_context {
 public:
  bool server = false;
  ctx_ptr ctx;
  struct named {
    std::string name;
    ctx_ptr ctx;
  };
  std::vector<named> sni;           // server: chosen by the client's server name
  std::vector<unsigned char> alpn;  // wire form
  std::string host;                 // client: the name to check (and send, unless an IP)
  bool host_is_ip = false;
  std::chrono::milliseconds handshake_timeout{0};
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<tls_counters> counters;
  // Client: the session of the latest connection, offered by the next (reconnects).
  std::mutex session_mutex;
  SSL_SESSION* session = nullptr;
  // Failures logged once a second at most, from any loop.
  std::atomic<std::int64_t> last_log_ns{0};
  std::atomic<std::uint64_t> unlogged{0};

  tls_context() = default;
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;
  ~tls_context() { SSL_SESSION_free(session); }

  void note_failure(const std::string& what) {
    counters->failures.fetch_add(1, std::memory_order_relaxed);
    unlogged.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t last = last_log_ns.load(std::memory_order_relaxed);
    if (now - last < 1'000'000'000 ||
        !last_log_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      return;
    }
    const std::uint64_t n = unlogged.exchange(0, std::memory_order_relaxed);
    if (log != nullptr) {
      log->warn("tls ({}): {} connection(s) failed in the last second; the last: {}",
                server ? "server" : "client", n, what);
    }
  }
};

namespace {

int verify_mode_of(const tls_options& o, bool server) {
  if (!server) {
    return o.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
  }
  switch (o.client_certificates) {
    case client_auth::none:
      return SSL_VERIFY_NONE;
    case client_auth::optional:
      return SSL_VERIFY_PEER;
    case client_auth::required:
      return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  return SSL_VERIFY_NONE;
}

// The server picks the first of its own protocols the client offers; none in common fails the
// handshake (RFC 7301's no_application_protocol alert).
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* c = static_cast<const tls_context*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, c->alpn.data(), static_cast<unsigned>(c->alpn.size()),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int select_certificate(SSL* ssl, int* /*alert*/, void* arg) {  // (the servername callback)
  auto* c = static_cast<tls_context*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) {
    return SSL_TLSEXT_ERR_OK;  // the default certificate
  }
  for (const tls_context::named& n : c->sni) {
    if (name_matches(n.name, name)) {
      SSL_set_SSL_CTX(ssl, n.ctx.get());
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

int keep_session(SSL* ssl, SSL_SESSION* session) {
  auto* c = static_cast<tls_context*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const std::lock_guard lock(c->session_mutex);
  SSL_SESSION_free(c->session);
  c->session = session;
  return 1;  // kept: OpenSSL does not free it
}

// The settings every context of a listener (SNI ones included) or a dial shares.
ctx_ptr new_ctx(const tls_options& o, bool server, tls_context& owner) {
  ctx_ptr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (ctx == nullptr) {
    throw std::invalid_argument("tls: cannot make an SSL_CTX: " + openssl_reason());
  }
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_app_data(c, &owner);
  (void)SSL_CTX_set_min_proto_version(
      c, o.min_version == tls_version::v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(
      c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // OpenSSL's buffers go back while a connection is idle.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  const std::string ciphers = o.ciphers.empty() ? default_ciphers : o.ciphers;
  if (SSL_CTX_set_cipher_list(c, ciphers.c_str()) != 1) {
    throw std::invalid_argument("tls: ciphers '" + ciphers + "' refused: " + openssl_reason());
  }
  if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(c, o.ciphersuites.c_str()) != 1) {
    throw std::invalid_argument("tls: ciphersuites '" + o.ciphersuites +
                                "' refused: " + openssl_reason());
  }
  SSL_CTX_set_verify(c, verify_mode_of(o, server), nullptr);
  const bool wants_ca = server ? o.client_certificates != client_auth::none : o.verify_peer;
  if (wants_ca) {
    if (!o.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(c, o.ca_file.c_str(), nullptr) != 1) {
        throw std::invalid_argument("tls: ca_file '" + o.ca_file +
                                    "' cannot be read: " + openssl_reason());
      }
      if (server) {
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str());
        if (names != nullptr) {
          SSL_CTX_set_client_CA_list(c, names);
        }
      }
    } else if (server) {
      throw std::invalid_argument("tls: client_certificates needs a ca_file");
    } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
      throw std::invalid_argument("tls: the system's CA store cannot be read: " + openssl_reason());
    }
  }
  if (server) {
    static constexpr unsigned char id[] = "actnet";
    (void)SSL_CTX_set_session_id_context(c, id, sizeof(id) - 1);
    if (!owner.alpn.empty()) {
      SSL_CTX_set_alpn_select_cb(c, select_alpn, &owner);
    }
    if (o.session_resumption) {
      SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    } else {
      SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
      (void)SSL_CTX_set_num_tickets(c, 0);
    }
  } else {
    if (!owner.alpn.empty() &&
        SSL_CTX_set_alpn_protos(c, owner.alpn.data(), static_cast<unsigned>(owner.alpn.size())) !=
            0) {
      throw std::invalid_argument("tls: alpn refused: " + openssl_reason());
    }
    if (o.session_resumption) {
      SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_new_cb(c, keep_session);
    } else {
      SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    }
  }
  return ctx;
}

void load_pair(SSL_CTX* c, const std::string& cert_file, const std::string& key_file) {
  if (SSL_CTX_use_certificate_chain_file(c, cert_file.c_str()) != 1) {
    throw std::invalid_argument("tls: cert_file '" + cert_file +
                                "' cannot be used: " + openssl_reason());
  }
  if (SSL_CTX_use_PrivateKey_file(c, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::invalid_argument("tls: key_file '" + key_file +
                                "' cannot be used: " + openssl_reason());
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    throw std::invalid_argument("tls: key_file '" + key_file + "' does not match cert_file '" +
                                cert_file + "'");
  }
}

void check_common(const tls_options& o) {
  if (o.handshake_timeout.count() < 0 || o.handshake_timeout > std::chrono::hours(24)) {
    throw std::invalid_argument(
        "tls: handshake_timeout = " + std::to_string(o.handshake_timeout.count()) +
        " ms: must be between 0 (none) and a day");
  }
  if (o.cert_file.empty() != o.key_file.empty()) {
    throw std::invalid_argument("tls: cert_file and key_file go together");
  }
}

}  // namespace

std::shared_ptr<tls_context> make_tls_server(const tls_options& options,
                                             std::shared_ptr<spdlog::logger> log,
                                             std::shared_ptr<tls_counters> counters) {
  check_common(options);
  if (options.cert_file.empty()) {
    throw std::invalid_argument("tls: a server needs cert_file and key_file");
  }
  ERR_clear_error();
  auto c = std::make_shared<tls_context>();
  c->server = true;
  c->alpn = alpn_wire(options.alpn);
  c->handshake_timeout = options.handshake_timeout;
  c->log = std::move(log);
  c->counters = counters != nullptr ? std::move(counters) : std::make_shared<tls_counters>();
  c->ctx = new_ctx(options, true, *c);
  load_pair(c->ctx.get(), options.cert_file, options.key_file);
  for (const tls_certificate& entry : options.sni) {
    if (entry.server_name.empty()) {
      throw std::invalid_argument("tls: an sni entry without a server_name");
    }
    ctx_ptr ctx = new_ctx(options, true, *c);
    load_pair(ctx.get(), entry.cert_file, entry.key_file);
    c->sni.push_back({entry.server_name, std::move(ctx)});
  }
  if (!c->sni.empty()) {
    SSL_CTX_set_tlsext_servername_callback(c->ctx.get(), select_certificate);
    SSL_CTX_set_tlsext_servername_arg(c->ctx.get(), c.get());
  }
  return c;
}

std::shared_ptr<tls_context> make_tls_client(const tls_options& options, std::string_view host,
                                             std::shared_ptr<spdlog::logger> log,
                                             std::shared_ptr<tls_counters> counters) {
  check_common(options);
  if (!options.sni.empty() || options.client_certificates != client_auth::none) {
    throw std::invalid_argument("tls: sni and client_certificates are a server's settings");
  }
  ERR_clear_error();
  auto c = std::make_shared<tls_context>();
  c->alpn = alpn_wire(options.alpn);
  c->handshake_timeout = options.handshake_timeout;
  c->log = std::move(log);
  c->counters = counters != nullptr ? std::move(counters) : std::make_shared<tls_counters>();
  c->host = options.server_name.empty() ? std::string(host) : options.server_name;
  if (c->host.starts_with('[') && c->host.ends_with(']')) {
    c->host = c->host.substr(1, c->host.size() - 2);
  }
  std::array<unsigned char, 16> ip{};
  c->host_is_ip = ::inet_pton(AF_INET, c->host.c_str(), ip.data()) == 1 ||
                  ::inet_pton(AF_INET6, c->host.c_str(), ip.data()) == 1;
  c->ctx = new_ctx(options, false, *c);
  if (!options.cert_file.empty()) {
    load_pair(c->ctx.get(), options.cert_file, options.key_file);
  }
  return c;
}

namespace {

// The session's end of the wire: reads come from the span decode() was given, writes go to the
// buffer of the call in progress.
class wire_bio {
 public:
  std::span<const std::byte> in;
  elastic_buffer* out = nullptr;
  std::error_code out_error;

  static BIO_METHOD* method() {
    static BIO_METHOD* const m = [] {
      BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "actnet wire");
      BIO_meth_set_write_ex(made, write_ex);
      BIO_meth_set_read_ex(made, read_ex);
      BIO_meth_set_ctrl(made, ctrl);
      BIO_meth_set_create(made, [](BIO* b) {
        BIO_set_init(b, 1);
        return 1;
      });
      return made;
    }();
    return m;
  }

 private:
  static int write_ex(BIO* b, const char* data, std::size_t n, std::size_t* written) {
    auto* self = static_cast<wire_bio*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (self->out == nullptr) {
      self->out_error = std::make_error_code(std::errc::state_not_recoverable);
      return 0;
    }
    if (const std::error_code ec =
            self->out->write(std::span(reinterpret_cast<const std::byte*>(data), n))) {
      self->out_error = ec;
      return 0;
    }
    *written = n;
    return 1;
  }
  static int read_ex(BIO* b, char* data, std::size_t n, std::size_t* read) {
    auto* self = static_cast<wire_bio*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (self->in.empty()) {
      BIO_set_retry_read(b);
      return 0;
    }
    const std::size_t k = std::min(n, self->in.size());
    std::memcpy(data, self->in.data(), k);
    self->in = self->in.subspan(k);
    *read = k;
    return 1;
  }
  static long ctrl(BIO* b, int cmd, long /*num*/, void* /*ptr*/) {
    auto* self = static_cast<wire_bio*>(BIO_get_data(b));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING:
        return static_cast<long>(self->in.size());
      default:
        return 0;  // (BIO_CTRL_WPENDING included: writes never wait)
    }
  }
};

class tls_layer final : public byte_layer {
 public:
  explicit tls_layer(std::shared_ptr<tls_context> context) : context_(std::move(context)) {
    ssl_ = SSL_new(context_->ctx.get());
    BIO* bio = BIO_new(wire_bio::method());
    if (ssl_ == nullptr || bio == nullptr) {
      BIO_free(bio);
      SSL_free(ssl_);
      throw std::bad_alloc();
    }
    BIO_set_data(bio, &bio_);
    SSL_set_bio(ssl_, bio, bio);  // (one BIO both ways: SSL_free frees it once)
    if (context_->server) {
      SSL_set_accept_state(ssl_);
      return;
    }
    SSL_set_connect_state(ssl_);
    if (!context_->host.empty()) {
      if (context_->host_is_ip) {
        (void)X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), context_->host.c_str());
      } else {
        (void)SSL_set_tlsext_host_name(ssl_, context_->host.c_str());
        (void)SSL_set1_host(ssl_, context_->host.c_str());
      }
    }
    const std::lock_guard lock(context_->session_mutex);
    if (context_->session != nullptr) {
      (void)SSL_set_session(ssl_, context_->session);
    }
  }
  tls_layer(const tls_layer&) = delete;
  tls_layer& operator=(const tls_layer&) = delete;
  ~tls_layer() override {
    if (!ready_ && !failed_ && started_) {
      // A connection that closed in its handshake (the peer went, a timeout, the engine's stop).
      context_->counters->failures.fetch_add(1, std::memory_order_relaxed);
    }
    SSL_free(ssl_);
  }

  std::error_code start(elastic_buffer& wire) override {
    started_ = true;
    if (context_->server) {
      return {};
    }
    const io_scope scope(*this, {}, wire);
    return handshake();  // the client's hello
  }

  result<std::size_t> decode(std::span<const std::byte> wire, std::span<std::byte> plain,
                             elastic_buffer& reply) override {
    std::vector<std::byte> kept;
    if (!held_wire_.empty()) {
      // What a full `plain` left unread last time comes first.
      kept.swap(held_wire_);
      kept.insert(kept.end(), wire.begin(), wire.end());
      wire = kept;
    }
    const io_scope scope(*this, wire, reply);
    more_ = false;
    if (!ready_) {
      if (const std::error_code ec = handshake()) {
        return ec;
      }
      if (!ready_) {
        return std::size_t{0};
      }
    }
    std::size_t n = 0;
    while (n < plain.size()) {
      std::size_t got = 0;
      const int r = SSL_read_ex(ssl_, plain.data() + n, plain.size() - n, &got);
      if (r == 1) {
        n += got;
        continue;
      }
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ) {
        break;
      }
      if (e == SSL_ERROR_ZERO_RETURN) {
        peer_ended_ = true;  // close_notify
        break;
      }
      if (bio_.out_error) {
        return bio_.out_error;
      }
      return fail(errc::tls_protocol_error);
    }
    if (n == plain.size() && !peer_ended_ && (SSL_pending(ssl_) > 0 || !bio_.in.empty())) {
      more_ = true;
      held_wire_.assign(bio_.in.begin(), bio_.in.end());
    }
    if (bio_.out_error) {
      return bio_.out_error;
    }
    return n;
  }

  [[nodiscard]] bool holds_plain() const noexcept override { return more_; }

  std::error_code encode(std::span<const std::byte> plain, elastic_buffer& wire) override {
    if (!ready_) {
      // Held until the handshake is done: nothing goes out in the clear, nor before it.
      if (held_plain_.size() + plain.size() > wire.max_size()) {
        return make_error_code(errc::capacity_exceeded);
      }
      held_plain_.insert(held_plain_.end(), plain.begin(), plain.end());
      return {};
    }
    const io_scope scope(*this, {}, wire);
    return write_plain(plain);
  }

  std::error_code encode_end(elastic_buffer& wire) override {
    if (!ready_ || failed_) {
      return {};  // no session to end: the FIN alone
    }
    const io_scope scope(*this, {}, wire);
    (void)SSL_shutdown(ssl_);  // close_notify (the peer's is not awaited)
    return bio_.out_error;
  }

  [[nodiscard]] bool ready() const noexcept override { return ready_; }
  [[nodiscard]] bool peer_ended() const noexcept override { return peer_ended_; }
  [[nodiscard]] std::error_code end_of_wire() const noexcept override {
    if (peer_ended_) {
      return {};
    }
    return make_error_code(ready_ ? errc::tls_truncated : errc::tls_handshake_failed);
  }
  [[nodiscard]] std::chrono::milliseconds handshake_timeout() const noexcept override {
    return context_->handshake_timeout;
  }

  [[nodiscard]] tls_info info() const override {
    tls_info i;
    if (!ready_) {
      return i;
    }
    i.version = SSL_get_version(ssl_);
    if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_); c != nullptr) {
      i.cipher = SSL_CIPHER_get_name(c);
    }
    const unsigned char* alpn = nullptr;
    unsigned int alpn_length = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_length);
    if (alpn != nullptr) {
      i.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_length);
    }
    if (const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name); name != nullptr) {
      i.server_name = name;
    }
    if (X509* peer = SSL_get0_peer_certificate(ssl_); peer != nullptr) {
      if (BIO* text = BIO_new(BIO_s_mem()); text != nullptr) {
        (void)X509_NAME_print_ex(text, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
        char* data = nullptr;
        const long length = BIO_get_mem_data(text, &data);
        if (length > 0) {
          i.peer_subject.assign(data, static_cast<std::size_t>(length));
        }
        BIO_free(text);
      }
    }
    i.resumed = SSL_session_reused(ssl_) == 1;
    return i;
  }

 private:
  // The BIO's input and output for one call into OpenSSL.
  class io_scope {
   public:
    io_scope(tls_layer& layer, std::span<const std::byte> in, elastic_buffer& out) : l_(layer) {
      // SSL_get_error needs an empty error queue: emptied here once, if another user of OpenSSL
      // on this thread left something (fail() empties it after each failure of ours). Clearing
      // it before every call cost 5% of an HTTPS request's instructions (callgrind).
      if (ERR_peek_error() != 0) [[unlikely]] {
        ERR_clear_error();
      }
      l_.bio_.in = in;
      l_.bio_.out = &out;
      l_.bio_.out_error = {};
    }
    io_scope(const io_scope&) = delete;
    io_scope& operator=(const io_scope&) = delete;
    ~io_scope() {
      l_.bio_.in = {};
      l_.bio_.out = nullptr;
    }

   private:
    tls_layer& l_;
  };

  std::error_code handshake() {
    const int r = SSL_do_handshake(ssl_);
    if (bio_.out_error) {
      return bio_.out_error;
    }
    if (r == 1) {
      ready_ = true;
      context_->counters->handshakes.fetch_add(1, std::memory_order_relaxed);
      if (!held_plain_.empty()) {
        std::vector<std::byte> held;
        held.swap(held_plain_);
        return write_plain(held);
      }
      return {};
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) {
      return {};
    }
    const long verified = SSL_get_verify_result(ssl_);
    const bool rejected =
        verified != X509_V_OK ||
        ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE ||
        ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_CERTIFICATE_VERIFY_FAILED;
    return fail(rejected ? errc::tls_certificate_rejected : errc::tls_handshake_failed);
  }

  std::error_code write_plain(std::span<const std::byte> plain) {
    while (!plain.empty()) {
      std::size_t written = 0;
      if (SSL_write_ex(ssl_, plain.data(), plain.size(), &written) != 1) {
        return bio_.out_error ? bio_.out_error : fail(errc::tls_protocol_error);
      }
      plain = plain.subspan(written);
    }
    return bio_.out_error;
  }

  std::error_code fail(errc what) {
    failed_ = true;
    std::string reason = openssl_reason();
    if (const long verified = SSL_get_verify_result(ssl_);
        what == errc::tls_certificate_rejected && verified != X509_V_OK) {
      reason = X509_verify_cert_error_string(verified);
    }
    context_->note_failure(make_error_code(what).message() + ": " + reason);
    ERR_clear_error();
    return make_error_code(what);
  }

  std::shared_ptr<tls_context> context_;
  SSL* ssl_ = nullptr;
  wire_bio bio_;
  std::vector<std::byte> held_plain_;  // written before the handshake was done
  std::vector<std::byte> held_wire_;   // read but not decoded: `plain` was full
  bool started_ = false;
  bool ready_ = false;
  bool failed_ = false;
  bool peer_ended_ = false;
  bool more_ = false;
};

}  // namespace

std::unique_ptr<byte_layer> make_tls_layer(const std::shared_ptr<tls_context>& context) {
  return std::make_unique<tls_layer>(context);
}

std::optional<tls_url> parse_tls_url(std::string_view url) {
  const std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return std::nullopt;
  }
  std::string scheme(url.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](char ch) { return static_cast<char>(std::tolower(ch)); });
  const char* plain = scheme == "tls"        ? "tcp"
                      : scheme == "tls4"     ? "tcp4"
                      : scheme == "tls6"     ? "tcp6"
                      : scheme == "tls+unix" ? "unix"
                                             : nullptr;
  if (plain == nullptr) {
    return std::nullopt;
  }
  const std::string_view rest = url.substr(sep + 3);
  tls_url out{std::string(plain) + "://" + std::string(rest), {}};
  if (scheme != "tls+unix") {
    const std::size_t colon = rest.rfind(':');
    out.host = std::string(rest.substr(0, colon));
    if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
      out.host = out.host.substr(1, out.host.size() - 2);
      if (const std::size_t zone = out.host.find('%'); zone != std::string::npos) {
        out.host.resize(zone);
      }
    }
  }
  return out;
}

std::function<std::unique_ptr<connection>()> tls_client_factory(
    std::function<std::unique_ptr<connection>()> make, const tls_options& options,
    const address& to, std::shared_ptr<spdlog::logger> log) {
  std::string host;
  if (options.server_name.empty() && to.transport() == transport::tcp) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    const sockaddr* sa = to.data();
    const void* ip = sa->sa_family == AF_INET6
                         ? static_cast<const void*>(
                               &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr)  // NOLINT
                         : static_cast<const void*>(
                               &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);  // NOLINT
    if (::inet_ntop(sa->sa_family, ip, text.data(), text.size()) != nullptr) {
      host = text.data();
    }
  }
  std::shared_ptr<tls_context> context =
      make_tls_client(options, host, std::move(log), std::make_shared<tls_counters>());
  return layered(std::move(make), [context] { return make_tls_layer(context); });
}

}  // namespace actnet::detail
