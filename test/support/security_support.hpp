// Test credentials made at test time with OpenSSL: RSA and EC key pairs, signed JWTs, key files.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct evp_pkey_st;

namespace offerd::test {

// A freshly generated key pair: RSA 2048 ("RSA") or EC P-256 ("EC").
class key_pair {
public:
    static key_pair rsa();
    static key_pair ec();
    std::string public_pem() const;
    std::string private_pem() const;
    evp_pkey_st* get() const { return key_.get(); }

private:
    std::shared_ptr<evp_pkey_st> key_;
};

// header.payload.signature with the given JSON texts. alg: "RS256" or "ES256" sign with the key;
// "HS256" signs with `secret`; anything else (e.g. "none") leaves the signature empty.
std::string make_jwt(std::string_view header_json, std::string_view payload_json, const key_pair* key, std::string_view secret = {});

// Seconds since the epoch of the system clock, for exp/nbf claims.
long long unix_now();

// Writes text to a new temporary file and returns its path.
std::string write_temp_file(const std::string& stem, std::string_view text);

}  // namespace offerd::test
