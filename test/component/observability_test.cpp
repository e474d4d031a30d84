// /metrics, /ready and trace context over real listeners.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
// The value of the first sample whose line starts with `prefix`, or -1.
double sample(const std::string& text, const std::string& prefix) {
    std::size_t at = 0;
    while ((at = text.find(prefix, at)) != std::string::npos) {
        if (at == 0 || text[at - 1] == '\n') {
            const auto eol = text.find('\n', at);
            const auto line = text.substr(at, eol - at);
            return std::stod(line.substr(line.rfind(' ') + 1));
        }
        at += prefix.size();
    }
    return -1;
}
}  // namespace

TEST_CASE("every listener serves Prometheus metrics and the counters move with requests", "[component]") {
    test_app app(all_roles);
    const auto orch = app.port(role::orchestrator);
    const std::string ok_line = R"(offerd_http_requests_total{listener="orchestrator",method="POST",route="/member/offer",status="200"})";
    REQUIRE(post(orch, "/member/offer", txn_body("OBS1")).status == 200);
    auto first = get(app.port(role::prediction), "/metrics");
    REQUIRE(first.status == 200);
    CHECK(first.headers["Content-Type"].starts_with("text/plain"));
    CHECK(sample(first.body, ok_line) == 1);
    CHECK(sample(first.body, R"(offerd_offers_total{offer="35% Bonus"})") == 1);
    CHECK(sample(first.body, R"(offerd_pipeline_step_seconds_count{step="total"})") == 1);
    CHECK(sample(first.body, R"(offerd_upstream_call_seconds_count{service="prediction",outcome="ok"})") == 2);
    CHECK(sample(first.body, "offerd_member_data_transactions") == 1);
    CHECK(first.body.find("offerd_build_info{version=") != std::string::npos);
    REQUIRE(post(orch, "/member/offer", "not json").status == 400);
    REQUIRE(post(orch, "/member/offer", txn_body("OBS1")).status == 200);
    auto second = get(app.port(role::member_data), "/metrics");
    CHECK(sample(second.body, ok_line) == 2);
    CHECK(sample(second.body, R"(offerd_http_requests_total{listener="orchestrator",method="POST",route="/member/offer",status="400"})") == 1);
    CHECK(sample(second.body, R"(offerd_upstream_connections{service="member-data",state="idle"})") >= 1);
}

TEST_CASE("a valid traceparent's trace id is propagated upstream and logged", "[component]") {
    fake_upstream md([](const request& r) {
        return r.method() == http::verb::get ? detail_response(http::status::not_found, "Member not found")
                                             : json_response(http::status::ok, "{}");
    });
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    REQUIRE(post(app.port(role::orchestrator), "/member/offer", txn_body("OBS2"), {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}}).status == 200);
    for (const auto& r : md.requests()) {
        const std::string tp(r["traceparent"]);
        CHECK(tp.substr(0, 36) == "00-" + trace + "-");
        CHECK(tp.substr(36, 16) != "00f067aa0ba902b7");  // a new span per call
    }
    bool logged = false;
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") == "offer") logged = v.at("trace_id") == json::string_view(trace);
    }
    CHECK(logged);
}

TEST_CASE("an invalid traceparent starts a new trace", "[component]") {
    CHECK(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").trace_id != std::string(32, '0'));
    CHECK(parse_traceparent("garbage").trace_id.size() == 32);
    CHECK(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").flags == "00");
}

TEST_CASE("ready answers 200 when every upstream is healthy and 503 naming the one that is down", "[component]") {
    const auto dead = closed_port();
    test_app healthy(all_roles, [](app_config& c) { c.ready_interval = std::chrono::milliseconds(50); });
    test_app degraded(all_roles & ~static_cast<std::uint8_t>(role::offer_engine), [&](app_config& c) {
        c.ready_interval = std::chrono::milliseconds(50);
        c.orchestrator.offer_engine_url = "http://127.0.0.1:" + std::to_string(dead);
    });
    // The first probe round runs at start; poll briefly for it (bounded).
    http_result ok;
    for (int i = 0; i < 100 && ok.status != 200; ++i) {
        ok = get(healthy.port(role::orchestrator), "/ready");
        if (ok.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(ok.status == 200);
    auto bad = get(degraded.port(role::orchestrator), "/ready");
    CHECK(bad.status == 503);
    CHECK(json::parse(bad.body).at("upstreams").at("offer-engine") == "down");
}
