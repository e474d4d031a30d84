// `offerd report`: what an analyst needs to diagnose an incident from an offerd JSON log, as text
// or as one self-contained HTML page.
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
    std::string ts;  // the offer event's timestamp (when it was answered)
    std::string request_id;
    std::string member_id;
    unsigned status = 0;
    std::int64_t total_us = 0;
    std::string dominant_step;  // the pipeline step that took longest
    std::int64_t dominant_us = 0;
};

// What happened around the requests, placed on the time axis.
enum class marker_kind { upstream_error, breaker, outbox, overload, log_dropped, store, crash };
inline constexpr std::size_t marker_kind_count = 7;
const char* to_string(marker_kind k) noexcept;

struct marker {
    std::int64_t t_us = 0;  // since the epoch
    std::string ts;
    marker_kind kind{};
    std::string event;   // the log event's name
    std::string detail;  // e.g. "prediction /ats timeout (attempt 2)", "prediction closed -> open"
};

// One interval of the time axis. Every interval between the first and last line is present,
// idle ones included (all counts zero), so a gap in traffic is visible as one.
struct interval_stats {
    std::int64_t start_us = 0;
    std::uint64_t ok = 0;        // offer events answered 200
    std::uint64_t errors = 0;    // offer events with another status, and rejected requests (4xx)
    std::uint64_t replayed = 0;  // answers replayed for a repeated Idempotency-Key
    std::uint64_t shed = 0;      // 503s of admission control (from the `overloaded` events)
    std::int64_t p50_us = -1, p99_us = -1;  // total latency of the offer events; -1: none
    std::array<std::uint64_t, marker_kind_count> markers{};
};

struct log_report {
    std::uint64_t lines = 0;
    std::uint64_t unreadable_lines = 0;  // not JSON objects: counted, never fatal
    std::uint64_t offers = 0;            // `offer` events (requests that ran the pipeline)
    std::uint64_t rejected = 0;          // `rejected` events (invalid bodies: 400/422)
    std::uint64_t replayed = 0;          // `offer_replayed` events
    std::uint64_t shed = 0;              // requests refused 503 by admission control
    std::map<unsigned, std::uint64_t> statuses;  // offer and rejected events by status
    std::map<std::string, std::uint64_t> offer_mix;
    std::vector<std::pair<std::string, step_stats>> steps;          // pipeline order
    std::vector<slow_request> slowest;                             // up to 10, slowest first
    std::map<std::string, std::vector<std::int64_t>> samples;      // step -> sorted latencies (for charts)

    // The time axis: the first and last timestamped line, and intervals of interval_s seconds
    // (1 s up to a day, chosen so that there are at most 120 of them).
    std::string first_ts, last_ts;
    double span_s = 0;
    std::int64_t interval_s = 1;
    std::vector<interval_stats> intervals;
    std::vector<marker> markers;  // the first 500, in log order
    std::uint64_t markers_total = 0;
    std::array<std::uint64_t, marker_kind_count> marker_counts{};
    std::map<std::string, std::uint64_t> upstream_errors;  // "service path outcome" -> count

    std::uint64_t requests() const noexcept { return offers + rejected + replayed + shed; }
    // Requests not answered 2xx, over requests(); 0 without requests.
    double error_rate() const noexcept;
};

// Reads JSON lines (the log schema in docs/log-schema.json). Lines that are not JSON objects are
// counted in unreadable_lines and skipped; unknown events are ignored.
log_report build_report(std::istream& in);

// The plain-text report.
std::string render_text(const log_report& r);
// One self-contained HTML page (inline CSS and SVG; no scripts, nothing fetched). Every chart is
// an `svg.chart` as wide as the page, with labelled axes.
std::string render_html(const log_report& r);

}  // namespace offerd
