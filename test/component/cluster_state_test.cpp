// Cluster mode in-process: orchestrator replicas (test_apps) on one real PostgreSQL (scripts/pg.sh)
// over shared services. The member log's fence, the replay of keys across replicas, and what a
// PostgreSQL or member-data outage does to requests and to the transactions they accepted.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <stdexcept>
#include <future>
#include <set>
#include <thread>

#include "offerd/codec/wire.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/orchestrator/persist/pg_member_log.hpp"
#include "offerd/store/pg_connection.hpp"
#include "pg_server.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {
constexpr std::uint8_t services = static_cast<std::uint8_t>(role::member_data) | static_cast<std::uint8_t>(role::prediction) |
                                  static_cast<std::uint8_t>(role::offer_engine);

std::function<void(app_config&)> replica_of(test_app& svc, const std::string& state_url, std::string member_data_url = {}) {
    return [&svc, state_url, member_data_url](app_config& c) {
        c.orchestrator.member_data_url = member_data_url.empty() ? svc.rt().base_url(role::member_data) : member_data_url;
        c.orchestrator.prediction_url = svc.rt().base_url(role::prediction);
        c.orchestrator.offer_engine_url = svc.rt().base_url(role::offer_engine);
        c.orchestrator.state_url = state_url;
    };
}

std::string ts(int minute) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "2024-07-01T%02d:%02d:00Z", 8 + minute / 60, minute % 60);
    return buf;
}

// Retries what a client is told to retry (503 + Retry-After).
http_result offer(std::uint16_t port, const std::string& body, const std::map<std::string, std::string>& headers = {}) {
    http_result r;
    for (int attempt = 0; attempt < 50; ++attempt) {
        r = post(port, "/member/offer", body, headers);
        if (r.status != 503) return r;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return r;
}

std::size_t history_size(test_app& svc, const std::string& member) {
    auto h = get(svc.port(role::member_data), "/member_data/" + member);
    return h.status == 200 ? json::parse(h.body).as_array().size() : 0;
}
}  // namespace

TEST_CASE("replicas on one member log: each decision counts exactly the transactions accepted before it", "[component][pg]") {
    pg_server srv;
    if (!srv.available()) {
        WARN(srv.why());
        return;
    }
    test_app svc(services);
    test_app a(static_cast<std::uint8_t>(role::orchestrator), replica_of(svc, srv.url()));
    test_app b(static_cast<std::uint8_t>(role::orchestrator), replica_of(svc, srv.url()));
    constexpr int n = 20;
    std::vector<unsigned> statuses(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            statuses[static_cast<std::size_t>(i)] = offer((i % 2 ? a : b).port(role::orchestrator), txn_body("FENCE", ts(i))).status;
        });
    for (auto& t : threads) t.join();
    for (unsigned s : statuses) CHECK(s == 200);
    CHECK(history_size(svc, "FENCE") == n);
    std::multiset<std::int64_t> seen, expected;
    for (test_app* app : {&a, &b})
        for (const auto& e : app->events("offer"))
            if (e.at("status").to_number<int>() == 200) seen.insert(e.at("history_len").to_number<std::int64_t>());
    for (int k = 0; k < n; ++k) expected.insert(k);
    CHECK(seen == expected);

    SECTION("a key answered by one replica is replayed by the other; another body under it is 422") {
        const std::string body = txn_body("KEYS", ts(0));
        auto first = offer(a.port(role::orchestrator), body, {{"Idempotency-Key", "key-1"}});
        REQUIRE(first.status == 200);
        auto again = offer(b.port(role::orchestrator), body, {{"Idempotency-Key", "key-1"}});
        CHECK(again.status == 200);
        CHECK(again.body == first.body);
        CHECK(again.headers["Idempotent-Replayed"] == "true");
        CHECK(offer(b.port(role::orchestrator), txn_body("KEYS", ts(1)), {{"Idempotency-Key", "key-1"}}).status == 422);
        CHECK(history_size(svc, "KEYS") == 1);
    }

    SECTION("PostgreSQL down: 503 with Retry-After, nothing answered 200 is lost, and it works again once back") {
        REQUIRE(offer(a.port(role::orchestrator), txn_body("OUTAGE", ts(0))).status == 200);
        srv.stop();
        auto down = post(a.port(role::orchestrator), "/member/offer", txn_body("OUTAGE", ts(1)));
        CHECK(down.status == 503);
        CHECK(down.headers.count("Retry-After") == 1);
        auto cold = post(b.port(role::orchestrator), "/member/offer", txn_body("OUTAGE2", ts(1)));
        CHECK(cold.status == 503);
        srv.start();
        http_result back;
        for (int i = 0; i < 100 && back.status != 200; ++i) {
            back = post(a.port(role::orchestrator), "/member/offer", txn_body("OUTAGE", ts(2)));
            if (back.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        CHECK(back.status == 200);
        CHECK(history_size(svc, "OUTAGE") == 2);
    }
}

TEST_CASE("member-data refusing writes: warm members get 200, their rows wait in the member log and drain in order", "[component][pg]") {
    pg_server srv;
    if (!srv.available()) {
        WARN(srv.why());
        return;
    }
    test_app svc(services);
    std::atomic<bool> writes_up{true};
    // member-data's reads work, its writes fail while writes_up is false.
    fake_upstream md([&](const request& req) -> response {
        if (req.method() == http::verb::post && !writes_up.load()) return detail_response(http::status::service_unavailable, "down");
        return relay(svc.port(role::member_data), req, std::string(req.target()));
    });
    test_app a(static_cast<std::uint8_t>(role::orchestrator), [&](app_config& c) {
        replica_of(svc, srv.url(), md.url())(c);
        c.orchestrator.outbox.retry_min = std::chrono::milliseconds(20);
        c.orchestrator.outbox.retry_max = std::chrono::milliseconds(100);
    });
    const auto port = a.port(role::orchestrator);
    REQUIRE(offer(port, txn_body("WAIT", ts(0))).status == 200);  // warm now
    writes_up = false;
    for (int i = 1; i <= 5; ++i) CHECK(offer(port, txn_body("WAIT", ts(i))).status == 200);
    CHECK(history_size(svc, "WAIT") == 1);
    // The sixth decision counted the five waiting ones.
    auto events = a.events("offer");
    REQUIRE(!events.empty());
    CHECK(events.back().at("history_len").to_number<int>() == 5);
    writes_up = true;
    for (int i = 0; i < 200 && history_size(svc, "WAIT") < 6; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    auto h = get(svc.port(role::member_data), "/member_data/WAIT");
    REQUIRE(h.status == 200);
    const auto arr = json::parse(h.body).as_array();
    REQUIRE(arr.size() == 6);
    for (int i = 0; i < 6; ++i) CHECK(arr[static_cast<std::size_t>(i)].at("lastTransactionUtcTs").as_string() == ts(i));
}

TEST_CASE("member-data on PostgreSQL (--member-data-store): histories in order, keys de-duplicated across processes and restarts", "[component][pg]") {
    pg_server srv;
    if (!srv.available()) {
        WARN(srv.why());
        return;
    }
    const auto member_data = [&](app_config& c) { c.member_data.store_url = srv.url(); };
    const std::string first = R"({"memberId":"PGM","lastTransactionUtcTs":"2024-07-01 08:00:00","lastTransactionType":"buy","lastTransactionPointsBought":10,"lastTransactionRevenueUsd":2.5})";
    const std::string second = txn_body("PGM", ts(1));
    {
        test_app a(static_cast<std::uint8_t>(role::member_data), member_data);
        const auto port = a.port(role::member_data);
        CHECK(get(port, "/member_data/PGM").status == 404);
        auto w1 = post(port, "/member_data", first, {{"Idempotency-Key", "pgm-1"}});
        REQUIRE(w1.status == 200);
        CHECK(json::parse(w1.body).at("lastTransactionType").as_string() == "buy");  // echoed as sent
        REQUIRE(post(port, "/member_data", second, {{"Idempotency-Key", "pgm-2"}}).status == 200);
        REQUIRE(post(port, "/member_data", second).status == 200);  // no key: stored again
        // The same key and transaction: the first answer, nothing stored.
        auto again = post(port, "/member_data", first, {{"Idempotency-Key", "pgm-1"}});
        CHECK(again.status == 200);
        CHECK(again.headers["Idempotent-Replayed"] == "true");
        CHECK(again.body == w1.body);
        // The same key, another transaction: 422.
        CHECK(post(port, "/member_data", second, {{"Idempotency-Key", "pgm-1"}}).status == 422);
        auto h = get(port, "/member_data/PGM");
        REQUIRE(h.status == 200);
        const auto arr = json::parse(h.body).as_array();
        REQUIRE(arr.size() == 3);
        CHECK(arr[0] == json::parse(w1.body));
        CHECK(arr[1].at("lastTransactionUtcTs").as_string() == ts(1));
    }
    // Another member-data process on the same database (or this one restarted): the same
    // history, and a key it never saw is still a replay.
    test_app b(static_cast<std::uint8_t>(role::member_data), member_data);
    const auto port = b.port(role::member_data);
    auto h = get(port, "/member_data/PGM");
    REQUIRE(h.status == 200);
    CHECK(json::parse(h.body).as_array().size() == 3);
    auto replay = post(port, "/member_data", second, {{"Idempotency-Key", "pgm-2"}});
    CHECK(replay.status == 200);
    CHECK(replay.headers["Idempotent-Replayed"] == "true");
    // The same key at two processes at once: stored once.
    test_app c2(static_cast<std::uint8_t>(role::member_data), member_data);
    const std::string third = txn_body("PGM", ts(2));
    http_result r1, r2;
    std::thread t1([&] { r1 = post(port, "/member_data", third, {{"Idempotency-Key", "pgm-3"}}); });
    std::thread t2([&] { r2 = post(c2.port(role::member_data), "/member_data", third, {{"Idempotency-Key", "pgm-3"}}); });
    t1.join();
    t2.join();
    CHECK(r1.status == 200);
    CHECK(r2.status == 200);
    CHECK(json::parse(get(port, "/member_data/PGM").body).as_array().size() == 4);
    // PostgreSQL down: 503 (the write is not taken), and it works again once it is back.
    srv.stop();
    CHECK(post(port, "/member_data", txn_body("PGM", ts(3)), {{"Idempotency-Key", "pgm-4"}}).status == 503);
    srv.start();
    http_result back;
    for (int i = 0; i < 100 && back.status != 200; ++i) {
        back = post(port, "/member_data", txn_body("PGM", ts(3)), {{"Idempotency-Key", "pgm-4"}});
        if (back.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(back.status == 200);
    CHECK(json::parse(get(port, "/member_data/PGM").body).as_array().size() == 5);
}

namespace {
using marks = std::vector<std::pair<std::string, std::uint64_t>>;
using params = std::vector<std::optional<std::string>>;

asio::awaitable<std::uint64_t> append_first(pg_member_log& state, std::string member, transaction t, call_context ctx) {
    const append_request req{0, {}, 1, &t, "{}"};
    auto r = co_await state.append(member, req, ctx);
    co_return r && r->what == append_result::kind::appended ? r->seq : 0;
}

// kind and seq of one append
asio::awaitable<std::pair<append_result::kind, std::uint64_t>> append_as(pg_member_log& state, std::string member,
                                                                          std::uint64_t expected, std::string key,
                                                                          transaction t, call_context ctx) {
    const append_request req{expected, key, 7, &t, "{}"};
    auto r = co_await state.append(member, req, ctx);
    co_return r ? std::pair{r->what, r->seq} : std::pair{append_result::kind::stale, std::uint64_t{999}};
}

std::uint64_t commits_of(const pg_member_log& state) {
    std::string out;
    state.write_metrics(out);
    const std::string name = "\nofferd_state_commits_total ";
    const auto at = out.find(name);
    return at == std::string::npos ? 0 : std::stoull(out.substr(at + name.size()));
}

asio::awaitable<std::vector<logged_transaction>> rows_of(pg_member_log& state, std::string member, std::uint64_t after,
                                                       std::uint64_t up_to, call_context ctx) {
    auto r = co_await state.rows(member, after, up_to, ctx);
    co_return r ? std::move(*r) : std::vector<logged_transaction>{};
}

asio::awaitable<std::string> key_answer(pg_member_log& state, std::string member, std::string key, call_context ctx) {
    auto r = co_await state.find_key(member, key, ctx);
    co_return r && *r ? (*r)->body : std::string("(none)");
}

asio::awaitable<std::vector<std::string>> mark(pg_member_log& state, marks m, call_context ctx) {
    auto r = co_await state.delivered_many(m, ctx);
    co_return r ? std::move(*r) : std::vector<std::string>{"(failed)"};
}

asio::awaitable<std::uint64_t> delivered_of(pg_member_log& state, std::string member, call_context ctx) {
    auto h = co_await state.head(member, ctx);
    co_return h ? h->delivered_seq : 999;
}

asio::awaitable<std::string> exec_text(pg::connection& c, std::string name, params p) {
    auto r = co_await c.exec(name, std::move(p), pg::kind::read, deadline::after(20s));
    co_return r && r->ok() && r->size() > 0 ? r->at(0, 0).value_or("NULL") : std::string("(failed)");
}

// The member log on its own PostgreSQL with one worker, run on a thread of the test's own; more
// connections on that worker with add() before start(). Members go in reverse: the thread is
// joined before the connections and the log are destroyed.
struct one_worker_log {
    pg_server srv;
    asio::io_context io;
    logger log{log_config{"/dev/null", log_level::off}};
    std::array<asio::io_context*, 1> loops{&io};
    std::vector<worker_context> workers = make_workers(loops);
    std::optional<pg_member_log> state;
    std::vector<std::unique_ptr<pg::connection>> others;
    struct runner {
        explicit runner(asio::io_context& c) : io(c), work(c.get_executor()), t([this] { io.run(); }) {}
        ~runner() {
            work.reset();
            io.stop();
            t.join();
        }
        asio::io_context& io;
        asio::executor_work_guard<asio::io_context::executor_type> work;
        std::thread t;
    };
    std::optional<runner> run;
    const call_context ctx{0, "test", deadline::after(60s), log, nullptr};

    pg::connection& add(std::vector<pg::statement> statements) {
        pg::connection_config cfg;
        cfg.conninfo = srv.url();
        others.push_back(std::make_unique<pg::connection>(io.get_executor(), cfg, std::move(statements)));
        return *others.back();
    }
    // Everything connected (it fails the test otherwise); false, with a warning (Catch2 2.13
    // has no SKIP), only without PostgreSQL.
    bool start() {
        if (!srv.available()) {
            WARN(srv.why());
            return false;
        }
        state.emplace(workers, srv.url(), log);
        for (auto& c : others) c->start();
        run.emplace(io);
        auto all_up = [&] {
            return state->connected() && std::all_of(others.begin(), others.end(), [](const auto& c) { return c->connected(); });
        };
        for (int i = 0; i < 3000 && !all_up(); ++i) std::this_thread::sleep_for(10ms);
        REQUIRE(all_up());
        return true;
    }
    // Runs op on the worker and waits for its value.
    template <class T>
    T get(asio::awaitable<T> op) {
        auto f = asio::co_spawn(io, std::move(op), asio::use_future);
        if (f.wait_for(30s) != std::future_status::ready) throw std::runtime_error("did not finish in time");
        return f.get();
    }
};
}  // namespace

// Marks and appends run on different connections; a mark waiting behind an append's group
// commit while that group waited for a row the mark held was a deadlock PostgreSQL broke only
// after deadlock_timeout (1 s of every request in flight stalled, measured at 64 connections).
TEST_CASE("Batched delivery marks never wait for a member another transaction holds and leave it for the next flush",
          "[component][pg]") {
    one_worker_log f;
    // The holder keeps HELD's members row locked in its transaction, as an append's group commit
    // would, until the gate (a session advisory lock the test takes first) lets it finish.
    pg::connection& holder = f.add(
        {{"hold", "UPDATE members SET last_seq = last_seq WHERE member_id = $1 RETURNING pg_advisory_xact_lock(7301)"}});
    pg::connection& gate = f.add({{"close", "SELECT pg_advisory_lock(7301)::text"},
                                  {"open", "SELECT pg_advisory_unlock(7301)::text"},
                                  {"held", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"}});
    if (!f.start()) return;
    pg_member_log& state = *f.state;
    const call_context& ctx = f.ctx;
    const transaction t = decode_transaction(txn_body("HELD")).value();
    REQUIRE(f.get(append_first(state, "HELD", t, ctx)) == 1);
    REQUIRE(f.get(append_first(state, "FREE", t, ctx)) == 1);

    REQUIRE(f.get(exec_text(gate, "close", {})) == "");  // pg_advisory_lock returns void
    auto held = asio::co_spawn(f.io, exec_text(holder, "hold", {std::string("HELD")}), asio::use_future);
    std::string waiting;  // the holder has the row and waits at the gate
    for (int i = 0; i < 3000 && (waiting = f.get(exec_text(gate, "held", {}))) != "1"; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(waiting == "1");

    const auto skipped = f.get(mark(state, marks{{"HELD", 1}, {"FREE", 1}}, ctx));
    CHECK(skipped == std::vector<std::string>{"HELD"});
    CHECK(held.wait_for(0s) != std::future_status::ready);  // it did not wait for the holder
    CHECK(f.get(delivered_of(state, "FREE", ctx)) == 1);
    CHECK(f.get(delivered_of(state, "HELD", ctx)) == 0);

    REQUIRE(f.get(exec_text(gate, "open", {})) == "true");
    REQUIRE(held.wait_for(30s) == std::future_status::ready);
    CHECK(f.get(mark(state, marks{{"HELD", 1}}, ctx)).empty());
    CHECK(f.get(delivered_of(state, "HELD", ctx)) == 1);
}

// Appends waiting on one worker go as one multi-row statement; each row keeps the fence's
// answer it would have had alone.
TEST_CASE("Appends waiting on a worker share one statement and each gets its own outcome", "[component][pg]") {
    one_worker_log f;
    if (!f.start()) return;
    pg_member_log& state = *f.state;
    const call_context& ctx = f.ctx;
    const transaction t = decode_transaction(txn_body("OLD")).value();
    using k = append_result::kind;
    REQUIRE(f.get(append_as(state, "OLD", 0, "key-1", t, ctx)) == std::pair{k::appended, std::uint64_t{1}});
    REQUIRE(f.get(append_as(state, "OLD", 1, "", t, ctx)) == std::pair{k::appended, std::uint64_t{2}});

    struct want {
        std::string member;
        std::uint64_t expected;
        std::string key;
        std::pair<k, std::uint64_t> outcome;
    };
    // Each batch starts with a leader of its own: it goes at once, alone (the plain statement);
    // the rest wait behind it and share the next, multi-row, statement.
    const std::vector<want> rows{
        {"LEAD1", 0, "", {k::appended, 1}},
        {"OLD", 2, "", {k::appended, 3}},          // from the seq the log holds
        {"NEW", 0, "key-1", {k::appended, 1}},     // a key is per member
        {"STALE", 0, "", {k::appended, 1}},
        {"AHEAD", 4, "", {k::stale, 0}},           // history the log lacks
        {"BEHIND", 0, "", {k::appended, 1}},
    };
    const std::vector<want> second{
        {"LEAD2", 0, "", {k::appended, 1}},
        {"STALE", 0, "", {k::stale, 0}},           // behind the log's seq (1)
        {"OLD", 5, "", {k::stale, 0}},             // ahead of it (3)
        {"OLD2", 0, "", {k::appended, 1}},
        {"NEW", 1, "key-1", {k::key_taken, 0}},    // NEW's logged key
        {"BEHIND", 1, "key-2", {k::appended, 2}},
    };
    for (const auto* batch : {&rows, &second}) {
        const std::uint64_t commits_before = commits_of(state);
        // Started in one handler on the worker: co_spawn runs each up to its first suspension
        // at once (Boost 1.80 and later), so the leader's flush starts before the others queue.
        std::vector<std::future<std::pair<k, std::uint64_t>>> futures(batch->size());
        std::promise<void> started;
        asio::post(f.io, [&] {
            for (std::size_t i = 0; i < batch->size(); ++i)
                futures[i] = asio::co_spawn(f.io, append_as(state, (*batch)[i].member, (*batch)[i].expected, (*batch)[i].key, t, ctx),
                                            asio::use_future);
            started.set_value();
        });
        started.get_future().wait();
        for (std::size_t i = 0; i < batch->size(); ++i) {
            REQUIRE(futures[i].wait_for(30s) == std::future_status::ready);
            INFO((*batch)[i].member);
            CHECK(futures[i].get() == (*batch)[i].outcome);
        }
        CHECK(commits_of(state) == commits_before + 2);  // the leader's, then the others' together
    }
    // What the batched statement logged reads back as sent (its array encoding included).
    const auto logged = f.get(rows_of(state, "OLD", 2, 3, ctx));
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].seq == 3);
    CHECK(encode_transaction(logged[0].txn) == encode_transaction(t));
    const auto answer = f.get(key_answer(state, "NEW", "key-1", ctx));
    CHECK(answer == "{}");
}

namespace {
asio::awaitable<std::size_t> claimable(pg_member_log& state, call_context ctx) {
    auto r = co_await state.undelivered_members(100, 0ms, ctx);
    co_return r ? r->size() : 999;
}
asio::awaitable<bool> stop_log(pg_member_log& state) {
    state.stop();
    co_return true;
}
}  // namespace

// Sessions opened on a fresh server plan their prepared statements against empty tables, where
// scanning a table looks cheaper than probing its index; those generic plans stay for the
// session. Appends (with and without keys), marks and claim scans must still reach members and
// member_log by key only: a scan per statement is a cost that grows with every member.
TEST_CASE("The member log's statements probe members and member_log by key even when planned on empty tables",
          "[component][pg]") {
    one_worker_log f;
    pg::connection& stats = f.add({{"stats", "SELECT coalesce(sum(n_tup_ins) FILTER (WHERE relname = 'member_log'), 0) || ' ' || "
                                             "coalesce(sum(seq_scan) FILTER (WHERE relname = 'members'), 0) || ' ' || "
                                             "coalesce(sum(seq_scan) FILTER (WHERE relname = 'member_log'), 0) "
                                             "FROM pg_stat_user_tables"}});
    if (!f.start()) return;
    pg_member_log& state = *f.state;
    const call_context& ctx = f.ctx;
    const transaction t = decode_transaction(txn_body("SCAN")).value();
    constexpr int rounds = 30;
    constexpr int members = 8;
    for (int r = 0; r < rounds; ++r) {
        // One handler: the first append goes alone, the other seven share a multi-row statement.
        std::vector<std::future<std::pair<append_result::kind, std::uint64_t>>> futures(members);
        std::promise<void> started;
        asio::post(f.io, [&] {
            for (int i = 0; i < members; ++i)
                futures[i] = asio::co_spawn(f.io, append_as(state, "SCAN" + std::to_string(i), r,
                                                            i % 2 ? "key-" + std::to_string(r) : std::string(), t, ctx),
                                            asio::use_future);
            started.set_value();
        });
        started.get_future().wait();
        for (auto& fut : futures) {
            REQUIRE(fut.wait_for(30s) == std::future_status::ready);
            REQUIRE(fut.get() == std::pair{append_result::kind::appended, std::uint64_t(r + 1)});
        }
        marks m;
        for (int i = 0; i < members; ++i) m.emplace_back("SCAN" + std::to_string(i), r + 1);
        REQUIRE(f.get(mark(state, m, ctx)).empty());
        REQUIRE(f.get(claimable(state, ctx)) == 0);
    }
    // A backend's table counters reach pg_stat_user_tables when it ends: close the log's sessions.
    REQUIRE(f.get(stop_log(state)));
    std::string line;
    long inserted = 0, members_scans = -1, log_scans = -1;
    for (int i = 0; i < 1000 && inserted < rounds * members; ++i) {
        line = f.get(exec_text(stats, "stats", {}));
        std::sscanf(line.c_str(), "%ld %ld %ld", &inserted, &members_scans, &log_scans);
        if (inserted < rounds * members) std::this_thread::sleep_for(10ms);
    }
    INFO("member_log rows inserted, scans of members, scans of member_log: " << line);
    REQUIRE(inserted == rounds * members);
    // The schema's CREATE INDEX statements scan each table once per index, on their empty tables.
    CHECK(members_scans <= 2);
    CHECK(log_scans <= 2);
}
