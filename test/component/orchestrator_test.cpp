// The orchestrator over real listeners: happy path, persistence, validation, limits, ids.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <set>

#include "offerd/store/history_store.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
void fixed_now(app_config& c) { c.orchestrator.now = parse_timestamp("2024-06-03T00:00:00Z").value(); }

}  // namespace

TEST_CASE("a first transaction gets the offer the formulas give and is persisted normalized", "[component]") {
    test_app app(all_roles, fixed_now);
    // n=1: ATS = 100, RESP = min(0.9, 1000*0.4*(20/100)/3) = 0.9, 90 < 200 -> bonus
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("M1", "2024-06-01 10:00:00", "buy", 100, 20));
    REQUIRE(res.status == 200);
    CHECK(json::parse(res.body) == json::parse(R"({"memberId":"M1","offer":"35% Bonus"})"));
    const auto stored = app.rt().store()->history("M1");
    REQUIRE(stored.size() == 1);
    CHECK(format_rfc3339(stored[0].ts) == "2024-06-01T10:00:00Z");
    CHECK(stored[0].type == txn_type::buy);
}

TEST_CASE("the next request of a member sees the persisted history", "[component]") {
    test_app app(all_roles, fixed_now);
    const auto port = app.port(role::orchestrator);
    REQUIRE(post(port, "/member/offer", txn_body("M2", "2024-06-01T10:00:00Z", "BUY", 100, 20)).status == 200);
    // n=2: AVG_P = 300, L3_P = 300, PCT_BUY = PCT_GIFT = 0.5 -> ATS = 300; RESP capped 0.9; 270 >= 200
    auto second = post(port, "/member/offer", txn_body("M2", "2024-06-02T10:00:00Z", "GIFT", 500, 300));
    REQUIRE(second.status == 200);
    CHECK(json::parse(second.body).at("offer") == "50% Discount");
    const auto offers = app.events("offer");
    REQUIRE(offers.size() == 2);
    CHECK(offers[0].at("history_len") == 0);
    CHECK(offers[1].at("history_len") == 1);
    CHECK(offers[1].at("features").at("AVG_POINTS_BOUGHT").to_number<double>() == 300);
    CHECK(offers[1].at("features").at("DAYS_SINCE_LAST_TRANSACTION") == 1);
}

TEST_CASE("the offer log event carries features, predictions, offer and every step latency", "[component]") {
    test_app app(all_roles, fixed_now);
    REQUIRE(post(app.port(role::orchestrator), "/member/offer", txn_body("M3"), {{"X-Request-ID", "req-42"}}).status == 200);
    const auto offers = app.events("offer");
    REQUIRE(offers.size() == 1);
    const auto& e = offers[0];
    CHECK(e.at("request_id") == "req-42");
    CHECK(e.at("memberId") == "M3");
    CHECK(e.at("status") == 200);
    CHECK(e.at("offer") == "35% Bonus");
    CHECK(e.at("ats").to_number<double>() == 100);
    CHECK(e.at("resp").to_number<double>() == 0.9);
    CHECK(e.at("features").as_object().size() == 8);
    for (const char* s : {"fetch", "features", "predict_ats", "predict_resp", "predict", "offer", "persist", "total"})
        CHECK(e.at("latency_us").at(s).to_number<std::int64_t>() >= 0);
    CHECK(e.at("ts").as_string().ends_with("Z"));
}

TEST_CASE("X-Request-ID is echoed, forwarded upstream, and generated when absent", "[component]") {
    fake_upstream md([](const request& r) {
        return r.method() == http::verb::get ? detail_response(http::status::not_found, "Member not found")
                                             : json_response(http::status::ok, "{}");
    });
    test_app app(all_roles, [&](app_config& c) { c.orchestrator.member_data_url = md.url(); });
    auto res = post(app.port(role::orchestrator), "/member/offer", txn_body("M4"), {{"X-Request-ID", "abc-123"}});
    REQUIRE(res.status == 200);
    CHECK(res.headers["X-Request-ID"] == "abc-123");
    for (const auto& r : md.requests()) CHECK(r[request_id_header] == "abc-123");
    CHECK(md.request_count() == 2);  // fetch + persist
    auto anon = post(app.port(role::orchestrator), "/member/offer", txn_body("M4"));
    CHECK(anon.headers["X-Request-ID"].size() == 16);
}

TEST_CASE("malformed JSON answers 400 with a detail", "[component]") {
    test_app app(all_roles);
    auto res = post(app.port(role::orchestrator), "/member/offer", "{\"memberId\": ");
    CHECK(res.status == 400);
    CHECK(json::parse(res.body).at("detail").is_string());
}

TEST_CASE("schema and domain violations answer 422 naming the field", "[component]") {
    test_app app(all_roles);
    const auto port = app.port(role::orchestrator);
    const std::vector<std::pair<std::string, std::string>> cases{
        {txn_body("bad id!"), "memberId"},
        {txn_body(std::string(65, 'x')), "memberId"},
        {txn_body("M5", "yesterday"), "lastTransactionUtcTs"},
        {txn_body("M5", "2024-02-30T00:00:00Z"), "lastTransactionUtcTs"},
        {txn_body("M5", "2024-06-01T10:00:00Z", "REFUND"), "lastTransactionType"},
        {txn_body("M5", "2024-06-01T10:00:00Z", "BUY", 1, -1), "lastTransactionRevenueUsd"},
        {R"({"memberId":"M5","lastTransactionUtcTs":"2024-06-01T10:00:00Z","lastTransactionType":"BUY","lastTransactionPointsBought":"10","lastTransactionRevenueUsd":1})", "lastTransactionPointsBought"},
        {R"({"memberId":"M5","lastTransactionUtcTs":"2024-06-01T10:00:00Z","lastTransactionType":"BUY","lastTransactionPointsBought":10})", "lastTransactionRevenueUsd"},
        {R"([1,2,3])", "body"},
    };
    for (const auto& [body, field] : cases) {
        INFO(body);
        auto res = post(port, "/member/offer", body);
        CHECK(res.status == 422);
        CHECK(json::parse(res.body).at("detail").as_string().starts_with(field));
    }
    CHECK(app.rt().store()->transactions() == 0);
}

TEST_CASE("a body over 64 KiB answers 413", "[component]") {
    test_app app(all_roles);
    std::string big = "{\"memberId\":\"" + std::string(70 * 1024, 'a') + "\"}";
    auto res = post(app.port(role::orchestrator), "/member/offer", big);
    CHECK(res.status == 413);
}

TEST_CASE("oversized request headers answer 431", "[component]") {
    test_app app(all_roles);
    auto res = http_call(app.port(role::orchestrator), http::verb::get, "/health", {}, {{"X-Big", std::string(16 * 1024, 'h')}});
    CHECK(res.status == 431);
}

TEST_CASE("a request that is not HTTP answers 400 and the listener keeps serving", "[component]") {
    test_app app(all_roles);
    const std::string answer = raw_exchange(app.port(role::orchestrator), "HELLO\r\n\r\n");
    CHECK(answer.starts_with("HTTP/1.1 400"));
    CHECK(get(app.port(role::orchestrator), "/health").status == 200);
}

TEST_CASE("the orchestrator answers 404 for unknown routes and 405 for GET on /member/offer", "[component]") {
    test_app app(all_roles);
    CHECK(get(app.port(role::orchestrator), "/member/offers").status == 404);
    CHECK(get(app.port(role::orchestrator), "/member/offer").status == 405);
}

TEST_CASE("concurrent requests for one member run one at a time and each sees all earlier ones", "[component]") {
    test_app app(all_roles, fixed_now);
    constexpr int n = 50;
    asio::io_context ctx;
    int ok = 0;
    for (int i = 0; i < n; ++i) {
        asio::co_spawn(ctx, [&, i]() -> asio::awaitable<void> {
            http_client client(ctx.get_executor(), url{"127.0.0.1", app.port(role::orchestrator), ""}, client_limits{});
            auto res = co_await client.send(http::verb::post, "/member/offer", txn_body("SAME", "2024-06-01T10:00:00Z", "BUY", i, 1),
                                            call_options{{}, deadline::after(std::chrono::seconds(10)), {}});
            if (res && res->result_int() == 200) ++ok;
        }, asio::detached);
    }
    ctx.run_for(std::chrono::seconds(20));
    CHECK(ok == n);
    CHECK(app.rt().store()->history("SAME").size() == n);
    std::set<std::int64_t> seen;
    for (const auto& e : app.events("offer")) seen.insert(e.at("history_len").to_number<std::int64_t>());
    CHECK(seen.size() == n);
    CHECK(*seen.begin() == 0);
    CHECK(*seen.rbegin() == n - 1);
}

TEST_CASE("a member-data URL with a base path is honoured for reads, writes and the logged path", "[component]") {
    test_app svc(static_cast<std::uint8_t>(role::member_data));
    std::atomic<bool> reads_fail{false};
    // A reverse proxy publishing member-data under /api only, as a gateway would (the fake
    // answers the root's paths too, which this one refuses).
    fake_upstream proxy([&](const request& req) -> response {
        const std::string target(req.target());
        if (!target.starts_with("/api/")) return detail_response(http::status::not_found, "not under /api");
        if (req.method() == http::verb::get && reads_fail.load()) return detail_response(http::status::service_unavailable, "down");
        return relay(svc.port(role::member_data), req, target.substr(4));
    });
    test_app app(static_cast<std::uint8_t>(role::orchestrator) | static_cast<std::uint8_t>(role::prediction) |
                     static_cast<std::uint8_t>(role::offer_engine),
                 [&](app_config& c) {
                     fixed_now(c);
                     c.orchestrator.member_data_url = proxy.url() + "/api/";
                 });
    const auto port = app.port(role::orchestrator);
    REQUIRE(post(port, "/member/offer", txn_body("PFX", "2024-06-01T10:00:00Z", "BUY", 100, 20)).status == 200);
    REQUIRE(post(port, "/member/offer", txn_body("PFX", "2024-06-02T10:00:00Z", "GIFT", 500, 300)).status == 200);
    CHECK(svc.rt().store()->history("PFX").size() == 2);  // both writes went through the prefix
    const auto offers = app.events("offer");
    REQUIRE(offers.size() == 2);
    CHECK(offers[1].at("history_len") == 1);  // the read under the prefix found the first
    std::size_t reads = 0;
    for (const auto& r : proxy.requests()) {
        CHECK(std::string(r.target()).starts_with("/api/member_data"));
        reads += r.method() == http::verb::get;
    }
    CHECK(reads >= 1);  // the first request's history lookup

    // A member this replica has not seen is read from member-data: a failing read logs the path it asked.
    reads_fail = true;
    const auto failed = post(port, "/member/offer", txn_body("PFXCOLD", "2024-06-03T10:00:00Z"));
    CHECK(failed.status == 502);
    const auto errors = app.events("upstream_error");
    REQUIRE_FALSE(errors.empty());
    CHECK(errors.front().at("path") == "/api/member_data/PFXCOLD");
}
