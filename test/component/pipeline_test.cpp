// The offer flow and its write path without sockets: offer_pipeline::run over clients built
// from functions (an in-test member-data that can lose answers, refuse, or stall on a gate).
// Every decision must count exactly the transactions accepted before it, each once.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <set>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/features.hpp"
#include "offerd/net/http.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/orchestrator/offer_pipeline.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace std::chrono_literals;

namespace {
const micros fixed_now = parse_timestamp("2024-06-03T00:00:00Z").value();

// A gate a fake call waits at until the test opens it. Single-threaded io_context only.
class gate {
public:
    explicit gate(asio::io_context& ctx) : timer_(ctx, asio::steady_timer::time_point::max()) {}
    asio::awaitable<void> wait() {
        ++waiting_;
        if (!open_) co_await timer_.async_wait(nothrow);
    }
    void open() {
        open_ = true;
        timer_.cancel();
    }
    int waiting() const { return waiting_; }

private:
    asio::steady_timer timer_;
    bool open_ = false;
    int waiting_ = 0;
};

// What the fake member-data does with the n-th write it is sent (1-based).
enum class write_fate { store, lose_answer, fail, refuse };

// member-data's contract in memory: de-duplicates writes by key, answers with a fate per write.
struct fake_member_data {
    std::map<std::string, std::vector<transaction>> rows;
    std::set<std::string> keys;
    std::function<write_fate(int n, const transaction&)> fate = [](int, const transaction&) { return write_fate::store; };
    bool reads_down = false;
    int writes = 0;
    int reads = 0;
    std::map<int, gate*> gates;  // the n-th write waits at gates[n] first

    asio::awaitable<result<store_ack>> store(const transaction& t, const std::string& key) {
        const int n = ++writes;
        if (auto g = gates.find(n); g != gates.end()) co_await g->second->wait();
        const write_fate f = fate(n, t);
        if (f == write_fate::refuse) {
            failure e = fail(errc::upstream_bad_status, "member-data answered HTTP 422");
            e.upstream_status = 422;
            co_return e;
        }
        if (f == write_fate::fail) co_return fail(errc::upstream_unavailable, "member-data is unavailable");
        bool replayed = !keys.insert(key).second;
        if (!replayed) rows[t.member_id].push_back(t);
        if (f == write_fate::lose_answer) co_return fail(errc::upstream_timeout, "member-data timed out");
        co_return store_ack{replayed};
    }
};

// The pipeline and its write path over the fake member-data and the contract's formulas.
struct harness {
    explicit harness(const std::function<void(orchestrator_config&)>& tweak = {}) {
        cfg.now = fixed_now;
        cfg.outbox.retry_min = 5ms;
        cfg.outbox.retry_max = 10ms;
        if (tweak) tweak(cfg);
        clients.fetch_history = [this](const std::string& m, const call_context&) -> asio::awaitable<result<decoded_history>> {
            ++md.reads;
            if (md.reads_down) co_return fail(errc::upstream_unavailable, "member-data is unavailable");
            decoded_history h;
            if (auto it = md.rows.find(m); it != md.rows.end()) h.items = it->second;
            co_return h;
        };
        clients.predict = [](model m, std::string features, const call_context&) -> asio::awaitable<result<double>> {
            const auto f = decode_features(features).value();
            co_return m == model::ats ? predict_ats(f) : predict_resp(f);
        };
        clients.assign_offer = [](offer_request r, const call_context&) -> asio::awaitable<result<std::string>> {
            co_return std::string(offerd::assign_offer(r.ats, r.resp));
        };
        clients.store = [this](const transaction& t, const std::string& key, const call_context&) { return md.store(t, key); };
        writes = std::make_unique<write_path>(cfg, clients, log);
        pipeline = std::make_unique<offer_pipeline>(clients, *writes, cfg);
    }

    asio::awaitable<offer_outcome> offer(transaction t, std::string key = {}) {
        const call_context ctx{0, "test", deadline::after(5s), log, nullptr};
        offer_input in{std::move(t), key, 0};
        co_return co_await pipeline->run(in, ctx);
    }

    orchestrator_config cfg;
    logger log{log_config{"", log_level::off}};
    fake_member_data md;
    offer_clients clients;
    std::unique_ptr<write_path> writes;
    std::unique_ptr<offer_pipeline> pipeline;
};

transaction txn(const std::string& member, int i, txn_type type = txn_type::buy) {
    return transaction{member, parse_timestamp("2024-06-01T10:00:00Z").value() + static_cast<micros>(i) * 3'600'000'000,
                       type, 10.0 + i, 1.0 + i % 7};
}

// The features over exactly `before`, then t.
member_features expected(const std::vector<transaction>& before, const transaction& t) {
    return compute_features(before, t, fixed_now);
}

// Runs fn on a fresh io_context until it and everything it spawned finish (bounded).
void run(asio::io_context& ctx, std::function<asio::awaitable<void>()> fn) {
    bool done = false;
    ctx.restart();  // a previous run may have left it stopped
    asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
        co_await fn();
        done = true;
    }, asio::detached);
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < give_up) ctx.run_one_for(100ms);
    REQUIRE(done);
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(nothrow);
}
}  // namespace

TEST_CASE("a write whose answer is lost is redelivered under its key and counted once", "[unit]") {
    asio::io_context ctx(1);
    harness h;
    h.md.fate = [](int n, const transaction&) { return n % 3 == 0 ? write_fate::lose_answer : write_fate::store; };
    h.writes->start_drainer(ctx);
    std::vector<transaction> accepted;
    run(ctx, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 30; ++i) {
            const transaction t = txn("LOST", i, i % 4 == 3 ? txn_type::redeem : txn_type::buy);
            const offer_outcome o = co_await h.offer(t);
            REQUIRE_FALSE(o.error);
            CHECK(o.features == expected(accepted, t));
            CHECK(o.history_len == accepted.size());
            accepted.push_back(t);
        }
        for (int i = 0; i < 200 && h.writes->pending_writes().size() > 0; ++i) co_await pause(5ms);
    });
    h.writes->stop_drainer();
    CHECK(h.writes->pending_writes().size() == 0);
    CHECK(h.md.rows["LOST"] == accepted);  // every accepted transaction once, in order
    CHECK(h.md.reads == 1);                // warm after the first read
}

TEST_CASE("with member-data refusing writes but serving reads, requests are answered and writes wait in order", "[unit]") {
    asio::io_context ctx(1);
    harness h;
    bool writes_down = true;
    h.md.fate = [&](int, const transaction&) { return writes_down ? write_fate::fail : write_fate::store; };
    std::map<std::string, std::vector<transaction>> accepted;
    int ok = 0;
    run(ctx, [&]() -> asio::awaitable<void> {
        const std::string members[] = {"M0", "M1", "M2", "M3", "M4"};
        for (int i = 0; i < 100; ++i) {
            const std::string& m = members[i % 5];
            const transaction t = txn(m, i);
            const offer_outcome o = co_await h.offer(t);
            if (o.error) continue;
            ++ok;
            CHECK(o.deferred);
            CHECK(o.features == expected(accepted[m], t));
            accepted[m].push_back(t);
        }
    });
    CHECK(ok == 100);
    CHECK(h.writes->pending_writes().size() == 100);
    writes_down = false;
    h.writes->start_drainer(ctx);
    run(ctx, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 400 && h.writes->pending_writes().size() > 0; ++i) co_await pause(5ms);
    });
    h.writes->stop_drainer();
    for (const auto& [m, txns] : accepted) CHECK(h.md.rows[m] == txns);
}

TEST_CASE("when the outbox is full the request fails and its transaction is not counted", "[unit]") {
    asio::io_context ctx(1);
    harness h([](orchestrator_config& c) { c.outbox.max_items = 1; });
    bool writes_down = true;
    h.md.fate = [&](int, const transaction&) { return writes_down ? write_fate::fail : write_fate::store; };
    const transaction t1 = txn("FULL", 1), t2 = txn("FULL", 2), t3 = txn("FULL", 3), t4 = txn("FULL", 4);
    run(ctx, [&]() -> asio::awaitable<void> {
        const offer_outcome o1 = co_await h.offer(t1);
        CHECK_FALSE(o1.error);
        CHECK(o1.deferred);
        const offer_outcome o2 = co_await h.offer(t2);  // behind t1, and the outbox has no room
        REQUIRE(o2.error);
        CHECK(status_for(o2.error->code) == http::status::gateway_timeout);
        // The member's record counted t2, so it was forgotten; t1 still waits, so the member's
        // history cannot be known until member-data takes it.
        const offer_outcome o3 = co_await h.offer(t3);
        REQUIRE(o3.error);
        CHECK(o3.error->code == errc::writes_pending);
        CHECK(status_for(o3.error->code) == http::status::service_unavailable);
        writes_down = false;
        const offer_outcome o4 = co_await h.offer(t4);  // delivers t1, then reads
        REQUIRE_FALSE(o4.error);
        CHECK(o4.fetched);
        CHECK(o4.features == expected({t1}, t4));
    });
    CHECK(h.md.rows["FULL"] == std::vector<transaction>{t1, t4});
}

TEST_CASE("writes waiting on disk are delivered after a restart before the member is read", "[unit]") {
    char tmpl[] = "/tmp/offerd-pipeline-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    fake_member_data md;  // survives the orchestrator's restart
    const transaction t1 = txn("DISK", 1), t2 = txn("DISK", 2), t3 = txn("DISK", 3);
    {
        asio::io_context ctx(1);
        harness h([&](orchestrator_config& c) { c.outbox.dir = dir; });
        // t1 reaches member-data but its answer is lost; t2 never reaches it.
        h.md.fate = [](int n, const transaction&) { return n == 1 ? write_fate::lose_answer : write_fate::fail; };
        run(ctx, [&]() -> asio::awaitable<void> {
            // (No co_await inside Catch's macros: they expand their argument more than once.)
            const offer_outcome o1 = co_await h.offer(t1);
            const offer_outcome o2 = co_await h.offer(t2);
            CHECK(o1.deferred);
            CHECK(o2.deferred);
        });
        CHECK(h.writes->pending_writes().size() == 2);
        md.rows = h.md.rows;
        md.keys = h.md.keys;
    }
    asio::io_context ctx(1);
    harness h([&](orchestrator_config& c) { c.outbox.dir = dir; });
    h.md.rows = md.rows;
    h.md.keys = md.keys;
    run(ctx, [&]() -> asio::awaitable<void> {
        const offer_outcome o = co_await h.offer(t3);
        REQUIRE_FALSE(o.error);
        CHECK(o.fetched);
        CHECK(o.features == expected({t1, t2}, t3));
    });
    CHECK(h.md.rows["DISK"] == std::vector<transaction>{t1, t2, t3});  // t1 de-duplicated by its key
    CHECK(h.writes->pending_writes().size() == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("queued requests decide while the previous write is in flight, and decide again when it is refused", "[unit]") {
    asio::io_context ctx(1);
    harness h;
    gate writes_open(ctx);
    h.md.gates[2] = &writes_open;
    // The second write (t2) is refused for good.
    h.md.fate = [](int n, const transaction&) { return n == 2 ? write_fate::refuse : write_fate::store; };
    const transaction t1 = txn("CHAIN", 1), t2 = txn("CHAIN", 2), t3 = txn("CHAIN", 3), t4 = txn("CHAIN", 4);
    std::vector<offer_outcome> out(4);
    run(ctx, [&]() -> asio::awaitable<void> {
        int finished = 0;
        const transaction ts[] = {t1, t2, t3, t4};
        for (int i = 0; i < 4; ++i)
            asio::co_spawn(ctx, [&, i]() -> asio::awaitable<void> {
                out[i] = co_await h.offer(ts[i]);
                ++finished;
            }, asio::detached);
        // t2's write waits at the gate; t3 decided over the warm record (t1 + t2) meanwhile and
        // waits for the delivery turn. Nothing reads member-data but the first request.
        while (writes_open.waiting() < 1) co_await pause(1ms);
        co_await pause(20ms);
        CHECK(h.md.reads == 1);
        writes_open.open();
        while (finished < 4) co_await pause(1ms);
    });
    REQUIRE_FALSE(out[0].error);
    REQUIRE(out[1].error);  // refused: it is nowhere, and the client is told
    CHECK(status_for(out[1].error->code) == http::status::bad_gateway);
    CHECK(out[1].features == expected({t1}, t2));
    // t3 decided over t1 + t2, then learned t2 was refused: decided again from member-data.
    REQUIRE_FALSE(out[2].error);
    CHECK(out[2].decided_again);
    CHECK(out[2].fetched);
    CHECK(out[2].features == expected({t1}, t3));
    REQUIRE_FALSE(out[3].error);
    CHECK(out[3].features == expected({t1, t3}, t4));
    CHECK(h.md.rows["CHAIN"] == std::vector<transaction>{t1, t3, t4});
}

TEST_CASE("when one prediction's failure opened the circuit that refused the other, the request gets the failure it saw", "[unit]") {
    asio::io_context ctx(1);
    for (const model refused : {model::ats, model::resp}) {
        harness h;
        // The pipeline calls through h.clients (a reference), so the new predict is what it uses.
        h.clients.predict = [refused](model m, std::string, const call_context&) -> asio::awaitable<result<double>> {
            if (m == refused) co_return fail(errc::circuit_open, "prediction is failing; circuit open", 2);
            co_return fail(errc::upstream_timeout, "prediction timed out");
        };
        run(ctx, [&]() -> asio::awaitable<void> {
            const offer_outcome o = co_await h.offer(txn("SIB", 1));
            REQUIRE(o.error);
            CHECK(o.error->code == errc::upstream_timeout);
        });
        CHECK(h.md.rows["SIB"].empty());  // no offer, nothing counted
    }
}

TEST_CASE("a repeat of a keyed request is replayed, another body under the key is a conflict", "[unit]") {
    asio::io_context ctx(1);
    harness h;
    const transaction t1 = txn("KEY", 1);
    run(ctx, [&]() -> asio::awaitable<void> {
        // Named inputs: g++ 12 mishandles temporaries inside a co_await expression.
        const call_context c{0, "test", deadline::after(5s), h.log, nullptr};
        const offer_input in1{t1, "k1", 7}, in2{txn("KEY", 2), "k1", 8};
        const offer_outcome first = co_await h.pipeline->run(in1, c);
        REQUIRE_FALSE(first.error);
        const offer_outcome again = co_await h.pipeline->run(in1, c);
        CHECK(again.replayed);
        CHECK(again.replay_body == encode_member_offer("KEY", first.offer));
        const offer_outcome other = co_await h.pipeline->run(in2, c);
        REQUIRE(other.error);
        CHECK(other.error->code == errc::idempotency_conflict);
    });
    CHECK(h.md.rows["KEY"].size() == 1);
}

TEST_CASE("an idle member goes cold after its idle period and is read again", "[unit]") {
    asio::io_context ctx(1);
    harness h([](orchestrator_config& c) { c.members.idle = 0ms; });
    run(ctx, [&]() -> asio::awaitable<void> {
        const offer_outcome first = co_await h.offer(txn("IDLE", 1));
        CHECK(first.fetched);
        // Another client writes to member-data directly; with no idle period it is seen.
        h.md.rows["IDLE"].push_back(txn("IDLE", 2));
        const offer_outcome o = co_await h.offer(txn("IDLE", 3));
        CHECK(o.fetched);
        CHECK(o.history_len == 2);
    });
    CHECK(h.md.reads == 2);
}

TEST_CASE("member turns are granted in arrival order and a waiter that timed out is skipped", "[unit]") {
    asio::io_context ctx(1);
    member_turns turns;
    std::vector<int> order;
    run(ctx, [&]() -> asio::awaitable<void> {
        auto first = co_await turns.acquire("M", deadline::after(5s));
        REQUIRE(first);
        int finished = 0;
        for (int i = 1; i <= 3; ++i)
            asio::co_spawn(ctx, [&, i]() -> asio::awaitable<void> {
                auto l = co_await turns.acquire("M", i == 2 ? deadline::after(10ms) : deadline::after(5s));
                if (l) order.push_back(i);
                else order.push_back(-i);
                ++finished;
            }, asio::detached);
        co_await pause(50ms);  // the second waiter's deadline passes while the first holder works
        CHECK(turns.busy("M"));
        first->release();
        while (finished < 3) co_await pause(1ms);
    });
    CHECK(order == std::vector<int>{-2, 1, 3});
    CHECK_FALSE(turns.busy("M"));
}
