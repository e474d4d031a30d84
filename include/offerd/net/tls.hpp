// TLS contexts for the listeners and the upstream clients (OpenSSL through boost/asio/ssl): TLS 1.2+
// only, ECDHE with AES-GCM or ChaCha20-Poly1305 on 1.2 (1.3's suites are all AEAD), no compression,
// no renegotiation. Header without Asio: the context is only forward-declared.
#pragma once

#include <memory>
#include <string>

#include "offerd/domain/errors.hpp"

namespace boost::asio::ssl {
class context;
}

namespace offerd {

using tls_context = boost::asio::ssl::context;

// A listener's context from a PEM certificate chain (leaf first) and its private key. Fails
// (invalid_field) with one line naming the file and OpenSSL's reason when either cannot be read or
// parsed, or the key does not belong to the certificate.
result<std::shared_ptr<tls_context>> make_server_tls_context(const std::string& cert_file, const std::string& key_file);

// A client context that verifies the peer's chain against ca_file (PEM, one or more CAs), or the
// system store when ca_file is empty. Hostname (or IP address) verification and SNI are per
// connection: see http_client. Fails (invalid_field) naming the file when ca_file holds no usable
// certificate.
result<std::shared_ptr<tls_context>> make_client_tls_context(const std::string& ca_file);

// A client context that trusts exactly the certificate in cert_file (pinned: the peer must prove it
// holds that certificate's key; its name is not checked). For the orchestrator's calls to the
// listeners of its own process, which serve that certificate under whatever name --host gives them.
result<std::shared_ptr<tls_context>> make_pinned_tls_context(const std::string& cert_file);

}  // namespace offerd
