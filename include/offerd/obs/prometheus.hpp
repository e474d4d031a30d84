// Prometheus text exposition: lock-free counters and histograms, and the registry that renders
// every listener's and the orchestrator's metrics for GET /metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace offerd {

// Cumulative latency histogram in seconds with buckets from 50 µs to 10 s. observe() is a few
// relaxed atomic increments, safe from any thread.
class prom_histogram {
public:
    static constexpr std::array<double, 17> bounds_s{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                     0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,    5, 10};
    void observe_us(std::int64_t us) noexcept;
    // Appends the _bucket/_sum/_count lines; labels is e.g. `step="fetch"` (may be empty).
    void write(std::string& out, std::string_view name, std::string_view labels) const;
    std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }

private:
    std::array<std::atomic<std::uint64_t>, bounds_s.size() + 1> buckets_{};  // non-cumulative; last is +Inf
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_us_{0};
};

// Appends "# HELP" and "# TYPE" lines.
void write_metric_header(std::string& out, std::string_view name, std::string_view type, std::string_view help);
// Appends `name{labels} value`.
void write_sample(std::string& out, std::string_view name, std::string_view labels, double value);
// Escapes a label value (backslash, quote, newline).
std::string label_value(std::string_view v);

// Collects metric writers (one per component) and renders them in one exposition.
// Writers are registered at start-up, before any scrape; render() is thread-safe.
class metrics_registry {
public:
    using writer = std::function<void(std::string&)>;
    void add(writer w);
    std::string render() const;

private:
    std::vector<writer> writers_;
};

}  // namespace offerd
