// End-to-end: the built offerd binary, all roles on free ports, `offerd stream` over a generated
// CSV; the results are checked against an independent computation of the contract formulas.
#include <signal.h>

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {

const std::string binary = OFFERD_BINARY;
constexpr const char* fixed_now = "2025-01-15T12:00:00Z";

// Starts `offerd --role all` on free ports and reads the listening lines.
struct running_app {
    std::unique_ptr<child_process> child;
    std::map<std::string, std::uint16_t> ports;

    explicit running_app(std::vector<std::string> extra = {}) {
        std::vector<std::string> argv{binary, "--role", "all", "--orchestrator-port", "0", "--member-data-port", "0",
                                      "--prediction-port", "0", "--offer-engine-port", "0", "--now", fixed_now,
                                      "--log-level", "warn", "--threads", "2"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        child = std::make_unique<child_process>(argv);
        while (ports.size() < 4) {
            auto line = child->read_line(std::chrono::seconds(10));
            if (!line) throw std::runtime_error("offerd did not start: " + child->err());
            // "offerd: ROLE listening on http://127.0.0.1:PORT"
            const auto at = line->find(" listening on ");
            if (at == std::string::npos) continue;
            const std::string role_name = line->substr(8, at - 8);
            ports[role_name] = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
        }
    }
    std::string url(const std::string& role_name) { return "http://127.0.0.1:" + std::to_string(ports.at(role_name)); }
};

// The contract, written out independently of src/domain/features.cpp.
std::string expected_offer(const std::vector<transaction>& member_rows, micros now) {
    const std::size_t n = member_rows.size();
    double sp = 0, sr = 0, buy = 0, gift = 0, redeem = 0;
    micros latest = member_rows.front().ts;
    for (const auto& r : member_rows) {
        sp += r.points;
        sr += r.revenue;
        (r.type == txn_type::buy ? buy : r.type == txn_type::gift ? gift : redeem) += 1;
        latest = std::max(latest, r.ts);
    }
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return member_rows[a].ts != member_rows[b].ts ? member_rows[a].ts > member_rows[b].ts : a > b;
    });
    const std::size_t k = std::min<std::size_t>(3, n);
    double l3p = 0, l3r = 0;
    for (std::size_t i = 0; i < k; ++i) {
        l3p += member_rows[order[i]].points;
        l3r += member_rows[order[i]].revenue;
    }
    const double dn = static_cast<double>(n), dk = static_cast<double>(k);
    const double avg_p = sp / dn, avg_r = sr / dn, l3_p = l3p / dk, l3_r = l3r / dk;
    const double pb = buy / dn, pg = gift / dn, pr = redeem / dn;
    const auto day = [](micros t) { return static_cast<std::int64_t>(std::floor(static_cast<double>(t) / 86'400'000'000.0)); };
    const std::int64_t days = std::max<std::int64_t>(0, day(now) - day(latest));
    const double ats = std::fabs((l3_p * 0.7 + avg_p * 0.3) * std::max(0.0, pb + pg - pr));
    const double resp = std::min(0.9, 1000 * (pb * 0.4 + pg * 0.3 + pr * 0.3) * ((avg_r * 0.3 + l3_r * 0.7) / 100) *
                                          (1 / (static_cast<double>(days) + 1)));
    return ats * resp >= 200 ? "50% Discount" : "35% Bonus";
}

std::map<std::string, std::string> summary_fields(const std::string& out) {
    std::map<std::string, std::string> fields;
    const auto at = out.rfind("summary:");
    REQUIRE(at != std::string::npos);
    std::istringstream in(out.substr(at + 8));
    for (std::string kv; in >> kv;) {
        const auto eq = kv.find('=');
        if (eq != std::string::npos) fields[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    return fields;
}

}  // namespace

TEST_CASE("streaming a generated CSV through the binary persists every valid row in order with the right offers", "[e2e]") {
    const std::string csv = temp_path("csv");
    auto gen = run_process({binary, "generate", "--rows", "600", "--seed", "11", "--members", "40", "--malformed-share", "0.02", "-o", csv},
                           std::chrono::seconds(30));
    REQUIRE(gen.exit_code == 0);
    std::size_t malformed = 0;
    const auto rows = read_valid_rows(csv, &malformed);
    REQUIRE(malformed > 0);

    running_app app;
    auto streamed = run_process({binary, "stream", "--csv", csv, "--target", app.url("orchestrator"), "--concurrency", "8"},
                                std::chrono::seconds(60));
    INFO(streamed.err);
    CHECK(streamed.exit_code == 0);
    auto summary = summary_fields(streamed.out);
    CHECK(summary["rows_read"] == "600");
    CHECK(summary["skipped"] == std::to_string(malformed));
    CHECK(summary["sent"] == std::to_string(rows.size()));
    CHECK(summary["ok"] == std::to_string(rows.size()));
    CHECK(summary["failed"] == "0");
    // One stderr line per skipped row, naming its line number (progress lines may come too when
    // the run is slow, e.g. under a sanitizer).
    std::size_t skipped_lines = 0;
    std::istringstream err_lines(streamed.err);
    for (std::string l; std::getline(err_lines, l);)
        if (l.starts_with("line ") && l.find("skipped: ") != std::string::npos) ++skipped_lines;
    CHECK(skipped_lines == malformed);

    // Answers are printed in CSV order; each equals the independent computation.
    std::istringstream out(streamed.out);
    const micros now = parse_timestamp(fixed_now).value();
    std::map<std::string, std::vector<transaction>> seen;
    std::size_t mismatches = 0;
    for (const auto& r : rows) {
        std::string line;
        REQUIRE(std::getline(out, line));
        const auto answer = json::parse(line).as_object();
        REQUIRE(answer.at("memberId") == json::string_view(r.member_id));
        seen[r.member_id].push_back(r);
        if (answer.at("offer") != json::string_view(expected_offer(seen[r.member_id], now))) ++mismatches;
    }
    CHECK(mismatches == 0);

    // member-data holds every valid row, in CSV order per member.
    for (const auto& [id, member_rows] : seen) {
        auto h = get(app.ports.at("member-data"), "/member_data/" + id);
        REQUIRE(h.status == 200);
        const auto arr = json::parse(h.body).as_array();
        REQUIRE(arr.size() == member_rows.size());
        for (std::size_t i = 0; i < arr.size(); ++i) {
            CHECK(arr[i].at("lastTransactionUtcTs") == json::string_view(format_rfc3339(member_rows[i].ts)));
            CHECK(arr[i].at("lastTransactionType") == to_string(member_rows[i].type));
            CHECK(arr[i].at("lastTransactionPointsBought").to_number<double>() == member_rows[i].points);
            CHECK(arr[i].at("lastTransactionRevenueUsd").to_number<double>() == member_rows[i].revenue);
        }
    }
    CHECK(app.child->stop(SIGTERM, std::chrono::seconds(10)) == 0);
    std::remove(csv.c_str());
}

TEST_CASE("curl-style POST to the running binary answers per contract", "[e2e]") {
    running_app app;
    auto res = post(app.ports.at("orchestrator"), "/member/offer",
                    R"({"memberId":"CURL1","lastTransactionUtcTs":"2025-01-14T09:00:00Z","lastTransactionType":"gift",
                        "lastTransactionPointsBought":400,"lastTransactionRevenueUsd":250})");
    REQUIRE(res.status == 200);
    CHECK(json::parse(res.body) == json::parse(R"({"memberId":"CURL1","offer":"50% Discount"})"));
}

TEST_CASE("a port already in use is a one-line error and a non-zero exit", "[e2e]") {
    running_app first;
    auto second = run_process({binary, "--role", "orchestrator", "--orchestrator-port", std::to_string(first.ports.at("orchestrator"))},
                              std::chrono::seconds(10));
    CHECK(second.exit_code != 0);
    CHECK(second.err.find("cannot listen on") != std::string::npos);
    CHECK(second.err.find("in use") != std::string::npos);
    CHECK(std::count(second.err.begin(), second.err.end(), '\n') == 1);
}

TEST_CASE("streaming to an unreachable target says so and exits non-zero", "[e2e]") {
    const std::string csv = temp_path("csv");
    REQUIRE(run_process({binary, "generate", "--rows", "5", "-o", csv}, std::chrono::seconds(10)).exit_code == 0);
    auto r = run_process({binary, "stream", "--csv", csv, "--target", "http://127.0.0.1:" + std::to_string(closed_port())},
                         std::chrono::seconds(20));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("cannot reach the orchestrator") != std::string::npos);
    std::remove(csv.c_str());
}

TEST_CASE("streaming a missing file is a clear error", "[e2e]") {
    auto r = run_process({binary, "stream", "--csv", "/nonexistent.csv"}, std::chrono::seconds(10));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("cannot open CSV file") != std::string::npos);
}

TEST_CASE("every command has a --help that exits 0", "[e2e]") {
    for (std::vector<std::string> argv : {std::vector<std::string>{binary, "--help"}, {binary, "stream", "--help"},
                                          {binary, "generate", "--help"}, {binary, "serve", "--help"}}) {
        auto r = run_process(argv, std::chrono::seconds(10));
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("Usage") != std::string::npos);
    }
    auto bad = run_process({binary, "--role", "cashier"}, std::chrono::seconds(10));
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("unknown role 'cashier'") != std::string::npos);
    auto slice = run_process({binary, "--sched-slice-us", "50"}, std::chrono::seconds(10));
    CHECK(slice.exit_code == 2);
    CHECK(slice.err.find("--sched-slice-us: must be 0 or 100..100000, got 50") != std::string::npos);
    auto rt = run_process({binary, "--realtime-priority", "100"}, std::chrono::seconds(10));
    CHECK(rt.exit_code == 2);
    CHECK(rt.err.find("--realtime-priority: must be 0..99, got 100") != std::string::npos);
    auto stream_rt = run_process({binary, "stream", "--realtime-priority", "-1"}, std::chrono::seconds(10));
    CHECK(stream_rt.exit_code == 2);
    CHECK(stream_rt.err.find("--realtime-priority: must be 0..99, got -1") != std::string::npos);
}

TEST_CASE("flags can come from OFFERD_ environment variables", "[e2e]") {
    setenv("OFFERD_LOG_LEVEL", "loud", 1);
    auto r = run_process({binary, "--role", "prediction", "--prediction-port", "0"}, std::chrono::seconds(10));
    unsetenv("OFFERD_LOG_LEVEL");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--log-level") != std::string::npos);
}

TEST_CASE("generate is deterministic for a seed", "[e2e]") {
    auto a = run_process({binary, "generate", "--rows", "50", "--seed", "3"}, std::chrono::seconds(10));
    auto b = run_process({binary, "generate", "--rows", "50", "--seed", "3"}, std::chrono::seconds(10));
    CHECK(a.exit_code == 0);
    CHECK(a.out == b.out);
    CHECK(std::count(a.out.begin(), a.out.end(), '\n') == 51);
}

TEST_CASE("SIGTERM drains and exits 0", "[e2e]") {
    running_app app;
    REQUIRE(get(app.ports.at("orchestrator"), "/health").status == 200);
    CHECK(app.child->stop(SIGTERM, std::chrono::seconds(15)) == 0);
}
