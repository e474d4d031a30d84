// Log report: aggregation over offer events, and text/HTML (inline SVG) rendering.
#include "offerd/report/report.hpp"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "offerd/codec/json_writer.hpp"

namespace offerd {

namespace json = boost::json;

namespace {

constexpr std::array<const char*, 8> step_names{"fetch", "features", "predict_ats", "predict_resp",
                                                "predict", "offer", "persist", "total"};

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

// A horizontal bar chart: one labelled bar per item.
std::string bar_chart(const std::vector<std::pair<std::string, double>>& items, const std::string& unit,
                      const char* value_format = "%.0f") {
    const double peak = items.empty() ? 1 : std::max(1e-9, std::max_element(items.begin(), items.end(), [](auto& a, auto& b) {
                                                               return a.second < b.second;
                                                           })->second);
    const int row = 26, label_w = 140, bar_w = 420;
    std::ostringstream o;
    o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << label_w + bar_w + 120 << "' height='" << row * items.size() + 10 << "'>";
    for (std::size_t i = 0; i < items.size(); ++i) {
        const int y = static_cast<int>(i) * row + 5;
        const int w = std::max(1, static_cast<int>(bar_w * items[i].second / peak));
        o << "<text x='0' y='" << y + 16 << "' font-size='13'>" << html_escape(items[i].first) << "</text>"
          << "<rect x='" << label_w << "' y='" << y << "' width='" << w << "' height='" << row - 8 << "' fill='#3b82f6'/>"
          << "<text x='" << label_w + w + 6 << "' y='" << y + 16 << "' font-size='12'>" << fmt(value_format, items[i].second) << ' '
          << unit << "</text>";
    }
    o << "</svg>";
    return o.str();
}

// Offer events per second as columns.
std::string timeline_chart(const std::vector<std::pair<std::string, std::uint64_t>>& per_second) {
    const int w = 680, h = 180;
    std::uint64_t peak = 1;
    for (const auto& [t, n] : per_second) peak = std::max(peak, n);
    std::ostringstream o;
    o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='" << h + 40 << "'>"
      << "<line x1='40' y1='" << h << "' x2='" << w << "' y2='" << h << "' stroke='#999'/>"
      << "<text x='0' y='14' font-size='12'>" << peak << "/s</text>";
    const double col = per_second.empty() ? 0 : static_cast<double>(w - 45) / static_cast<double>(per_second.size());
    for (std::size_t i = 0; i < per_second.size(); ++i) {
        const double bh = static_cast<double>(h - 10) * static_cast<double>(per_second[i].second) / static_cast<double>(peak);
        o << "<rect x='" << fmt("%.1f", 42 + col * static_cast<double>(i)) << "' y='" << fmt("%.1f", h - bh) << "' width='"
          << fmt("%.1f", std::max(1.0, col - 1)) << "' height='" << fmt("%.1f", bh) << "' fill='#10b981'/>";
    }
    if (!per_second.empty())
        o << "<text x='40' y='" << h + 16 << "' font-size='11'>" << html_escape(per_second.front().first) << "</text>"
          << "<text x='" << w - 150 << "' y='" << h + 16 << "' font-size='11'>" << html_escape(per_second.back().first) << "</text>";
    o << "</svg>";
    return o.str();
}

// Latency distribution of one step: counts in log2 buckets of microseconds.
std::string distribution_chart(const std::vector<std::int64_t>& sorted) {
    std::vector<std::pair<std::string, double>> buckets;
    if (sorted.empty()) return bar_chart(buckets, "requests");
    std::int64_t upper = 1;
    std::size_t i = 0;
    while (i < sorted.size()) {
        std::size_t n = 0;
        while (i < sorted.size() && sorted[i] <= upper) ++n, ++i;
        if (n > 0 || !buckets.empty()) buckets.emplace_back("<= " + ms(upper) + " ms", static_cast<double>(n));
        upper *= 2;
    }
    return bar_chart(buckets, "requests");
}

}  // namespace

log_report build_report(std::istream& in) {
    log_report r;
    std::map<std::string, std::uint64_t> per_second;
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
        const json::value* event = o->if_contains("event");
        if (!event || !event->is_string() || event->get_string() != "offer") continue;
        ++r.offers;
        if (const auto* s = o->if_contains("status"); s && s->is_int64()) ++r.statuses[static_cast<unsigned>(s->get_int64())];
        if (const auto* offer = o->if_contains("offer"); offer && offer->is_string()) ++r.offer_mix[std::string(offer->get_string())];
        if (const auto* ts = o->if_contains("ts"); ts && ts->is_string() && ts->get_string().size() >= 19)
            ++per_second[std::string(ts->get_string().subview(0, 19))];
        const auto* lat = o->if_contains("latency_us");
        if (!lat || !lat->is_object()) continue;
        slow_request sr;
        for (const char* step : step_names) {
            const auto* x = lat->get_object().if_contains(step);
            if (!x || !x->is_int64()) continue;
            const std::int64_t us = x->get_int64();
            r.samples[step].push_back(us);
            if (std::string_view(step) == "total") {
                sr.total_us = us;
            } else if (std::string_view(step) != "predict_ats" && std::string_view(step) != "predict_resp" && us > sr.dominant_us) {
                sr.dominant_us = us;
                sr.dominant_step = step;
            }
        }
        if (const auto* id = o->if_contains("request_id"); id && id->is_string()) sr.request_id = std::string(id->get_string());
        if (const auto* m = o->if_contains("memberId"); m && m->is_string()) sr.member_id = std::string(m->get_string());
        r.slowest.push_back(std::move(sr));
        std::sort(r.slowest.begin(), r.slowest.end(), [](const auto& a, const auto& b) { return a.total_us > b.total_us; });
        if (r.slowest.size() > 10) r.slowest.pop_back();
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
    r.per_second.assign(per_second.begin(), per_second.end());
    return r;
}

std::string render_text(const log_report& r) {
    std::ostringstream o;
    o << "offer requests: " << r.offers << " (log lines: " << r.lines << ", unreadable: " << r.unreadable_lines << ")\n";
    o << "\nstatus counts:\n";
    for (const auto& [s, n] : r.statuses) o << "  " << s << "  " << n << '\n';
    o << "\noffer mix:\n";
    for (const auto& [offer, n] : r.offer_mix)
        o << "  " << offer << "  " << n << "  (" << fmt("%.1f", r.offers ? 100.0 * static_cast<double>(n) / static_cast<double>(r.offers) : 0) << "%)\n";
    o << "\nlatency per step (ms):\n";
    char line[160];
    std::snprintf(line, sizeof line, "  %-13s %8s %9s %9s %9s %9s\n", "step", "count", "p50", "p90", "p99", "max");
    o << line;
    for (const auto& [name, s] : r.steps) {
        std::snprintf(line, sizeof line, "  %-13s %8llu %9s %9s %9s %9s\n", name.c_str(), static_cast<unsigned long long>(s.count),
                      ms(s.p50).c_str(), ms(s.p90).c_str(), ms(s.p99).c_str(), ms(s.max).c_str());
        o << line;
    }
    o << "\nthroughput (offer events per second):\n";
    for (const auto& [t, n] : r.per_second) o << "  " << t << "Z  " << n << '\n';
    o << "\nslowest requests:\n";
    for (const auto& s : r.slowest)
        o << "  " << s.request_id << "  " << s.member_id << "  total " << ms(s.total_us) << " ms  dominant " << s.dominant_step << " ("
          << ms(s.dominant_us) << " ms)\n";
    return o.str();
}

std::string render_html(const log_report& r) {
    std::ostringstream o;
    o << "<!doctype html><html><head><meta charset='utf-8'><title>offerd report</title><style>"
         "body{font-family:sans-serif;margin:24px;color:#111}table{border-collapse:collapse;margin:8px 0}"
         "td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}th{background:#f3f4f6}"
         "td:first-child,th:first-child{text-align:left}h2{margin-top:28px}"
         "</style></head><body><h1>offerd report</h1>";
    o << "<p>" << r.offers << " offer requests in " << r.lines << " log lines (" << r.unreadable_lines << " unreadable).</p>";
    o << "<h2>Throughput</h2>" << timeline_chart(r.per_second);
    std::vector<std::pair<std::string, double>> breakdown;
    for (const auto& [name, s] : r.steps)
        if (name != "total" && name != "predict_ats" && name != "predict_resp") breakdown.emplace_back(name, s.mean / 1000.0);
    o << "<h2>Where the time goes (mean per step)</h2>" << bar_chart(breakdown, "ms", "%.3f");
    std::vector<std::pair<std::string, double>> mix;
    for (const auto& [offer, n] : r.offer_mix) mix.emplace_back(offer, static_cast<double>(n));
    o << "<h2>Offer mix</h2>" << bar_chart(mix, "offers");
    o << "<h2>Latency per step</h2><table><tr><th>step</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>";
    for (const auto& [name, s] : r.steps)
        o << "<tr><td>" << name << "</td><td>" << s.count << "</td><td>" << ms(s.p50) << "</td><td>" << ms(s.p90) << "</td><td>"
          << ms(s.p99) << "</td><td>" << ms(s.max) << "</td></tr>";
    o << "</table>";
    for (const char* step : {"total", "fetch", "predict", "offer", "persist"}) {
        const auto it = r.samples.find(step);
        o << "<h2>Latency distribution: " << step << "</h2>"
          << distribution_chart(it == r.samples.end() ? std::vector<std::int64_t>{} : it->second);
    }
    o << "<h2>Status counts</h2><table><tr><th>status</th><th>requests</th></tr>";
    for (const auto& [s, n] : r.statuses) o << "<tr><td>" << s << "</td><td>" << n << "</td></tr>";
    o << "</table><h2>Slowest requests</h2><table><tr><th>request_id</th><th>memberId</th><th>total ms</th><th>dominant step</th></tr>";
    for (const auto& s : r.slowest)
        o << "<tr><td>" << html_escape(s.request_id) << "</td><td>" << html_escape(s.member_id) << "</td><td>" << ms(s.total_us)
          << "</td><td>" << s.dominant_step << " (" << ms(s.dominant_us) << " ms)</td></tr>";
    o << "</table></body></html>\n";
    return o.str();
}

}  // namespace offerd
