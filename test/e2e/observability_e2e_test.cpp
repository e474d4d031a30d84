// Observability against the real binary: promtool accepts /metrics, and the HTML report renders
// in headless Chromium. Both tools come from Debian packages that scripts/test.sh installs.
#include <catch2/catch.hpp>
#include <filesystem>
#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <thread>

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

namespace {
// The rendered layout of a report page, measured by a script that runs in Chromium after the
// page's own content (the report itself has no scripts): viewport and document widths, and
// each chart's box, axis labels and drawn marks.
constexpr const char* layout_probe = R"(<script>
(() => {
  const d = document.documentElement;
  const out = {vw: d.clientWidth, sw: d.scrollWidth,
    charts: [...document.querySelectorAll('svg.chart')].map(s => { const r = s.getBoundingClientRect();
      return {id: s.id, w: r.width, h: r.height, labels: s.querySelectorAll('.axis-label').length,
              marks: s.querySelectorAll('rect,polyline,circle').length}; }),
    kpis: [...document.querySelectorAll('.kpi')].map(k => k.id + '=' + k.querySelector('.v').textContent)};
  const p = document.createElement('pre'); p.id = 'layout'; p.textContent = JSON.stringify(out); document.body.appendChild(p);
})();
</script>)";

std::string unescape_html_text(std::string s) {
    for (const auto& [from, to] : {std::pair{"&lt;", "<"}, std::pair{"&gt;", ">"}, std::pair{"&quot;", "\""}, std::pair{"&amp;", "&"}})
        for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += std::string_view(to).size())
            s.replace(at, std::string_view(from).size(), to);
    return s;
}
}  // namespace

TEST_CASE("the HTML report of a real log lays out its KPIs and page-wide charts in headless Chromium at two widths", "[e2e]") {
    std::string log_path;
    {
        served_app app;
        for (int i = 0; i < 40; ++i) REQUIRE(post(app.orchestrator, "/member/offer", txn_body("HTML" + std::to_string(i % 7))).status == 200);
        // An idle stretch, then a rejected body and a replay: all on the report's time axis.
        std::this_thread::sleep_for(std::chrono::milliseconds(2200));
        REQUIRE(post(app.orchestrator, "/member/offer", R"({"memberId":"HTMLX"})").status == 422);
        for (int i = 0; i < 2; ++i)
            REQUIRE(post(app.orchestrator, "/member/offer", txn_body("HTMLR"), {{"Idempotency-Key", "report-replay"}}).status == 200);
        REQUIRE(app.child->stop(SIGTERM, std::chrono::seconds(10)) == 0);
        log_path = temp_path("log-copy");
        std::filesystem::copy_file(app.log_path, log_path, std::filesystem::copy_options::overwrite_existing);
    }
    const std::string html = temp_path("report") + ".html";
    auto report = run_process({binary, "report", log_path, "--html", html}, std::chrono::seconds(30));
    REQUIRE(report.exit_code == 0);
    CHECK(report.out.find("offer requests: 41") != std::string::npos);
    CHECK(report.out.find("requests: 43 (41 offers, 1 rejected, 1 replayed, 0 shed)") != std::string::npos);
    CHECK(report.out.find("200 replayed  1") != std::string::npos);

    std::string page = read_file(html);
    const auto body_end = page.rfind("</body>");
    REQUIRE(body_end != std::string::npos);
    page.insert(body_end, layout_probe);
    const std::string probed = temp_path("probed") + ".html", profile = temp_path("chromium-profile");
    std::ofstream(probed) << page;
    for (const int width : {1280, 640}) {
        INFO("window width " << width);
        std::filesystem::remove_all(profile);
        auto dom = run_process({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                "--user-data-dir=" + profile, "--window-size=" + std::to_string(width) + ",900", "--dump-dom",
                                "file://" + probed},
                               std::chrono::seconds(60));
        INFO(dom.err);
        REQUIRE(dom.exit_code == 0);
        const auto open = dom.out.find("<pre id=\"layout\">"), close = dom.out.find("</pre>", open);
        REQUIRE(open != std::string::npos);
        REQUIRE(close != std::string::npos);
        const auto layout = boost::json::parse(unescape_html_text(dom.out.substr(open + 17, close - open - 17))).as_object();
        INFO(boost::json::serialize(layout));
        const double vw = layout.at("vw").to_number<double>();
        CHECK(vw > width * 0.9);
        CHECK(layout.at("sw").to_number<double>() <= vw + 1);  // nothing wider than the window
        const double content = vw - 2 * 24;                    // the body's margins
        std::set<std::string> seen;
        for (const auto& c : layout.at("charts").as_array()) {
            const auto& chart = c.as_object();
            const std::string id(chart.at("id").as_string());
            INFO("chart " << id);
            seen.insert(id);
            const double w = chart.at("w").to_number<double>();
            CHECK(w <= content + 1);
            CHECK(chart.at("h").to_number<double>() > 20);
            if (id == "throughput" || id == "latency-over-time" || id == "events") {
                CHECK(w >= content - 1);  // the time charts use the whole width
                CHECK(chart.at("labels").to_number<int>() >= (id == "events" ? 1 : 2));
            } else if (id.starts_with("dist-")) {
                CHECK(w >= (content - 24) / 2 - 1);  // two a row at most, one a row when narrow
                CHECK(chart.at("labels").to_number<int>() == 2);
                if (width < 900) CHECK(w >= content - 1);
            }
            if (id == "throughput" || id == "latency-over-time") CHECK(chart.at("marks").to_number<int>() > 5);
            if (id == "dist-total") CHECK(chart.at("marks").to_number<int>() > 0);
        }
        for (const char* id : {"throughput", "latency-over-time", "events", "dist-total", "dist-fetch", "step-means", "offer-mix"}) {
            INFO(id);
            CHECK(seen.count(id) == 1);
        }
        std::vector<std::string> kpis;
        for (const auto& k : layout.at("kpis").as_array()) kpis.emplace_back(k.as_string());
        CHECK(kpis.size() == 6);
        CHECK(std::find(kpis.begin(), kpis.end(), "kpi-requests=43") != kpis.end());
    }
    for (const auto& p : {log_path, html, probed}) std::filesystem::remove(p);
    std::filesystem::remove_all(profile);
}
