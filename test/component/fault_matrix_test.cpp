// The fault-injection matrix: for each upstream misbehaviour, the orchestrator's status, a
// latency bound, and the outcome it logged.
#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
constexpr std::uint8_t without(role r) { return all_roles & ~static_cast<std::uint8_t>(r); }

// The outcomes of the upstream_error events logged for `service`.
std::vector<std::string> outcomes(test_app& app, std::string_view service) {
    std::vector<std::string> out;
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") == "upstream_error" && v.at("upstream") == json::string_view(service.data(), service.size()))
            out.emplace_back(v.at("outcome").as_string());
    }
    return out;
}

void short_timeouts(app_config& c) {
    c.orchestrator.upstream.timeout = std::chrono::milliseconds(300);
    c.orchestrator.request_deadline = std::chrono::milliseconds(1500);
}
}  // namespace

TEST_CASE("an upstream that trickles its answer times out: 504 within the deadline, logged as a timeout", "[component]") {
    raw_peer md(raw_peer::mode::trickle);
    test_app app(without(role::member_data), [&](app_config& c) {
        short_timeouts(c);
        c.orchestrator.member_data_url = md.url();
    });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("T1"));
    CHECK(res.status == 504);
    CHECK(res.elapsed < std::chrono::milliseconds(2500));
    const auto seen = outcomes(app, "member-data");
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.front() == "upstream_timeout");
}

TEST_CASE("an upstream that resets mid-response gives 504 after retries, logged as unavailable", "[component]") {
    raw_peer md(raw_peer::mode::reset_mid_response);
    test_app app(without(role::member_data), [&](app_config& c) {
        // A per-call timeout no sanitizer build's slowness can reach: the resets, not a timeout, end each attempt.
        c.orchestrator.upstream.timeout = std::chrono::milliseconds(1000);
        c.orchestrator.request_deadline = std::chrono::milliseconds(4000);
        c.orchestrator.member_data_url = md.url();
    });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("T2"));
    CHECK(res.status == 504);
    CHECK(res.elapsed < std::chrono::milliseconds(1500));
    const auto seen = outcomes(app, "member-data");
    CHECK(seen.size() == 3);  // every attempt
    for (const auto& o : seen) CHECK(o == "upstream_unavailable");
}

TEST_CASE("a NaN prediction gives 502, logged as a bad response, and nothing is persisted", "[component]") {
    fake_upstream pred([](const request&) { return json_response(http::status::ok, R"({"prediction": NaN})"); });
    test_app app(without(role::prediction), [&](app_config& c) { c.orchestrator.prediction_url = pred.url(); });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("T3"));
    CHECK(res.status == 502);
    CHECK(res.elapsed < std::chrono::milliseconds(1000));
    const auto seen = outcomes(app, "prediction");
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.front() == "upstream_bad_response");
    CHECK(get(app.port(role::member_data), "/member_data/T3").status == 404);
}

TEST_CASE("a history body over the response limit gives 502 at once, logged as a bad response", "[component]") {
    const std::string huge = "[" + std::string(2 * 1024 * 1024, ' ') + "]";
    fake_upstream md([&](const request&) { return json_response(http::status::ok, huge); });
    test_app app(without(role::member_data), [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.upstream.max_response_bytes = 1024 * 1024;
    });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("T4"));
    CHECK(res.status == 502);
    CHECK(res.elapsed < std::chrono::milliseconds(2000));
    const auto seen = outcomes(app, "member-data");
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.front() == "upstream_bad_response");
}

TEST_CASE("429 then 200 from offer-engine is retried to success", "[component]") {
    std::atomic<int> calls{0};
    fake_upstream oe([&](const request&) {
        return ++calls == 1 ? detail_response(http::status::too_many_requests, "slow down")
                            : json_response(http::status::ok, R"({"offer":"35% Bonus"})");
    });
    test_app app(without(role::offer_engine), [&](app_config& c) { c.orchestrator.offer_engine_url = oe.url(); });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("T5"));
    CHECK(res.status == 200);
    CHECK(calls == 2);
    CHECK(outcomes(app, "offer-engine") == std::vector<std::string>{"upstream_bad_status"});
}

TEST_CASE("503 on every attempt gives 502 after exactly max-attempts calls", "[component]") {
    std::atomic<int> calls{0};
    fake_upstream oe([&](const request&) {
        ++calls;
        return detail_response(http::status::service_unavailable, "down");
    });
    test_app app(without(role::offer_engine), [&](app_config& c) { c.orchestrator.offer_engine_url = oe.url(); });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("T6"));
    CHECK(res.status == 502);
    CHECK(calls == 3);
    CHECK(res.elapsed < std::chrono::milliseconds(1000));
}
