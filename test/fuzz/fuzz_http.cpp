// libFuzzer target: HTTP request handling as a listener does it: Beast's parser with the
// listener's limits, then the member-data, prediction and offer-engine route tables, and the
// Authorization header through Bearer parsing, the API-key lookup and JWT verification against
// an HS256 secret, an ES256 and an RS256 public key.
// Invariants: no crash, no 500 (handlers answer bad input with 4xx), no forged credential accepted.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstdint>
#include <cstdlib>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "offerd/security/api_keys.hpp"
#include "offerd/security/jwt.hpp"
#include "offerd/store/memory_history_store.hpp"
#include "offerd/services/services.hpp"

using namespace offerd;

namespace {
// The public half of a fresh key pair (the fuzzer never has the private half) as a JWT key.
jwt_key public_key(EVP_PKEY* pair) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pair);
    char* pem = nullptr;
    const long n = BIO_get_mem_data(bio, &pem);
    auto key = jwt_key::from_pem(std::string_view(pem, static_cast<std::size_t>(n)));
    BIO_free(bio);
    EVP_PKEY_free(pair);
    if (!key) std::abort();
    return std::move(key).value();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto routers = [] {
        std::vector<std::shared_ptr<router>> r{make_member_data_router(std::make_shared<memory_history_store>()),
                                               make_prediction_router(), make_offer_engine_router()};
        return r;
    }();
    http::request_parser<http::string_body> parser;
    parser.header_limit(8 * 1024);
    parser.body_limit(64 * 1024);
    parser.eager(true);
    beast::error_code ec;
    parser.put(asio::buffer(data, size), ec);
    if (ec || !parser.is_done()) return 0;
    const request req = parser.release();
    if (const auto auth = req.find(http::field::authorization); auth != req.end()) {
        static const key_set keys = *parse_key_file("fuzz:" + to_hex(sha256("fuzz-key-0123456789")) + ":5/s:10\n");
        static const jwt_key secret = *jwt_key::from_secret(std::string(32, 'k'));
        static const jwt_key es256 = public_key(EVP_EC_gen("P-256"));
        static const jwt_key rs256 = public_key(EVP_RSA_gen(2048));
        static const jwt_rules rules{"iss", "aud", std::chrono::milliseconds(1000)};
        if (const auto token = parse_bearer(auth->value())) {
            const api_client* c = keys.find(*token);
            if (c && *token != "fuzz-key-0123456789") std::abort();
            // A token the fuzzer made is accepted only if it was signed with the secret: it never learns it.
            // So is one for the ES256 and RS256 keys, whatever its header claims (none, HS256 over the PEM).
            for (const jwt_key* k : {&secret, &es256, &rs256})
                if (verify_jwt(*token, *k, rules, std::chrono::system_clock::now())) std::abort();
        }
    }
    asio::io_context ctx;
    for (const auto& r : routers) {
        request_context rc{req, {}, "fuzz", {}, {}};
        auto fut = asio::co_spawn(ctx, r->dispatch(rc), asio::use_future);
        ctx.restart();
        ctx.run();
        if (fut.get().result_int() >= 500) std::abort();
    }
    return 0;
}
