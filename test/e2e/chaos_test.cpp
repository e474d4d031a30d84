// Chaos: stream a CSV while member-data is killed and restarted and the orchestrator is killed
// and restarted once; afterwards every valid row is in member-data exactly once, in CSV order
// per member. Kill times are arbitrary on purpose: the guarantee must hold wherever they land.
#include <signal.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
const std::string binary = OFFERD_BINARY;

// Starts a child and waits until it prints `count` listening lines.
std::unique_ptr<child_process> start(const std::vector<std::string>& argv, int count) {
    auto c = std::make_unique<child_process>(argv);
    for (int seen = 0; seen < count;) {
        auto line = c->read_line(std::chrono::seconds(10));
        if (!line) throw std::runtime_error("offerd did not start: " + c->err());
        if (line->find(" listening on ") != std::string::npos) ++seen;
    }
    return c;
}

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
}  // namespace

TEST_CASE("kills and restarts mid-stream lose and double nothing", "[e2e]") {
    const std::string work = temp_path("chaos");
    std::filesystem::remove(work);
    std::filesystem::create_directory(work);
    const std::string csv = work + "/rows.csv", journal = work + "/member-data.journal", data = work + "/orchestrator";
    REQUIRE(run_process({binary, "generate", "--rows", "3000", "--seed", "5", "--members", "150", "-o", csv}, std::chrono::seconds(30)).exit_code == 0);
    const std::string md_port = std::to_string(closed_port()), orch_port = std::to_string(closed_port());
    const std::vector<std::string> md_argv{binary, "--role", "member-data", "--member-data-port", md_port,
                                           "--member-data-journal", journal, "--log-level", "warn"};
    const std::vector<std::string> orch_argv{binary, "--role", "orchestrator,prediction,offer-engine", "--orchestrator-port", orch_port,
                                             "--prediction-port", "0", "--offer-engine-port", "0",
                                             "--member-data-url", "http://127.0.0.1:" + md_port, "--data-dir", data,
                                             "--log-level", "error", "--breaker-open-ms", "200", "--upstream-timeout-ms", "500"};
    auto md = start(md_argv, 1);
    auto orch = start(orch_argv, 3);
    child_process streamer({binary, "stream", "--csv", csv, "--target", "http://127.0.0.1:" + orch_port, "--concurrency", "4",
                            "--retries", "12", "--quiet"});

    pause_ms(250);
    md->stop(SIGKILL, std::chrono::seconds(5));
    pause_ms(300);
    md = start(md_argv, 1);
    pause_ms(250);
    orch->stop(SIGKILL, std::chrono::seconds(5));
    orch = start(orch_argv, 3);

    std::string summary;
    while (auto line = streamer.read_line(std::chrono::seconds(90)))
        if (line->starts_with("summary:")) summary = *line;
    INFO(summary << "\n" << streamer.err());
    WARN(summary);
    CHECK(streamer.stop(0, std::chrono::seconds(30)) == 0);
    CHECK(summary.find(" failed=0 ") != std::string::npos);

    // Let the orchestrator's outbox drain (bounded).
    for (int i = 0; i < 200; ++i) {
        const auto m = get(static_cast<std::uint16_t>(std::stoi(orch_port)), "/metrics");
        if (m.body.find("\nofferd_outbox_pending 0\n") != std::string::npos) break;
        pause_ms(50);
    }

    // Expected: the valid rows, per member, in CSV order.
    std::map<std::string, std::vector<transaction>> expected;
    for (auto& t : read_valid_rows(csv)) expected[t.member_id].push_back(t);

    std::size_t wrong_members = 0;
    for (const auto& [id, rows] : expected) {
        auto h = get(static_cast<std::uint16_t>(std::stoi(md_port)), "/member_data/" + id);
        REQUIRE(h.status == 200);
        const auto arr = json::parse(h.body).as_array();
        bool same = arr.size() == rows.size();
        for (std::size_t i = 0; same && i < arr.size(); ++i)
            same = arr[i].at("lastTransactionUtcTs") == json::string_view(format_rfc3339(rows[i].ts)) &&
                   arr[i].at("lastTransactionPointsBought").to_number<double>() == rows[i].points &&
                   arr[i].at("lastTransactionRevenueUsd").to_number<double>() == rows[i].revenue;
        if (!same) {
            ++wrong_members;
            UNSCOPED_INFO("member " << id << ": expected " << rows.size() << " rows, member-data has " << arr.size());
        }
    }
    CHECK(wrong_members == 0);
    orch->stop(SIGTERM, std::chrono::seconds(10));
    md->stop(SIGTERM, std::chrono::seconds(10));
    std::filesystem::remove_all(work);
}
