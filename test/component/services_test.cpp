// The three external-service stand-ins, over real listeners on ephemeral ports.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <boost/beast/http/write.hpp>
#include <algorithm>
#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/this_coro.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sched.h>
#include <set>
#include <sstream>
#include <thread>

#include "offerd/app/scheduling.hpp"
#include "offerd/net/http_client.hpp"
#include "offerd/net/loopback_affinity.hpp"
#include "offerd/net/router.hpp"
#include "offerd/store/memory_history_store.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
constexpr std::uint8_t services = static_cast<std::uint8_t>(role::member_data) | static_cast<std::uint8_t>(role::prediction) |
                                  static_cast<std::uint8_t>(role::offer_engine);

std::string features_json(double avg_p, double avg_r, double l3_p, double l3_r, double buy, double gift, double redeem, std::int64_t days) {
    json::object o{{"AVG_POINTS_BOUGHT", avg_p}, {"AVG_REVENUE_USD", avg_r}, {"LAST_3_TRANSACTIONS_AVG_POINTS_BOUGHT", l3_p},
                   {"LAST_3_TRANSACTIONS_AVG_REVENUE_USD", l3_r}, {"PCT_BUY_TRANSACTIONS", buy}, {"PCT_GIFT_TRANSACTIONS", gift},
                   {"PCT_REDEEM_TRANSACTIONS", redeem}, {"DAYS_SINCE_LAST_TRANSACTION", days}};
    return json::serialize(o);
}
}  // namespace

TEST_CASE("every service answers GET /health with status ok", "[component]") {
    test_app app(services);
    for (role r : {role::member_data, role::prediction, role::offer_engine}) {
        auto res = get(app.port(r), "/health");
        CHECK(res.status == 200);
        CHECK(json::parse(res.body) == json::parse(R"({"status":"ok"})"));
    }
}

TEST_CASE("member-data stores transactions and returns them in insertion order, as posted", "[component]") {
    test_app app(services);
    const auto port = app.port(role::member_data);
    auto a = post(port, "/member_data", txn_body("M-7", "2024-06-02 08:00:00", "gift", 50, 0));
    REQUIRE(a.status == 200);
    CHECK(json::parse(a.body) == json::parse(R"({"memberId":"M-7","lastTransactionUtcTs":"2024-06-02 08:00:00",
        "lastTransactionType":"gift","lastTransactionPointsBought":50,"lastTransactionRevenueUsd":0})"));
    REQUIRE(post(port, "/member_data", txn_body("M-7", "2024-06-01T08:00:00+02:00", "redeem", -200, 0)).status == 200);
    REQUIRE(post(port, "/member_data", txn_body("M-7", "2024-06-03T00:00:00Z", "BUY", 10, 2.5)).status == 200);
    auto h = get(port, "/member_data/M-7");
    REQUIRE(h.status == 200);
    const auto arr = json::parse(h.body).as_array();
    REQUIRE(arr.size() == 3);
    CHECK(arr[0].at("lastTransactionType") == "gift");
    CHECK(arr[0].at("lastTransactionUtcTs") == "2024-06-02 08:00:00");
    CHECK(arr[1].at("lastTransactionUtcTs") == "2024-06-01T08:00:00+02:00");
    CHECK(arr[1].at("lastTransactionPointsBought").to_number<double>() == -200);
    CHECK(arr[2].at("lastTransactionUtcTs") == "2024-06-03T00:00:00Z");
    // The store itself keeps the normalized values.
    CHECK(format_rfc3339(app.rt().store()->history("M-7")[1].ts) == "2024-06-01T06:00:00Z");
}

TEST_CASE("member-data answers 404 Member not found for an unknown member", "[component]") {
    test_app app(services);
    auto res = get(app.port(role::member_data), "/member_data/nobody");
    CHECK(res.status == 404);
    CHECK(json::parse(res.body) == json::parse(R"({"detail":"Member not found"})"));
}

TEST_CASE("member-data rejects an invalid transaction with 422 naming the field and stores nothing", "[component]") {
    test_app app(services);
    auto res = post(app.port(role::member_data), "/member_data", txn_body("M1", "2024-06-01T10:00:00Z", "BUY", 1, -5));
    CHECK(res.status == 422);
    CHECK(json::parse(res.body).at("detail").as_string().starts_with("lastTransactionRevenueUsd"));
    CHECK(app.rt().store()->transactions() == 0);
}

TEST_CASE("prediction computes ATS and RESP by the contract formulas", "[component]") {
    test_app app(services);
    const auto port = app.port(role::prediction);
    // ATS = |(300*0.7 + 200*0.3) * max(0, 0.5 + 0.25 - 0.25)| = 270 * 0.5 = 135
    auto ats = post(port, "/ml/ats/predict", features_json(200, 40, 300, 60, 0.5, 0.25, 0.25, 4));
    REQUIRE(ats.status == 200);
    CHECK(json::parse(ats.body).at("prediction").to_number<double>() == Approx(135.0).epsilon(1e-12));
    // RESP = min(0.9, 1000 * (0.2 + 0.075 + 0.075) * ((12 + 42) / 100) / 5) = min(0.9, 37.8) = 0.9
    auto resp = post(port, "/ml/resp/predict", features_json(200, 40, 300, 60, 0.5, 0.25, 0.25, 4));
    REQUIRE(resp.status == 200);
    CHECK(json::parse(resp.body).at("prediction").to_number<double>() == 0.9);
    // Small revenue, old activity: 1000 * 0.3 * (0.1*0.3+0.1*0.7)/100 / 100 = 0.003
    auto low = post(port, "/ml/resp/predict", features_json(1, 0.1, 1, 0.1, 0, 1, 0, 99));
    CHECK(json::parse(low.body).at("prediction").to_number<double>() == Approx(0.003).epsilon(1e-9));
}

TEST_CASE("prediction rejects missing features and a fractional DAYS_SINCE with 422", "[component]") {
    test_app app(services);
    const auto port = app.port(role::prediction);
    auto missing = post(port, "/ml/ats/predict", R"({"AVG_POINTS_BOUGHT": 1})");
    CHECK(missing.status == 422);
    json::object f = json::parse(features_json(1, 1, 1, 1, 1, 0, 0, 0)).as_object();
    f["DAYS_SINCE_LAST_TRANSACTION"] = 1.5;
    CHECK(post(port, "/ml/resp/predict", json::serialize(f)).status == 422);
    f["DAYS_SINCE_LAST_TRANSACTION"] = 2.0;
    CHECK(post(port, "/ml/resp/predict", json::serialize(f)).status == 200);
    CHECK(post(port, "/ml/ats/predict", "[1,2]").status == 422);
    CHECK(post(port, "/ml/ats/predict", "nope").status == 400);
}

TEST_CASE("offer-engine assigns the discount at exactly ats*resp = 200 and the bonus below", "[component]") {
    test_app app(services);
    const auto port = app.port(role::offer_engine);
    auto at = post(port, "/offer/assign", R"({"ats_prediction": 400, "resp_prediction": 0.5})");
    CHECK(json::parse(at.body) == json::parse(R"({"offer":"50% Discount"})"));
    auto below = post(port, "/offer/assign", R"({"ats_prediction": 399.99, "resp_prediction": 0.5})");
    CHECK(json::parse(below.body) == json::parse(R"({"offer":"35% Bonus"})"));
    CHECK(post(port, "/offer/assign", R"({"ats_prediction": "high"})").status == 422);
}

TEST_CASE("unknown routes answer 404 and wrong methods 405 with Allow", "[component]") {
    test_app app(services);
    CHECK(get(app.port(role::prediction), "/nope").status == 404);
    auto wrong = get(app.port(role::offer_engine), "/offer/assign");
    CHECK(wrong.status == 405);
    CHECK(wrong.headers["Allow"] == "POST");
}

TEST_CASE("the compact member store round-trips every field, including years before 1970", "[component]") {
    memory_history_store store;
    const auto early = make_transaction("OLD", "0001-01-01T00:00:00.000001Z", "redeem", -5.5, 0).value();
    const auto late = make_transaction("OLD", "9999-12-31T23:59:59.999999Z", "gift", 1e300, 0.1).value();
    store.add(early);
    store.add(late);
    const auto back = store.history("OLD");
    REQUIRE(back.size() == 2);
    CHECK(back[0] == early);
    CHECK(back[1] == late);
}

TEST_CASE("Messages go on the wire byte for byte as Beast's own serializer writes them", "[component]") {
    // append_wire_header (+ the body) replaces Beast's serializer on the hot path; it must not change a byte.
    const auto beast_text = [](const auto& m) {
        std::ostringstream os;
        os << m;
        return os.str();
    };
    response ok = json_response(http::status::ok, R"({"memberId":"M1","offer":"35% Bonus"})");
    ok.set(request_id_header, "abc");
    response closing = failure_response(fail(errc::circuit_open, "prediction is failing; circuit open", 2));
    closing.keep_alive(false);
    response http10 = detail_response(http::status::not_found, "Member not found");
    http10.version(10);
    response empty = json_response(http::status::unprocessable_entity, "");
    for (const response* r : {&ok, &closing, &http10, &empty}) {
        std::string wire;
        append_wire_header(wire, *r);
        CHECK(wire + r->body() == beast_text(*r));
    }
    request post{http::verb::post, "/ml/ats/predict", 11};
    post.set(http::field::host, "127.0.0.1:8002");
    post.set(http::field::content_type, "application/json");
    post.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    post.body() = R"({"AVG_POINTS_BOUGHT":1})";
    post.prepare_payload();
    request get{http::verb::get, "/member_data/M1", 11};
    get.set(http::field::host, "localhost");
    get.prepare_payload();
    for (const request* r : {&post, &get}) {
        std::string wire;
        append_wire_header(wire, *r);
        CHECK(wire + r->body() == beast_text(*r));
    }
}

TEST_CASE("A loopback connection from a port a worker claimed is served on that worker", "[component]") {
    logger log(log_config{"/dev/null", log_level::off});
    asio::io_context w0{1}, w1{1};
    loopback_affinity affinity;
    const std::array<asio::io_context*, 2> loops{&w0, &w1};
    const auto workers = make_workers(loops, &affinity);
    auto routes = std::make_shared<router>();
    routes->add(http::verb::get, "/worker", [](request_context& ctx) -> asio::awaitable<response> {
        co_return json_response(http::status::ok, std::to_string(ctx.worker.index));
    });
    http_server server("affinity", workers, "127.0.0.1", 0, routes, server_limits{}, log);
    server.start();
    auto g0 = asio::make_work_guard(w0);
    auto g1 = asio::make_work_guard(w1);
    std::thread t0([&] { w0.run(); }), t1([&] { w1.run(); });

    // Each call opens a new connection (no pooling), so round-robin alone would alternate workers.
    const auto served_on = [&](loopback_affinity* a, std::size_t worker) {
        return run_bounded([](std::uint16_t port, loopback_affinity* a, std::size_t worker) -> asio::awaitable<std::string> {
            client_limits lim;
            lim.max_idle = 0;
            const auto ex = co_await asio::this_coro::executor;  // own statement: g++ 12 mishandles co_await beside temporaries
            http_client client(worker_context{ex, worker, a}, url{"127.0.0.1", port, ""}, lim);
            auto res = co_await client.send(http::verb::get, "/worker", {}, call_options{{}, deadline::after(5s), {}, {}});
            co_return res ? res->body() : "failed: " + res.error().detail;
        }(server.port(), a, worker));
    };
    for (int i = 0; i < 4; ++i) CHECK(served_on(&affinity, 1) == "1");
    for (int i = 0; i < 4; ++i) CHECK(served_on(&affinity, 0) == "0");
    std::set<std::string> without;
    for (int i = 0; i < 4; ++i) without.insert(served_on(nullptr, 0));
    CHECK(without == std::set<std::string>{"0", "1"});

    // Drain like the runtime does (no io_context::stop()): the accept loop and every session end
    // on their own threads, so nothing registered with one context outlives it.
    server.stop();
    g0.reset();
    g1.reset();
    t0.join();
    t1.join();
}

TEST_CASE("A client releases the loopback port it claimed when the connection closes", "[component]") {
    fake_upstream up([](const request&) { return json_response(http::status::ok, "{}"); });
    loopback_affinity affinity;
    const std::size_t claimed_after = run_bounded([](std::uint16_t port, loopback_affinity* a) -> asio::awaitable<std::size_t> {
        client_limits lim;
        lim.max_idle = 0;  // the connection is closed right after the answer
        const auto ex = co_await asio::this_coro::executor;
        http_client client(worker_context{ex, 1, a}, url{"127.0.0.1", port, ""}, lim);
        auto res = co_await client.send(http::verb::get, "/health", {}, call_options{{}, deadline::after(5s), {}, {}});
        if (!res || res->result_int() != 200) co_return 99;  // it must have connected and been answered
        std::size_t claimed = 0;
        for (std::uint32_t p = 1; p < 65536; ++p) claimed += a->worker_of(static_cast<std::uint16_t>(p)).has_value();
        co_return claimed;
    }(up.port(), &affinity));
    CHECK(claimed_after == 0);
    CHECK(up.request_count() == 1);
}

TEST_CASE("a worker's scheduler slice request reports what the kernel then schedules it with", "[component]") {
    // Kernels before 6.12 (or sandboxes that refuse sched_setattr) do not take the request;
    // either way the answer must agree with the thread's own scheduler report, when there is one.
    bool applied = false;
    std::string reported;
    std::thread([&] {
        applied = request_sched_slice(std::chrono::microseconds(250));
        std::ifstream in("/proc/thread-self/sched");
        for (std::string line; std::getline(in, line);)
            if (line.starts_with("se.slice")) reported = line.substr(line.find(':') + 1);
    }).join();
    if (!reported.empty()) CHECK(applied == (std::stoll(reported) == 250'000));
    else WARN("no se.slice in /proc/thread-self/sched; applied=" << applied);
}

namespace {
// The scheduling policies of this process's threads (without the reset-on-fork flag), by thread id.
std::map<pid_t, int> thread_policies() {
    std::map<pid_t, int> out;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
        const pid_t tid = static_cast<pid_t>(std::stol(entry.path().filename().string()));
        const int policy = sched_getscheduler(tid);
        if (policy >= 0) out[tid] = policy & ~SCHED_RESET_ON_FORK;
    }
    return out;
}

std::vector<json::object> scheduling_events(test_app& app, std::size_t expected) {
    std::vector<json::object> events = app.events("scheduling");
    for (int i = 0; i < 1000 && events.size() < expected; ++i) {  // up to 10 s: sanitizers, parallel tests
        std::this_thread::sleep_for(10ms);
        events = app.events("scheduling");
    }
    return events;
}
}  // namespace

TEST_CASE("workers run SCHED_FIFO when the process may, and the log says which", "[component]") {
    // What this process may do, asked from throwaway threads: the kernel directly, and the
    // function under test. When the kernel allows it, the function may refuse only for one of its
    // hazards (a CPU quota, the throttle or fair server off, RLIMIT_RTTIME), never for permission.
    bool kernel_allows = false;
    std::thread([&] {
        sched_param p{};
        p.sched_priority = 1;
        kernel_allows = sched_setscheduler(0, SCHED_FIFO, &p) == 0;
    }).join();
    realtime_outcome probe;
    std::thread([&] { probe = request_realtime(1); }).join();
    if (kernel_allows && !probe.applied) {
        INFO(probe.reason);
        CHECK((probe.reason.find("CPU limit") != std::string::npos || probe.reason.find("throttle is off") != std::string::npos ||
               probe.reason.find("fair server is off") != std::string::npos || probe.reason.find("RLIMIT_RTTIME") != std::string::npos));
    }
    test_app app(all_roles, [](app_config& c) {
        c.threads = 1;
        c.realtime_priority = 1;
    });
    const auto events = scheduling_events(app, 1);
    REQUIRE(events.size() == 1);
    auto e = events.front();
    CHECK(e["realtime"].as_bool() == probe.applied);
    CHECK(e["policy"] == (probe.applied ? "fifo" : "other"));
    CHECK(e["realtime_priority_requested"].as_int64() == 1);
    if (probe.applied) {
        CHECK(!e.contains("realtime_unavailable"));
        CHECK(e["slice_applied"].as_bool() == false);  // a slice means nothing to a real-time thread
    } else {
        CHECK(e["realtime_unavailable"].as_string() == probe.reason);
        WARN("real-time scheduling is not available here: " << probe.reason);
    }
    std::size_t fifo = 0;
    for (const auto& [tid, policy] : thread_policies()) fifo += policy == SCHED_FIFO;
    CHECK(fifo == (probe.applied ? 1u : 0u));  // the worker only: not this thread, not the log threads
    CHECK(get(app.port(role::orchestrator), "/health").status == 200);
}

TEST_CASE("workers stay fair-scheduled when asked to or when they outnumber the CPUs", "[component]") {
    SECTION("--realtime-priority 0") {
        test_app app(services, [](app_config& c) { c.threads = 1; });  // test_app's default is 0
        const auto events = scheduling_events(app, 1);
        REQUIRE(events.size() == 1);
        auto e = events.front();
        CHECK(e["realtime"].as_bool() == false);
        CHECK(e["policy"] == "other");
        CHECK(!e.contains("realtime_unavailable"));
    }
    SECTION("more workers than CPUs") {
        const std::size_t n = allowed_cpus() + 1;
        test_app app(services, [&](app_config& c) {
            c.threads = n;
            c.realtime_priority = 1;
        });
        const auto events = scheduling_events(app, n);
        REQUIRE(events.size() == n);
        std::set<std::int64_t> workers;
        for (auto e : events) {
            workers.insert(e["worker"].as_int64());
            CHECK(e["realtime"].as_bool() == false);
            CHECK(e["policy"] == "other");
            CHECK(std::string(e["realtime_unavailable"].as_string()).find("more workers (" + std::to_string(n) + ") than CPUs") == 0);
        }
        CHECK(workers.size() == n);
        for (const auto& [tid, policy] : thread_policies()) CHECK(policy == SCHED_OTHER);
    }
}

TEST_CASE("a cgroup CPU quota anywhere above the process is found, in v1 and v2 layouts", "[component]") {
    namespace fs = std::filesystem;
    const fs::path root = fs::temp_directory_path() / ("offerd-cgroup-" + std::to_string(::getpid()));
    fs::remove_all(root);
    const auto put = [&](const fs::path& rel, const std::string& text) {
        fs::create_directories((root / rel).parent_path());
        std::ofstream(root / rel) << text << "\n";
    };
    // v2: unlimited at the leaf, a quota on the pod above it.
    put("kubepods/pod1/c1/cpu.max", "max 100000");
    put("kubepods/pod1/cpu.max", "50000 100000");
    put("kubepods/cpu.max", "max 100000");
    auto limit = cgroup_cpu_limit("0::/kubepods/pod1/c1\n", root);
    REQUIRE(limit);
    CHECK(*limit == (root / "kubepods/pod1/cpu.max").string() + " = 50000 100000");
    put("free/c2/cpu.max", "max 100000");
    CHECK(!cgroup_cpu_limit("0::/free/c2\n", root));
    CHECK(!cgroup_cpu_limit("0::/nowhere\n", root));  // no files: no limit we can see
    // v2 mounted beside v1 controllers (hybrid).
    put("unified/svc/cpu.max", "100000 100000");
    CHECK(cgroup_cpu_limit("0::/svc\n", root) == (root / "unified/svc/cpu.max").string() + " = 100000 100000");
    // v1: the cpu controller's quota, -1 meaning none; other controllers do not count.
    put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1");
    put("cpu,cpuacct/docker/cpu.cfs_quota_us", "200000");
    CHECK(cgroup_cpu_limit("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n", root) ==
          (root / "cpu,cpuacct/docker/cpu.cfs_quota_us").string() + " = 200000");
    put("memory/m/cpu.cfs_quota_us", "1000");
    CHECK(!cgroup_cpu_limit("12:memory:/m\n", root));
    put("cpu,cpuacct/open/cpu.cfs_quota_us", "-1");
    CHECK(!cgroup_cpu_limit("4:cpu,cpuacct:/open\n", root));
    fs::remove_all(root);
}

TEST_CASE("prediction with --prediction-fault-share answers 500 to that share of inputs, the same ones every time", "[component]") {
    test_app app(services, [](app_config& c) { c.prediction_fault_share = 0.25; });
    const auto port = app.port(role::prediction);
    std::vector<bool> failed;
    for (int i = 0; i < 400; ++i) {
        const auto res = post(port, "/ml/ats/predict", features_json(i, 1.5, i, 2, 0.5, 0.25, 0.25, i % 30));
        REQUIRE((res.status == 200 || res.status == 500));
        failed.push_back(res.status == 500);
        if (res.status == 500) CHECK(json::parse(res.body).at("detail").as_string() == "Injected fault (--prediction-fault-share)");
    }
    const auto n = std::count(failed.begin(), failed.end(), true);
    CHECK(n > 60);  // 100 expected; a hash, so not exactly
    CHECK(n < 140);
    for (int i = 0; i < 400; i += 7)  // the same inputs, the same answer
        CHECK((post(port, "/ml/ats/predict", features_json(i, 1.5, i, 2, 0.5, 0.25, 0.25, i % 30)).status == 500) == failed[i]);
    // Off by default.
    test_app plain(services);
    for (int i = 0; i < 50; ++i) CHECK(post(plain.port(role::prediction), "/ml/ats/predict", features_json(i, 1.5, i, 2, 0.5, 0.25, 0.25, 4)).status == 200);
}
