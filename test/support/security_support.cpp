// Test credentials made with OpenSSL at test time.
#include "security_support.hpp"

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

#include "offerd/security/jwt.hpp"

namespace offerd::test {

namespace {
std::string drain(BIO* bio) {
    std::string out(BIO_ctrl_pending(bio), '\0');
    const int n = BIO_read(bio, out.data(), static_cast<int>(out.size()));
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    BIO_free(bio);
    return out;
}

std::string sign(EVP_PKEY* key, std::string_view input) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::size_t len = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) != 1 || EVP_DigestSign(ctx, nullptr, &len, data, input.size()) != 1)
        throw std::runtime_error("sign failed");
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, data, input.size()) != 1) throw std::runtime_error("sign failed");
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    return sig;
}

// DER ECDSA signature -> R || S.
std::string raw_ecdsa(const std::string& der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    if (!sig) throw std::runtime_error("bad ECDSA signature");
    std::string out(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(out.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(out.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    return out;
}
}  // namespace

key_pair key_pair::rsa() {
    key_pair k;
    k.key_ = std::shared_ptr<evp_pkey_st>(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}), EVP_PKEY_free);
    if (!k.key_) throw std::runtime_error("RSA keygen failed");
    return k;
}

key_pair key_pair::ec() {
    key_pair k;
    k.key_ = std::shared_ptr<evp_pkey_st>(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
    if (!k.key_) throw std::runtime_error("EC keygen failed");
    return k;
}

std::string key_pair::public_pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key_.get());
    return drain(bio);
}

std::string key_pair::private_pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key_.get(), nullptr, nullptr, 0, nullptr, nullptr);
    return drain(bio);
}

std::string make_jwt(std::string_view header_json, std::string_view payload_json, const key_pair* key, std::string_view secret) {
    const std::string input = base64url_encode(header_json) + "." + base64url_encode(payload_json);
    std::string sig;
    if (header_json.find("\"HS256\"") != std::string_view::npos) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
             input.size(), mac, &n);
        sig.assign(reinterpret_cast<const char*>(mac), n);
    } else if (key && header_json.find("\"RS256\"") != std::string_view::npos) {
        sig = sign(key->get(), input);
    } else if (key && header_json.find("\"ES256\"") != std::string_view::npos) {
        sig = raw_ecdsa(sign(key->get(), input));
    }
    return input + "." + base64url_encode(sig);
}

long long unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string write_temp_file(const std::string& stem, std::string_view text) {
    std::string pattern = "/tmp/offerd-" + stem + "-XXXXXX";
    const int fd = mkstemp(pattern.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    const auto n = ::write(fd, text.data(), text.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size())) throw std::runtime_error("write failed");
    return pattern;
}

}  // namespace offerd::test
