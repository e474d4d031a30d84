// Pipeline metrics windows.
#include "offerd/obs/metrics.hpp"

namespace offerd {

std::string_view to_string(step s) noexcept {
    static constexpr std::array<std::string_view, step_count> names{
        "fetch", "features", "predict_ats", "predict_resp", "predict", "offer", "persist", "total"};
    return names[static_cast<std::size_t>(s)];
}

void pipeline_window::merge(const pipeline_window& o) {
    count += o.count;
    ok += o.ok;
    errors += o.errors;
    for (std::size_t i = 0; i < step_count; ++i) steps[i].merge(o.steps[i]);
}

pipeline_metrics::pipeline_metrics(std::size_t workers) {
    for (std::size_t i = 0; i < workers; ++i) slots_.push_back(std::make_unique<slot>());
}

void pipeline_metrics::record(std::size_t worker, const step_latencies& lat, bool ok) {
    slot& s = *slots_[worker % slots_.size()];
    std::lock_guard lock(s.mutex);
    ++s.window.count;
    ++(ok ? s.window.ok : s.window.errors);
    for (std::size_t i = 0; i < step_count; ++i)
        if (lat.us[i] >= 0) s.window.steps[i].record(lat.us[i]);
}

pipeline_window pipeline_metrics::take() {
    pipeline_window total;
    for (auto& s : slots_) {
        pipeline_window w;
        {
            std::lock_guard lock(s->mutex);
            std::swap(w, s->window);
        }
        total.merge(w);
    }
    return total;
}

}  // namespace offerd
