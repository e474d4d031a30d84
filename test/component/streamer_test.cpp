// `offerd stream` against an in-test orchestrator built from a function: per-member order across
// failures and reruns, replay counting.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "offerd/streamer/streamer.hpp"
#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {

// An orchestrator stand-in: answers every offer 200 unless `refuse` says otherwise, and replays
// the stored answer (with Idempotent-Replayed) for a key it answered before, like the real one.
class fake_orchestrator {
public:
    explicit fake_orchestrator(std::function<bool(const std::string& key)> refuse)
        : refuse_(std::move(refuse)), server_([this](const request& r) { return serve(r); }) {}
    std::string url() const { return server_.url(); }
    // Idempotency-Keys of the POSTs seen, in arrival order.
    std::vector<std::string> keys() const {
        std::vector<std::string> out;
        for (const auto& r : server_.requests())
            if (r.method() == http::verb::post) out.emplace_back(r["Idempotency-Key"]);
        return out;
    }

private:
    response serve(const request& r) {
        if (r.method() == http::verb::get) return json_response(http::status::ok, R"({"status":"ok"})");
        const std::string key(r["Idempotency-Key"]);
        // Only this server's thread touches answered_.
        if (answered_.contains(key)) {
            response replay = json_response(http::status::ok, R"({"memberId":"x","offer":"35% Bonus"})");
            replay.set("Idempotent-Replayed", "true");
            return replay;
        }
        if (refuse_(key)) return detail_response(http::status::service_unavailable, "member-data unavailable");
        answered_.insert(key);
        return json_response(http::status::ok, R"({"memberId":"x","offer":"35% Bonus"})");
    }

    std::function<bool(const std::string&)> refuse_;
    std::set<std::string> answered_;
    fake_upstream server_;
};

// Lines 2..9: members A, B, A, B, B, A, B, C.
std::string write_csv() {
    const std::string path = temp_path("stream-csv");
    std::ofstream out(path);
    out << "memberId,lastTransactionUtcTs,lastTransactionType,lastTransactionPointsBought,lastTransactionRevenueUSD\n";
    int day = 1;
    for (const char* m : {"A", "B", "A", "B", "B", "A", "B", "C"})
        out << m << ",2024-06-0" << day++ << " 10:00:00,buy,100,20.00\n";
    return path;
}

std::string line_of(const std::string& key) { return key.substr(key.rfind('-') + 1); }

std::vector<std::string> lines_of(const std::vector<std::string>& keys) {
    std::vector<std::string> out;
    for (const auto& k : keys) out.push_back(line_of(k));
    return out;
}

stream_config config_for(const std::string& csv, const std::string& target) {
    stream_config c;
    c.csv = csv;
    c.target = target;
    c.path = "/member_data";  // a route fake_upstream serves; the streamer treats every path alike
    c.concurrency = 4;
    c.quiet = true;
    c.retries = 2;
    c.backoff = std::chrono::milliseconds(1);
    return c;
}

}  // namespace

TEST_CASE("a row that fails for good holds back its member's later rows, and a rerun sends them in CSV order",
          "[component]") {
    const std::string csv = write_csv();
    std::atomic<bool> member_data_down{true};
    // Member B's second row (line 5) fails with 503 on every attempt while member-data is down.
    fake_orchestrator orch([&](const std::string& key) { return member_data_down && line_of(key) == "5"; });
    const stream_config cfg = config_for(csv, orch.url());

    std::ostringstream out, err;
    auto first = run_stream(cfg, out, err);
    REQUIRE(first);
    INFO(err.str());
    CHECK(first->failed == 1);
    CHECK(first->held == 2);
    CHECK(first->ok == 5);
    CHECK(stream_exit_status(*first) == 1);
    CHECK(err.str().find("line 6 (memberId B): not sent: held back behind line 5 which failed (HTTP 503)") != std::string::npos);
    CHECK(err.str().find("line 8 (memberId B): not sent: held back behind line 5 which failed (HTTP 503)") != std::string::npos);
    CHECK(format_summary(*first).find(" held=2 ") != std::string::npos);
    std::set<std::string> sent;
    for (const auto& l : lines_of(orch.keys())) sent.insert(l);
    // The held rows never reached the orchestrator; every other member's rows did (A, C after B's failure too).
    CHECK(sent == std::set<std::string>{"2", "3", "4", "5", "7", "9"});

    member_data_down = false;
    const std::size_t before = orch.keys().size();
    std::ostringstream out2, err2;
    auto rerun = run_stream(cfg, out2, err2);
    REQUIRE(rerun);
    CHECK(rerun->failed == 0);
    CHECK(rerun->held == 0);
    CHECK(stream_exit_status(*rerun) == 0);
    const auto all = lines_of(orch.keys());
    std::vector<std::string> member_b;
    for (std::size_t i = before; i < all.size(); ++i)
        if (all[i] == "3" || all[i] == "5" || all[i] == "6" || all[i] == "8") member_b.push_back(all[i]);
    CHECK(member_b == std::vector<std::string>{"3", "5", "6", "8"});
    std::remove(csv.c_str());
}

TEST_CASE("a rerun of an answered file counts its replayed answers apart from the new ones", "[component]") {
    const std::string csv = write_csv();
    fake_orchestrator orch([](const std::string&) { return false; });
    const stream_config cfg = config_for(csv, orch.url());
    std::ostringstream out, err;
    auto first = run_stream(cfg, out, err);
    REQUIRE(first);
    CHECK(first->ok == 8);
    CHECK(first->replayed == 0);
    auto rerun = run_stream(cfg, out, err);
    REQUIRE(rerun);
    CHECK(rerun->ok == 0);
    CHECK(rerun->replayed == 8);
    CHECK(stream_exit_status(*rerun) == 0);
    CHECK(format_summary(*rerun).find(" ok=0 replayed=8 ") != std::string::npos);
    std::remove(csv.c_str());
}

TEST_CASE("rows appended to a file keep the keys of the rows before them", "[component]") {
    const std::string csv = write_csv();
    fake_orchestrator orch([](const std::string&) { return false; });
    const stream_config cfg = config_for(csv, orch.url());
    std::ostringstream out, err;
    REQUIRE(run_stream(cfg, out, err));
    std::ofstream(csv, std::ios::app) << "D,2024-06-09 10:00:00,buy,100,20.00\n";
    auto rerun = run_stream(cfg, out, err);
    REQUIRE(rerun);
    CHECK(rerun->replayed == 8);
    CHECK(rerun->ok == 1);
    std::remove(csv.c_str());
}

TEST_CASE("the jsonl output prints one object per row of every outcome, in CSV order, and the summary has a JSON form",
          "[component]") {
    const std::string csv = write_csv();
    std::ofstream(csv, std::ios::app) << "E,not a time,buy,100,20.00\n";  // line 10: malformed
    std::atomic<bool> member_data_down{true};
    fake_orchestrator orch([&](const std::string& key) { return member_data_down && line_of(key) == "5"; });
    stream_config cfg = config_for(csv, orch.url());
    cfg.quiet = false;
    cfg.output = stream_output::jsonl;

    std::ostringstream out, err;
    auto first = run_stream(cfg, out, err);
    REQUIRE(first);
    std::vector<json::object> rows;
    {
        std::istringstream lines(out.str());
        for (std::string line; std::getline(lines, line);) rows.push_back(json::parse(line).as_object());
    }
    REQUIRE(rows.size() == 9);
    std::map<std::string, std::string> outcome;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        INFO(json::serialize(rows[i]));
        CHECK(rows[i].at("line").as_int64() == static_cast<std::int64_t>(i) + 2);  // CSV order
        outcome[std::to_string(rows[i].at("line").as_int64())] = std::string(rows[i].at("outcome").as_string());
    }
    CHECK(outcome == std::map<std::string, std::string>{{"2", "ok"}, {"3", "ok"}, {"4", "ok"}, {"5", "failed"}, {"6", "held"},
                                                        {"7", "ok"}, {"8", "held"}, {"9", "ok"}, {"10", "skipped"}});
    const auto& ok = rows[0];
    CHECK(ok.at("memberId") == "A");
    CHECK(ok.at("status").as_int64() == 200);
    CHECK(ok.at("offer") == "35% Bonus");
    CHECK(ok.at("latency_ms").as_double() > 0);
    CHECK(ok.at("replayed") == false);
    CHECK_FALSE(ok.contains("error"));
    const auto& failed = rows[3];
    CHECK(failed.at("memberId") == "B");
    CHECK(failed.at("status").as_int64() == 503);
    CHECK(failed.at("offer").is_null());
    CHECK(std::string(failed.at("error").as_string()).find("member-data unavailable") != std::string::npos);
    const auto& held = rows[4];
    CHECK(held.at("status").is_null());
    CHECK(held.at("latency_ms").is_null());
    CHECK(held.at("error") == "held back behind line 5 which failed (HTTP 503)");
    CHECK(rows[8].at("memberId") == "E");
    CHECK(rows[8].at("status").is_null());
    CHECK_FALSE(rows[8].at("error").as_string().empty());
    // The human lines of the failures stay on err.
    CHECK(err.str().find("line 5 (memberId B): failed: HTTP 503") != std::string::npos);
    CHECK(err.str().find("line 10 (memberId E): skipped: ") != std::string::npos);

    const auto summary = json::parse(format_summary_json(*first)).as_object();
    CHECK(summary.at("rows_read").as_int64() == 9);
    CHECK(summary.at("sent").as_int64() == 6);
    CHECK(summary.at("ok").as_int64() == 5);
    CHECK(summary.at("failed").as_int64() == 1);
    CHECK(summary.at("held").as_int64() == 2);
    CHECK(summary.at("skipped").as_int64() == 1);
    CHECK(summary.at("statuses").at("200").as_int64() == 5);
    CHECK(summary.at("statuses").at("503").as_int64() == 1);
    CHECK(summary.at("offers").at("35% Bonus").as_int64() == 5);
    CHECK(summary.at("interrupted") == false);
    CHECK(summary.at("exit_status").as_int64() == 1);

    // A quiet rerun: the answered rows (now all replays or new answers) print nothing, the skipped row still does.
    member_data_down = false;
    cfg.quiet = true;
    std::ostringstream out2, err2;
    auto rerun = run_stream(cfg, out2, err2);
    REQUIRE(rerun);
    CHECK(rerun->replayed == 5);
    CHECK(out2.str().find("\"outcome\":\"skipped\"") != std::string::npos);
    CHECK(out2.str().find("\"outcome\":\"replayed\"") == std::string::npos);
    CHECK(json::parse(format_summary_json(*rerun)).at("exit_status").as_int64() == 0);

    // Not quiet: a replayed row says so.
    cfg.quiet = false;
    std::ostringstream out3, err3;
    REQUIRE(run_stream(cfg, out3, err3));
    const auto again = json::parse(out3.str().substr(0, out3.str().find('\n'))).as_object();
    CHECK(again.at("outcome") == "replayed");
    CHECK(again.at("replayed") == true);
    CHECK(again.at("status").as_int64() == 200);
    std::remove(csv.c_str());
}
