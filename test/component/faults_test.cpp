// Upstream faults map to the right status, quickly, and are logged.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "offerd/store/history_store.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
constexpr std::uint8_t orchestrator_only = static_cast<std::uint8_t>(role::orchestrator);
constexpr std::uint8_t all_but_member_data = all_roles & ~static_cast<std::uint8_t>(role::member_data);

response ok_json(std::string body) { return json_response(http::status::ok, std::move(body)); }

// A member-data stand-in with an empty history that accepts writes.
response good_member_data(const request& r) {
    if (r.method() == http::verb::get) return detail_response(http::status::not_found, "Member not found");
    return ok_json(std::string(r.body()));
}

int offer_status(test_app& app) {
    return static_cast<int>(post(app.port(role::orchestrator), "/member/offer", txn_body("F1")).status);
}

bool logged_upstream_error(test_app& app, std::string_view service) {
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") == "upstream_error" && v.at("upstream") == json::string_view(service.data(), service.size())) return true;
    }
    return false;
}
}  // namespace

TEST_CASE("member-data answering 500 gives 502 and an upstream_error log event", "[component]") {
    fake_upstream md([](const request&) { return detail_response(http::status::internal_server_error, "boom"); });
    test_app app(all_but_member_data, [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("F1"));
    CHECK(res.status == 502);
    CHECK(res.body.find("boom") == std::string::npos);  // upstream internals are not leaked
    CHECK(logged_upstream_error(app, "member-data"));
}

TEST_CASE("a history that is not JSON gives 502", "[component]") {
    fake_upstream md([](const request&) { return ok_json("<html>oops</html>"); });
    test_app app(all_but_member_data, [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    CHECK(offer_status(app) == 502);
}

TEST_CASE("unparseable history entries are skipped and counted, the rest is used", "[component]") {
    fake_upstream md([](const request& r) {
        if (r.method() == http::verb::post) return ok_json("{}");
        return ok_json(R"([{"memberId":"F1","lastTransactionUtcTs":"garbage"},
            {"memberId":"F1","lastTransactionUtcTs":"2024-06-01T00:00:00Z","lastTransactionType":"BUY","lastTransactionPointsBought":100,"lastTransactionRevenueUsd":20}])");
    });
    test_app app(all_but_member_data, [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    CHECK(offer_status(app) == 200);
    bool found = false;
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") == "offer") {
            CHECK(v.at("history_len") == 1);
            CHECK(v.at("history_skipped") == 1);
            found = true;
        }
    }
    CHECK(found);
}

TEST_CASE("a member-data that accepts connections but never answers gives 504 within the upstream timeout", "[component]") {
    raw_peer md(raw_peer::mode::hang);
    test_app app(all_but_member_data, [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.upstream.timeout = std::chrono::milliseconds(300);
    });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("F1"));
    CHECK(res.status == 504);
    CHECK(res.elapsed < std::chrono::milliseconds(2000));
}

TEST_CASE("a refused connection gives 504", "[component]") {
    const auto port = closed_port();
    test_app app(all_but_member_data, [&](app_config& c) { c.orchestrator.member_data_url = "http://127.0.0.1:" + std::to_string(port); });
    CHECK(offer_status(app) == 504);
}

TEST_CASE("bytes that are not HTTP from an upstream give 502", "[component]") {
    raw_peer md(raw_peer::mode::garbage);
    test_app app(all_but_member_data, [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    CHECK(offer_status(app) == 502);
}

TEST_CASE("a connection reset by the upstream gives 504", "[component]") {
    raw_peer md(raw_peer::mode::reset);
    test_app app(all_but_member_data, [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    CHECK(offer_status(app) == 504);
}

TEST_CASE("the whole request deadline bounds the upstream calls", "[component]") {
    raw_peer md(raw_peer::mode::hang);
    test_app app(all_but_member_data, [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.request_deadline = std::chrono::milliseconds(250);
    });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("F1"));
    CHECK(res.status == 504);
    CHECK(res.elapsed < std::chrono::milliseconds(1500));
}

TEST_CASE("prediction answering 500 gives 502", "[component]") {
    fake_upstream md(good_member_data);
    fake_upstream pred([](const request&) { return detail_response(http::status::internal_server_error, "model down"); });
    fake_upstream offer([](const request&) { return ok_json(R"({"offer":"35% Bonus"})"); });
    test_app app(orchestrator_only, [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.prediction_url = pred.url();
        c.orchestrator.offer_engine_url = offer.url();
    });
    CHECK(offer_status(app) == 502);
    CHECK(offer.request_count() == 0);
}

TEST_CASE("a prediction without a number gives 502", "[component]") {
    fake_upstream md(good_member_data);
    fake_upstream pred([](const request&) { return ok_json(R"({"prediction":"high"})"); });
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::prediction), [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.prediction_url = pred.url();
    });
    CHECK(offer_status(app) == 502);
}

TEST_CASE("ATS and RESP are requested in parallel", "[component]") {
    // The fake prediction answers only once both model requests have arrived (or 500 after 3 s):
    // a sequential orchestrator would get a 500 on its first call and answer 502.
    fake_upstream md(good_member_data);
    struct barrier_state {
        int arrived = 0;
        std::unique_ptr<asio::steady_timer> timer;
    };
    std::unique_ptr<fake_upstream> pred;  // declared first: the timer in state must die before pred's io_context
    auto state = std::make_shared<barrier_state>();
    pred = std::make_unique<fake_upstream>(fake_upstream::async_function([state, &pred](const request&) -> asio::awaitable<response> {
        if (!state->timer) state->timer = std::make_unique<asio::steady_timer>(pred->context());
        if (++state->arrived == 2) {
            state->timer->cancel();
        } else {
            state->timer->expires_after(std::chrono::seconds(3));
            co_await state->timer->async_wait(nothrow);
        }
        if (state->arrived < 2) co_return detail_response(http::status::internal_server_error, "sequential");
        co_return ok_json(R"({"prediction":1})");
    }));
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::prediction), [&](app_config& c) {
        c.orchestrator.prediction_url = pred->url();
        c.orchestrator.member_data_url = md.url();
    });
    CHECK(offer_status(app) == 200);
    CHECK(pred->request_count() == 2);
}

TEST_CASE("offer-engine answering garbage gives 502 and nothing is persisted", "[component]") {
    fake_upstream oe([](const request&) { return ok_json("{\"offer\": 5}"); });
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::offer_engine), [&](app_config& c) { c.orchestrator.offer_engine_url = oe.url(); });
    CHECK(offer_status(app) == 502);
    CHECK(app.rt().store()->transactions() == 0);
}

TEST_CASE("a failed persist still returns the offer and defers the transaction to the outbox", "[component]") {
    fake_upstream md([](const request& r) {
        if (r.method() == http::verb::get) return detail_response(http::status::not_found, "Member not found");
        return detail_response(http::status::service_unavailable, "read-only");
    });
    test_app app(all_but_member_data, [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("F1"));
    CHECK(res.status == 200);
    bool logged = false;
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") == "persist_deferred") {
            CHECK(v.at("level") == "warn");
            CHECK(v.at("transaction").at("memberId") == "F1");
            logged = true;
        }
    }
    CHECK(logged);
}

TEST_CASE("upstream connections are kept alive and reused", "[component]") {
    fake_upstream md(good_member_data);
    test_app app(all_but_member_data, [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.threads = 1;
    });
    for (int i = 0; i < 10; ++i) REQUIRE(offer_status(app) == 200);
    // One read (the member is warm after it) and ten writes, over one connection for reads and
    // one for writes (they have separate pools and health).
    CHECK(md.request_count() == 11);
    CHECK(md.connections() <= 2);
}

TEST_CASE("above max in-flight the orchestrator answers 503 with Retry-After at once", "[component]") {
    raw_peer md(raw_peer::mode::hang);
    test_app app(all_but_member_data, [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.admission.max_in_flight = 1;
        c.orchestrator.upstream.timeout = std::chrono::milliseconds(1500);
        c.orchestrator.retry.max_attempts = 1;
    });
    asio::io_context ctx;
    std::optional<result<response>> first;
    asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
        http_client client(ctx.get_executor(), url{"127.0.0.1", app.port(role::orchestrator), ""}, client_limits{});
        first = co_await client.send(http::verb::post, "/member/offer", txn_body("A"), call_options{{}, deadline::after(std::chrono::seconds(5)), {}});
    }, asio::detached);
    ctx.run_for(std::chrono::milliseconds(300));  // the first request is now parked on the hanging upstream
    auto second = post(app.port(role::orchestrator), "/member/offer", txn_body("B"));
    CHECK(second.status == 503);
    CHECK(second.headers.count("Retry-After") == 1);
    CHECK(second.elapsed < std::chrono::milliseconds(500));
    ctx.run_for(std::chrono::seconds(5));
    REQUIRE(first.has_value());
    CHECK((*first)->result_int() == 504);
}
