// The generic upstream on its own, built from a config entry against a fake service: no runtime,
// no orchestrator. What any upstream added later gets for free.
#include <boost/asio/this_coro.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "offerd/obs/log.hpp"
#include "offerd/orchestrator/config.hpp"
#include "offerd/orchestrator/upstreams.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;

namespace {
upstream_config entry(std::string name, const fake_upstream& svc) {
    upstream_config c;
    c.name = std::move(name);
    c.target = *parse_url(svc.url());
    c.retry.base_backoff = std::chrono::milliseconds(1);
    c.retry.max_backoff = std::chrono::milliseconds(2);
    return c;
}

struct outcome {
    unsigned status = 0;  // of the answer, 0 when the call failed
    failure error;
    std::string metrics;
};

// One call through an upstream made for this run's worker (the test's io_context).
outcome call_once(upstream_config cfg, upstream_request req) {
    return run_bounded([](upstream_config cfg, upstream_request req) -> asio::awaitable<outcome> {
        logger log(log_config{"/dev/null", log_level::off});
        const auto ex = co_await asio::this_coro::executor;
        const worker_context workers[] = {{ex}};
        upstream up(std::move(cfg), workers, log);
        const call_context ctx{0, "test", deadline::after(std::chrono::seconds(5)), log, nullptr};
        auto res = co_await up.call(std::move(req), ctx);
        outcome o;
        if (res) o.status = res->result_int();
        else o.error = res.error();
        const upstream* all[] = {&up};
        upstream::write_metrics(o.metrics, all);
        co_return o;
    }(std::move(cfg), std::move(req)));
}

upstream_request post_to(std::string path, bool idempotent = true) {
    upstream_request r;
    r.method = http::verb::post;
    r.path = std::move(path);
    r.body = "{}";
    r.idempotent = idempotent;
    return r;
}
}  // namespace

TEST_CASE("an upstream built from a config entry retries a 503 under its key and names itself in its metrics", "[component]") {
    std::atomic<int> calls{0};
    fake_upstream svc([&](const request&) {
        return ++calls <= 2 ? detail_response(http::status::service_unavailable, "busy") : json_response(http::status::ok, "{}");
    });
    upstream_request req = post_to("/member_data");
    req.idempotency_key = "k-1";
    const outcome o = call_once(entry("loyalty-api", svc), req);
    CHECK(o.status == 200);
    CHECK(calls == 3);
    for (const request& r : svc.requests()) CHECK(r["Idempotency-Key"] == "k-1");
    CHECK(o.metrics.find("offerd_upstream_retries_total{service=\"loyalty-api\"} 2\n") != std::string::npos);
    CHECK(o.metrics.find("offerd_circuit_state{service=\"loyalty-api\",state=\"closed\"} 1") != std::string::npos);
}

TEST_CASE("an upstream repeats neither a request that is not idempotent nor a 500", "[component]") {
    std::atomic<int> calls{0};
    fake_upstream busy([&](const request&) {
        ++calls;
        return detail_response(http::status::service_unavailable, "busy");
    });
    const outcome once = call_once(entry("writes", busy), post_to("/member_data", false));
    CHECK(once.status == 0);
    CHECK(once.error.code == errc::upstream_bad_status);
    CHECK(once.error.upstream_status == 503);
    CHECK(once.error.detail == "writes answered HTTP 503");
    CHECK(calls == 1);

    fake_upstream broken([&](const request&) {
        ++calls;
        return detail_response(http::status::internal_server_error, "model crashed");
    });
    calls = 0;
    const outcome rejected = call_once(entry("model", broken), post_to("/ml/ats/predict"));
    CHECK(rejected.error.upstream_status == 500);
    CHECK(calls == 1);
}

TEST_CASE("an upstream answers a status the caller takes as ok and reports one it cannot reach", "[component]") {
    fake_upstream svc([](const request&) { return detail_response(http::status::not_found, "no history"); });
    upstream_request req;
    req.path = "/member_data/M1";
    req.also_ok = 404;
    CHECK(call_once(entry("member-data", svc), req).status == 404);

    upstream_config gone = entry("gone", svc);
    gone.target.port = closed_port();
    gone.retry.max_attempts = 2;
    const outcome o = call_once(gone, req);
    CHECK(o.error.code == errc::upstream_unavailable);
    CHECK(o.error.detail == "gone is unavailable");
    CHECK(o.metrics.find("offerd_upstream_retries_total{service=\"gone\"} 1\n") != std::string::npos);
}

TEST_CASE("the upstream set names the entry it misses", "[component]") {
    logger log(log_config{"/dev/null", log_level::off});
    asio::io_context ctx{1};
    const worker_context workers[] = {{ctx.get_executor()}};
    auto entries = upstream_entries(orchestrator_config{}, orchestrator_urls{url{"127.0.0.1", 1, ""}, url{"127.0.0.1", 2, ""}, url{"127.0.0.1", 3, ""}});
    REQUIRE(entries.size() == 4);
    CHECK_NOTHROW(upstreams(workers, entries, log));
    entries.erase(entries.begin() + 2);
    CHECK_THROWS_WITH(upstreams(workers, entries, log), "upstreams: no entry named prediction");
}

namespace {
url at(std::uint16_t port, std::string base = {}) { return url{"127.0.0.1", port, std::move(base)}; }

std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
}  // namespace

TEST_CASE("a typed call answers 502 for a body it cannot decode and logs the path with the base path", "[component]") {
    fake_upstream svc([](const request&) { return json_response(http::status::ok, R"({"no":"prediction"})"); });
    const std::string log_file = (std::filesystem::temp_directory_path() / ("upstream-test-" + std::to_string(::getpid()) + ".log")).string();
    failure got;
    {
        logger log(log_config{log_file, log_level::info});
        got = run_bounded([](std::uint16_t port, logger& log) -> asio::awaitable<failure> {
            const auto ex = co_await asio::this_coro::executor;
            const worker_context workers[] = {{ex}};
            const url base = at(port, "/api");
            upstreams up(workers, upstream_entries(orchestrator_config{}, orchestrator_urls{base, base, base}), log);
            const call_context ctx{0, "rid-1", deadline::after(std::chrono::seconds(5)), log, nullptr};
            std::string features = "{}";
            auto p = co_await up.predict(model::ats, std::move(features), ctx);
            co_return p ? failure{} : p.error();
        }(svc.port(), log));
    }  // the logger's destructor flushes its sink
    CHECK(got.code == errc::upstream_bad_response);
    CHECK(got.detail == "prediction answered an invalid body");
    REQUIRE(svc.request_count() == 1);
    CHECK(svc.requests().front().target() == "/api/ml/ats/predict");
    const std::string logged = read_all(log_file);
    std::filesystem::remove(log_file);
    CHECK(logged.find(R"("event":"upstream_error")") != std::string::npos);
    CHECK(logged.find(R"("path":"/api/ml/ats/predict")") != std::string::npos);
    CHECK(logged.find(R"("request_id":"rid-1")") != std::string::npos);
}

TEST_CASE("member-data writes failing open the writes circuit while reads stay closed", "[component]") {
    fake_upstream svc([](const request& r) {
        if (r.method() == http::verb::post) return detail_response(http::status::service_unavailable, "read-only");
        return detail_response(http::status::not_found, "no history");
    });
    const std::string metrics = run_bounded([](std::uint16_t port) -> asio::awaitable<std::string> {
        logger log(log_config{"/dev/null", log_level::off});
        const auto ex = co_await asio::this_coro::executor;
        const worker_context workers[] = {{ex}};
        orchestrator_config cfg;
        cfg.retry.max_attempts = 1;
        upstreams up(workers, upstream_entries(cfg, orchestrator_urls{at(port), at(port), at(port)}), log);
        const call_context ctx{0, "test", deadline::after(std::chrono::seconds(5)), log, nullptr};
        transaction t;
        t.member_id = "M1";
        for (int i = 0; i < 30; ++i) {
            const std::string key = "k" + std::to_string(i);
            auto stored = co_await up.store(t, key, ctx);
            if (stored) co_return std::string("a store succeeded");
            auto read = co_await up.fetch_history("M1", ctx);
            if (!read) co_return "a read failed: " + read.error().detail;
        }
        std::string out;
        up.write_metrics(out);
        co_return out;
    }(svc.port()));
    CHECK(metrics.find("offerd_circuit_state{service=\"member-data-writes\",state=\"open\"} 1\n") != std::string::npos);
    CHECK(metrics.find("offerd_circuit_state{service=\"member-data\",state=\"closed\"} 1\n") != std::string::npos);
}

TEST_CASE("the upstream set refuses two entries of one name", "[component]") {
    logger log(log_config{"/dev/null", log_level::off});
    asio::io_context ctx{1};
    const worker_context workers[] = {{ctx.get_executor()}};
    auto entries = upstream_entries(orchestrator_config{}, orchestrator_urls{at(1), at(2), at(3)});
    entries.push_back(entries.front());
    CHECK_THROWS_WITH(upstreams(workers, entries, log), "upstreams: two entries named member-data");
}
