// A busy member's requests overlap: the next one decides over the history its predecessor
// handed over (no GET) while that predecessor's persist is in flight. Every answer must still be
// what strictly one-at-a-time execution gives, including when the predecessor's write is lost.
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/features.hpp"
#include "offerd/orchestrator/member_sequencer.hpp"
#include "offerd/services/member_store.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {
const micros fixed_now_us = parse_timestamp("2024-06-03T00:00:00Z").value();

std::vector<json::object> offer_events(test_app& app) {
    std::vector<json::object> out;
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") == "offer") out.push_back(std::move(v));
    }
    return out;
}

// Predictions that take `pause`, so that requests for one member queue behind each other.
std::unique_ptr<fake_upstream> slow_prediction(std::chrono::milliseconds pause) {
    return std::make_unique<fake_upstream>(fake_upstream::async_function([pause](const request&) -> asio::awaitable<response> {
        asio::steady_timer timer(co_await asio::this_coro::executor, pause);
        co_await timer.async_wait(nothrow);
        co_return json_response(http::status::ok, R"({"prediction":1})");
    }));
}

// Sends bodies[i] at i * gap from one client thread, all for one member; the answers' statuses
// in the same order.
std::vector<unsigned> send_spaced(std::uint16_t port, const std::vector<std::string>& bodies, std::chrono::milliseconds gap) {
    asio::io_context ctx;
    std::vector<unsigned> statuses(bodies.size(), 0);
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        asio::co_spawn(ctx, [&, i]() -> asio::awaitable<void> {
            asio::steady_timer wait(ctx, gap * static_cast<int>(i));
            co_await wait.async_wait(nothrow);
            http_client client(ctx.get_executor(), url{"127.0.0.1", port, ""}, client_limits{});
            auto res = co_await client.send(http::verb::post, "/member/offer", bodies[i],
                                            call_options{{}, deadline::after(10s), {}, {}});
            statuses[i] = res ? res->result_int() : 0u;
        }, asio::detached);
    }
    ctx.run_for(20s);
    return statuses;
}

// The features the log shows must be those of the stored history before this transaction.
void check_features_against_store(const json::object& e, const std::vector<transaction>& stored) {
    const auto n = e.at("history_len").to_number<std::size_t>();
    REQUIRE(n < stored.size());
    const auto current = decode_transaction(json::serialize(e.at("transaction")));
    REQUIRE(current);
    CHECK(stored[n] == *current);  // persisted right after the history it saw
    const auto expected = compute_features(std::span(stored).first(n), *current, fixed_now_us);
    CHECK(e.at("features") == json::parse(encode_features(expected)));
}
}  // namespace

TEST_CASE("queued requests of one member decide over the history handed to them and match one-at-a-time execution", "[component]") {
    // r0 holds the member's turn for a 200 ms prediction while r1..r3 arrive. r1 arrived after
    // r0's GET, so it reads member-data itself; r2 and r3 arrived before r1's GET, so each is
    // handed the history (r1's GET plus the transactions persisted since) instead of reading.
    auto pred = slow_prediction(200ms);
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::prediction), [&](app_config& c) {
        c.orchestrator.prediction_url = pred->url();
        c.orchestrator.now = fixed_now_us;
    });
    std::vector<std::string> bodies;
    for (int i = 0; i < 4; ++i) bodies.push_back(txn_body("BUSY", "2024-06-0" + std::to_string(i + 1) + "T10:00:00Z", i % 2 ? "GIFT" : "BUY", 10 + i, 5 * i));
    CHECK(send_spaced(app.port(role::orchestrator), bodies, 30ms) == std::vector<unsigned>{200, 200, 200, 200});

    const auto stored = app.rt().store()->history("BUSY");
    REQUIRE(stored.size() == 4);
    const auto offers = offer_events(app);
    REQUIRE(offers.size() == 4);
    std::vector<bool> handed;
    for (const auto& e : offers) {
        handed.push_back(e.at("history_handed_over").as_bool());
        CHECK(e.at("latency_us").at("fetch").is_null() == e.at("history_handed_over").as_bool());
        check_features_against_store(e, stored);
    }
    CHECK(handed == std::vector<bool>{false, false, true, true});
    for (std::size_t i = 0; i < 4; ++i) CHECK(stored[i].points == 10 + static_cast<double>(i));  // arrival order
}

TEST_CASE("a request handed a history whose last write was lost decides again from member-data", "[component]") {
    // member-data refuses r1's transaction (points 13) with a 422, after r2 was already handed
    // r0 + r1. r1 fails with 502; r2 must not count r1.
    std::mutex mutex;
    std::vector<std::string> rows;
    fake_upstream md([&](const request& r) {
        std::lock_guard lock(mutex);
        if (r.method() == http::verb::get) {
            if (rows.empty()) return detail_response(http::status::not_found, "Member not found");
            std::string body = "[";
            for (const auto& row : rows) body += (body.size() > 1 ? "," : "") + row;
            return json_response(http::status::ok, body + "]");
        }
        if (json::parse(r.body()).at("lastTransactionPointsBought") == 13) return detail_response(http::status::unprocessable_entity, "no");
        rows.emplace_back(r.body());
        return json_response(http::status::ok, std::string(r.body()));
    });
    auto pred = slow_prediction(200ms);
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::prediction) & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) {
        c.orchestrator.prediction_url = pred->url();
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.now = fixed_now_us;
    });
    const std::vector<std::string> bodies{txn_body("LOST", "2024-06-01T10:00:00Z", "BUY", 1, 1),
                                          txn_body("LOST", "2024-06-01T11:00:00Z", "BUY", 13, 1),
                                          txn_body("LOST", "2024-06-01T12:00:00Z", "GIFT", 3, 1)};
    CHECK(send_spaced(app.port(role::orchestrator), bodies, 30ms) == std::vector<unsigned>{200, 502, 200});

    std::vector<transaction> stored;
    for (const auto& row : rows) stored.push_back(decode_transaction(row).value());
    REQUIRE(stored.size() == 2);
    std::size_t discarded = 0;
    for (const auto& line : app.log_lines()) discarded += json::parse(line).at("event") == "handoff_discarded";
    CHECK(discarded == 1);
    const auto offers = offer_events(app);
    REQUIRE(offers.size() == 3);
    CHECK(offers[2].at("history_len") == 1);
    check_features_against_store(offers[2], stored);
}

TEST_CASE("the sequencer hands over to the next waiter only, in arrival order", "[component]") {
    asio::io_context io;
    member_sequencer seq;
    std::vector<std::string> got;  // which waiter got which hand-over
    auto handoff_of = [](double points) {
        auto h = std::make_unique<history_handoff>();
        h->history.items.push_back(transaction{"M", 0, txn_type::buy, points, 0});
        return h;
    };
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        auto first = co_await seq.acquire("M", deadline::after(5s));
        REQUIRE(first);
        CHECK(first->take_handoff() == nullptr);
        auto waiter = [&](std::string name, std::chrono::milliseconds patience, bool pass_on) -> asio::awaitable<void> {
            auto turn = co_await seq.acquire("M", deadline::after(patience));
            if (!turn) {
                got.push_back(name + ":timed out");
                co_return;
            }
            auto h = turn->take_handoff();
            got.push_back(name + ":" + (h ? std::to_string(static_cast<int>(h->history.items.at(0).points)) : "none"));
            turn->release(pass_on ? handoff_of(2) : nullptr);
        };
        asio::co_spawn(io, waiter("impatient", 10ms, false), asio::detached);
        asio::co_spawn(io, waiter("b", 5s, false), asio::detached);
        asio::co_spawn(io, waiter("c", 5s, true), asio::detached);
        asio::steady_timer pause(io, 50ms);
        co_await pause.async_wait(nothrow);
        first->release(handoff_of(1));
        pause.expires_after(50ms);
        co_await pause.async_wait(nothrow);
        // c handed over with nobody queued: dropped with the member's entry.
        auto later = co_await seq.acquire("M", deadline::after(5s));
        REQUIRE(later);
        got.push_back(std::string("later:") + (later->take_handoff() ? "some" : "none"));
    }, asio::detached);
    io.run_for(5s);
    CHECK(got == std::vector<std::string>{"impatient:timed out", "b:1", "c:none", "later:none"});
    CHECK(seq.busy_members() == 0);
}
