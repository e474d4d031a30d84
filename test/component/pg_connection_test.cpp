// pg::connection against a real PostgreSQL (scripts/pg.sh): prepared statements, group commit,
// a refused write in a group, deadlines, losing and regaining the server, several io_contexts.
#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "offerd/obs/log.hpp"
#include "offerd/store/pg_connection.hpp"
#include "pg_server.hpp"
#include "process.hpp"

using namespace std::chrono_literals;
using offerd::deadline;
using offerd::errc;
namespace asio = boost::asio;
namespace pg = offerd::pg;

namespace {

using params = std::vector<std::optional<std::string>>;

// What one exec gave: errc::ok when PostgreSQL answered (r says whether it accepted).
struct answer {
    errc code = errc::ok;
    pg::rows r;
    bool accepted() const { return code == errc::ok && r.ok(); }
    std::string cell(std::size_t row = 0, std::size_t col = 0) const { return r.at(row, col).value_or("NULL"); }
};

asio::awaitable<answer> run(pg::connection* c, std::string name, params p, pg::kind k,
                            deadline until = deadline::after(20s)) {
    auto res = co_await c->exec(name, std::move(p), k, until);
    answer a;
    if (res) a.r = std::move(res.value());
    else a.code = res.error().code;
    co_return a;
}

struct call {
    std::string name;
    params p;
    pg::kind k = pg::kind::write;
};

// Runs every call at once (all queued before the first answer can arrive); answers in order.
asio::awaitable<std::vector<answer>> run_all(pg::connection* c, std::vector<call> calls) {
    struct state {
        explicit state(const asio::any_io_executor& ex, std::size_t n) : all_done(ex), answers(n) {
            all_done.expires_at(asio::steady_timer::time_point::max());
        }
        asio::steady_timer all_done;
        std::vector<answer> answers;
        std::size_t left = 0;
    };
    auto ex = co_await asio::this_coro::executor;
    auto s = std::make_shared<state>(ex, calls.size());
    s->left = calls.size();
    for (std::size_t i = 0; i < calls.size(); ++i) {
        asio::co_spawn(ex, run(c, calls[i].name, calls[i].p, calls[i].k), [s, i](std::exception_ptr e, answer a) {
            if (e) a.code = errc::internal;
            s->answers[i] = std::move(a);
            if (--s->left == 0) s->all_done.cancel();
        });
    }
    if (s->left > 0) co_await s->all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return std::move(s->answers);
}

asio::awaitable<bool> connected(pg::connection* c, deadline until = deadline::after(20s)) {
    co_return co_await c->wait_connected(until);
}

asio::awaitable<pg::connection_stats> stats_of(pg::connection* c) { co_return c->stats(); }

// Runs an io_context on its own thread; joins it on destruction. Declare it after the
// connections so that they are destroyed (stopped) once it no longer runs.
class io_thread {
public:
    explicit io_thread(asio::io_context& ctx) : ctx_(ctx), work_(ctx.get_executor()), t_([this] { ctx_.run(); }) {}
    ~io_thread() {
        work_.reset();
        ctx_.stop();
        t_.join();
    }
    // Runs op on the io_context and waits for its value (a hung test fails instead of hanging).
    template <class T>
    T get(asio::awaitable<T> op, std::chrono::seconds limit = 60s) {
        auto f = asio::co_spawn(ctx_, std::move(op), asio::use_future);
        if (f.wait_for(limit) != std::future_status::ready) throw std::runtime_error("did not finish in time");
        return f.get();
    }

private:
    asio::io_context& ctx_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread t_;
};

pg::connection_config config_for(const std::string& url) {
    pg::connection_config cfg;
    cfg.conninfo = url;
    cfg.connect_timeout = 5s;
    cfg.reconnect_min = 20ms;
    cfg.reconnect_max = 200ms;
    return cfg;
}

// The table is created through the connection itself: its other statements are prepared
// before it exists, fail, and are prepared again when first used.
std::vector<pg::statement> kv_statements() {
    return {
        {"create", "CREATE TABLE IF NOT EXISTS kv (k int PRIMARY KEY, v text)"},
        {"put", "INSERT INTO kv (k, v) VALUES ($1, $2)"},
        {"get", "SELECT k, v FROM kv WHERE k = $1"},
        {"count", "SELECT count(*) FROM kv"},
        {"sleep", "SELECT pg_sleep($1::float8)"},
        {"echo", "SELECT $1::int"},
    };
}

std::vector<call> puts(int from, int to) {
    std::vector<call> out;
    for (int k = from; k < to; ++k) {
        std::string v = std::to_string(k);
        v.insert(v.begin(), 'v');  // not "v" + s: g++ 12 warns (-Wstringop-overflow) on that
        out.push_back({"put", {std::to_string(k), v}});
    }
    return out;
}

#define SKIP_WITHOUT_POSTGRESQL(srv)  \
    if (!(srv).available()) {         \
        WARN((srv).why());            \
        return;                       \
    }

// A server and one connection to it, on an io_context running on its own thread. Members are
// destroyed in reverse: the thread is joined before the connection goes.
struct one_connection {
    explicit one_connection(offerd::logger* log = nullptr, bool by_name = false) {
        if (!srv.available()) return;
        std::string url = srv.url();
        if (by_name) url.replace(url.find("127.0.0.1"), 9, "localhost");
        c.emplace(ctx.get_executor(), config_for(url), kv_statements(), log);
        c->start();
        io.emplace(ctx);
    }
    // Connected, and the table made through the connection.
    bool ready() {
        return io->get(connected(&*c)) && io->get(run(&*c, "create", {}, pg::kind::write)).accepted();
    }
    offerd::test::pg_server srv;
    asio::io_context ctx;
    std::optional<pg::connection> c;
    std::optional<io_thread> io;
};

// Skips the test without PostgreSQL (Catch2 2.13 has no SKIP: a warning, then return).
#define SKIP_UNLESS_READY(t)       \
    SKIP_WITHOUT_POSTGRESQL((t).srv); \
    REQUIRE((t).ready())

}  // namespace

TEST_CASE("A connection runs prepared reads and writes on PostgreSQL, NULLs included", "[component][pg]") {
    one_connection t(nullptr, true);  // "localhost": resolved by Asio (libpq's lookup would block)
    SKIP_UNLESS_READY(t);
    auto& io = *t.io;
    pg::connection* c = &*t.c;
    const auto one = io.get(run(c, "put", {"1", "one"}, pg::kind::write));
    REQUIRE(one.accepted());
    CHECK(one.r.affected == 1);
    CHECK(io.get(run(c, "put", {"2", std::nullopt}, pg::kind::write)).accepted());

    const auto got = io.get(run(c, "get", {"1"}, pg::kind::read));
    REQUIRE(got.accepted());
    REQUIRE(got.r.size() == 1);
    CHECK(got.cell(0, 0) == "1");
    CHECK(got.cell(0, 1) == "one");
    const auto null = io.get(run(c, "get", {"2"}, pg::kind::read));
    REQUIRE(null.r.size() == 1);
    CHECK_FALSE(null.r.at(0, 1).has_value());
    const auto none = io.get(run(c, "get", {"3"}, pg::kind::read));
    CHECK(none.accepted());
    CHECK(none.r.size() == 0);

    const auto unknown = io.get(run(c, "no_such_statement", {}, pg::kind::read));
    CHECK(unknown.code == errc::ok);
    CHECK(unknown.r.sqlstate == "26000");  // invalid_sql_statement_name
    CHECK(io.get(run(c, "count", {}, pg::kind::read)).cell() == "2");

    const auto st = io.get(stats_of(c));
    CHECK(st.writes == 3);
    CHECK(st.reads == 5);
    CHECK(st.reconnects == 0);
}

TEST_CASE("Writes queued while a commit is in flight share the next commit", "[component][pg]") {
    one_connection t;
    SKIP_UNLESS_READY(t);
    auto& io = *t.io;
    pg::connection* c = &*t.c;

    const auto answers = io.get(run_all(c, puts(0, 300)));
    std::size_t accepted = 0;
    for (const auto& a : answers) accepted += a.accepted() ? 1 : 0;
    CHECK(accepted == 300);
    CHECK(io.get(run(c, "count", {}, pg::kind::read)).cell() == "300");

    const auto st = io.get(stats_of(c));
    CHECK(st.writes == 301);
    CHECK(st.commits < st.writes);  // groups formed
    CHECK(st.commits >= 301 / 128);  // max_batch bounds a group
    CHECK(st.retried_alone == 0);
}

TEST_CASE("A write PostgreSQL refuses in a group fails alone and the others commit", "[component][pg]") {
    one_connection t;
    SKIP_UNLESS_READY(t);
    auto& io = *t.io;
    pg::connection* c = &*t.c;
    REQUIRE(io.get(run(c, "put", {"0", "first"}, pg::kind::write)).accepted());

    // The first write leaves alone; the 20 behind it (the duplicate among them) form a group.
    auto calls = puts(1, 21);
    calls.insert(calls.begin() + 10, call{"put", {"0", "duplicate"}});
    calls.push_back({"count", {}, pg::kind::read});
    const auto answers = io.get(run_all(c, calls));
    for (std::size_t i = 0; i + 1 < answers.size(); ++i) {
        INFO("write " << i);
        CHECK(answers[i].code == errc::ok);
        if (i == 10) {
            CHECK(answers[i].r.sqlstate == "23505");  // unique_violation
            CHECK_FALSE(answers[i].r.message.empty());
        } else {
            CHECK(answers[i].r.ok());
        }
    }
    CHECK(answers.back().accepted());
    CHECK(io.get(run(c, "count", {}, pg::kind::read)).cell() == "21");
    CHECK(io.get(run(c, "get", {"0"}, pg::kind::read)).cell(0, 1) == "first");
    const auto st = io.get(stats_of(c));
    CHECK(st.retried_alone == 20);
}

TEST_CASE("A statement still running at its deadline fails with deadline_exceeded and later ones get their own answers",
          "[component][pg]") {
    one_connection t;
    SKIP_UNLESS_READY(t);
    auto& io = *t.io;
    pg::connection* c = &*t.c;

    const auto late = io.get(run(c, "sleep", {"0.3"}, pg::kind::read, deadline::after(30ms)));
    CHECK(late.code == errc::deadline_exceeded);
    // Sent while the sleep's answer is still to come: the discarded answer is not theirs.
    const auto answers = io.get(run_all(c, {{"echo", {"7"}, pg::kind::read}, {"echo", {"8"}, pg::kind::read}}));
    CHECK(answers[0].cell() == "7");
    CHECK(answers[1].cell() == "8");
    CHECK(io.get(run(c, "echo", {"9"}, pg::kind::read, deadline(deadline::clock::now()))).code ==
          errc::deadline_exceeded);
}

TEST_CASE("Losing PostgreSQL fails pending statements with upstream_unavailable, and the connection comes back",
          "[component][pg]") {
    const std::string log_path = offerd::test::temp_path("pg-log");
    offerd::logger log(offerd::log_config{log_path, offerd::log_level::info});
    one_connection t(&log);
    SKIP_WITHOUT_POSTGRESQL(t.srv);
    auto& io = *t.io;
    pg::connection* c = &*t.c;
    auto& srv = t.srv;
    auto& ctx = t.ctx;
    REQUIRE(t.ready());

    // Sent before the server goes: co_spawn runs it up to its wait before the posted check.
    auto pending = asio::co_spawn(ctx, run(c, "sleep", {"30"}, pg::kind::read), asio::use_future);
    auto pending_write = asio::co_spawn(ctx, run(c, "put", {"1", "x"}, pg::kind::write), asio::use_future);
    io.get([]() -> asio::awaitable<int> { co_return 0; }());
    srv.stop();
    REQUIRE(pending.wait_for(30s) == std::future_status::ready);
    CHECK(pending.get().code == errc::upstream_unavailable);
    REQUIRE(pending_write.wait_for(30s) == std::future_status::ready);
    CHECK(pending_write.get().code == errc::upstream_unavailable);  // the server runs it after the sleep
    CHECK(io.get(run(c, "echo", {"1"}, pg::kind::read)).code == errc::upstream_unavailable);

    srv.start();
    REQUIRE(io.get(connected(c, deadline::after(30s))));
    CHECK(io.get(run(c, "echo", {"5"}, pg::kind::read)).cell() == "5");
    CHECK(io.get(run(c, "put", {"2", "y"}, pg::kind::write)).accepted());
    CHECK(io.get(stats_of(c)).reconnects == 1);

    // One line for the loss and one for the recovery, however many attempts failed between.
    log.flush();
    std::ifstream in(log_path);
    std::map<std::string, int> events;
    for (std::string line; std::getline(in, line);) {
        const auto e = boost::json::parse(line).as_object().at("event").as_string();
        ++events[std::string(e)];
    }
    std::remove(log_path.c_str());
    CHECK(events["pg_connected"] == 1);
    CHECK(events["pg_connection_lost"] == 1);
    CHECK(events["pg_connection_restored"] == 1);
    CHECK(events["pg_connect_failed"] == 0);
}

TEST_CASE("A connection stopped with statements pending fails them and can be destroyed at once", "[component][pg]") {
    offerd::test::pg_server srv;
    SKIP_WITHOUT_POSTGRESQL(srv);
    asio::io_context ctx;
    auto c = std::make_unique<pg::connection>(ctx.get_executor(), config_for(srv.url()), kv_statements());
    c->start();
    io_thread io(ctx);
    REQUIRE(io.get(connected(c.get())));
    auto pending = asio::co_spawn(ctx, run(c.get(), "sleep", {"30"}, pg::kind::read), asio::use_future);
    // Stopped and destroyed on the connection's thread, with the sleep's exec suspended.
    io.get([](std::unique_ptr<pg::connection>* owned) -> asio::awaitable<int> {
        (*owned)->stop();
        owned->reset();
        co_return 0;
    }(&c));
    REQUIRE(pending.wait_for(10s) == std::future_status::ready);
    CHECK(pending.get().code == errc::upstream_unavailable);
}

TEST_CASE("A connection to a port nobody listens on fails fast with upstream_unavailable", "[component][pg]") {
    asio::io_context ctx;
    const auto port = offerd::test::free_port_below_32768();
    pg::connection c(ctx.get_executor(), config_for("postgresql://offerd@127.0.0.1:" + std::to_string(port) + "/offerd"),
                     kv_statements());
    c.start();
    io_thread io(ctx);
    CHECK_FALSE(io.get(connected(&c, deadline::after(300ms))));
    CHECK(io.get(run(&c, "echo", {"1"}, pg::kind::read)).code == errc::upstream_unavailable);
    CHECK(io.get(run(&c, "put", {"1", "x"}, pg::kind::write)).code == errc::upstream_unavailable);
    CHECK_FALSE(c.connected());
}

TEST_CASE("Connections on two io_contexts work side by side", "[component][pg]") {
    offerd::test::pg_server srv;
    SKIP_WITHOUT_POSTGRESQL(srv);
    asio::io_context ctx1, ctx2;
    pg::connection a1(ctx1.get_executor(), config_for(srv.url()), kv_statements());
    pg::connection a2(ctx1.get_executor(), config_for(srv.url()), kv_statements());
    pg::connection b1(ctx2.get_executor(), config_for(srv.url()), kv_statements());
    pg::connection b2(ctx2.get_executor(), config_for(srv.url()), kv_statements());
    for (auto* c : {&a1, &a2, &b1, &b2}) c->start();
    io_thread io1(ctx1), io2(ctx2);
    REQUIRE(io1.get(connected(&a1)));
    REQUIRE(io1.get(connected(&a2)));
    REQUIRE(io2.get(connected(&b1)));
    REQUIRE(io2.get(connected(&b2)));
    REQUIRE(io1.get(run(&a1, "create", {}, pg::kind::write)).accepted());

    // Each connection writes its own keys at once, from both threads together.
    auto f1 = asio::co_spawn(ctx1, run_all(&a1, puts(0, 50)), asio::use_future);
    auto f2 = asio::co_spawn(ctx1, run_all(&a2, puts(50, 100)), asio::use_future);
    auto f3 = asio::co_spawn(ctx2, run_all(&b1, puts(100, 150)), asio::use_future);
    auto f4 = asio::co_spawn(ctx2, run_all(&b2, puts(150, 200)), asio::use_future);
    std::size_t accepted = 0;
    for (auto* f : {&f1, &f2, &f3, &f4}) {
        REQUIRE(f->wait_for(60s) == std::future_status::ready);
        for (const auto& a : f->get()) accepted += a.accepted() ? 1 : 0;
    }
    CHECK(accepted == 200);
    CHECK(io2.get(run(&b2, "count", {}, pg::kind::read)).cell() == "200");
    CHECK(io1.get(run(&a2, "get", {"120"}, pg::kind::read)).cell(0, 1) == "v120");
}

// The member log plans with sequential scans off through these options; a setting the user's
// URL gives itself must still win, and the URL's other options must survive the merge.
TEST_CASE("A connection's session options reach the server, and the URL's own options win", "[component][pg]") {
    offerd::test::pg_server srv;
    SKIP_WITHOUT_POSTGRESQL(srv);
    const std::vector<pg::statement> show{
        {"settings", "SELECT current_setting('enable_seqscan') || ' ' || current_setting('work_mem') || ' ' || "
                     "current_setting('lock_timeout')"}};
    const auto settings_with = [&](const std::string& url) {
        asio::io_context ctx;
        pg::connection_config cfg = config_for(url);
        cfg.options = "-c enable_seqscan=off -c work_mem=5MB";
        pg::connection c(ctx.get_executor(), std::move(cfg), show);
        c.start();
        io_thread io(ctx);
        REQUIRE(io.get(connected(&c)));
        const auto got = io.get(run(&c, "settings", {}, pg::kind::read));
        REQUIRE(got.accepted());
        std::string line = got.cell();
        io.get([](pg::connection* conn) -> asio::awaitable<int> {
            conn->stop();
            co_return 0;
        }(&c));
        return line;
    };
    CHECK(settings_with(srv.url()) == "off 5MB 0");
    CHECK(settings_with(srv.url() + "?options=-c%20enable_seqscan%3Don%20-c%20lock_timeout%3D7s") == "on 5MB 7s");
}
