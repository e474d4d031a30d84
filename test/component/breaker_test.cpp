// The circuit breaker end to end: poison requests fail alone, a refusing upstream opens and recovers.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
constexpr std::uint8_t all_but_prediction = all_roles & ~static_cast<std::uint8_t>(role::prediction);
constexpr double poison_revenue = 666;  // the fake prediction answers 500 to features carrying it

// A prediction service with a bug for one input: 500 when the features carry poison_revenue.
response poisoned_prediction(const request& r) {
    const auto features = json::parse(r.body());
    if (features.at("AVG_REVENUE_USD").to_number<double>() == poison_revenue)
        return detail_response(http::status::internal_server_error, "model crashed on this input");
    return json_response(http::status::ok, R"({"prediction":1})");
}

// member("H", i) trips a g++ 12 -Wstringop-overflow false positive.
std::string member(const char* prefix, int i) {
    std::string m(prefix);
    m += std::to_string(i);
    return m;
}

unsigned offer(std::uint16_t port, const std::string& member, double revenue = 20) {
    return post(port, "/member/offer", txn_body(member, "2024-06-01T10:00:00Z", "BUY", 100, revenue)).status;
}
}  // namespace

TEST_CASE("a poison member in a tenth of the requests fails only its own requests", "[component]") {
    fake_upstream pred(poisoned_prediction);
    test_app app(all_but_prediction, [&](app_config& c) { c.orchestrator.prediction_url = pred.url(); });
    const auto port = app.port(role::orchestrator);
    int healthy_failed = 0, poison_502 = 0;
    for (int i = 0; i < 200; ++i) {
        if (i % 10 == 0) poison_502 += offer(port, "POISON", poison_revenue) == 502 ? 1 : 0;
        else healthy_failed += offer(port, member("H", i)) == 200 ? 0 : 1;
    }
    CHECK(healthy_failed == 0);
    CHECK(poison_502 == 20);
    CHECK(app.events("circuit_state").empty());
}

TEST_CASE("a burst of ten concurrent poison requests does not fail the healthy requests around it", "[component]") {
    fake_upstream pred(poisoned_prediction);
    test_app app(all_but_prediction, [&](app_config& c) { c.orchestrator.prediction_url = pred.url(); });
    const auto port = app.port(role::orchestrator);
    std::atomic<int> poison_502{0}, healthy_failed{0};
    std::vector<std::thread> burst;
    for (int i = 0; i < 10; ++i)
        burst.emplace_back([&, i] { poison_502 += offer(port, member("P", i), poison_revenue) == 502 ? 1 : 0; });
    for (int i = 0; i < 30; ++i) healthy_failed += offer(port, member("D", i)) == 200 ? 0 : 1;  // during the burst
    for (auto& t : burst) t.join();
    for (int i = 0; i < 30; ++i) healthy_failed += offer(port, member("A", i)) == 200 ? 0 : 1;  // after it
    CHECK(poison_502 == 10);
    CHECK(healthy_failed == 0);
    CHECK(app.events("circuit_state").empty());
}

TEST_CASE("a refusing upstream: the first request gets its own 504, later ones 503 at once, and one probe closes it when it is back",
          "[component]") {
    const auto pred_port = closed_port();
    test_app app(all_but_prediction, [&](app_config& c) {
        c.orchestrator.prediction_url = "http://127.0.0.1:" + std::to_string(pred_port);
        c.orchestrator.breaker.min_calls = 4;  // the first request's ATS and RESP retries open it
        // Long enough that R2 arrives while it is open on a slow machine (sanitizers), short
        // enough that the recovery below stays well inside its bound.
        c.orchestrator.breaker.open_for = std::chrono::milliseconds(1500);
    });
    const auto port = app.port(role::orchestrator);
    CHECK(offer(port, "R1") == 504);  // its own attempts opened the circuit: it reports what they saw
    REQUIRE(app.events("circuit_state").size() == 1);
    const auto opened = get(port, "/metrics").body;
    CHECK(opened.find("offerd_circuit_state{service=\"prediction\",state=\"open\"} 1\n") != std::string::npos);
    CHECK(opened.find("offerd_circuit_state{service=\"prediction\",state=\"closed\"} 0\n") != std::string::npos);
    CHECK(opened.find("offerd_circuit_state{service=\"prediction\",state=\"half_open\"} 0\n") != std::string::npos);
    CHECK(opened.find("offerd_upstream_retries_total{service=\"prediction\"} 0\n") == std::string::npos);  // R1 retried
    auto fast = post(port, "/member/offer", txn_body("R2"));
    CHECK(fast.status == 503);
    CHECK(std::stoi(fast.headers["Retry-After"]) >= 1);
    CHECK(fast.elapsed < std::chrono::milliseconds(1000));

    fake_upstream pred([](const request&) { return json_response(http::status::ok, R"({"prediction":1})"); }, {}, pred_port);
    const auto before = app.events("circuit_state").size();
    unsigned status = 0;
    for (int i = 0; i < 250 && status != 200; ++i) {  // bounded: 5 s
        status = offer(port, "R3");
        if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(status == 200);
    const auto events = app.events("circuit_state");
    // Since it came back: at most one failed probe from before, then open -> half-open -> closed.
    std::vector<std::string> since;
    for (std::size_t i = before; i < events.size(); ++i)
        since.push_back(std::string(events[i].at("from").as_string()) + ">" + std::string(events[i].at("to").as_string()));
    CHECK(since.size() >= 2);
    CHECK(since.size() <= 4);
    CHECK(since.back() == "half_open>closed");
    const auto metrics = get(port, "/metrics").body;
    CHECK(metrics.find("offerd_circuit_transitions_total{service=\"prediction\",from=\"half_open\",to=\"closed\"} 1\n") !=
          std::string::npos);
    CHECK(metrics.find("offerd_circuit_state{service=\"prediction\",state=\"closed\"} 1\n") != std::string::npos);
    CHECK(metrics.find("offerd_circuit_state{service=\"prediction\",state=\"open\"} 0\n") != std::string::npos);
}
