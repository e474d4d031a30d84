// JWT verification over OpenSSL EVP.
#include "offerd/security/jwt.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstring>

#include "offerd/security/api_keys.hpp"

namespace offerd {

namespace json = boost::json;

namespace {

constexpr std::string_view b64url_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t max_token_bytes = 8 * 1024;

failure reject(const char* reason) { return fail(errc::invalid_field, reason); }

// A JSON object from a base64url part, or nullopt.
std::optional<json::object> decode_object(std::string_view part) {
    auto bytes = base64url_decode(part);
    if (!bytes) return std::nullopt;
    boost::system::error_code ec;
    json::value v = json::parse(*bytes, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.as_object());
}

std::optional<double> number(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (!v || !v->is_number()) return std::nullopt;
    return v->to_number<double>();
}

bool verify_hs256(const std::string& secret, std::string_view input, std::string_view sig) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
              input.size(), mac.data(), &n))
        return false;
    return sig.size() == n && CRYPTO_memcmp(mac.data(), sig.data(), n) == 0;
}

// ES256 signatures are R || S (32 bytes each); OpenSSL verifies the DER form.
std::optional<std::string> es256_der(std::string_view raw) {
    if (raw.size() != 64) return std::nullopt;
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (len <= 0) return std::nullopt;
    std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return out;
}

bool verify_pkey(evp_pkey_st* pkey, std::string_view input, std::string_view sig) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (!ctx) return false;
    const bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
                    EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

}  // namespace

const char* to_string(jwt_alg a) noexcept {
    switch (a) {
    case jwt_alg::hs256: return "HS256";
    case jwt_alg::rs256: return "RS256";
    case jwt_alg::es256: return "ES256";
    }
    return "?";
}

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() * 4 + 2) / 3);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : bytes) {
        acc = (acc << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += b64url_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out += b64url_alphabet[(acc << (6 - bits)) & 63];
    return out;
}

result<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) return fail(errc::invalid_field, "not base64url");
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : text) {
        const std::size_t v = b64url_alphabet.find(c);
        if (v == std::string_view::npos) return fail(errc::invalid_field, "not base64url");
        acc = ((acc << 6) | static_cast<std::uint32_t>(v)) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return fail(errc::invalid_field, "not base64url");  // non-canonical
    return out;
}

result<jwt_key> jwt_key::from_pem(std::string_view pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (!bio) return fail(errc::internal, "out of memory");
    EVP_PKEY* k = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ERR_clear_error();
    if (!k) return fail(errc::invalid_field, "is PEM but not a public key (give the public half: openssl pkey -pubout)");
    jwt_key key;
    key.pkey_ = std::shared_ptr<evp_pkey_st>(k, EVP_PKEY_free);
    const int id = EVP_PKEY_get_base_id(k);
    if (id == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(k) < 2048) return fail(errc::invalid_field, "is an RSA key shorter than 2048 bits");
        key.alg_ = jwt_alg::rs256;
        return key;
    }
    if (id == EVP_PKEY_EC) {
        std::array<char, 64> group{};
        std::size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(), &len) != 1 ||
            std::string_view(group.data(), len) != "prime256v1") {
            ERR_clear_error();
            return fail(errc::invalid_field, "is an EC key not on P-256 (ES256 needs P-256)");
        }
        key.alg_ = jwt_alg::es256;
        return key;
    }
    return fail(errc::invalid_field, "is neither an RSA nor an EC P-256 public key");
}

result<jwt_key> jwt_key::from_secret(std::string secret) {
    if (secret.size() < 32) return fail(errc::invalid_field, "is an HS256 secret shorter than 32 bytes");
    jwt_key key;
    key.alg_ = jwt_alg::hs256;
    key.secret_ = std::move(secret);
    return key;
}

result<jwt_key> jwt_key::load(const std::string& path) {
    auto text = read_secret_file(path);
    if (!text) return fail(errc::invalid_field, "--jwt-key: " + text.error().detail);
    auto key = text->find("-----BEGIN") != std::string::npos ? from_pem(*text) : from_secret(std::move(*text));
    if (!key) return fail(errc::invalid_field, "--jwt-key '" + path + "' " + key.error().detail);
    return key;
}

result<jwt_claims> verify_jwt(std::string_view token, const jwt_key& key, const jwt_rules& rules,
                              std::chrono::system_clock::time_point now) {
    if (token.size() > max_token_bytes) return reject("jwt_malformed");
    const std::size_t dot1 = token.find('.');
    const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) return reject("jwt_malformed");
    const std::string_view head = token.substr(0, dot1), body = token.substr(dot1 + 1, dot2 - dot1 - 1),
                           sig_text = token.substr(dot2 + 1);
    if (head.empty() || body.empty()) return reject("jwt_malformed");

    const auto header = decode_object(head);
    if (!header) return reject("jwt_malformed");
    const auto* alg = header->if_contains("alg");
    // The key decides the algorithm: a token naming another one (none, HS256 against an RSA
    // key) is refused before any verification.
    if (!alg || !alg->is_string() || alg->as_string() != to_string(key.alg()) || header->contains("crit")) return reject("jwt_alg");

    auto sig = base64url_decode(sig_text);
    if (!sig || sig->empty()) return reject("jwt_signature");
    const std::string_view input = token.substr(0, dot2);
    bool good = false;
    switch (key.alg()) {
    case jwt_alg::hs256: good = verify_hs256(key.secret(), input, *sig); break;
    case jwt_alg::rs256: good = verify_pkey(key.pkey(), input, *sig); break;
    case jwt_alg::es256:
        if (const auto der = es256_der(*sig)) good = verify_pkey(key.pkey(), input, *der);
        break;
    }
    if (!good) return reject("jwt_signature");

    const auto claims = decode_object(body);
    if (!claims) return reject("jwt_malformed");
    const double now_ms = static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
    const double leeway_ms = static_cast<double>(rules.leeway.count());
    const auto exp = number(*claims, "exp");
    if (!exp) return reject("jwt_malformed");
    if (now_ms >= *exp * 1000 + leeway_ms) return reject("jwt_expired");
    if (claims->contains("nbf")) {
        const auto nbf = number(*claims, "nbf");
        if (!nbf || now_ms + leeway_ms < *nbf * 1000) return reject("jwt_not_yet_valid");
    }
    if (!rules.issuer.empty()) {
        const auto* iss = claims->if_contains("iss");
        if (!iss || !iss->is_string() || iss->as_string() != rules.issuer) return reject("jwt_issuer");
    }
    if (!rules.audience.empty()) {
        bool found = false;
        if (const auto* aud = claims->if_contains("aud")) {
            if (aud->is_string()) found = aud->as_string() == rules.audience;
            else if (aud->is_array())
                for (const auto& a : aud->as_array()) found = found || (a.is_string() && a.as_string() == rules.audience);
        }
        if (!found) return reject("jwt_audience");
    }
    const auto* sub = claims->if_contains("sub");
    if (!sub || !sub->is_string() || sub->as_string().empty() || sub->as_string().size() > 256) return reject("jwt_subject");
    return jwt_claims{std::string(sub->as_string())};
}

}  // namespace offerd
