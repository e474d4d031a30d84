// TLS contexts: one policy (versions, ciphers, options) for both sides.
#include "offerd/net/tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

namespace offerd {

namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2 suites: forward secrecy (ECDHE) with an AEAD; TLS 1.3's defaults are all AEAD already.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The reason OpenSSL queued last, the queue cleared; a file that is not PEM and a key for
// another certificate in words an operator recognises.
std::string openssl_reason(std::string_view expected = "PEM") {
    unsigned long last = 0;
    bool pem = false;
    while (const unsigned long e = ERR_get_error()) {
        last = e;
        pem = pem || ERR_GET_LIB(e) == ERR_LIB_PEM || ERR_GET_REASON(e) == ERR_R_PEM_LIB ||
              (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_NO_CERTIFICATE_OR_CRL_FOUND);
    }
    if (last == 0) return "unknown OpenSSL error";
    if (ERR_GET_LIB(last) == ERR_LIB_X509 && ERR_GET_REASON(last) == X509_R_KEY_VALUES_MISMATCH)
        return "it is not the key of that certificate";
    const char* reason = ERR_reason_error_string(last);
    const std::string text = reason ? reason : "OpenSSL error " + std::to_string(last);
    return pem ? "not " + std::string(expected) + " (" + text + ")" : text;
}

// Why a file cannot be opened for reading, or "" when it can (OpenSSL's own message for a
// missing file is "system lib").
std::string unreadable(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (in) return {};
    return std::strerror(errno);
}

failure file_error(std::string_view what, const std::string& path, const std::string& reason) {
    return fail(errc::invalid_field, std::string(what) + " '" + path + "' cannot be used: " + reason);
}

std::shared_ptr<ssl::context> with_policy(ssl::context::method method) {
    auto ctx = std::make_shared<ssl::context>(method);
    SSL_CTX* native = ctx->native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(native, tls12_ciphers);
    return ctx;
}

// The pinned context's verification: the chain must end at the pinned certificate (the store
// holds only it); a name or address that differs from the URL's host is accepted.
int accept_any_name(int preverified, X509_STORE_CTX* store) {
    if (preverified) return 1;
    const int err = X509_STORE_CTX_get_error(store);
    return err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH ? 1 : 0;
}

}  // namespace

result<std::shared_ptr<tls_context>> make_server_tls_context(const std::string& cert_file, const std::string& key_file) {
    if (auto why = unreadable(cert_file); !why.empty()) return file_error("TLS certificate", cert_file, why);
    if (auto why = unreadable(key_file); !why.empty()) return file_error("TLS key", key_file, why);
    auto ctx = with_policy(ssl::context::tls_server);
    SSL_CTX* native = ctx->native_handle();
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(native, cert_file.c_str()) != 1)
        return file_error("TLS certificate", cert_file, openssl_reason("a PEM certificate"));
    if (SSL_CTX_use_PrivateKey_file(native, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        return file_error("TLS key", key_file, openssl_reason("a PEM private key"));
    if (SSL_CTX_check_private_key(native) != 1)
        return file_error("TLS key", key_file, "the key does not belong to the certificate '" + cert_file + "'");
    return ctx;
}

result<std::shared_ptr<tls_context>> make_client_tls_context(const std::string& ca_file) {
    auto ctx = with_policy(ssl::context::tls_client);
    SSL_CTX* native = ctx->native_handle();
    ERR_clear_error();
    if (ca_file.empty()) {
        if (SSL_CTX_set_default_verify_paths(native) != 1) return fail(errc::invalid_field, "the system CA store cannot be used: " + openssl_reason());
    } else {
        if (auto why = unreadable(ca_file); !why.empty()) return file_error("CA file", ca_file, why);
        if (SSL_CTX_load_verify_locations(native, ca_file.c_str(), nullptr) != 1)
            return file_error("CA file", ca_file, openssl_reason("PEM certificates"));
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    return ctx;
}

result<std::shared_ptr<tls_context>> make_pinned_tls_context(const std::string& cert_file) {
    if (auto why = unreadable(cert_file); !why.empty()) return file_error("TLS certificate", cert_file, why);
    // Only the leaf (the file's first certificate): trusting the chain's intermediates too would
    // accept any certificate they issued, whatever its name.
    BIO* bio = BIO_new_file(cert_file.c_str(), "r");
    X509* leaf = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
    if (bio) BIO_free(bio);
    if (!leaf) return file_error("TLS certificate", cert_file, openssl_reason("a PEM certificate"));
    auto ctx = with_policy(ssl::context::tls_client);
    SSL_CTX* native = ctx->native_handle();
    const int added = X509_STORE_add_cert(SSL_CTX_get_cert_store(native), leaf);
    X509_free(leaf);
    if (added != 1) return file_error("TLS certificate", cert_file, openssl_reason());
    // A leaf is not a CA: let it end the chain.
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(native), X509_V_FLAG_PARTIAL_CHAIN);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, accept_any_name);
    return ctx;
}

}  // namespace offerd
