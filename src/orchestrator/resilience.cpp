// Retry budget and circuit breaker.
#include "offerd/orchestrator/resilience.hpp"

#include <algorithm>

#include "offerd/obs/log.hpp"

namespace offerd {

void retry_budget::on_request() noexcept { tokens_ = std::min(reserve + 1000 * ratio_, tokens_ + ratio_); }

bool retry_budget::try_spend() noexcept {
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
}

namespace {
std::int64_t ticks(circuit_breaker::clock::time_point t) { return t.time_since_epoch().count(); }
}  // namespace

const char* circuit_breaker::state_name() const noexcept {
    switch (state_.load()) {
    case open: return "open";
    case half_open: return "half_open";
    default: return "closed";
    }
}

void circuit_breaker::transition(int from, int to) {
    static constexpr const char* names[] = {"closed", "open", "half_open"};
    log_event(log_, to == closed ? log_level::info : log_level::warn, "circuit_state")
        .with("service", service_)
        .with("from", names[from])
        .with("to", names[to]);
}

std::optional<std::chrono::milliseconds> circuit_breaker::admit(clock::time_point now) {
    if (cfg_.failure_threshold <= 0) return std::nullopt;
    int s = state_.load(std::memory_order_acquire);
    if (s == closed) return std::nullopt;
    const std::int64_t until = until_.load(std::memory_order_acquire);
    if (ticks(now) < until) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(clock::duration(until - ticks(now)));
        return std::max(left, std::chrono::milliseconds(1));
    }
    // The open period (or a stalled probe) is over: exactly one caller becomes the probe.
    std::int64_t expected = until;
    if (until_.compare_exchange_strong(expected, ticks(now + cfg_.open_for))) {
        if (s == open && state_.compare_exchange_strong(s, half_open)) transition(open, half_open);
        return std::nullopt;
    }
    return cfg_.open_for;
}

void circuit_breaker::on_success() {
    failures_.store(0, std::memory_order_relaxed);
    int s = state_.load(std::memory_order_acquire);
    if (s != closed && state_.compare_exchange_strong(s, closed)) transition(s, closed);
}

void circuit_breaker::on_failure(clock::time_point now) {
    if (cfg_.failure_threshold <= 0) return;
    int s = state_.load(std::memory_order_acquire);
    if (s == half_open) {
        until_.store(ticks(now + cfg_.open_for), std::memory_order_release);
        if (state_.compare_exchange_strong(s, open)) transition(half_open, open);
        return;
    }
    if (s == closed && failures_.fetch_add(1, std::memory_order_relaxed) + 1 >= cfg_.failure_threshold) {
        until_.store(ticks(now + cfg_.open_for), std::memory_order_release);
        if (state_.compare_exchange_strong(s, open)) transition(closed, open);
    }
}

}  // namespace offerd
