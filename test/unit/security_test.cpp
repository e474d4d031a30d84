// Unit tests for the security layer: keys file, Bearer parsing, JWT verification, rate limits,
// the settings' checks.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "offerd/security/api_keys.hpp"
#include "offerd/security/authenticator.hpp"
#include "offerd/security/jwt.hpp"
#include "offerd/security/rate_limiter.hpp"
#include "offerd/security/security_config.hpp"
#include "security_support.hpp"

using namespace offerd;
using namespace offerd::test;
using namespace std::chrono_literals;

namespace {

const std::string secret = "0123456789abcdef0123456789abcdef-hs256";
const auto now = std::chrono::system_clock::now();
const long long t = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();

std::string claims(long long exp, const std::string& extra = {}) {
    return "{\"sub\":\"svc-a\",\"exp\":" + std::to_string(exp) + extra + "}";
}

const key_pair& rsa() {
    static const key_pair k = key_pair::rsa();
    return k;
}
const key_pair& ec() {
    static const key_pair k = key_pair::ec();
    return k;
}
jwt_key hs_key() { return *jwt_key::from_secret(secret); }
jwt_key rs_key() { return *jwt_key::from_pem(rsa().public_pem()); }
jwt_key es_key() { return *jwt_key::from_pem(ec().public_pem()); }

// The reason a token is refused, or "ok".
std::string verdict(const std::string& token, const jwt_key& key, jwt_rules rules = {}) {
    auto r = verify_jwt(token, key, rules, now);
    return r ? "ok" : r.error().detail;
}

const std::string hs_header = R"({"alg":"HS256","typ":"JWT"})";
const std::string rs_header = R"({"alg":"RS256","typ":"JWT"})";

}  // namespace

TEST_CASE("The keys file takes name:hash lines with comments, blank lines and per-client rates", "[unit]") {
    const std::string a = to_hex(sha256("alice-key-0123456789")), b = to_hex(sha256("bob-key-0123456789"));
    auto keys = parse_key_file("# clients\n\nalice:" + a + "\r\n  bob : " + b + " : 5/s : 10\n");
    REQUIRE(keys);
    CHECK(keys->size() == 2);
    const api_client* alice = keys->find("alice-key-0123456789");
    REQUIRE(alice);
    CHECK(alice->name == "alice");
    CHECK_FALSE(alice->limit);
    const api_client* bob = keys->find("bob-key-0123456789");
    REQUIRE(bob);
    REQUIRE(bob->limit);
    CHECK(bob->limit->per_second == 5);
    CHECK(bob->limit->burst == 10);
    CHECK(keys->find("carol-key-0123456789") == nullptr);
    CHECK(keys->find("") == nullptr);
}

TEST_CASE("A bad keys-file line is reported by number without its content", "[unit]") {
    const std::string h = to_hex(sha256("k"));
    for (const std::string& text : {"ok:" + h + "\nsecret-looking-junk", "ok:" + h + "\nbad name:" + h, "ok:" + h + "\nx:" + h.substr(1),
                                    "ok:" + h + "\nx:" + h + ":fast", "ok:" + h + "\nok:" + to_hex(sha256("j")),
                                    "ok:" + h + "\ny:" + h}) {
        auto keys = parse_key_file(text);
        REQUIRE_FALSE(keys);
        CHECK(keys.error().detail.starts_with("line 2: "));
        CHECK(keys.error().detail.find("junk") == std::string::npos);
        CHECK(keys.error().detail.find(h) == std::string::npos);
    }
}

TEST_CASE("hash-key lines are the name and the SHA-256 of the key", "[unit]") {
    CHECK(to_hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(*key_file_line("svc", "abcdefghijklmnop") == "svc:" + to_hex(sha256("abcdefghijklmnop")));
    CHECK_FALSE(key_file_line("svc", "short"));
    CHECK_FALSE(key_file_line("svc", "has spaces in the key"));
    CHECK_FALSE(key_file_line("no:colons", "abcdefghijklmnop"));
}

TEST_CASE("Bearer credentials are parsed strictly", "[unit]") {
    CHECK(parse_bearer("Bearer abc.DEF-_~+/==").value() == "abc.DEF-_~+/==");
    CHECK(parse_bearer("bearer   tok  ").value() == "tok");
    CHECK_FALSE(parse_bearer("Basic dXNlcjpwYXNz"));
    CHECK_FALSE(parse_bearer("Bearer"));
    CHECK_FALSE(parse_bearer("Bearer "));
    CHECK_FALSE(parse_bearer("Bearertok"));
    CHECK_FALSE(parse_bearer("Bearer two words"));
    CHECK_FALSE(parse_bearer("Bearer tok=en"));
    CHECK_FALSE(parse_bearer(std::string("Bearer a\0b", 10)));
}

TEST_CASE("base64url round-trips and rejects other alphabets", "[unit]") {
    for (const std::string s : {"", "f", "fo", "foo", "foob", "\xff\xfe\x00z"}) CHECK(*base64url_decode(base64url_encode(s)) == s);
    CHECK_FALSE(base64url_decode("ab+c"));
    CHECK_FALSE(base64url_decode("abc="));
    CHECK_FALSE(base64url_decode("a"));
    CHECK_FALSE(base64url_decode("Zh"));  // non-zero padding bits
}

TEST_CASE("A valid HS256, RS256 or ES256 token yields its subject", "[unit]") {
    auto r = verify_jwt(make_jwt(hs_header, claims(t + 60), nullptr, secret), hs_key(), {}, now);
    REQUIRE(r);
    CHECK(r->subject == "svc-a");
    CHECK(verdict(make_jwt(rs_header, claims(t + 60), &rsa()), rs_key()) == "ok");
    CHECK(verdict(make_jwt(R"({"alg":"ES256"})", claims(t + 60), &ec()), es_key()) == "ok");
}

TEST_CASE("An expired JWT is refused, within the leeway it is accepted", "[unit]") {
    const std::string token = make_jwt(hs_header, claims(t - 10), nullptr, secret);
    CHECK(verdict(token, hs_key()) == "jwt_expired");
    CHECK(verdict(token, hs_key(), {{}, {}, 30s}) == "ok");
    CHECK(verdict(make_jwt(hs_header, R"({"sub":"x"})", nullptr, secret), hs_key()) == "jwt_malformed");  // exp is required
}

TEST_CASE("A JWT that is not yet valid is refused", "[unit]") {
    const std::string token = make_jwt(hs_header, claims(t + 600, ",\"nbf\":" + std::to_string(t + 300)), nullptr, secret);
    CHECK(verdict(token, hs_key()) == "jwt_not_yet_valid");
    CHECK(verdict(token, hs_key(), {{}, {}, 10min}) == "ok");
}

TEST_CASE("A JWT from another issuer or for another audience is refused", "[unit]") {
    const jwt_rules rules{"https://idp.example", "offerd", 0ms};
    const auto with = [&](const std::string& extra) { return make_jwt(hs_header, claims(t + 60, extra), nullptr, secret); };
    CHECK(verdict(with(R"(,"iss":"https://idp.example","aud":"offerd")"), hs_key(), rules) == "ok");
    CHECK(verdict(with(R"(,"iss":"https://idp.example","aud":["other","offerd"])"), hs_key(), rules) == "ok");
    CHECK(verdict(with(R"(,"iss":"https://evil.example","aud":"offerd")"), hs_key(), rules) == "jwt_issuer");
    CHECK(verdict(with(R"(,"aud":"offerd")"), hs_key(), rules) == "jwt_issuer");
    CHECK(verdict(with(R"(,"iss":"https://idp.example","aud":"other")"), hs_key(), rules) == "jwt_audience");
    CHECK(verdict(with(R"(,"iss":"https://idp.example")"), hs_key(), rules) == "jwt_audience");
}

TEST_CASE("A JWT with a bad signature is refused", "[unit]") {
    std::string token = make_jwt(rs_header, claims(t + 60), &rsa());
    const std::string forged = make_jwt(rs_header, R"({"sub":"admin","exp":)" + std::to_string(t + 60) + "}", &rsa());
    // The forged claims with the genuine token's signature.
    const std::string spliced = forged.substr(0, forged.rfind('.')) + token.substr(token.rfind('.'));
    CHECK(verdict(spliced, rs_key()) == "jwt_signature");
    CHECK(verdict(make_jwt(hs_header, claims(t + 60), nullptr, secret + "x"), hs_key()) == "jwt_signature");
    CHECK(verdict(make_jwt(rs_header, claims(t + 60), &rsa()), *jwt_key::from_pem(key_pair::rsa().public_pem())) == "jwt_signature");
    CHECK(verdict(make_jwt(R"({"alg":"ES256"})", claims(t + 60), &ec()), *jwt_key::from_pem(key_pair::ec().public_pem())) == "jwt_signature");
}

TEST_CASE("alg none is refused whatever the key", "[unit]") {
    for (const jwt_key& k : {hs_key(), rs_key(), es_key()}) {
        CHECK(verdict(make_jwt(R"({"alg":"none"})", claims(t + 60), nullptr), k) == "jwt_alg");
        CHECK(verdict(make_jwt(R"({"alg":"none"})", claims(t + 60), nullptr) + "c2ln", k) == "jwt_alg");
        CHECK(verdict(make_jwt(R"({"typ":"JWT"})", claims(t + 60), nullptr), k) == "jwt_alg");
    }
}

TEST_CASE("HS/RS algorithm confusion is refused", "[unit]") {
    // The classic attack: HMAC with the RSA public key's PEM as the secret.
    const std::string pem = rsa().public_pem();
    CHECK(verdict(make_jwt(hs_header, claims(t + 60), nullptr, pem), rs_key()) == "jwt_alg");
    // And the other way round, and across the key types.
    CHECK(verdict(make_jwt(rs_header, claims(t + 60), &rsa()), hs_key()) == "jwt_alg");
    CHECK(verdict(make_jwt(R"({"alg":"ES256"})", claims(t + 60), &ec()), rs_key()) == "jwt_alg");
    CHECK(verdict(make_jwt(rs_header, claims(t + 60), &rsa()), es_key()) == "jwt_alg");
    CHECK(verdict(make_jwt(R"({"alg":"RS256","crit":["x"]})", claims(t + 60), &rsa()), rs_key()) == "jwt_alg");
}

TEST_CASE("Malformed tokens are refused without a crash", "[unit]") {
    for (const std::string token : {"", ".", "..", "a.b", "a.b.c.d", "!!.e30.c2ln", "e30.e30.c2ln", "W10.e30.c2ln"})
        CHECK(verdict(token, hs_key()) != "ok");
    CHECK(verdict(std::string(9000, 'a') + ".e30.c2ln", hs_key()) == "jwt_malformed");
    CHECK(verdict(make_jwt(hs_header, R"({"exp":)" + std::to_string(t + 60) + "}", nullptr, secret), hs_key()) == "jwt_subject");
}

TEST_CASE("A JWT key file is a public PEM or a long secret, never a private key or a short secret", "[unit]") {
    CHECK(jwt_key::from_pem(rsa().public_pem())->alg() == jwt_alg::rs256);
    CHECK(jwt_key::from_pem(ec().public_pem())->alg() == jwt_alg::es256);
    CHECK_FALSE(jwt_key::from_pem(rsa().private_pem()));
    CHECK_FALSE(jwt_key::from_secret("too short"));
    const std::string priv = write_temp_file("jwt-priv", rsa().private_pem());
    auto loaded = jwt_key::load(priv);
    REQUIRE_FALSE(loaded);
    CHECK(loaded.error().detail.find("PRIVATE") == std::string::npos);
    const std::string sec = write_temp_file("jwt-secret", secret + "\n");
    REQUIRE(jwt_key::load(sec));
    CHECK(verdict(make_jwt(hs_header, claims(t + 60), nullptr, secret), *jwt_key::load(sec)) == "ok");
    std::remove(priv.c_str());
    std::remove(sec.c_str());
}

TEST_CASE("The rate limiter allows exactly the burst, then one request per interval", "[unit]") {
    rate_limiter limiter;
    const rate_limit lim{2, 5};  // 2/s, burst 5
    const auto t0 = rate_limiter::clock::time_point{} + 1000s;
    for (std::uint32_t i = 0; i < 5; ++i) {
        const auto d = limiter.acquire("a", lim, t0);
        REQUIRE(d.allowed);
        CHECK(d.remaining == 4 - i);
        CHECK(d.limit == 5);
    }
    auto denied = limiter.acquire("a", lim, t0);
    CHECK_FALSE(denied.allowed);
    CHECK(denied.retry_after == 1s);
    CHECK(denied.reset == 3s);  // 2.5 s until full, rounded up
    CHECK(denied.window == 3s);
    CHECK_FALSE(limiter.acquire("a", lim, t0 + 499ms).allowed);
    CHECK(limiter.acquire("a", lim, t0 + 500ms).allowed);
    CHECK_FALSE(limiter.acquire("a", lim, t0 + 500ms).allowed);
    // After a long pause the bucket is full again, never fuller.
    int allowed = 0;
    for (int i = 0; i < 20; ++i) allowed += limiter.acquire("a", lim, t0 + 1h).allowed;
    CHECK(allowed == 5);
    // Clients are independent.
    CHECK(limiter.acquire("b", lim, t0).allowed);
}

TEST_CASE("The rate limit holds across threads", "[unit]") {
    rate_limiter limiter;
    const rate_limit lim{1, 100};
    const auto t0 = rate_limiter::clock::time_point{} + 1000s;
    std::atomic<int> allowed{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
            for (int j = 0; j < 100; ++j) allowed += limiter.acquire("shared", lim, t0).allowed;
        });
    for (auto& th : threads) th.join();
    CHECK(allowed == 100);
}

TEST_CASE("Without a rate every request is allowed, and the burst defaults to the rate", "[unit]") {
    rate_limiter limiter;
    const auto t0 = rate_limiter::clock::time_point{} + 1000s;
    for (int i = 0; i < 1000; ++i) REQUIRE(limiter.acquire("a", {}, t0).allowed);
    CHECK(effective_burst({10, 0}) == 10);
    CHECK(effective_burst({0.5, 0}) == 1);
    CHECK(effective_burst({0.5, 7}) == 7);
}

TEST_CASE("The rate limiter bounds its memory by dropping full buckets", "[unit]") {
    rate_limiter limiter(32);
    const auto t0 = rate_limiter::clock::time_point{} + 1000s;
    for (int i = 0; i < 10'000; ++i) limiter.acquire("c" + std::to_string(i), {1, 1}, t0 + std::chrono::seconds(i));
    // A client seen recently still has its (empty) bucket.
    CHECK_FALSE(limiter.acquire("c9999", {1, 1}, t0 + 9999s).allowed);
}

TEST_CASE("Rates parse as N/s", "[unit]") {
    CHECK(*parse_rate("50/s") == 50);
    CHECK(*parse_rate("0.5/s") == 0.5);
    CHECK(*parse_rate("7") == 7);
    for (const char* bad : {"", "/s", "0/s", "-1/s", "5/m", "x/s", "nan/s", "inf", "0.0001/s", "2000000/s"}) CHECK_FALSE(parse_rate(bad));
}

TEST_CASE("Only loopback addresses count as loopback", "[unit]") {
    for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1"}) CHECK(is_loopback_host(h));
    for (const char* h : {"0.0.0.0", "", "10.0.0.1", "127.0.0", "127.0.0.1.5", "128.0.0.1", "::", "example.com", "127.0.0.256"})
        CHECK_FALSE(is_loopback_host(h));
}

TEST_CASE("Security settings that cannot work are refused", "[unit]") {
    security_config c;
    CHECK(validate(c));
    c.rate = {10, 0};
    CHECK_FALSE(validate(c));  // a rate limit needs credentials
    c.api_keys_file = "keys";
    CHECK(validate(c));
    c.jwt_leeway = -1ms;
    CHECK_FALSE(validate(c));
    security_config s;
    s.service_auth = true;
    CHECK_FALSE(validate(s));
    s.service_api_keys_file = "service-keys";
    CHECK(validate(s));  // the services' own keys are credentials enough for them
    s.service_auth = false;
    CHECK_FALSE(validate(s));  // the services' keys without --service-auth would guard nothing
    security_config j;
    j.jwt_issuer = "x";
    CHECK_FALSE(validate(j));
}

TEST_CASE("A non-loopback bind without authentication is refused unless allowed explicitly", "[unit]") {
    security_config c;
    CHECK(unauthenticated_exposure(c, "127.0.0.1", true, true).empty());
    const std::string why = unauthenticated_exposure(c, "0.0.0.0", true, true);
    CHECK(why.find("the orchestrator and the services") != std::string::npos);
    CHECK(why.find("--insecure-allow-unauthenticated") != std::string::npos);
    c.api_keys_file = "keys";
    CHECK(unauthenticated_exposure(c, "0.0.0.0", true, false).empty());
    CHECK_FALSE(unauthenticated_exposure(c, "0.0.0.0", true, true).empty());  // services still open
    c.service_auth = true;
    CHECK(unauthenticated_exposure(c, "0.0.0.0", true, true).empty());
    security_config services_only;
    services_only.service_auth = true;
    services_only.service_api_keys_file = "service-keys";
    CHECK(unauthenticated_exposure(services_only, "0.0.0.0", false, true).empty());
    CHECK(unauthenticated_exposure(services_only, "0.0.0.0", true, true).find("the orchestrator would") != std::string::npos);
    security_config open;
    open.insecure_allow_unauthenticated = true;
    CHECK(unauthenticated_exposure(open, "0.0.0.0", true, true).empty());
}

TEST_CASE("A key revoked from the keys file is refused after a reload", "[unit]") {
    const std::string key_a = "key-a-0123456789abcdef", key_b = "key-b-0123456789abcdef";
    const std::string path = write_temp_file("keys", *key_file_line("a", key_a) + "\n" + *key_file_line("b", key_b) + ":3/s\n");
    security_config cfg;
    cfg.api_keys_file = path;
    cfg.rate = {100, 0};
    authenticator auth(cfg);
    auto who = auth.authenticate("Bearer " + key_a, now);
    REQUIRE(who.who);
    CHECK(who.who->client == "a");
    CHECK(who.who->limit.per_second == 100);
    CHECK(auth.authenticate("Bearer " + key_b, now).who->limit.per_second == 3);
    CHECK(auth.authenticate("", now).reason == "missing");
    CHECK(auth.authenticate("Basic abc", now).reason == "malformed");
    CHECK(auth.authenticate("Bearer wrong-key-0123456789", now).reason == "unknown_key");

    std::ofstream(path, std::ios::trunc) << *key_file_line("b", key_b) << "\n";
    CHECK(auth.authenticate("Bearer " + key_a, now).who);  // until the reload
    REQUIRE(*auth.reload_keys() == 1);
    CHECK(auth.authenticate("Bearer " + key_a, now).reason == "unknown_key");
    CHECK(auth.authenticate("Bearer " + key_b, now).who);

    std::ofstream(path, std::ios::trunc) << "garbage\n";
    CHECK_FALSE(auth.reload_keys());
    CHECK(auth.authenticate("Bearer " + key_b, now).who);  // a bad file keeps the keys in use
    std::remove(path.c_str());
}

TEST_CASE("The authenticator takes API keys and JWTs side by side", "[unit]") {
    const std::string keys = write_temp_file("keys", *key_file_line("k", "key-k-0123456789abcdef") + "\n");
    const std::string pem = write_temp_file("jwt", rsa().public_pem());
    security_config cfg;
    cfg.api_keys_file = keys;
    cfg.jwt_key_file = pem;
    cfg.jwt_audience = "offerd";
    authenticator auth(cfg);
    CHECK(auth.authenticate("Bearer key-k-0123456789abcdef", now).who->client == "k");
    CHECK(auth.authenticate("Bearer " + make_jwt(rs_header, claims(t + 60, R"(,"aud":"offerd")"), &rsa()), now).who->client == "svc-a");
    CHECK(auth.authenticate("Bearer " + make_jwt(rs_header, claims(t + 60), &rsa()), now).reason == "jwt_audience");
    std::remove(keys.c_str());
    std::remove(pem.c_str());
}
