// Log report: aggregation over the log's events on a time axis, and text/HTML (inline SVG) rendering.
#include "offerd/report/report.hpp"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "offerd/domain/timestamp.hpp"

namespace offerd {

namespace json = boost::json;

const char* to_string(marker_kind k) noexcept {
    switch (k) {
    case marker_kind::upstream_error: return "upstream errors";
    case marker_kind::breaker: return "breaker transitions";
    case marker_kind::outbox: return "outbox";
    case marker_kind::overload: return "overload (shedding)";
    case marker_kind::log_dropped: return "dropped log lines";
    case marker_kind::store: return "store (PostgreSQL, files)";
    case marker_kind::crash: return "handler crashes";
    }
    return "?";
}

double log_report::error_rate() const noexcept {
    const std::uint64_t total = requests();
    if (total == 0) return 0;
    std::uint64_t bad = shed;
    for (const auto& [status, n] : statuses)
        if (status < 200 || status >= 300) bad += n;
    return static_cast<double>(bad) / static_cast<double>(total);
}

namespace {

constexpr std::array<const char*, 8> step_names{"fetch", "features", "predict_ats", "predict_resp",
                                                "predict", "offer", "persist", "total"};

// The steps a request runs one after another (together about its total): predict_ats and
// predict_resp run in parallel inside predict, and total is their sum.
bool sequential_step(std::string_view step) { return step != "total" && step != "predict_ats" && step != "predict_resp"; }

std::int64_t nearest_rank(const std::vector<std::int64_t>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size(), std::max<std::size_t>(rank, 1)) - 1];
}

std::string html_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '&': out += "&amp;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

std::string fmt(const char* pattern, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, pattern, v);
    return buf;
}

std::string ms(std::int64_t us) { return fmt("%.3f", static_cast<double>(us) / 1000.0); }

// A latency for a label: 3 significant figures, in µs, ms or s.
std::string short_latency(double us) {
    if (us < 1000) return fmt("%.3g", us) + " µs";
    if (us < 1e6) return fmt("%.3g", us / 1000) + " ms";
    return fmt("%.3g", us / 1e6) + " s";
}

std::string percent(double share) { return fmt("%.2f", 100 * share) + "%"; }

std::string_view str(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view{};
}

// The upstream an upstream_error or circuit_state line names; logs of offerd before the field
// was renamed call it `service`.
std::string_view upstream_of(const json::object& o) {
    const std::string_view u = str(o, "upstream");
    return u.empty() ? str(o, "service") : u;
}

std::int64_t integer(const json::object& o, std::string_view key, std::int64_t otherwise = 0) {
    const json::value* v = o.if_contains(key);
    if (!v) return otherwise;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
    return otherwise;
}

// What one line contributes to its interval.
enum class tally : std::uint8_t { ok, error, replayed, shed, marker };
struct timed {
    std::int64_t t_us;
    tally what;
    std::uint8_t kind;    // marker_kind for tally::marker
    std::int64_t value;   // total latency (ok/error offers; -1 for rejected), shed count
};

constexpr std::array<std::int64_t, 17> interval_choices{1,   2,   5,    10,   15,   30,    60,    120,  300,
                                                         600, 900, 1800, 3600, 7200, 21600, 43200, 86400};
constexpr std::int64_t max_intervals = 120;
constexpr std::size_t max_markers = 500;

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// ---- SVG charts -------------------------------------------------------------------------------
// Every chart is drawn in a 1000-unit-wide viewBox and scaled to the page width by CSS, so it
// uses the whole width at any window size; text scales with it.

constexpr double view_w = 1000, left_m = 70, right_m = 36, top_m = 14, bottom_m = 46;
constexpr double plot_w = view_w - left_m - right_m;

// 1, 2, 5 × 10^k at or above v.
double nice_ceiling(double v) {
    if (v <= 0) return 1;
    const double p = std::pow(10, std::floor(std::log10(v)));
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * p >= v * (1 - 1e-12)) return m * p;
    return 10 * p;
}

std::string svg_open(const char* id, double h, std::string_view title) {
    std::ostringstream o;
    o << "<svg class='chart' id='" << id << "' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 " << view_w << ' ' << h
      << "' preserveAspectRatio='xMidYMid meet' role='img' aria-label='" << html_escape(title) << "'>";
    return o.str();
}

std::string axis_title_x(double plot_h, std::string_view text) {
    std::ostringstream o;
    o << "<text class='axis-label' x='" << left_m + plot_w / 2 << "' y='" << top_m + plot_h + 40
      << "' text-anchor='middle' font-size='13'>" << html_escape(text) << "</text>";
    return o.str();
}

std::string axis_title_y(double plot_h, std::string_view text) {
    std::ostringstream o;
    const double cy = top_m + plot_h / 2;
    o << "<text class='axis-label' x='16' y='" << cy << "' transform='rotate(-90 16 " << cy
      << ")' text-anchor='middle' font-size='13'>" << html_escape(text) << "</text>";
    return o.str();
}

std::string clock_label(std::int64_t t_us, bool with_date) {
    const std::string full = format_rfc3339(t_us);  // YYYY-MM-DDTHH:MM:SS[.ffffff]Z
    return with_date ? full.substr(5, 5) + " " + full.substr(11, 5) : full.substr(11, 8);
}

// The time axis under a plot of n intervals: a baseline, about seven labelled ticks, the title.
std::string time_axis(const log_report& r, double plot_h) {
    const std::size_t n = r.intervals.size();
    std::ostringstream o;
    const double base = top_m + plot_h;
    o << "<line x1='" << left_m << "' y1='" << base << "' x2='" << left_m + plot_w << "' y2='" << base << "' stroke='#555'/>";
    if (n == 0) return o.str() + axis_title_x(plot_h, "time (UTC)");
    const std::size_t every = std::max<std::size_t>(1, (n + 6) / 7);
    const bool with_date = r.span_s >= 86400;
    for (std::size_t i = 0; i <= n; i += every) {
        const double x = left_m + plot_w * static_cast<double>(i) / static_cast<double>(n);
        o << "<line x1='" << fmt("%.1f", x) << "' y1='" << base << "' x2='" << fmt("%.1f", x) << "' y2='" << base + 5
          << "' stroke='#555'/><text class='tick' x='" << fmt("%.1f", x) << "' y='" << base + 18
          << "' text-anchor='middle' font-size='11'>"
          << clock_label(r.intervals.front().start_us + static_cast<std::int64_t>(i) * r.interval_s * micros_per_second, with_date)
          << "</text>";
    }
    return o.str() + axis_title_x(plot_h, "time (UTC), " + std::to_string(r.interval_s) + " s intervals");
}

// A horizontal gridline across the plot at y, labelled in the left margin.
std::string gridline(double y, std::string_view label) {
    std::ostringstream o;
    o << "<line x1='" << left_m << "' y1='" << fmt("%.1f", y) << "' x2='" << left_m + plot_w << "' y2='" << fmt("%.1f", y)
      << "' stroke='#e5e7eb'/><text class='tick' x='" << left_m - 6 << "' y='" << fmt("%.1f", y + 4)
      << "' text-anchor='end' font-size='11'>" << label << "</text>";
    return o.str();
}

// A linear y axis from 0 to top with four gridlines.
std::string linear_y_axis(double top, double plot_h, const char* value_format) {
    std::string out;
    for (int k = 0; k <= 4; ++k) out += gridline(top_m + plot_h - plot_h * k / 4.0, fmt(value_format, top * k / 4.0));
    return out;
}

std::string legend(const std::vector<std::pair<const char*, const char*>>& items) {
    std::ostringstream o;
    double x = left_m + 10;
    for (const auto& [label, color] : items) {
        o << "<rect x='" << x << "' y='" << top_m << "' width='12' height='12' fill='" << color << "'/><text x='" << x + 16 << "' y='"
          << top_m + 11 << "' font-size='12'>" << label << "</text>";
        x += 24 + 8.0 * static_cast<double>(std::string_view(label).size());
    }
    return o.str();
}

// Requests per second per interval, stacked by outcome.
std::string throughput_chart(const log_report& r) {
    constexpr double plot_h = 220;
    const auto per_s = [&](std::uint64_t n) { return static_cast<double>(n) / static_cast<double>(r.interval_s); };
    double peak = 0;
    for (const auto& b : r.intervals) peak = std::max(peak, per_s(b.ok + b.replayed + b.errors + b.shed));
    const double top = nice_ceiling(std::max(peak, 1.0));
    std::ostringstream o;
    o << svg_open("throughput", top_m + plot_h + bottom_m, "requests per second over time") << linear_y_axis(top, plot_h, "%.4g");
    const double col = r.intervals.empty() ? 0 : plot_w / static_cast<double>(r.intervals.size());
    for (std::size_t i = 0; i < r.intervals.size(); ++i) {
        const auto& b = r.intervals[i];
        double y = top_m + plot_h;
        const std::pair<std::uint64_t, const char*> parts[] = {{b.ok, "#10b981"}, {b.replayed, "#3b82f6"}, {b.errors, "#ef4444"}, {b.shed, "#f59e0b"}};
        for (const auto& [n, color] : parts) {
            if (n == 0) continue;
            const double h = plot_h * per_s(n) / top;
            y -= h;
            o << "<rect x='" << fmt("%.2f", left_m + col * static_cast<double>(i)) << "' y='" << fmt("%.2f", y) << "' width='"
              << fmt("%.2f", std::max(0.5, col * 0.92)) << "' height='" << fmt("%.2f", h) << "' fill='" << color << "'><title>"
              << clock_label(b.start_us, false) << ": " << fmt("%.4g", per_s(n)) << "/s</title></rect>";
        }
    }
    o << time_axis(r, plot_h) << axis_title_y(plot_h, "requests / s")
      << legend({{"200", "#10b981"}, {"replayed", "#3b82f6"}, {"errors (4xx/5xx)", "#ef4444"}, {"shed (503)", "#f59e0b"}}) << "</svg>";
    return o.str();
}

// p50 and p99 of the total latency per interval on a logarithmic axis (the tail stays visible
// beside a fast median). Idle intervals break the lines.
std::string latency_over_time_chart(const log_report& r) {
    constexpr double plot_h = 220;
    std::int64_t lo = 0, hi = 0;
    for (const auto& b : r.intervals) {
        if (b.p50_us < 0) continue;
        lo = lo == 0 ? std::max<std::int64_t>(1, b.p50_us) : std::min(lo, std::max<std::int64_t>(1, b.p50_us));
        hi = std::max(hi, b.p99_us);
    }
    const double d_lo = std::floor(std::log10(static_cast<double>(std::max<std::int64_t>(lo, 1))));
    const double d_hi = std::max(d_lo + 1, std::ceil(std::log10(static_cast<double>(std::max<std::int64_t>(hi, 1)) * 1.0001)));
    const auto y_of = [&](double us) {
        const double f = (std::log10(std::max(us, 1.0)) - d_lo) / (d_hi - d_lo);
        return top_m + plot_h - plot_h * std::clamp(f, 0.0, 1.0);
    };
    std::ostringstream o;
    o << svg_open("latency-over-time", top_m + plot_h + bottom_m, "p50 and p99 latency over time");
    for (double d = d_lo; d <= d_hi + 1e-9; d += 1) o << gridline(y_of(std::pow(10, d)), short_latency(std::pow(10, d)));
    const double col = r.intervals.empty() ? 0 : plot_w / static_cast<double>(r.intervals.size());
    for (const auto& series : {std::pair{0, "#2563eb"}, std::pair{1, "#dc2626"}}) {
        // Named copies, not a structured binding: clang before 16 cannot capture bindings in the lambda below.
        const int pick = series.first;
        const char* const color = series.second;
        std::string points;
        const auto flush = [&] {
            if (points.empty()) return;
            o << "<polyline fill='none' stroke='" << color << "' stroke-width='2' points='" << points << "'/>";
            points.clear();
        };
        for (std::size_t i = 0; i < r.intervals.size(); ++i) {
            const auto& b = r.intervals[i];
            const std::int64_t v = pick == 0 ? b.p50_us : b.p99_us;
            if (v < 0) {
                flush();
                continue;
            }
            const double x = left_m + col * (static_cast<double>(i) + 0.5), y = y_of(static_cast<double>(v));
            points += fmt("%.2f", x) + "," + fmt("%.2f", y) + " ";
            o << "<circle cx='" << fmt("%.2f", x) << "' cy='" << fmt("%.2f", y) << "' r='2.5' fill='" << color << "'><title>"
              << clock_label(b.start_us, false) << (pick == 0 ? " p50 " : " p99 ") << short_latency(static_cast<double>(v))
              << "</title></circle>";
        }
        flush();
    }
    o << time_axis(r, plot_h) << axis_title_y(plot_h, "latency (log scale)") << legend({{"p50", "#2563eb"}, {"p99", "#dc2626"}})
      << "</svg>";
    return o.str();
}

// One row per kind of event, a mark in every interval that has any (darker: more of them).
std::string events_chart(const log_report& r) {
    constexpr double row = 30;
    constexpr double plot_h = row * marker_kind_count;
    std::ostringstream o;
    o << svg_open("events", top_m + plot_h + bottom_m, "events over time");
    const double col = r.intervals.empty() ? 0 : plot_w / static_cast<double>(r.intervals.size());
    for (std::size_t k = 0; k < marker_kind_count; ++k) {
        const double y = top_m + row * static_cast<double>(k);
        std::uint64_t peak = 1;
        for (const auto& b : r.intervals) peak = std::max(peak, b.markers[k]);
        // The row's name sits inside the plot, above its marks: the names are longer than the margin.
        o << "<text class='tick' x='" << left_m + 4 << "' y='" << y + 11 << "' font-size='11' fill='#444'>"
          << to_string(static_cast<marker_kind>(k)) << " (" << r.marker_counts[k] << ")</text>"
          << "<line x1='" << left_m << "' y1='" << y + row << "' x2='" << left_m + plot_w << "' y2='" << y + row << "' stroke='#f3f4f6'/>";
        for (std::size_t i = 0; i < r.intervals.size(); ++i) {
            const std::uint64_t n = r.intervals[i].markers[k];
            if (n == 0) continue;
            o << "<rect x='" << fmt("%.2f", left_m + col * static_cast<double>(i)) << "' y='" << y + 14 << "' width='"
              << fmt("%.2f", std::max(1.5, col * 0.92)) << "' height='" << row - 16 << "' fill='#7c3aed' fill-opacity='"
              << fmt("%.2f", 0.35 + 0.65 * static_cast<double>(n) / static_cast<double>(peak)) << "'><title>"
              << clock_label(r.intervals[i].start_us, false) << ": " << n << "</title></rect>";
        }
    }
    o << time_axis(r, plot_h) << "</svg>";
    return o.str();
}

// A latency distribution: counts in power-of-two buckets of microseconds (a logarithmic latency
// axis) drawn on a logarithmic count axis, so a tail of a few slow requests is as visible as the
// thousands around the median.
std::string distribution_chart(const char* id, const std::vector<std::int64_t>& sorted) {
    constexpr double plot_h = 160;
    std::vector<std::pair<std::int64_t, std::uint64_t>> buckets;  // upper bound (µs), count
    if (!sorted.empty()) {
        std::int64_t upper = 1;
        while (upper < std::max<std::int64_t>(sorted.front(), 1)) upper *= 2;
        std::size_t i = 0;
        while (i < sorted.size()) {
            std::uint64_t n = 0;
            while (i < sorted.size() && sorted[i] <= upper) ++n, ++i;
            buckets.emplace_back(upper, n);
            upper *= 2;
        }
    }
    std::uint64_t peak = 1;
    for (const auto& [u, n] : buckets) peak = std::max(peak, n);
    // Height log10(1 + n): 0 for none, about d at 10^d; gridlines at 0, 10, 100, ...
    const double decades = std::max(1.0, std::ceil(std::log10(static_cast<double>(peak) + 1)));
    const auto h_of = [&](std::uint64_t n) { return plot_h * std::log10(static_cast<double>(n) + 1) / decades; };
    std::ostringstream o;
    o << svg_open(id, top_m + plot_h + bottom_m, std::string(id) + " latency distribution");
    for (int d = 0; d <= static_cast<int>(decades); ++d)
        o << gridline(top_m + plot_h - plot_h * d / decades, d == 0 ? std::string("0") : fmt("%.0f", std::pow(10, d)));
    const double col = buckets.empty() ? 0 : plot_w / static_cast<double>(buckets.size());
    const std::size_t every = std::max<std::size_t>(1, (buckets.size() + 9) / 10);
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        const auto [upper, n] = buckets[i];
        const double h = h_of(n), x = left_m + col * static_cast<double>(i);
        if (n > 0)
            o << "<rect x='" << fmt("%.2f", x) << "' y='" << fmt("%.2f", top_m + plot_h - h) << "' width='" << fmt("%.2f", col * 0.9)
              << "' height='" << fmt("%.2f", h) << "' fill='#6366f1'><title>&lt;= " << short_latency(static_cast<double>(upper)) << ": "
              << n << "</title></rect>";
        if (i % every == 0)
            o << "<text class='tick' x='" << fmt("%.2f", x + col / 2) << "' y='" << top_m + plot_h + 18
              << "' text-anchor='middle' font-size='11'>" << short_latency(static_cast<double>(upper)) << "</text>";
    }
    o << "<line x1='" << left_m << "' y1='" << top_m + plot_h << "' x2='" << left_m + plot_w << "' y2='" << top_m + plot_h
      << "' stroke='#555'/>" << axis_title_x(plot_h, "latency, upper bound of each bucket (log scale)")
      << axis_title_y(plot_h, "requests (log)") << "</svg>";
    return o.str();
}

// Horizontal bars: one labelled bar per item, with the value after it.
std::string bar_chart(const char* id, const std::vector<std::pair<std::string, double>>& items, const std::string& unit,
                      const char* value_format = "%.0f") {
    double peak = 1e-9;
    for (const auto& [label, v] : items) peak = std::max(peak, v);
    constexpr double row = 26, label_w = 180, value_w = 150;
    const double bar_w = view_w - label_w - value_w;
    std::ostringstream o;
    o << svg_open(id, row * static_cast<double>(items.size()) + 34, id);
    for (std::size_t i = 0; i < items.size(); ++i) {
        const double y = static_cast<double>(i) * row + 5;
        const double w = std::max(1.0, bar_w * items[i].second / peak);
        o << "<text x='0' y='" << y + 16 << "' font-size='13'>" << html_escape(items[i].first) << "</text>"
          << "<rect x='" << label_w << "' y='" << y << "' width='" << fmt("%.1f", w) << "' height='" << row - 8 << "' fill='#3b82f6'/>"
          << "<text x='" << fmt("%.1f", label_w + w + 6) << "' y='" << y + 16 << "' font-size='12'>" << fmt(value_format, items[i].second)
          << ' ' << unit << "</text>";
    }
    o << "<text class='axis-label' x='" << label_w + bar_w / 2 << "' y='" << row * static_cast<double>(items.size()) + 28
      << "' text-anchor='middle' font-size='13'>" << html_escape(unit) << "</text></svg>";
    return o.str();
}

void add_marker(log_report& r, std::vector<timed>& timeline, std::int64_t t, std::string_view ts, marker_kind k,
                std::string_view event, std::string detail) {
    ++r.markers_total;
    ++r.marker_counts[static_cast<std::size_t>(k)];
    if (t != 0) timeline.push_back({t, tally::marker, static_cast<std::uint8_t>(k), 0});
    if (r.markers.size() < max_markers) r.markers.push_back({t, std::string(ts), k, std::string(event), std::move(detail)});
}

}  // namespace

log_report build_report(std::istream& in) {
    log_report r;
    std::vector<timed> timeline;
    std::int64_t first = 0, last = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        ++r.lines;
        json::error_code ec;
        const json::value v = json::parse(line, ec);
        const json::object* o = ec ? nullptr : v.if_object();
        if (!o) {
            ++r.unreadable_lines;
            continue;
        }
        const std::string_view ts = str(*o, "ts");
        std::int64_t t = 0;  // 0: no usable timestamp (the line counts, but is not on the time axis)
        if (auto parsed = parse_timestamp(ts); parsed && *parsed != 0) {
            t = *parsed;
            if (first == 0 || t < first) first = t, r.first_ts = std::string(ts);
            if (t > last) last = t, r.last_ts = std::string(ts);
        }
        const std::string_view event = str(*o, "event");
        if (event == "rejected") {
            ++r.rejected;
            ++r.statuses[static_cast<unsigned>(integer(*o, "status"))];
            if (t) timeline.push_back({t, tally::error, 0, -1});
        } else if (event == "offer_replayed") {
            ++r.replayed;
            if (t) timeline.push_back({t, tally::replayed, 0, 0});
        } else if (event == "overloaded") {
            const std::int64_t shed = std::max<std::int64_t>(0, integer(*o, "shed"));
            r.shed += static_cast<std::uint64_t>(shed);
            if (t) timeline.push_back({t, tally::shed, 0, shed});
            add_marker(r, timeline, t, ts, marker_kind::overload, event,
                       std::to_string(shed) + " shed (in flight " + std::to_string(integer(*o, "in_flight")) + ", limit " +
                           std::to_string(integer(*o, "limit")) + ")");
        } else if (event == "upstream_error") {
            const std::string what = std::string(upstream_of(*o)) + " " + std::string(str(*o, "path")) + " " + std::string(str(*o, "outcome"));
            ++r.upstream_errors[what];
            add_marker(r, timeline, t, ts, marker_kind::upstream_error, event, what + " (attempt " + std::to_string(integer(*o, "attempt")) + ")");
        } else if (event == "circuit_state") {
            add_marker(r, timeline, t, ts, marker_kind::breaker, event,
                       std::string(upstream_of(*o)) + " " + std::string(str(*o, "from")) + " -> " + std::string(str(*o, "to")));
        } else if (event.starts_with("persist_") || event.starts_with("outbox_")) {
            std::string detail = std::string(str(*o, "memberId"));
            if (const auto reason = str(*o, "reason"); !reason.empty()) detail += (detail.empty() ? "" : ": ") + std::string(reason);
            add_marker(r, timeline, t, ts, marker_kind::outbox, event, std::move(detail));
        } else if (event == "log_dropped") {
            add_marker(r, timeline, t, ts, marker_kind::log_dropped, event, std::to_string(integer(*o, "lines")) + " lines");
        } else if (event.starts_with("pg_") || event == "record_file_damaged" || event == "state_conflict") {
            add_marker(r, timeline, t, ts, marker_kind::store, event, std::string(str(*o, "error")));
        } else if (event == "handler_exception" || event == "session_crashed") {
            add_marker(r, timeline, t, ts, marker_kind::crash, event, std::string(str(*o, "error")));
        }
        if (event != "offer") continue;
        ++r.offers;
        const auto status = static_cast<unsigned>(integer(*o, "status"));
        ++r.statuses[status];
        if (const auto offer = str(*o, "offer"); !offer.empty()) ++r.offer_mix[std::string(offer)];
        const auto* lat = o->if_contains("latency_us");
        std::int64_t total = -1;
        slow_request sr;
        if (lat && lat->is_object()) {
            for (const char* step : step_names) {
                const auto* x = lat->get_object().if_contains(step);
                if (!x || !x->is_int64()) continue;
                const std::int64_t us = x->get_int64();
                r.samples[step].push_back(us);
                if (std::string_view(step) == "total") {
                    total = us;
                } else if (sequential_step(step) && us > sr.dominant_us) {
                    sr.dominant_us = us;
                    sr.dominant_step = step;
                }
            }
        }
        if (t) timeline.push_back({t, status >= 200 && status < 300 ? tally::ok : tally::error, 0, total});
        if (total < 0) continue;
        sr.total_us = total;
        sr.ts = std::string(ts);
        sr.status = status;
        sr.request_id = std::string(str(*o, "request_id"));
        sr.member_id = std::string(str(*o, "memberId"));
        if (r.slowest.size() < 10 || total > r.slowest.back().total_us) {
            r.slowest.push_back(std::move(sr));
            std::stable_sort(r.slowest.begin(), r.slowest.end(), [](const auto& a, const auto& b) { return a.total_us > b.total_us; });
            if (r.slowest.size() > 10) r.slowest.pop_back();
        }
    }
    for (const char* step : step_names) {
        auto& xs = r.samples[step];
        std::sort(xs.begin(), xs.end());
        step_stats s;
        s.count = xs.size();
        s.p50 = nearest_rank(xs, 0.50);
        s.p90 = nearest_rank(xs, 0.90);
        s.p99 = nearest_rank(xs, 0.99);
        s.max = xs.empty() ? 0 : xs.back();
        s.mean = xs.empty() ? 0 : static_cast<double>(std::accumulate(xs.begin(), xs.end(), std::int64_t{0})) / static_cast<double>(xs.size());
        r.steps.emplace_back(step, s);
    }

    if (first == 0) return r;
    r.span_s = static_cast<double>(last - first) / 1e6;
    const std::int64_t first_s = floor_div(first, micros_per_second), last_s = floor_div(last, micros_per_second);
    r.interval_s = interval_choices.back();
    for (std::int64_t iv : interval_choices)
        if (floor_div(last_s, iv) - floor_div(first_s, iv) + 1 <= max_intervals) {
            r.interval_s = iv;
            break;
        }
    const std::int64_t base = floor_div(first_s, r.interval_s);
    const auto n = static_cast<std::size_t>(floor_div(last_s, r.interval_s) - base + 1);
    r.intervals.resize(n);
    std::vector<std::vector<std::int64_t>> latencies(n);
    for (std::size_t i = 0; i < n; ++i) r.intervals[i].start_us = (base + static_cast<std::int64_t>(i)) * r.interval_s * micros_per_second;
    for (const timed& e : timeline) {
        const auto i = static_cast<std::size_t>(floor_div(floor_div(e.t_us, micros_per_second), r.interval_s) - base);
        interval_stats& b = r.intervals[std::min(i, n - 1)];
        switch (e.what) {
        case tally::ok: ++b.ok; break;
        case tally::error: ++b.errors; break;
        case tally::replayed: ++b.replayed; break;
        case tally::shed: b.shed += static_cast<std::uint64_t>(e.value); break;
        case tally::marker: ++b.markers[e.kind]; break;
        }
        if ((e.what == tally::ok || e.what == tally::error) && e.value >= 0) latencies[std::min(i, n - 1)].push_back(e.value);
    }
    for (std::size_t i = 0; i < n; ++i) {
        auto& xs = latencies[i];
        if (xs.empty()) continue;
        std::sort(xs.begin(), xs.end());
        r.intervals[i].p50_us = nearest_rank(xs, 0.50);
        r.intervals[i].p99_us = nearest_rank(xs, 0.99);
    }
    return r;
}

namespace {
const step_stats* total_stats(const log_report& r) {
    for (const auto& [name, s] : r.steps)
        if (name == "total") return &s;
    return nullptr;
}
}  // namespace

std::string render_text(const log_report& r) {
    std::ostringstream o;
    const step_stats* total = total_stats(r);
    o << "offer requests: " << r.offers << " (log lines: " << r.lines << ", unreadable: " << r.unreadable_lines << ")\n";
    if (!r.first_ts.empty()) o << "time span: " << r.first_ts << " .. " << r.last_ts << " (" << fmt("%.1f", r.span_s) << " s)\n";
    o << "requests: " << r.requests() << " (" << r.offers << " offers, " << r.rejected << " rejected, " << r.replayed << " replayed, "
      << r.shed << " shed)  error rate: " << percent(r.error_rate());
    if (total && total->count) o << "  latency p50 " << ms(total->p50) << " ms, p99 " << ms(total->p99) << " ms";
    o << "\n\nstatus counts:\n";
    for (const auto& [s, n] : r.statuses) o << "  " << s << "  " << n << '\n';
    if (r.replayed) o << "  200 replayed  " << r.replayed << '\n';
    if (r.shed) o << "  503 shed  " << r.shed << '\n';
    o << "\noffer mix:\n";
    for (const auto& [offer, n] : r.offer_mix)
        o << "  " << offer << "  " << n << "  (" << fmt("%.1f", r.offers ? 100.0 * static_cast<double>(n) / static_cast<double>(r.offers) : 0) << "%)\n";
    o << "\nlatency per step (ms):\n";
    char line[200];
    std::snprintf(line, sizeof line, "  %-13s %8s %9s %9s %9s %9s\n", "step", "count", "p50", "p90", "p99", "max");
    o << line;
    for (const auto& [name, s] : r.steps) {
        std::snprintf(line, sizeof line, "  %-13s %8llu %9s %9s %9s %9s\n", name.c_str(), static_cast<unsigned long long>(s.count),
                      ms(s.p50).c_str(), ms(s.p90).c_str(), ms(s.p99).c_str(), ms(s.max).c_str());
        o << line;
    }
    o << "\ntimeline (" << r.interval_s << " s intervals; UTC):\n";
    std::snprintf(line, sizeof line, "  %-20s %8s %8s %8s %8s %10s %10s %7s\n", "start", "200", "errors", "replayed", "shed", "p50 ms",
                  "p99 ms", "events");
    o << line;
    for (const auto& b : r.intervals) {
        const auto events = std::accumulate(b.markers.begin(), b.markers.end(), std::uint64_t{0});
        std::snprintf(line, sizeof line, "  %-20s %8llu %8llu %8llu %8llu %10s %10s %7llu\n", format_rfc3339(b.start_us).c_str(),
                      static_cast<unsigned long long>(b.ok), static_cast<unsigned long long>(b.errors),
                      static_cast<unsigned long long>(b.replayed), static_cast<unsigned long long>(b.shed),
                      b.p50_us < 0 ? "-" : ms(b.p50_us).c_str(), b.p99_us < 0 ? "-" : ms(b.p99_us).c_str(),
                      static_cast<unsigned long long>(events));
        o << line;
    }
    if (!r.upstream_errors.empty()) {
        o << "\nupstream errors:\n";
        for (const auto& [what, n] : r.upstream_errors) o << "  " << what << "  " << n << '\n';
    }
    if (r.markers_total) {
        o << "\nevents (" << r.markers_total << (r.markers_total > r.markers.size() ? ", the first " + std::to_string(r.markers.size()) + " listed" : std::string())
          << "):\n";
        for (const auto& m : r.markers) o << "  " << m.ts << "  " << m.event << "  " << m.detail << '\n';
    }
    o << "\nslowest requests:\n";
    for (const auto& s : r.slowest)
        o << "  " << s.ts << "  " << s.request_id << "  " << s.member_id << "  " << s.status << "  total " << ms(s.total_us)
          << " ms  dominant " << s.dominant_step << " (" << ms(s.dominant_us) << " ms)\n";
    return o.str();
}

std::string render_html(const log_report& r) {
    std::ostringstream o;
    const step_stats* total = total_stats(r);
    o << "<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
         "<title>offerd report</title><style>"
         "body{font-family:sans-serif;margin:24px;color:#111}h2{margin:28px 0 6px}"
         "svg.chart{display:block;width:100%;height:auto}"
         "table{border-collapse:collapse;margin:8px 0;width:100%}"
         "td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;overflow-wrap:anywhere}th{background:#f3f4f6}"
         "td:first-child,th:first-child,td.l{text-align:left}"
         ".kpis{display:flex;flex-wrap:wrap;gap:12px}.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:120px}"
         ".kpi .v{display:block;font-size:22px;font-weight:bold}.kpi .k{color:#555;font-size:13px}"
         ".cols{display:flex;flex-wrap:wrap;gap:24px}.cols>div{flex:1 1 420px;min-width:0}"
         "</style></head><body><h1>offerd report</h1>";
    const auto kpi = [&](const char* id, const std::string& value, const char* label) {
        o << "<div class='kpi' id='" << id << "'><span class='v'>" << html_escape(value) << "</span><span class='k'>" << label << "</span></div>";
    };
    o << "<div class='kpis'>";
    kpi("kpi-span", r.first_ts.empty() ? "-" : fmt("%.1f", r.span_s) + " s", "time span");
    kpi("kpi-requests", std::to_string(r.requests()), "requests");
    kpi("kpi-error-rate", percent(r.error_rate()), "not answered 2xx");
    kpi("kpi-p50", total && total->count ? ms(total->p50) + " ms" : "-", "p50 latency");
    kpi("kpi-p99", total && total->count ? ms(total->p99) + " ms" : "-", "p99 latency");
    kpi("kpi-rate", r.span_s > 0 ? fmt("%.1f", static_cast<double>(r.requests()) / r.span_s) + "/s" : "-", "mean request rate");
    o << "</div>";
    if (!r.first_ts.empty())
        o << "<p>From " << html_escape(r.first_ts) << " to " << html_escape(r.last_ts) << ": " << r.offers << " offers, " << r.rejected
          << " rejected, " << r.replayed << " replayed, " << r.shed << " shed; " << r.lines << " log lines (" << r.unreadable_lines
          << " unreadable).</p>";
    o << "<h2>Throughput</h2>" << throughput_chart(r);
    o << "<h2>Latency over time (total, per interval)</h2>" << latency_over_time_chart(r);
    o << "<h2>Events</h2>" << events_chart(r);
    std::vector<std::pair<std::string, double>> breakdown;
    for (const auto& [name, s] : r.steps)
        if (sequential_step(name)) breakdown.emplace_back(name, s.mean / 1000.0);
    std::vector<std::pair<std::string, double>> mix;
    for (const auto& [offer, n] : r.offer_mix) mix.emplace_back(offer, static_cast<double>(n));
    o << "<h2>Where the time goes (mean per step)</h2>" << bar_chart("step-means", breakdown, "ms", "%.3f") << "<h2>Offer mix</h2>"
      << bar_chart("offer-mix", mix, "offers");
    o << "<h2>Latency per step</h2><table><tr><th>step</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>";
    for (const auto& [name, s] : r.steps)
        o << "<tr><td>" << name << "</td><td>" << s.count << "</td><td>" << ms(s.p50) << "</td><td>" << ms(s.p90) << "</td><td>"
          << ms(s.p99) << "</td><td>" << ms(s.max) << "</td></tr>";
    o << "</table><h2>Latency distributions (log scales)</h2><div class='cols'>";
    for (const char* step : {"total", "fetch", "predict", "offer", "persist"}) {
        const auto it = r.samples.find(step);
        o << "<div><h3>" << step << "</h3>"
          << distribution_chart((std::string("dist-") + step).c_str(), it == r.samples.end() ? std::vector<std::int64_t>{} : it->second)
          << "</div>";
    }
    o << "</div><h2>Status counts</h2><table id='statuses'><tr><th>status</th><th>requests</th></tr>";
    for (const auto& [s, n] : r.statuses) o << "<tr><td>" << s << "</td><td>" << n << "</td></tr>";
    if (r.replayed) o << "<tr><td>200 replayed</td><td>" << r.replayed << "</td></tr>";
    if (r.shed) o << "<tr><td>503 shed</td><td>" << r.shed << "</td></tr>";
    o << "</table><h2>Slowest requests</h2><table id='slowest'><tr><th>answered at</th><th>request_id</th><th>memberId</th>"
         "<th>status</th><th>total ms</th><th>dominant step</th></tr>";
    for (const auto& s : r.slowest)
        o << "<tr><td>" << html_escape(s.ts) << "</td><td class='l'>" << html_escape(s.request_id) << "</td><td class='l'>"
          << html_escape(s.member_id) << "</td><td>" << s.status << "</td><td>" << ms(s.total_us) << "</td><td class='l'>"
          << s.dominant_step << " (" << ms(s.dominant_us) << " ms)</td></tr>";
    o << "</table>";
    if (!r.upstream_errors.empty()) {
        o << "<h2>Upstream errors</h2><table id='upstream-errors'><tr><th>upstream, path, outcome</th><th>count</th></tr>";
        for (const auto& [what, n] : r.upstream_errors) o << "<tr><td>" << html_escape(what) << "</td><td>" << n << "</td></tr>";
        o << "</table>";
    }
    o << "<h2>Event log</h2>";
    if (r.markers_total == 0) {
        o << "<p>No upstream errors, breaker transitions, outbox, overload, store or dropped-log events.</p>";
    } else {
        if (r.markers_total > r.markers.size()) o << "<p>" << r.markers_total << " events; the first " << r.markers.size() << " are listed.</p>";
        o << "<table id='event-log'><tr><th>time</th><th>kind</th><th>event</th><th>detail</th></tr>";
        for (const auto& m : r.markers)
            o << "<tr><td>" << html_escape(m.ts) << "</td><td class='l'>" << to_string(m.kind) << "</td><td class='l'>"
              << html_escape(m.event) << "</td><td class='l'>" << html_escape(m.detail) << "</td></tr>";
        o << "</table>";
    }
    o << "</body></html>\n";
    return o.str();
}

}  // namespace offerd
