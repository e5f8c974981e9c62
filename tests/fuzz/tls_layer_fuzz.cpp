// libFuzzer target for the TLS layer (actors/src/tls.cpp): arbitrary bytes as a client's
// handshake and records, fed to a server session in two reads; or, when the first byte says so,
// as records after a real handshake done in memory. Whatever comes: no crash, no plain byte
// handed out before the handshake is done, every failure one of the errc::tls_* codes (or the
// outbound cap), and the session's replies bounded.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <vector>

#include "actnet/actors/detail/tls_layer.hpp"
#include "actnet/error.hpp"
#include "fuzz_check.hpp"
#include "tests/actors/tls_certs.hpp"

namespace actnet::fuzz {
namespace {

struct contexts {
  test::test_pki pki;
  std::shared_ptr<detail::tls_context> server;
  std::shared_ptr<detail::tls_context> client;
  contexts() {
    const test::test_pki::files files = pki.issue("server", "localhost", {"localhost"});
    tls_options s;
    s.cert_file = files.cert;
    s.key_file = files.key;
    server = detail::make_tls_server(s, nullptr, std::make_shared<detail::tls_counters>());
    tls_options c;
    c.ca_file = pki.ca_file();
    client =
        detail::make_tls_client(c, "localhost", nullptr, std::make_shared<detail::tls_counters>());
  }
};

contexts& shared() {
  static contexts c;
  return c;
}

struct milestones {
  std::uint64_t handshakes = 0;  // in-memory handshakes done (the record mode)
  std::uint64_t failures = 0;    // inputs that ended in an error
  std::uint64_t plain = 0;       // inputs that got plain bytes out (the record mode)
  milestones() = default;
  milestones(const milestones&) = delete;
  milestones& operator=(const milestones&) = delete;
  ~milestones() {
    std::fprintf(stderr, "tls_layer: %llu handshakes, %llu failures, %llu with plain bytes\n",
                 static_cast<unsigned long long>(handshakes),
                 static_cast<unsigned long long>(failures), static_cast<unsigned long long>(plain));
  }
};
milestones seen;

bool tls_error(std::error_code ec) {
  return ec == errc::tls_handshake_failed || ec == errc::tls_certificate_rejected ||
         ec == errc::tls_protocol_error || ec == errc::capacity_exceeded;
}

// Decodes `wire` (and what the layer holds after it); the plain bytes out, or the error.
result<std::size_t> feed(detail::byte_layer& layer, std::span<const std::byte> wire,
                         elastic_buffer& reply) {
  std::vector<std::byte> plain(16 * 1024);
  std::size_t total = 0;
  bool first = true;
  while (first || layer.holds_plain()) {
    first = false;
    const result<std::size_t> n = layer.decode(wire, plain, reply);
    wire = {};
    if (!n) {
      return n.error();
    }
    total += *n;
  }
  return total;
}

// Moves what `from` wrote into a decode by `to`; false on an error.
bool pass(elastic_buffer& from, detail::byte_layer& to, elastic_buffer& reply) {
  std::vector<std::byte> bytes(from.size());
  if (from.read(bytes)) {
    return false;
  }
  return static_cast<bool>(feed(to, bytes, reply));
}

}  // namespace
}  // namespace actnet::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace actnet;
  using namespace actnet::fuzz;
  if (size == 0) {
    return 0;
  }
  const bool after_handshake = (data[0] & 1U) != 0;
  const std::size_t split = size > 1 ? data[0] % size : 0;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  std::unique_ptr<detail::byte_layer> server = detail::make_tls_layer(shared().server);
  elastic_buffer to_client(4096, 1U << 20);
  (void)server->start(to_client);
  if (after_handshake) {
    std::unique_ptr<detail::byte_layer> client = detail::make_tls_layer(shared().client);
    elastic_buffer to_server(4096, 1U << 20);
    ACTNET_FUZZ_CHECK(!client->start(to_server));
    for (int round = 0; round < 4 && !(server->ready() && client->ready()); ++round) {
      ACTNET_FUZZ_CHECK(pass(to_server, *server, to_client));
      ACTNET_FUZZ_CHECK(pass(to_client, *client, to_server));
    }
    ACTNET_FUZZ_CHECK(server->ready() && client->ready());
    ++seen.handshakes;
  }
  const std::size_t cut = std::min(split, input.size());
  for (const std::span<const std::byte> read : {input.first(cut), input.subspan(cut)}) {
    const bool was_ready = server->ready();
    const result<std::size_t> got = feed(*server, read, to_client);
    if (!got) {
      ACTNET_FUZZ_CHECK(tls_error(got.error()));
      ++seen.failures;
      break;
    }
    ACTNET_FUZZ_CHECK(was_ready || *got == 0);  // nothing plain before the handshake is done
    if (*got > 0) {
      ++seen.plain;
    }
    ACTNET_FUZZ_CHECK(to_client.size() <= (1U << 20));
  }
  return 0;
}
