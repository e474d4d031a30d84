// `offerd report`: what an analyst wants from an offerd JSON log, as text or one HTML page.
#pragma once

#include <array>
#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <vector>

namespace offerd {

struct step_stats {
    std::uint64_t count = 0;
    std::int64_t p50 = 0, p90 = 0, p99 = 0, max = 0;  // microseconds, nearest-rank
    double mean = 0;
};

struct slow_request {
    std::string request_id;
    std::string member_id;
    std::int64_t total_us = 0;
    std::string dominant_step;  // the pipeline step that took longest
    std::int64_t dominant_us = 0;
};

struct log_report {
    std::uint64_t lines = 0;
    std::uint64_t unreadable_lines = 0;  // not JSON objects: counted, never fatal
    std::uint64_t offers = 0;            // `offer` events
    std::map<unsigned, std::uint64_t> statuses;
    std::map<std::string, std::uint64_t> offer_mix;
    std::vector<std::pair<std::string, step_stats>> steps;  // pipeline order
    std::vector<std::pair<std::string, std::uint64_t>> per_second;  // "YYYY-MM-DDTHH:MM:SS" -> offer events
    std::vector<slow_request> slowest;                             // up to 10, slowest first
    std::map<std::string, std::vector<std::int64_t>> samples;      // step -> latencies (for charts)
};

// Reads JSON lines (the log schema in README.md). Lines that are not JSON objects are counted
// in unreadable_lines and skipped.
log_report build_report(std::istream& in);

// The plain-text report.
std::string render_text(const log_report& r);
// One self-contained HTML page (inline CSS and SVG; no scripts, no network).
std::string render_html(const log_report& r);

}  // namespace offerd
