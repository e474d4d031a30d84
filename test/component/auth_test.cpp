// Authentication, rate limits and upstream credentials over real listeners.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "offerd/security/api_keys.hpp"
#include "offerd/store/history_store.hpp"
#include "offerd/security/guard.hpp"
#include "security_support.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {

const std::string alice_key = "alice-0123456789abcdef-secret";
const std::string bob_key = "bob-0123456789abcdef-secret";
const std::string orchestrator_key = "orchestrator-0123456789abcdef";

std::map<std::string, std::string> bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

// A keys file that removes itself.
struct key_file {
    std::string path;
    explicit key_file(const std::string& text) : path(write_temp_file("keys", text)) {}
    ~key_file() { std::remove(path.c_str()); }
    void rewrite(const std::string& text) const { std::ofstream(path, std::ios::trunc) << text; }
};

std::string line(const std::string& name, const std::string& key) { return *key_file_line(name, key) + "\n"; }

http_result offer(std::uint16_t port, const std::map<std::string, std::string>& headers, const std::string& member = "AUTH1") {
    return post(port, "/member/offer", txn_body(member), headers);
}

void check_unauthorized(http_result r) {
    CHECK(r.status == 401);
    CHECK(r.headers["WWW-Authenticate"].starts_with("Bearer"));
    CHECK(json::parse(r.body).as_object().at("detail").as_string() == "Unauthorized: a valid Bearer credential is required");
}

}  // namespace

TEST_CASE("The orchestrator answers 401 without a key or with a wrong one, alike", "[component]") {
    const key_file keys(line("alice", alice_key));
    test_app app(all_roles, [&](app_config& c) { c.security.api_keys_file = keys.path; });
    const auto port = app.port(role::orchestrator);
    const auto none = offer(port, {});
    const auto wrong = offer(port, bearer("not-the-key-0123456789"));
    const auto basic = offer(port, {{"Authorization", "Basic YWxpY2U6eA=="}});
    check_unauthorized(none);
    check_unauthorized(wrong);
    check_unauthorized(basic);
    CHECK(none.body == wrong.body);
    CHECK(wrong.body == basic.body);
    CHECK(get(port, "/health").status == 200);
    // The services stay open without --service-auth.
    CHECK(get(app.port(role::member_data), "/member_data/AUTH1").status != 401);
}

TEST_CASE("A good key is served and its client counted by name, the key never shown", "[component]") {
    const key_file keys(line("alice", alice_key) + line("bob", bob_key));
    test_app app(all_roles, [&](app_config& c) { c.security.api_keys_file = keys.path; });
    const auto port = app.port(role::orchestrator);
    REQUIRE(offer(port, bearer(alice_key)).status == 200);
    REQUIRE(offer(port, bearer(bob_key), "AUTH2").status == 200);
    REQUIRE(offer(port, bearer("wrong-0123456789abcdef")).status == 401);
    const auto metrics = get(port, "/metrics");  // open on loopback by default
    REQUIRE(metrics.status == 200);
    CHECK(metrics.body.find(R"(offerd_client_requests_total{client="alice",outcome="allowed"} 1)") != std::string::npos);
    CHECK(metrics.body.find(R"(offerd_client_requests_total{client="bob",outcome="allowed"} 1)") != std::string::npos);
    CHECK(metrics.body.find(R"(offerd_auth_rejected_total{listener="orchestrator",reason="unknown_key"} 1)") != std::string::npos);
    for (const std::string& text : app.log_lines()) {
        CHECK(text.find(alice_key) == std::string::npos);
        CHECK(text.find("wrong-0123456789abcdef") == std::string::npos);
    }
    CHECK(metrics.body.find(alice_key) == std::string::npos);
    std::vector<std::string> clients;
    for (const auto& e : app.events("offer")) clients.emplace_back(e.at("client").as_string());
    CHECK(clients == std::vector<std::string>{"alice", "bob"});  // the name in the offer event, never the key
    // A refused body and a replay name their sender too.
    REQUIRE(post(port, "/member/offer", "{", bearer(bob_key)).status == 400);
    auto keyed = bearer(alice_key);
    keyed["Idempotency-Key"] = "auth-replay-1";
    REQUIRE(post(port, "/member/offer", txn_body("AUTH3"), keyed).status == 200);
    REQUIRE(post(port, "/member/offer", txn_body("AUTH3"), keyed).headers["Idempotent-Replayed"] == "true");
    const auto rejected = app.events("rejected");
    REQUIRE(rejected.size() == 1);
    CHECK(rejected[0].at("client") == "bob");
    const auto replayed = app.events("offer_replayed");
    REQUIRE(replayed.size() == 1);
    CHECK(replayed[0].at("client") == "alice");
}

TEST_CASE("The guard records the authenticated client's name for the handler", "[component]") {
    const key_file keys(line("alice", alice_key));
    security_config cfg;
    cfg.api_keys_file = keys.path;
    const security_gate gate(cfg, "127.0.0.1", true, false);
    router r;
    r.add(http::verb::get, "/whoami", [](request_context& ctx) -> asio::awaitable<response> {
        co_return json_response(http::status::ok, "\"" + ctx.client + "\"");
    });
    gate.protect(r, "orchestrator", true);
    const auto call = [&](const std::string& auth) {
        request req{http::verb::get, "/whoami", 11};
        if (!auth.empty()) req.set(http::field::authorization, auth);
        return run_bounded([&]() -> asio::awaitable<std::pair<unsigned, std::string>> {
            request_context ctx{req, {}, "id", {}, {}};
            response res = co_await r.dispatch(ctx);
            co_return std::pair{res.result_int(), res.body()};
        }());
    };
    CHECK(call("Bearer " + alice_key) == std::pair<unsigned, std::string>{200, "\"alice\""});
    CHECK(call("").first == 401);
}

TEST_CASE("A key revoked from the keys file is refused after the reload", "[component]") {
    const key_file keys(line("alice", alice_key) + line("bob", bob_key));
    test_app app(all_roles, [&](app_config& c) { c.security.api_keys_file = keys.path; });
    const auto port = app.port(role::orchestrator);
    REQUIRE(offer(port, bearer(alice_key)).status == 200);
    keys.rewrite(line("bob", bob_key));
    CHECK(offer(port, bearer(alice_key), "AUTH3").status == 200);  // not yet reloaded
    REQUIRE(app.rt().reload_keys());
    check_unauthorized(offer(port, bearer(alice_key), "AUTH4"));
    CHECK(offer(port, bearer(bob_key), "AUTH5").status == 200);
    keys.rewrite("not a keys file\n");
    CHECK_FALSE(app.rt().reload_keys());
    CHECK(offer(port, bearer(bob_key), "AUTH6").status == 200);  // a bad file keeps the keys in use
}

TEST_CASE("A signed JWT is served, and an expired one gets the same 401 as a wrong key", "[component]") {
    const key_pair rsa = key_pair::rsa();
    const std::string pem = write_temp_file("jwt", rsa.public_pem());
    test_app app(all_roles, [&](app_config& c) {
        c.security.jwt_key_file = pem;
        c.security.jwt_issuer = "https://idp.test";
        c.security.jwt_audience = "offerd";
        c.security.jwt_leeway = std::chrono::milliseconds(0);
    });
    const auto port = app.port(role::orchestrator);
    const auto token = [&](long long exp) {
        return make_jwt(R"({"alg":"RS256","typ":"JWT"})",
                        R"({"sub":"partner-7","iss":"https://idp.test","aud":"offerd","exp":)" + std::to_string(exp) + "}", &rsa);
    };
    REQUIRE(offer(port, bearer(token(unix_now() + 300))).status == 200);
    check_unauthorized(offer(port, bearer(token(unix_now() - 300)), "AUTH7"));
    check_unauthorized(offer(port, bearer(make_jwt(R"({"alg":"none"})", R"({"sub":"x","exp":9999999999})", nullptr)), "AUTH8"));
    const auto metrics = get(port, "/metrics");
    CHECK(metrics.body.find(R"(client="partner-7",outcome="allowed"} 1)") != std::string::npos);
    CHECK(metrics.body.find(R"(reason="jwt_expired"} 1)") != std::string::npos);
    CHECK(metrics.body.find(R"(reason="jwt_alg"} 1)") != std::string::npos);
    std::remove(pem.c_str());
}

TEST_CASE("Beyond its burst a client gets 429 with Retry-After and RateLimit headers, other clients do not", "[component]") {
    // 0.01/s: no token comes back while the test runs.
    const key_file keys(line("alice", alice_key) + *key_file_line("bob", bob_key) + ":0.01/s:1\n");
    test_app app(all_roles, [&](app_config& c) {
        c.security.api_keys_file = keys.path;
        c.security.rate = {0.01, 3};
    });
    const auto port = app.port(role::orchestrator);
    for (int i = 0; i < 3; ++i) REQUIRE(offer(port, bearer(alice_key), "RL" + std::to_string(i)).status == 200);
    auto limited = offer(port, bearer(alice_key), "RL9");
    CHECK(limited.status == 429);
    CHECK(std::stoi(limited.headers["Retry-After"]) >= 1);
    CHECK(limited.headers["RateLimit-Policy"] == "\"default\";q=3;w=300");
    CHECK(limited.headers["RateLimit"].starts_with("\"default\";r=0;t="));
    CHECK(json::parse(limited.body).as_object().contains("detail"));
    // bob's own override: a burst of 1.
    CHECK(offer(port, bearer(bob_key), "RLB").status == 200);
    CHECK(offer(port, bearer(bob_key), "RLB").status == 429);
    const auto metrics = get(port, "/metrics");
    CHECK(metrics.body.find(R"(offerd_client_requests_total{client="alice",outcome="rate_limited"} 1)") != std::string::npos);
    CHECK(metrics.body.find(R"(offerd_client_requests_total{client="alice",outcome="allowed"} 3)") != std::string::npos);
    CHECK(metrics.body.find(R"(listener="orchestrator",method="POST",route="/member/offer",status="429"} 2)") != std::string::npos);
}

TEST_CASE("With --service-auth the services require a key and the orchestrator sends its own", "[component]") {
    const key_file keys(line("alice", alice_key) + line("orchestrator", orchestrator_key));
    const std::string own = write_temp_file("upstream-key", orchestrator_key + "\n");
    test_app app(all_roles, [&](app_config& c) {
        c.security.api_keys_file = keys.path;
        c.security.service_auth = true;
        c.security.member_data_key_file = c.security.prediction_key_file = c.security.offer_engine_key_file = own;
    });
    REQUIRE(offer(app.port(role::orchestrator), bearer(alice_key)).status == 200);
    check_unauthorized(get(app.port(role::member_data), "/member_data/AUTH1"));
    check_unauthorized(post(app.port(role::prediction), "/ml/ats/predict", "{}"));
    CHECK(http_call(app.port(role::member_data), http::verb::get, "/member_data/AUTH1", {}, bearer(alice_key)).status == 200);
    CHECK(get(app.port(role::member_data), "/health").status == 200);
    const auto metrics = get(app.port(role::orchestrator), "/metrics");
    // At least the history fetch, both predictions and the offer.
    CHECK(metric_sample(metrics.body, R"(offerd_client_requests_total{client="orchestrator",outcome="allowed"})") >= 4);
    std::remove(own.c_str());
}

TEST_CASE("With --service-api-keys only the orchestrators' keys open the services, unthrottled by --rate-limit", "[component]") {
    const key_file clients(line("alice", alice_key));
    const key_file services(line("orchestrator", orchestrator_key));
    const std::string own = write_temp_file("upstream-key", orchestrator_key + "\n");
    test_app app(all_roles, [&](app_config& c) {
        c.security.api_keys_file = clients.path;
        c.security.service_api_keys_file = services.path;
        c.security.service_auth = true;
        c.security.rate = {1, 2};  // alice: a burst of 2; the orchestrator's own calls are not counted against it
        c.security.member_data_key_file = c.security.prediction_key_file = c.security.offer_engine_key_file = own;
    });
    const auto port = app.port(role::orchestrator);
    CHECK(offer(port, bearer(alice_key), "SVC1").status == 200);
    CHECK(offer(port, bearer(alice_key), "SVC2").status == 200);  // each made 4+ service calls
    check_unauthorized(http_call(app.port(role::member_data), http::verb::get, "/member_data/SVC1", {}, bearer(alice_key)));
    check_unauthorized(offer(port, bearer(orchestrator_key), "SVC3"));  // a service key is no client key
    CHECK(http_call(app.port(role::member_data), http::verb::get, "/member_data/SVC1", {}, bearer(orchestrator_key)).status == 200);
    const auto metrics = get(port, "/metrics");
    CHECK(metric_sample(metrics.body, R"(offerd_client_requests_total{client="orchestrator",outcome="allowed"})") >= 9);
    CHECK(metric_sample(metrics.body, R"(offerd_client_requests_total{client="orchestrator",outcome="rate_limited"})") == 0);
    std::remove(own.c_str());
}

TEST_CASE("With --service-auth in one process and no key files the orchestrator calls its services with a key of its own", "[component]") {
    const key_file clients(line("alice", alice_key));
    const key_file services(line("orchestrator", orchestrator_key));
    test_app app(all_roles, [&](app_config& c) {
        c.security.api_keys_file = clients.path;
        c.security.service_api_keys_file = services.path;
        c.security.service_auth = true;
    });
    CHECK(offer(app.port(role::orchestrator), bearer(alice_key), "SELF1").status == 200);
    check_unauthorized(get(app.port(role::member_data), "/member_data/SELF1"));  // the services stay guarded
    const auto metrics = get(app.port(role::orchestrator), "/metrics");
    CHECK(metric_sample(metrics.body, R"(offerd_client_requests_total{client="orchestrator.self",outcome="allowed"})") >= 4);
    CHECK(app.rt().store()->history("SELF1").size() == 1);
}

TEST_CASE("The orchestrator's upstream calls carry the configured Bearer key", "[component]") {
    fake_upstream member_data([](const request&) { return json_response(http::status::not_found, R"({"detail":"no history"})"); });
    const std::string own = write_temp_file("upstream-key", orchestrator_key + "\n");
    test_app app(static_cast<std::uint8_t>(role::orchestrator) | static_cast<std::uint8_t>(role::prediction) |
                     static_cast<std::uint8_t>(role::offer_engine),
                 [&](app_config& c) {
                     c.orchestrator.member_data_url = member_data.url();
                     c.security.member_data_key_file = own;
                 });
    offer(app.port(role::orchestrator), {});
    REQUIRE(member_data.request_count() >= 1);
    CHECK(member_data.requests().front()[http::field::authorization] == "Bearer " + orchestrator_key);
    std::remove(own.c_str());
}

TEST_CASE("Metrics auth on protects /metrics and /ready on loopback too", "[component]") {
    const key_file keys(line("alice", alice_key));
    test_app app(all_roles, [&](app_config& c) {
        c.security.api_keys_file = keys.path;
        c.security.metrics = metrics_auth::on;
    });
    const auto port = app.port(role::orchestrator);
    check_unauthorized(get(port, "/metrics"));
    check_unauthorized(get(port, "/ready"));
    check_unauthorized(get(app.port(role::prediction), "/metrics"));
    CHECK(http_call(port, http::verb::get, "/metrics", {}, bearer(alice_key)).status == 200);
    CHECK(get(port, "/health").status == 200);
}

TEST_CASE("On a non-loopback bind /metrics and /ready need a credential by default (--metrics-auth auto)", "[component]") {
    const key_file keys(line("alice", alice_key) + line("orchestrator", orchestrator_key));
    const std::string own = write_temp_file("upstream-key", orchestrator_key + "\n");
    test_app app(all_roles, [&](app_config& c) {
        c.host = "0.0.0.0";  // every interface; the test calls it on 127.0.0.1
        c.security.api_keys_file = keys.path;
        c.security.service_auth = true;
        c.security.member_data_key_file = c.security.prediction_key_file = c.security.offer_engine_key_file = own;
    });
    check_unauthorized(get(app.port(role::orchestrator), "/ready"));
    for (role r : {role::orchestrator, role::member_data}) {
        check_unauthorized(get(app.port(r), "/metrics"));
        CHECK(http_call(app.port(r), http::verb::get, "/metrics", {}, bearer(alice_key)).status == 200);
        CHECK(get(app.port(r), "/health").status == 200);
    }
    CHECK(offer(app.port(role::orchestrator), bearer(alice_key)).status == 200);
    std::remove(own.c_str());
}

TEST_CASE("The rate limit holds across the server's worker threads", "[component]") {
    const key_file keys(line("alice", alice_key));
    test_app app(all_roles, [&](app_config& c) {
        c.threads = 4;
        c.security.api_keys_file = keys.path;
        c.security.rate = {1, 10};  // a burst of 10, then one a second
    });
    const auto port = app.port(role::orchestrator);
    std::atomic<int> allowed{0}, limited{0}, other{0};
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> callers;
    for (int t = 0; t < 8; ++t)
        callers.emplace_back([&] {
            for (int i = 0; i < 5; ++i) {
                // An invalid body: the guard admits or refuses it before the handler answers 400.
                const unsigned status = post(port, "/member/offer", "{", bearer(alice_key)).status;
                (status == 400 ? allowed : status == 429 ? limited : other).fetch_add(1);
            }
        });
    for (auto& c : callers) c.join();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started).count();
    CHECK(other.load() == 0);
    CHECK(allowed.load() >= 10);
    CHECK(allowed.load() <= 10 + seconds + 1);  // the burst plus what refilled meanwhile: not 4 workers' worth
    CHECK(allowed.load() + limited.load() == 40);
}

TEST_CASE("A runtime that would answer anyone on a non-loopback address refuses to start", "[component]") {
    app_config cfg;
    cfg.host = "0.0.0.0";
    cfg.orchestrator_port = cfg.member_data_port = cfg.prediction_port = cfg.offer_engine_port = 0;
    logger log(log_config{{}, log_level::off});
    CHECK_THROWS_WITH(runtime(cfg, log), Catch::Contains("--insecure-allow-unauthenticated"));
    const key_file keys(line("alice", alice_key));
    cfg.security.api_keys_file = keys.path;
    CHECK_THROWS_WITH(runtime(cfg, log), Catch::Contains("the services"));
}
