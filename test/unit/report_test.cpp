// The log report's numbers on a known log.
#include <catch2/catch.hpp>
#include <sstream>

#include "offerd/report/report.hpp"

using namespace offerd;

namespace {
std::string offer_line(const std::string& id, const std::string& member, int status, const char* offer, const char* ts,
                       long fetch, long predict, long total) {
    std::ostringstream o;
    o << R"({"ts":")" << ts << R"(","level":"info","event":"offer","request_id":")" << id << R"(","memberId":")" << member
      << R"(","status":)" << status << R"(,"offer":)" << (offer ? std::string("\"") + offer + "\"" : std::string("null"))
      << R"(,"latency_us":{"fetch":)" << fetch << R"(,"features":2,"predict_ats":)" << predict - 5 << R"(,"predict_resp":)"
      << predict - 3 << R"(,"predict":)" << predict << R"(,"offer":50,"persist":40,"total":)" << total << "}}";
    return o.str();
}

const std::string known_log =
    offer_line("r1", "A", 200, "35% Bonus", "2026-01-01T00:00:00.100000Z", 100, 300, 500) + "\n" +
    offer_line("r2", "B", 200, "50% Discount", "2026-01-01T00:00:00.900000Z", 900, 200, 1200) + "\n" +
    offer_line("r3", "A", 502, nullptr, "2026-01-01T00:00:01.500000Z", 50, 2000, 2200) + "\n" +
    R"({"ts":"2026-01-01T00:00:01.600000Z","level":"info","event":"throughput","count":3})" "\n"
    "this line is not JSON\n" +
    offer_line("r4", "C", 200, "35% Bonus", "2026-01-01T00:00:02.000000Z", 200, 100, 400) + "\n";

log_report known() {
    std::istringstream in(known_log);
    return build_report(in);
}
}  // namespace

TEST_CASE("the report counts offer events by status and offer, and unreadable lines", "[unit]") {
    const auto r = known();
    CHECK(r.lines == 6);
    CHECK(r.unreadable_lines == 1);
    CHECK(r.offers == 4);
    CHECK(r.statuses == std::map<unsigned, std::uint64_t>{{200, 3}, {502, 1}});
    CHECK(r.offer_mix == std::map<std::string, std::uint64_t>{{"35% Bonus", 2}, {"50% Discount", 1}});
}

TEST_CASE("the report's per-step percentiles are nearest-rank over the offer events", "[unit]") {
    const auto r = known();
    const auto& total = r.steps.back();
    REQUIRE(total.first == "total");
    // totals sorted: 400 500 1200 2200
    CHECK(total.second.count == 4);
    CHECK(total.second.p50 == 500);
    CHECK(total.second.p90 == 2200);
    CHECK(total.second.p99 == 2200);
    CHECK(total.second.max == 2200);
    CHECK(total.second.mean == 1075.0);
    const auto& fetch = r.steps.front();  // 50 100 200 900
    CHECK(fetch.first == "fetch");
    CHECK(fetch.second.p50 == 100);
    CHECK(fetch.second.max == 900);
}

TEST_CASE("the report lists offer events per second and the slowest requests with their dominant step", "[unit]") {
    const auto r = known();
    REQUIRE(r.per_second.size() == 3);
    CHECK(r.per_second[0] == std::pair<std::string, std::uint64_t>{"2026-01-01T00:00:00", 2});
    CHECK(r.per_second[1].second == 1);
    REQUIRE(r.slowest.size() == 4);
    CHECK(r.slowest[0].request_id == "r3");
    CHECK(r.slowest[0].dominant_step == "predict");
    CHECK(r.slowest[0].dominant_us == 2000);
    CHECK(r.slowest[1].request_id == "r2");
    CHECK(r.slowest[1].dominant_step == "fetch");
}

TEST_CASE("the HTML report is one self-contained page with inline SVG charts", "[unit]") {
    const std::string html = render_html(known());
    CHECK(html.rfind("<!doctype html>", 0) == 0);
    CHECK(html.find("<svg") != std::string::npos);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("src=") == std::string::npos);
    CHECK(html.find("href=") == std::string::npos);
    CHECK(html.find("r3") != std::string::npos);
    const std::string text = render_text(known());
    CHECK(text.find("offer requests: 4") != std::string::npos);
}
