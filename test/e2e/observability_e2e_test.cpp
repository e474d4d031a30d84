// Observability against the real binary: promtool accepts /metrics, and the HTML report renders
// in headless Chromium. Both tools come from Debian packages that scripts/test.sh installs.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;

namespace {
const std::string binary = OFFERD_BINARY;

struct served_app {
    std::unique_ptr<child_process> child;
    std::uint16_t orchestrator = 0;
    std::string log_path = temp_path("e2e-log");

    served_app() {
        child = std::make_unique<child_process>(std::vector<std::string>{
            binary, "--orchestrator-port", "0", "--member-data-port", "0", "--prediction-port", "0", "--offer-engine-port", "0",
            "--log-file", log_path});
        for (int seen = 0; seen < 4;) {
            auto line = child->read_line(std::chrono::seconds(10));
            if (!line) throw std::runtime_error("offerd did not start: " + child->err());
            const auto at = line->find(" listening on ");
            if (at == std::string::npos) continue;
            ++seen;
            if (line->find("orchestrator") != std::string::npos)
                orchestrator = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
        }
    }
    ~served_app() {
        child->stop(SIGTERM, std::chrono::seconds(10));
        std::filesystem::remove(log_path);
    }
};
}  // namespace

TEST_CASE("promtool accepts the metrics exposition after real traffic", "[e2e]") {
    served_app app;
    for (int i = 0; i < 5; ++i) REQUIRE(post(app.orchestrator, "/member/offer", txn_body("PROM" + std::to_string(i))).status == 200);
    REQUIRE(post(app.orchestrator, "/member/offer", "{").status == 400);
    auto metrics = get(app.orchestrator, "/metrics");
    REQUIRE(metrics.status == 200);
    const std::string path = temp_path("metrics");
    std::ofstream(path) << metrics.body;
    auto check = run_process({"/bin/sh", "-c", "promtool check metrics < " + path}, std::chrono::seconds(30));
    INFO(check.out << check.err);
    CHECK(check.exit_code == 0);
    std::filesystem::remove(path);
}

TEST_CASE("the HTML report of a real log renders its charts in headless Chromium", "[e2e]") {
    std::string log_path;
    {
        served_app app;
        for (int i = 0; i < 40; ++i) REQUIRE(post(app.orchestrator, "/member/offer", txn_body("HTML" + std::to_string(i % 7))).status == 200);
        REQUIRE(app.child->stop(SIGTERM, std::chrono::seconds(10)) == 0);
        log_path = temp_path("log-copy");
        std::filesystem::copy_file(app.log_path, log_path, std::filesystem::copy_options::overwrite_existing);
    }
    const std::string html = temp_path("report") + ".html";
    auto report = run_process({binary, "report", log_path, "--html", html}, std::chrono::seconds(30));
    REQUIRE(report.exit_code == 0);
    CHECK(report.out.find("offer requests: 40") != std::string::npos);

    // A blank 1000x700 PNG compresses to a few KiB; the throughput and breakdown charts in that
    // area make it several times larger.
    const std::string blank_html = temp_path("blank") + ".html", shot = temp_path("shot") + ".png",
                      blank_shot = temp_path("blank-shot") + ".png", profile = temp_path("chromium-profile");
    std::ofstream(blank_html) << "<!doctype html><html><body></body></html>";
    std::filesystem::remove(profile);
    const auto screenshot = [&](const std::string& page, const std::string& png) {
        return run_process({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            "--user-data-dir=" + profile, "--window-size=1000,700", "--screenshot=" + png, "file://" + page},
                           std::chrono::seconds(60));
    };
    auto with_charts = screenshot(html, shot);
    INFO(with_charts.err);
    REQUIRE(std::filesystem::exists(shot));
    REQUIRE(screenshot(blank_html, blank_shot).exit_code == 0);
    const auto charts_size = std::filesystem::file_size(shot), blank_size = std::filesystem::file_size(blank_shot);
    INFO("report screenshot " << charts_size << " bytes, blank page " << blank_size << " bytes");
    CHECK(charts_size > 4 * blank_size);
    for (const auto& p : {log_path, html, blank_html, shot, blank_shot}) std::filesystem::remove(p);
    std::filesystem::remove_all(profile);
}
