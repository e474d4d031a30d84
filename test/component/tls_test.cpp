// TLS over real listeners: HTTPS served and verified, plain HTTP to a TLS port, https upstreams
// trusted through --upstream-ca, and what an untrusted certificate does to an offer.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "offerd/net/http_client.hpp"
#include "offerd/net/tls.hpp"
#include "offerd/net/url.hpp"
#include "offerd/store/history_store.hpp"
#include "test_support.hpp"
#include "tls_support.hpp"

using namespace offerd;
using namespace offerd::test;

namespace {

constexpr std::uint8_t services = static_cast<std::uint8_t>(role::member_data) | static_cast<std::uint8_t>(role::prediction) |
                                  static_cast<std::uint8_t>(role::offer_engine);

std::function<void(app_config&)> serving(const std::string& cert, const std::string& key) {
    return [cert, key](app_config& c) {
        c.security.tls_cert_file = cert;
        c.security.tls_key_file = key;
    };
}

// An orchestrator whose upstreams are the services' https listeners, by name, trusting ca.
std::function<void(app_config&)> orchestrating(test_app& svc, const std::string& ca) {
    const auto at = [&svc](role r) { return "https://localhost:" + std::to_string(svc.port(r)); };
    return [md = at(role::member_data), pr = at(role::prediction), oe = at(role::offer_engine), ca](app_config& c) {
        c.orchestrator.member_data_url = md;
        c.orchestrator.prediction_url = pr;
        c.orchestrator.offer_engine_url = oe;
        c.security.upstream_ca_file = ca;
        c.orchestrator.retry.max_attempts = 3;  // a certificate error must not be retried anyway
    };
}

}  // namespace

TEST_CASE("A TLS listener answers HTTPS verified against the test CA, by host name and by address", "[component]") {
    test_pki pki;
    test_app app(all_roles, serving(pki.cert(), pki.key()));
    const auto port = app.port(role::member_data);
    CHECK(app.rt().base_url(role::member_data) == "https://127.0.0.1:" + std::to_string(port));

    auto by_name = https_call("localhost", port, pki.ca(), http::verb::post, "/member_data", txn_body("TLS1"));
    INFO(by_name.error.detail);
    CHECK(by_name.status == 200);
    // A request larger than one TLS record (16 KiB) goes whole: a body padded with JSON whitespace.
    auto padded = https_call("127.0.0.1", port, pki.ca(), http::verb::post, "/member_data",
                             txn_body("TLS1", "2024-06-02T10:00:00Z") + std::string(20'000, ' '));
    INFO(padded.error.detail << padded.body);
    CHECK(padded.status == 200);
    auto by_address = https_call("127.0.0.1", port, pki.ca(), http::verb::get, "/member_data/TLS1");
    INFO(by_address.error.detail);
    REQUIRE(by_address.status == 200);
    CHECK(boost::json::parse(by_address.body).as_array().size() == 2);
    auto metrics = https_call("127.0.0.1", app.port(role::orchestrator), pki.ca(), http::verb::get, "/metrics");
    REQUIRE(metrics.status == 200);
    CHECK(metrics.body.find("offerd_tls_handshake_failures_total{listener=\"member-data\"} 0") != std::string::npos);
}

TEST_CASE("Answers larger than one TLS record arrive whole, keep-alive included", "[component]") {
    test_pki pki;
    const auto answer = [](const request& r) {
        std::string text(r.target() == "/health" ? 12 : 100'002, 'x');  // a JSON string
        text.front() = text.back() = '"';
        return json_response(http::status::ok, std::move(text));
    };
    fake_upstream big(answer, {}, 0, *make_server_tls_context(pki.cert(), pki.key()));
    REQUIRE(big.url().starts_with("https://"));
    auto op = [](url where) -> asio::awaitable<std::vector<std::size_t>> {
        http_client client(co_await asio::this_coro::executor, where, client_limits{});
        std::vector<std::size_t> sizes;
        for (const char* path : {"/member_data/a", "/health", "/member_data/b"}) {
            auto r = co_await client.send(http::verb::get, path, {}, call_options{});
            sizes.push_back(r ? r->body().size() : 0);
        }
        co_return sizes;
    };
    url u = *parse_url(big.url());
    u.tls_context = *make_client_tls_context(pki.ca());
    CHECK(run_bounded(op(u)) == std::vector<std::size_t>{100'002, 12, 100'002});
    CHECK(big.connections() == 1);
}

TEST_CASE("Plain HTTP sent to a TLS port is answered 400 and closed, and the listener serves the next TLS client", "[component]") {
    test_pki pki;
    test_app app(services, serving(pki.cert(), pki.key()));
    const auto port = app.port(role::prediction);
    for (int i = 0; i < 2; ++i) {
        const std::string answer = raw_exchange(port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        CHECK(answer.find("This port speaks HTTPS") != std::string::npos);
        CHECK(answer.find("Connection: close") != std::string::npos);
    }
    // Bytes that are not HTTP either: closed without an answer.
    CHECK(raw_exchange(port, "\x01\x02\x03\x04 not tls\r\n\r\n").empty());
    auto after = https_call("127.0.0.1", port, pki.ca(), http::verb::get, "/health");
    INFO(after.error.detail);
    CHECK(after.status == 200);
    // One warn line for the listener's first failure, the later ones at debug (not logged at info).
    const auto failures = app.events("tls_handshake_failed");
    REQUIRE(failures.size() == 1);
    CHECK(failures[0].at("level").as_string() == "warn");
    CHECK(failures[0].at("listener").as_string() == "prediction");
    CHECK(failures[0].at("error").as_string() == "plain HTTP request on a TLS port");
    auto metrics = https_call("127.0.0.1", port, pki.ca(), http::verb::get, "/metrics");
    CHECK(metrics.body.find("offerd_tls_handshake_failures_total{listener=\"prediction\"} 3") != std::string::npos);
}

TEST_CASE("A client that does not trust the listener's certificate fails at once with the verification error", "[component]") {
    test_pki pki;
    test_app app(services, serving(pki.cert(), pki.key()));
    auto untrusted = https_call("127.0.0.1", app.port(role::member_data), pki.other_ca(), http::verb::get, "/health");
    CHECK(untrusted.status == 0);
    CHECK(untrusted.error.code == errc::upstream_bad_response);
    CHECK(untrusted.error.detail.find("certificate rejected: unable to get local issuer certificate") != std::string::npos);
}

TEST_CASE("A certificate for another name is refused, by host name and by address", "[component]") {
    test_pki pki;
    test_app app(services, serving(pki.other_name_cert(), pki.other_name_key()));
    const auto port = app.port(role::member_data);
    auto by_name = https_call("localhost", port, pki.ca(), http::verb::get, "/health");
    CHECK(by_name.error.code == errc::upstream_bad_response);
    CHECK(by_name.error.detail.find("hostname mismatch") != std::string::npos);
    auto by_address = https_call("127.0.0.1", port, pki.ca(), http::verb::get, "/health");
    CHECK(by_address.error.code == errc::upstream_bad_response);
    CHECK(by_address.error.detail.find("IP address mismatch") != std::string::npos);
}

TEST_CASE("An orchestrator calls https upstreams verified with --upstream-ca and answers offers", "[component]") {
    test_pki pki;
    test_app svc(services, serving(pki.cert(), pki.key()));
    test_app orch(static_cast<std::uint8_t>(role::orchestrator), orchestrating(svc, pki.ca()));
    auto r = post(orch.port(role::orchestrator), "/member/offer", txn_body("TLS-UP1"));
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(boost::json::parse(r.body).at("memberId").as_string() == "TLS-UP1");
    REQUIRE(svc.rt().store());
    CHECK(svc.rt().store()->members() == 1);
    CHECK(orch.events("upstream_error").empty());
}

TEST_CASE("An upstream certificate from an untrusted CA fails the offer with 502 and one upstream_error line", "[component]") {
    test_pki pki;
    test_app svc(services, serving(pki.cert(), pki.key()));
    test_app orch(static_cast<std::uint8_t>(role::orchestrator), orchestrating(svc, pki.other_ca()));
    auto r = post(orch.port(role::orchestrator), "/member/offer", txn_body("TLS-UP2"));
    CHECK(r.status == 502);
    CHECK(r.body.find("certificate") == std::string::npos);  // the client is not told internals
    const auto errors = orch.events("upstream_error");
    REQUIRE(errors.size() == 1);  // not retried: the next attempt would be rejected alike
    CHECK(errors[0].at("upstream").as_string() == "member-data");
    CHECK(errors[0].at("outcome").as_string() == "upstream_bad_response");
    const std::string detail(errors[0].at("error").as_string());
    CHECK(detail.find("(tls handshake): certificate rejected: unable to get local issuer certificate (verified for 'localhost')") !=
          std::string::npos);
    CHECK(svc.rt().store()->members() == 0);
}

namespace {
// One call over a fresh connection trusting exactly the certificate in `pinned` (its name unchecked).
http_result pinned_call(std::uint16_t port, const std::string& pinned, http::verb method, const std::string& path,
                        const std::string& body = {}) {
    url u{"127.0.0.1", port, ""};
    u.tls = true;
    u.tls_context = *make_pinned_tls_context(pinned);
    return https_call(u, method, path, body);
}
}  // namespace

TEST_CASE("All roles in one TLS process call their own listeners over https, trusting exactly their certificate", "[component]") {
    test_pki pki;
    // The certificate names neither the bind address nor anything the orchestrator dials: the
    // calls to its own listeners pin the certificate instead of checking its name.
    test_app app(all_roles, serving(pki.other_name_cert(), pki.other_name_key()));
    auto r = pinned_call(app.port(role::orchestrator), pki.other_name_cert(), http::verb::post, "/member/offer", txn_body("TLS-ALL"));
    INFO(r.body << r.error.detail);
    CHECK(r.status == 200);
    CHECK(app.rt().store()->members() == 1);
    CHECK(app.events("upstream_error").empty());
}

TEST_CASE("The pinned context accepts only the certificate it was made from", "[component]") {
    test_pki pki;
    test_app app(services, serving(pki.cert(), pki.key()));
    const auto port = app.port(role::member_data);
    auto same = pinned_call(port, pki.cert(), http::verb::get, "/health");
    CHECK(same.status == 200);
    // Same CA, another certificate: refused (pinning is to the certificate, not its issuer).
    auto other = pinned_call(port, pki.other_name_cert(), http::verb::get, "/health");
    CHECK(other.status == 0);
    CHECK(other.error.code == errc::upstream_bad_response);
}

TEST_CASE("Server TLS files that cannot be used are one line naming the file and why", "[component]") {
    test_pki pki;
    auto missing = make_server_tls_context(pki.dir() + "/nope.pem", pki.key());
    REQUIRE_FALSE(missing);
    CHECK(missing.error().detail == "TLS certificate '" + pki.dir() + "/nope.pem' cannot be used: No such file or directory");
    auto wrong_key = make_server_tls_context(pki.cert(), pki.other_name_key());
    REQUIRE_FALSE(wrong_key);
    CHECK(wrong_key.error().detail == "TLS key '" + pki.other_name_key() + "' cannot be used: it is not the key of that certificate");
    auto not_pem = make_server_tls_context(pki.dir() + "/server.ext", pki.key());
    REQUIRE_FALSE(not_pem);
    CHECK(not_pem.error().detail.find("cannot be used: not a PEM certificate") != std::string::npos);
    auto ca = make_client_tls_context(pki.key());
    REQUIRE_FALSE(ca);
    CHECK(ca.error().detail.find("CA file '" + pki.key() + "' cannot be used: not PEM certificates") != std::string::npos);
}

TEST_CASE("An https URL to a server that speaks plain HTTP fails at once as a bad response, not a timeout", "[component]") {
    fake_upstream plain([](const request&) { return json_response(http::status::ok, "{}"); });
    url u = *parse_url("https://127.0.0.1:" + std::to_string(plain.port()));
    u.tls_context = *make_client_tls_context({});
    auto r = https_call(u, http::verb::get, "/health", {}, std::chrono::seconds(30));
    CHECK(r.status == 0);
    CHECK(r.error.code == errc::upstream_bad_response);
    CHECK(r.error.detail.find("(tls handshake) failed") != std::string::npos);
}
