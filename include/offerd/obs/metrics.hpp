// Pipeline metrics: per-step latency windows for the periodic throughput event.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "offerd/domain/latency_histogram.hpp"

namespace offerd {

enum class step : std::uint8_t { fetch, features, predict_ats, predict_resp, predict, offer, persist, total };
inline constexpr std::size_t step_count = 8;
std::string_view to_string(step s) noexcept;

// Microseconds per step; -1 for a step that did not run.
struct step_latencies {
    std::array<std::int64_t, step_count> us{-1, -1, -1, -1, -1, -1, -1, -1};
    std::int64_t& operator[](step s) noexcept { return us[static_cast<std::size_t>(s)]; }
    std::int64_t operator[](step s) const noexcept { return us[static_cast<std::size_t>(s)]; }
};

struct pipeline_window {
    std::uint64_t count = 0, ok = 0, errors = 0;
    std::array<latency_histogram, step_count> steps;
    void merge(const pipeline_window& o);
};

// One window per worker, each behind its own mutex: the worker's lock is uncontended except
// for the instant the reporter swaps the window out, so recording costs a few nanoseconds.
class pipeline_metrics {
public:
    explicit pipeline_metrics(std::size_t workers);
    void record(std::size_t worker, const step_latencies& lat, bool ok);
    // Merges all workers' windows and starts new ones.
    pipeline_window take();

private:
    struct slot {
        std::mutex mutex;
        pipeline_window window;
    };
    std::vector<std::unique_ptr<slot>> slots_;
};

}  // namespace offerd
