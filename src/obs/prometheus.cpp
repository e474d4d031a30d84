// Prometheus exposition helpers.
#include "offerd/obs/prometheus.hpp"

#include "offerd/codec/json_writer.hpp"

namespace offerd {

void prom_histogram::observe_us(std::int64_t us) noexcept {
    if (us < 0) us = 0;
    const double s = static_cast<double>(us) / 1e6;
    std::size_t i = 0;
    while (i < bounds_s.size() && s > bounds_s[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
}

void prom_histogram::write(std::string& out, std::string_view name, std::string_view labels) const {
    const std::string sep = labels.empty() ? "" : ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_s.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        std::string le = "le=\"";
        if (i < bounds_s.size()) append_json_number(le, bounds_s[i]);
        else le += "+Inf";
        le += '"';
        write_sample(out, std::string(name) + "_bucket", std::string(labels) + sep + le, static_cast<double>(cumulative));
    }
    write_sample(out, std::string(name) + "_sum", labels, static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6);
    write_sample(out, std::string(name) + "_count", labels, static_cast<double>(cumulative));
}

void write_metric_header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void write_sample(std::string& out, std::string_view name, std::string_view labels, double value) {
    out.append(name);
    if (!labels.empty()) out.append("{").append(labels).append("}");
    out += ' ';
    append_json_number(out, value);
    out += '\n';
}

std::string label_value(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

void metrics_registry::add(writer w) { writers_.push_back(std::move(w)); }

std::string metrics_registry::render() const {
    std::string out;
    out.reserve(16 * 1024);
    for (const auto& w : writers_) w(out);
    return out;
}

}  // namespace offerd
