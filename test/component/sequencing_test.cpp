// A busy member's requests overlap: the next one decides over the history its predecessor
// handed over (no GET) while that predecessor's persist is in flight. Every answer must still be
// what strictly one-at-a-time execution gives, including when the predecessor's write is lost.
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <optional>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/features.hpp"
#include "offerd/orchestrator/member_sequencer.hpp"
#include "offerd/store/history_store.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {
const micros fixed_now_us = parse_timestamp("2024-06-03T00:00:00Z").value();


// Predictions that take `pause`, so that requests for one member queue behind each other.
std::unique_ptr<fake_upstream> slow_prediction(std::chrono::milliseconds pause) {
    return std::make_unique<fake_upstream>(fake_upstream::async_function([pause](const request&) -> asio::awaitable<response> {
        const auto ex = co_await asio::this_coro::executor;
        asio::steady_timer timer(ex, pause);
        co_await timer.async_wait(nothrow);
        co_return json_response(http::status::ok, R"({"prediction":1})");
    }));
}

// member-data's contract over an in-test store, which answers `refuse(body)` instead of storing
// when that is set.
class fake_member_data {
public:
    explicit fake_member_data(std::function<std::optional<http::status>(const json::value&)> refuse)
        : refuse_(std::move(refuse)), server_([this](const request& r) { return serve(r); }) {}
    std::string url() const { return server_.url(); }
    std::vector<transaction> stored(const std::string& member) const {
        std::lock_guard lock(mutex_);
        std::vector<transaction> out;
        if (auto it = rows_.find(member); it != rows_.end())
            for (const auto& row : it->second) out.push_back(decode_transaction(row).value());
        return out;
    }

private:
    response serve(const request& r) {
        std::lock_guard lock(mutex_);
        if (r.method() == http::verb::get) {
            const std::string target(r.target());
            const auto it = rows_.find(target.substr(target.rfind('/') + 1));
            if (it == rows_.end()) return detail_response(http::status::not_found, "Member not found");
            std::string body = "[";
            for (const auto& row : it->second) body += (body.size() > 1 ? "," : "") + row;
            return json_response(http::status::ok, body + "]");
        }
        const auto v = json::parse(r.body());
        if (auto status = refuse_(v)) return detail_response(*status, "not now");
        rows_[std::string(v.at("memberId").as_string())].emplace_back(r.body());
        return json_response(http::status::ok, std::string(r.body()));
    }
    mutable std::mutex mutex_;
    std::map<std::string, std::vector<std::string>> rows_;
    std::function<std::optional<http::status>(const json::value&)> refuse_;
    fake_upstream server_;
};

// Sends each body at its offset from one client thread; the answers' statuses in the same order.
std::vector<unsigned> send_at(std::uint16_t port, const std::vector<std::pair<std::chrono::milliseconds, std::string>>& sends) {
    asio::io_context ctx;
    std::vector<unsigned> statuses(sends.size(), 0);
    for (std::size_t i = 0; i < sends.size(); ++i) {
        asio::co_spawn(ctx, [&, i]() -> asio::awaitable<void> {
            asio::steady_timer wait(ctx, sends[i].first);
            co_await wait.async_wait(nothrow);
            http_client client(ctx.get_executor(), url{"127.0.0.1", port, ""}, client_limits{});
            auto res = co_await client.send(http::verb::post, "/member/offer", sends[i].second,
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
    // r0 holds the member's turn through a 300 ms prediction while r1..r3 arrive. r1 arrived
    // after r0's GET, so it reads member-data itself (at ~300 ms). r2 and r3 arrived before that
    // GET, so each is handed the history (that GET plus the transactions persisted since)
    // instead of reading. r4 arrives after r1's GET: however many hand-overs later its turn
    // comes, a history derived from that GET could miss a write made before r4 arrived, so r4
    // reads.
    auto pred = slow_prediction(300ms);
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::prediction), [&](app_config& c) {
        c.orchestrator.prediction_url = pred->url();
        c.orchestrator.now = fixed_now_us;
    });
    std::vector<std::pair<std::chrono::milliseconds, std::string>> sends;
    for (int i = 0; i < 5; ++i)
        sends.emplace_back(i < 4 ? 50ms * i : 450ms,
                           txn_body("BUSY", "2024-06-0" + std::to_string(i + 1) + "T10:00:00Z", i % 2 ? "GIFT" : "BUY", 10 + i, 5 * i));
    CHECK(send_at(app.port(role::orchestrator), sends) == std::vector<unsigned>(5, 200));

    const auto stored = app.rt().store()->history("BUSY");
    REQUIRE(stored.size() == 5);
    const auto offers = app.events("offer");
    REQUIRE(offers.size() == 5);
    std::vector<bool> handed;
    for (const auto& e : offers) {
        handed.push_back(e.at("history_handed_over").as_bool());
        CHECK(e.at("latency_us").at("fetch").is_null() == e.at("history_handed_over").as_bool());
        check_features_against_store(e, stored);
    }
    CHECK(handed == std::vector<bool>{false, false, true, true, false});
    for (std::size_t i = 0; i < 5; ++i) CHECK(stored[i].points == 10 + static_cast<double>(i));  // arrival order
}

TEST_CASE("a request handed a history whose last write was lost decides again from member-data", "[component]") {
    // member-data refuses r1's transaction (points 13) with a 422, after r2 was already handed
    // r0 + r1. r1 fails with 502; r2 must not count r1.
    fake_member_data md([](const json::value& v) -> std::optional<http::status> {
        if (v.at("lastTransactionPointsBought") == 13) return http::status::unprocessable_entity;
        return std::nullopt;
    });
    auto pred = slow_prediction(200ms);
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::prediction) & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) {
        c.orchestrator.prediction_url = pred->url();
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.now = fixed_now_us;
    });
    CHECK(send_at(app.port(role::orchestrator), {{0ms, txn_body("LOST", "2024-06-01T10:00:00Z", "BUY", 1, 1)},
                                                 {50ms, txn_body("LOST", "2024-06-01T11:00:00Z", "BUY", 13, 1)},
                                                 {100ms, txn_body("LOST", "2024-06-01T12:00:00Z", "GIFT", 3, 1)}}) ==
          std::vector<unsigned>{200, 502, 200});

    const auto stored = md.stored("LOST");
    REQUIRE(stored.size() == 2);
    CHECK(app.events("handoff_discarded").size() == 1);
    const auto offers = app.events("offer");
    REQUIRE(offers.size() == 3);
    CHECK(offers[2].at("history_len") == 1);
    check_features_against_store(offers[2], stored);
}

TEST_CASE("a handed-over history is not counted twice when the write behind it went to the outbox", "[component]") {
    // One worker, so the order below is deterministic. r0 reads, then predicts for 300 ms while
    // r1 (50 ms) and r2 (100 ms) queue. X, another member, arrives at 150 ms; member-data answers
    // its persist (at ~450 ms) with a 503, which opens member-data's circuit. r1 reads at
    // ~300 ms, hands r0 + r1 over to r2 at ~600 ms, and its persist then fails fast on the open
    // circuit: r1 goes to the outbox before r2 computes its features. r2 must count r1 once.
    fake_member_data md([](const json::value& v) -> std::optional<http::status> {
        if (v.at("memberId") == "X") return http::status::service_unavailable;
        return std::nullopt;
    });
    auto pred = slow_prediction(300ms);
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::prediction) & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) {
        c.threads = 1;
        c.orchestrator.prediction_url = pred->url();
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.now = fixed_now_us;
        c.orchestrator.retry.max_attempts = 1;
        c.orchestrator.breaker.min_calls = 1;  // any failure opens
        c.orchestrator.breaker.failure_rate = 0.01;
        c.orchestrator.breaker.open_for = 10s;
    });
    const std::vector<std::pair<std::chrono::milliseconds, std::string>> sends{
        {0ms, txn_body("TWICE", "2024-06-01T10:00:00Z", "BUY", 1, 1)},
        {50ms, txn_body("TWICE", "2024-06-01T11:00:00Z", "GIFT", 2, 1)},
        {100ms, txn_body("TWICE", "2024-06-01T12:00:00Z", "BUY", 3, 1)},
        {150ms, txn_body("X", "2024-06-01T12:00:00Z", "BUY", 4, 1)}};
    CHECK(send_at(app.port(role::orchestrator), sends) == std::vector<unsigned>(4, 200));  // deferred writes still answer

    const auto offers = app.events("offer");
    REQUIRE(offers.size() == 4);
    const json::object* r2 = nullptr;
    for (const auto& e : offers)
        if (e.at("transaction").at("lastTransactionPointsBought") == 3) r2 = &e;
    REQUIRE(r2 != nullptr);
    CHECK(r2->at("history_handed_over") == true);
    CHECK(r2->at("history_len") == 2);
    CHECK(r2->at("pending_writes") == 0);
    const auto t0 = decode_transaction(sends[0].second).value();
    const auto t1 = decode_transaction(sends[1].second).value();
    const auto t2 = decode_transaction(sends[2].second).value();
    CHECK(r2->at("features") == json::parse(encode_features(compute_features(std::vector<transaction>{t0, t1}, t2, fixed_now_us))));
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
