// The log report's numbers on a known log.
#include <catch2/catch.hpp>
#include <sstream>

#include "offerd/domain/timestamp.hpp"
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

TEST_CASE("the report counts offer events per second and lists the slowest requests with their dominant step", "[unit]") {
    const auto r = known();
    CHECK(r.interval_s == 1);
    REQUIRE(r.intervals.size() == 3);
    CHECK(r.intervals[0].start_us == *parse_timestamp("2026-01-01T00:00:00Z"));
    CHECK(r.intervals[0].ok + r.intervals[0].errors == 2);
    CHECK(r.intervals[1].ok + r.intervals[1].errors == 1);
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

namespace {
// An incident: traffic, 40 idle seconds, then errors, a breaker opening, shedding, a replay and
// a rejected body; every line timestamped.
std::string incident_log() {
    std::string log;
    const auto at = [](int s, int us = 0) {
        char buf[40];
        std::snprintf(buf, sizeof buf, "2026-01-01T00:%02d:%02d.%06dZ", s / 60, s % 60, us);
        return std::string(buf);
    };
    for (int i = 0; i < 10; ++i) log += offer_line("a" + std::to_string(i), "M", 200, "35% Bonus", at(0, i * 1000).c_str(), 100, 200, 1000) + "\n";
    log += offer_line("b1", "M", 504, nullptr, at(50).c_str(), 100, 90'000, 100'000) + "\n";
    log += R"({"ts":")" + at(50, 10) + R"(","level":"warn","event":"upstream_error","upstream":"prediction","path":"/ats","attempt":1,"outcome":"timeout"})" "\n";
    log += R"({"ts":")" + at(51) + R"(","level":"warn","event":"circuit_state","upstream":"prediction","from":"closed","to":"open"})" "\n";
    log += R"({"ts":")" + at(52) + R"(","level":"warn","event":"overloaded","shed":7,"in_flight":128,"limit":128,"max_in_flight":4096})" "\n";
    log += R"({"ts":")" + at(53) + R"(","level":"info","event":"offer_replayed","request_id":"c1","memberId":"M","idempotency_key":"k"})" "\n";
    log += R"({"ts":")" + at(54) + R"(","level":"info","event":"rejected","request_id":"c2","status":422,"detail":"points: must be a number"})" "\n";
    log += R"({"ts":")" + at(55) + R"(","level":"warn","event":"log_dropped","lines":3})" "\n";
    log += R"({"ts":")" + at(56) + R"(","level":"warn","event":"persist_deferred","memberId":"M","reason":"member-data unavailable"})" "\n";
    return log;
}
log_report incident() {
    std::istringstream in(incident_log());
    return build_report(in);
}
}  // namespace

TEST_CASE("the report's time axis covers the whole log in intervals, idle ones included", "[unit]") {
    const auto r = incident();
    CHECK(r.first_ts == "2026-01-01T00:00:00.000000Z");
    CHECK(r.last_ts == "2026-01-01T00:00:56.000000Z");
    CHECK(r.span_s == 56.0);
    REQUIRE(r.interval_s == 1);  // 57 one-second intervals fit in 120
    REQUIRE(r.intervals.size() == 57);
    CHECK(r.intervals[0].ok == 10);
    CHECK(r.intervals[0].p50_us == 1000);
    for (int s = 1; s < 50; ++s) {
        INFO("second " << s);
        CHECK(r.intervals[s].ok + r.intervals[s].errors + r.intervals[s].replayed + r.intervals[s].shed == 0);
        CHECK(r.intervals[s].p50_us == -1);
    }
    CHECK(r.intervals[50].errors == 1);
    CHECK(r.intervals[50].p99_us == 100'000);
    CHECK(r.intervals[50].markers[static_cast<std::size_t>(marker_kind::upstream_error)] == 1);
    CHECK(r.intervals[51].markers[static_cast<std::size_t>(marker_kind::breaker)] == 1);
    CHECK(r.intervals[52].shed == 7);
    CHECK(r.intervals[53].replayed == 1);
    CHECK(r.intervals[54].errors == 1);
    CHECK(r.intervals[55].markers[static_cast<std::size_t>(marker_kind::log_dropped)] == 1);
    CHECK(r.intervals[56].markers[static_cast<std::size_t>(marker_kind::outbox)] == 1);
}

TEST_CASE("a longer log gets longer intervals, never more than 120", "[unit]") {
    std::string log;
    for (int h = 0; h < 3; ++h)
        log += offer_line("x" + std::to_string(h), "M", 200, "35% Bonus", ("2026-01-01T0" + std::to_string(h) + ":00:00.000000Z").c_str(), 1, 1, 5) + "\n";
    std::istringstream in(log);
    const auto r = build_report(in);
    CHECK(r.interval_s == 120);  // 2 h: 60 two-minute intervals (60 s would need 121)
    CHECK(r.intervals.size() == 61);
    CHECK(r.intervals.front().ok == 1);
    CHECK(r.intervals[30].ok == 1);
    CHECK(r.intervals.back().ok == 1);
}

TEST_CASE("the report counts every status, replays and shed requests, and the error rate over all of them", "[unit]") {
    const auto r = incident();
    CHECK(r.offers == 11);
    CHECK(r.rejected == 1);
    CHECK(r.replayed == 1);
    CHECK(r.shed == 7);
    CHECK(r.requests() == 20);
    CHECK(r.statuses == std::map<unsigned, std::uint64_t>{{200, 10}, {422, 1}, {504, 1}});
    CHECK(r.error_rate() == Approx(9.0 / 20.0));  // 504, 422 and the 7 shed
    CHECK(r.upstream_errors == std::map<std::string, std::uint64_t>{{"prediction /ats timeout", 1}});
    REQUIRE(r.markers.size() == 5);
    CHECK(r.markers[1].detail == "prediction closed -> open");
    CHECK(r.markers[2].detail == "7 shed (in flight 128, limit 128)");
    CHECK(r.marker_counts[static_cast<std::size_t>(marker_kind::overload)] == 1);
    REQUIRE_FALSE(r.slowest.empty());
    CHECK(r.slowest[0].request_id == "b1");
    CHECK(r.slowest[0].ts == "2026-01-01T00:00:50.000000Z");
    CHECK(r.slowest[0].status == 504);
    const std::string text = render_text(r);
    CHECK(text.find("error rate: 45.00%") != std::string::npos);
    CHECK(text.find("200 replayed  1") != std::string::npos);
    CHECK(text.find("503 shed  7") != std::string::npos);
    CHECK(text.find("2026-01-01T00:00:51.000000Z  circuit_state  prediction closed -> open") != std::string::npos);
}

TEST_CASE("the HTML report has the KPI header, time charts with labelled axes and the event log", "[unit]") {
    const std::string html = render_html(incident());
    for (const char* id : {"kpi-span", "kpi-requests", "kpi-error-rate", "kpi-p50", "kpi-p99", "throughput", "latency-over-time", "events",
                           "dist-total", "statuses", "slowest", "upstream-errors", "event-log"}) {
        INFO(id);
        CHECK(html.find(std::string("id='") + id + "'") != std::string::npos);
    }
    CHECK(html.find("<span class='v'>20</span><span class='k'>requests</span>") != std::string::npos);
    CHECK(html.find("<span class='v'>45.00%</span>") != std::string::npos);
    CHECK(html.find("time (UTC), 1 s intervals") != std::string::npos);
    CHECK(html.find("requests / s") != std::string::npos);
    CHECK(html.find("latency (log scale)") != std::string::npos);
    CHECK(html.find("requests (log)") != std::string::npos);
    CHECK(html.find("prediction closed -&gt; open") != std::string::npos);
    CHECK(html.find("<script") == std::string::npos);
    // Charts scale to the page: a viewBox and no fixed width attribute.
    CHECK(html.find("<svg class='chart' id='throughput' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 1000 ") != std::string::npos);
    CHECK(html.find("<svg width=") == std::string::npos);
}

TEST_CASE("the HTML report escapes what the log says", "[unit]") {
    std::istringstream in(offer_line("<script>alert(1)</script>", "M'&", 200, "35% Bonus", "2026-01-01T00:00:00.000000Z", 1, 1, 5) + "\n");
    const std::string html = render_html(build_report(in));
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    CHECK(html.find("M&#39;&amp;") != std::string::npos);
}
