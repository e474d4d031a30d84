// JWT (RFC 7519) verification with OpenSSL: one algorithm per key (RS256, ES256 or HS256), so
// `alg: none` and algorithm confusion are rejected by construction.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "offerd/domain/errors.hpp"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace offerd {

enum class jwt_alg : std::uint8_t { hs256, rs256, es256 };
const char* to_string(jwt_alg a) noexcept;  // "HS256", "RS256", "ES256"

// Immutable after loading; safe to share between threads.
class jwt_key {
public:
    // A PEM public key (RSA of 2048 bits or more: RS256; EC P-256: ES256) or, for any other
    // content, an HS256 secret of at least 32 bytes. A PEM that does not parse as a public key
    // (a private key, a certificate, a damaged file) fails: it is never taken as a secret.
    // Fails naming the file, never its content.
    static result<jwt_key> load(const std::string& path);
    static result<jwt_key> from_pem(std::string_view pem);
    static result<jwt_key> from_secret(std::string secret);

    jwt_alg alg() const noexcept { return alg_; }
    evp_pkey_st* pkey() const noexcept { return pkey_.get(); }
    const std::string& secret() const noexcept { return secret_; }

private:
    jwt_alg alg_ = jwt_alg::hs256;
    std::shared_ptr<evp_pkey_st> pkey_;
    std::string secret_;
};

struct jwt_rules {
    std::string issuer;    // required `iss` when not empty
    std::string audience;  // required in `aud` (a string or an array) when not empty
    std::chrono::milliseconds leeway{0};
};

struct jwt_claims {
    std::string subject;  // `sub`: the client's name
};

// Verifies a compact JWS: three base64url parts, a header whose `alg` is exactly the key's (no
// `crit`), the signature, then the claims: `exp` required, `nbf` optional (both with leeway),
// `iss` and `aud` as the rules say, `sub` required. Fails with invalid_field and a short reason
// for metrics and tests ("jwt_malformed", "jwt_alg", "jwt_signature", "jwt_expired",
// "jwt_not_yet_valid", "jwt_issuer", "jwt_audience", "jwt_subject"), never echoing the token.
result<jwt_claims> verify_jwt(std::string_view token, const jwt_key& key, const jwt_rules& rules,
                              std::chrono::system_clock::time_point now);

// base64url without padding (RFC 7515 §2), both ways; decode fails on any other character.
std::string base64url_encode(std::string_view bytes);
result<std::string> base64url_decode(std::string_view text);

}  // namespace offerd
