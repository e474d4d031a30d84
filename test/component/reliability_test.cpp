// Retries, circuit breaking and idempotency over real listeners and fake upstreams.
#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <algorithm>
#include <fstream>
#include <functional>
#include <thread>

#include "offerd/store/history_store.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
constexpr std::uint8_t without(role r) { return all_roles & ~static_cast<std::uint8_t>(r); }

response ok_json(std::string body) { return json_response(http::status::ok, std::move(body)); }

// A prediction service that answers every call after `pause`, without blocking its thread.
std::unique_ptr<fake_upstream> slow_prediction(std::chrono::milliseconds pause) {
    return std::make_unique<fake_upstream>(fake_upstream::async_function([pause](const request&) -> asio::awaitable<response> {
        asio::steady_timer timer(co_await asio::this_coro::executor, pause);
        co_await timer.async_wait(nothrow);
        co_return json_response(http::status::ok, R"({"prediction":1})");
    }));
}

std::size_t count_events(test_app& app, std::string_view name) {
    std::size_t n = 0;
    for (const auto& line : app.log_lines())
        if (json::parse(line).at("event") == json::string_view(name.data(), name.size())) ++n;
    return n;
}

// The admission tests' set-up: the orchestrator calls `pred` for its predictions and admits at
// most `max_in_flight` offer requests at once.
std::function<void(app_config&)> predicting_with(const fake_upstream& pred, std::size_t max_in_flight) {
    return [url = pred.url(), max_in_flight](app_config& c) {
        c.orchestrator.prediction_url = url;
        c.orchestrator.admission.max_in_flight = max_in_flight;
    };
}

// n offer requests at once, of the members member(0..n-1), each on a connection of its own;
// their statuses and whether each carried Retry-After, in the order they were answered.
struct burst_answer {
    unsigned status;
    bool retry_after;
};
std::vector<burst_answer> offer_burst(std::uint16_t port, int n, const std::function<std::string(int)>& member) {
    std::vector<burst_answer> answers;
    asio::io_context ctx;
    client_limits patient;
    patient.timeout = std::chrono::seconds(20);  // the last of 20 serial turns waits 2 s
    for (int i = 0; i < n; ++i)
        asio::co_spawn(ctx, [&, i]() -> asio::awaitable<void> {
            http_client client(ctx.get_executor(), url{"127.0.0.1", port, ""}, patient);
            const std::string body = txn_body(member(i));
            auto res = co_await client.send(http::verb::post, "/member/offer", body, call_options{{}, deadline::after(std::chrono::seconds(20)), {}, {}});
            answers.push_back({res ? res->result_int() : 0u, res && res->find(http::field::retry_after) != res->end()});
        }, asio::detached);
    ctx.run_for(std::chrono::seconds(30));
    return answers;
}
std::ptrdiff_t count_status(const std::vector<burst_answer>& a, unsigned status) {
    return std::count_if(a.begin(), a.end(), [&](const burst_answer& x) { return x.status == status; });
}
}  // namespace

TEST_CASE("a 503 from prediction is retried and the request succeeds", "[component]") {
    std::atomic<int> calls{0};
    fake_upstream pred([&](const request&) {
        return ++calls <= 1 ? detail_response(http::status::service_unavailable, "warming up") : ok_json(R"({"prediction":2})");
    });
    test_app app(without(role::prediction), [&](app_config& c) { c.orchestrator.prediction_url = pred.url(); });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("R1"));
    CHECK(res.status == 200);
    CHECK(calls == 3);  // ATS, RESP, and one retry
    CHECK(count_events(app, "upstream_error") == 1);
}

TEST_CASE("a 500 from prediction is not retried", "[component]") {
    std::atomic<int> calls{0};
    fake_upstream pred([&](const request&) {
        ++calls;
        return detail_response(http::status::internal_server_error, "bug");
    });
    test_app app(without(role::prediction), [&](app_config& c) { c.orchestrator.prediction_url = pred.url(); });
    CHECK(post(app.port(role::orchestrator), "/member/offer", txn_body("R2")).status == 502);
    CHECK(calls == 2);
}

TEST_CASE("a persist that fails transiently is retried with one Idempotency-Key", "[component]") {
    std::atomic<int> posts{0};
    fake_upstream md([&](const request& r) {
        if (r.method() == http::verb::get) return detail_response(http::status::not_found, "Member not found");
        return ++posts == 1 ? detail_response(http::status::bad_gateway, "flaky") : ok_json(std::string(r.body()));
    });
    test_app app(without(role::member_data), [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    CHECK(post(app.port(role::orchestrator), "/member/offer", txn_body("R3")).status == 200);
    std::vector<std::string> keys;
    for (const auto& r : md.requests())
        if (r.method() == http::verb::post) keys.emplace_back(r["Idempotency-Key"]);
    REQUIRE(keys.size() == 2);
    CHECK(!keys[0].empty());
    CHECK(keys[0] == keys[1]);
}

TEST_CASE("member-data stores a write once however often its Idempotency-Key is repeated", "[component]") {
    test_app app(static_cast<std::uint8_t>(role::member_data));
    const auto port = app.port(role::member_data);
    const auto body = txn_body("R4");
    for (int i = 0; i < 3; ++i) CHECK(post(port, "/member_data", body, {{"Idempotency-Key", "k-1"}}).status == 200);
    CHECK(app.rt().store()->history("R4").size() == 1);
    CHECK(post(port, "/member_data", txn_body("R4", "2024-06-02T00:00:00Z"), {{"Idempotency-Key", "k-1"}}).status == 422);
    CHECK(post(port, "/member_data", body).status == 200);  // no key: a new write
    CHECK(app.rt().store()->history("R4").size() == 2);
}

TEST_CASE("an orchestrator request repeated with its Idempotency-Key is answered without persisting again", "[component]") {
    test_app app(all_roles);
    const auto port = app.port(role::orchestrator);
    const auto body = txn_body("R5");
    auto first = post(port, "/member/offer", body, {{"Idempotency-Key", "row-17"}});
    auto again = post(port, "/member/offer", body, {{"Idempotency-Key", "row-17"}});
    REQUIRE(first.status == 200);
    CHECK(again.status == 200);
    CHECK(json::parse(again.body) == json::parse(first.body));
    CHECK(again.headers["Idempotent-Replayed"] == "true");
    CHECK(app.rt().store()->history("R5").size() == 1);
    auto conflict = post(port, "/member/offer", txn_body("R5", "2024-06-02T00:00:00Z"), {{"Idempotency-Key", "row-17"}});
    CHECK(conflict.status == 422);
}

TEST_CASE("once the failure rate opens the circuit, requests fail fast with 503 and Retry-After", "[component]") {
    const auto port = closed_port();
    test_app app(without(role::member_data), [&](app_config& c) {
        c.orchestrator.member_data_url = "http://127.0.0.1:" + std::to_string(port);
        c.orchestrator.breaker.min_calls = 3;
        c.orchestrator.breaker.open_for = std::chrono::seconds(30);
        c.orchestrator.retry.max_attempts = 1;
    });
    for (int i = 0; i < 3; ++i) CHECK(post(app.port(role::orchestrator), "/member/offer", txn_body("R6")).status == 504);
    auto fast = post(app.port(role::orchestrator), "/member/offer", txn_body("R6"));
    CHECK(fast.status == 503);
    CHECK(std::stoi(fast.headers["Retry-After"]) >= 1);
    CHECK(count_events(app, "circuit_state") == 1);
}

TEST_CASE("retries stop at the request deadline", "[component]") {
    raw_peer md(raw_peer::mode::hang);
    test_app app(without(role::member_data), [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.upstream.timeout = std::chrono::milliseconds(200);
        c.orchestrator.request_deadline = std::chrono::milliseconds(450);
    });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("R7"));
    CHECK(res.status == 504);
    CHECK(res.elapsed < std::chrono::milliseconds(1500));
}

TEST_CASE("keep-alive connections the upstream closed while idle are replaced without failing requests", "[component]") {
    server_limits quick_idle;
    quick_idle.idle_timeout = std::chrono::milliseconds(50);
    fake_upstream md([](const request& r) {
        return r.method() == http::verb::get ? detail_response(http::status::not_found, "Member not found")
                                             : json_response(http::status::ok, std::string(r.body()));
    }, quick_idle);
    test_app app(without(role::member_data), [&](app_config& c) {
        c.threads = 1;
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.retry.max_attempts = 1;  // the stale-connection path alone must cope
    });
    for (int round = 0; round < 3; ++round) {
        CHECK(post(app.port(role::orchestrator), "/member/offer", txn_body("K1")).status == 200);
        std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past the upstream's idle timeout
    }
    CHECK(count_events(app, "upstream_error") == 0);
}

TEST_CASE("a persist member-data refuses with 4xx fails the request and is not queued", "[component]") {
    fake_upstream md([](const request& r) {
        return r.method() == http::verb::get ? detail_response(http::status::not_found, "Member not found")
                                             : detail_response(http::status::unprocessable_entity, "no");
    });
    test_app app(without(role::member_data), [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("K2"));
    CHECK(res.status == 502);
    CHECK(count_events(app, "persist_failed") == 1);
    CHECK(count_events(app, "persist_deferred") == 0);
    auto metrics = get(app.port(role::orchestrator), "/metrics");
    CHECK(metrics.body.find("\nofferd_outbox_pending 0\n") != std::string::npos);
}

TEST_CASE("at twice its in-flight capacity the orchestrator answers the admitted requests and refuses the rest at once", "[component]") {
    // Every prediction takes 150 ms (without blocking the fake's thread), so 16 simultaneous
    // requests overlap; capacity is 8.
    const auto pred = slow_prediction(std::chrono::milliseconds(150));
    test_app app(without(role::prediction), predicting_with(*pred, 8));
    asio::io_context ctx;
    std::vector<unsigned> statuses;
    std::vector<std::chrono::milliseconds> took;
    for (int i = 0; i < 16; ++i) {
        asio::co_spawn(ctx, [&, i]() -> asio::awaitable<void> {
            http_client client(ctx.get_executor(), url{"127.0.0.1", app.port(role::orchestrator), ""}, client_limits{});
            const auto start = std::chrono::steady_clock::now();
            auto res = co_await client.send(http::verb::post, "/member/offer", txn_body("CAP" + std::to_string(i)),
                                            call_options{{}, deadline::after(std::chrono::seconds(10)), {}, {}});
            statuses.push_back(res ? res->result_int() : 0u);
            took.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start));
        }, asio::detached);
    }
    ctx.run_for(std::chrono::seconds(10));
    REQUIRE(statuses.size() == 16);
    const auto ok = std::count(statuses.begin(), statuses.end(), 200u);
    const auto refused = std::count(statuses.begin(), statuses.end(), 503u);
    CHECK(ok + refused == 16);
    CHECK(ok >= 8);
    CHECK(refused >= 1);
    for (std::size_t i = 0; i < statuses.size(); ++i)
        CHECK(took[i] < std::chrono::milliseconds(statuses[i] == 200 ? 3000 : 1000));
}

namespace {
std::size_t resident_kib() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
    return 0;
}
}  // namespace

TEST_CASE("at 20x its limit the orchestrator sheds fast, keeps the served connections' slots, and recovers", "[component]") {
    // Every prediction takes 100 ms without blocking the fake's thread; 4 offer requests are
    // admitted at once. 80 connections send 3 requests each, the next at once after every answer
    // (a client that ignores Retry-After): at most 4 are served at a time, the rest are shed, and
    // a shed connection's next request waits (at most its Retry-After second) in the shed lane.
    const auto pred = slow_prediction(std::chrono::milliseconds(100));
    test_app app(without(role::prediction), predicting_with(*pred, 4));  // below --admission-min-limit: the limit is 4
    const auto port = app.port(role::orchestrator);
    const std::size_t rss_before = resident_kib();
    constexpr int connections = 80, per_connection = 3;
    struct answer {
        unsigned status;
        bool first;  // the connection's first request: no wait in the shed lane before it
        bool retry_after;
        std::chrono::milliseconds took;
    };
    std::vector<answer> answers;
    asio::io_context ctx;
    for (int i = 0; i < connections; ++i) {
        asio::co_spawn(ctx, [&, i]() -> asio::awaitable<void> {
            http_client client(ctx.get_executor(), url{"127.0.0.1", port, ""}, client_limits{});
            for (int k = 0; k < per_connection; ++k) {
                const auto start = std::chrono::steady_clock::now();
                const std::string body = txn_body("OV" + std::to_string(i) + "-" + std::to_string(k));
                auto res = co_await client.send(http::verb::post, "/member/offer", body, call_options{{}, deadline::after(std::chrono::seconds(20)), {}, {}});
                const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
                answers.push_back({res ? res->result_int() : 0u, k == 0, res && res->find(http::field::retry_after) != res->end(), took});
            }
        }, asio::detached);
    }
    ctx.run_for(std::chrono::seconds(60));
    REQUIRE(answers.size() == connections * per_connection);
    std::size_t ok = 0, shed = 0;
    for (const auto& a : answers) {
        INFO("status " << a.status << " after " << a.took.count() << " ms");
        CHECK((a.status == 200 || a.status == 503));
        if (a.status == 200) ++ok;
        if (a.status != 503) continue;
        ++shed;
        CHECK(a.retry_after);
        // A refusal is not queued behind the admitted work: the first request of a connection
        // is refused before any prediction (100 ms) could have ended.
        if (a.first) CHECK(a.took < std::chrono::milliseconds(1000));
    }
    CHECK(ok >= 4);
    CHECK(shed >= 1);
    // Shed connections leave the lane within their Retry-After second.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    const auto scrape = get(port, "/metrics").body;
    CHECK(metric_sample(scrape, "offerd_admission_shed_total") == static_cast<double>(shed));
    // While shedding, a served connection's next request took over its slot...
    CHECK(metric_sample(scrape, "offerd_admission_reserved_total") >= 1.0);
    // ... and slots going back (a served connection done) let waiting connections read on early.
    CHECK(metric_sample(scrape, "offerd_admission_released_total") >= 1.0);
    CHECK(metric_sample(scrape, "offerd_admission_waiting") == 0.0);
    CHECK(metric_sample(scrape, "offerd_in_flight_requests") == 0.0);
    // 240 requests and their connections leave no memory behind worth the name.
    CHECK(resident_kib() < rss_before + 256 * 1024);
    // And it serves normally afterwards.
    CHECK(post(port, "/member/offer", txn_body("OV-after")).status == 200);
}

TEST_CASE("while shedding, a member with a request waiting for its turn gets 429 for more, and is served in order again once the shedding is over", "[component]") {
    // Predictions take 100 ms; 40 offer requests are admitted at once.
    const auto pred = slow_prediction(std::chrono::milliseconds(100));
    test_app app(without(role::prediction), predicting_with(*pred, 40));
    const auto port = app.port(role::orchestrator);
    // 41 members at once: one is refused, so the orchestrator is shedding for the next second.
    const auto first = offer_burst(port, 41, [](int i) { return "SPREAD" + std::to_string(i); });
    REQUIRE(first.size() == 41);
    CHECK(count_status(first, 503) >= 1);
    // 12 requests of one member at once: one holds its turn (100 ms), one waits, 10 are refused.
    const auto hot = offer_burst(port, 12, [](int) { return std::string("HOT"); });
    REQUIRE(hot.size() == 12);
    CHECK(count_status(hot, 200) == 2);
    CHECK(count_status(hot, 429) == 10);
    for (const auto& a : hot)
        if (a.status == 429) CHECK(a.retry_after);
    // Neither shedding nor near the limit (20 of 40), a member's queue is not bounded: all 20 are served.
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    const auto calm = offer_burst(port, 20, [](int) { return std::string("HOT2"); });
    REQUIRE(calm.size() == 20);
    for (const auto& a : calm) {
        INFO("status " << a.status);
        CHECK(a.status == 200);
    }
}

TEST_CASE("near its limit without shedding, a member with a request waiting for its turn gets 429 for more", "[component]") {
    // Predictions take 300 ms; 12 offer requests fit.
    const auto pred = slow_prediction(std::chrono::milliseconds(300));
    test_app app(without(role::prediction), predicting_with(*pred, 12));
    const auto port = app.port(role::orchestrator);
    // Other members hold 9 of the 12 slots, three quarters of the limit.
    std::vector<burst_answer> spread;
    std::thread others([&] { spread = offer_burst(port, 9, [](int i) { return "NEAR" + std::to_string(i); }); });
    double in_flight = 0;
    for (int i = 0; i < 500 && in_flight < 9; ++i) {
        in_flight = metric_sample(get(port, "/metrics").body, "offerd_in_flight_requests");
        if (in_flight < 9) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(in_flight == 9);
    // 3 of one member at once: one holds its turn, one waits, the third is refused with 429.
    const auto hot = offer_burst(port, 3, [](int) { return std::string("HOTNEAR"); });
    others.join();
    REQUIRE(hot.size() == 3);
    CHECK(count_status(hot, 200) == 2);
    CHECK(count_status(hot, 429) == 1);
    REQUIRE(spread.size() == 9);
    CHECK(count_status(spread, 200) == 9);
    // The limit refused nothing: the bound came from the load, not from shedding.
    CHECK(metric_sample(get(port, "/metrics").body, "offerd_admission_shed_total") == 0.0);
}
