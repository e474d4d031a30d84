// Retry budget and circuit breaker.
#include "offerd/orchestrator/resilience.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "offerd/obs/log.hpp"

namespace offerd {

void retry_budget::on_request() noexcept { tokens_ = std::min(reserve + 1000 * ratio_, tokens_ + ratio_); }

bool retry_budget::try_spend() noexcept {
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
}

namespace {
using transition = std::optional<std::pair<circuit_breaker::state, circuit_breaker::state>>;

std::chrono::milliseconds at_least_1ms(circuit_breaker::clock::duration d) {
    return std::max(std::chrono::ceil<std::chrono::milliseconds>(d), std::chrono::milliseconds(1));
}
}  // namespace

circuit_breaker::circuit_breaker(std::string service, const breaker_config& cfg, logger& log)
    : service_(std::move(service)), cfg_(cfg), log_(log),
      slice_(std::max<clock::duration>(std::chrono::duration_cast<clock::duration>(cfg.window) / bucket_count,
                                       clock::duration(1))) {
    cfg_.half_open_probes = std::max(cfg_.half_open_probes, 1);
}

const char* circuit_breaker::name(state s) noexcept {
    switch (s) {
    case open: return "open";
    case half_open: return "half_open";
    default: return "closed";
    }
}

void circuit_breaker::announce(state from, state to) {
    log_event(log_, to == closed ? log_level::info : log_level::warn, "circuit_state")
        .with("upstream", service_)
        .with("from", name(from))
        .with("to", name(to));
}

void circuit_breaker::clear_window() noexcept { window_.fill(bucket{}); }

void circuit_breaker::move_to(state to, clock::time_point now) noexcept {
    const std::uint64_t phase = phase_.load(std::memory_order_relaxed);
    const auto from = static_cast<state>(phase & 3);
    phase_.store((((phase >> 2) + 1) << 2) | static_cast<std::uint64_t>(to), std::memory_order_release);
    transitions_[static_cast<std::size_t>(from * 3 + to)].fetch_add(1, std::memory_order_relaxed);
    clear_window();  // a new state judges from fresh observations
    probes_in_flight_ = 0;
    probe_successes_ = 0;
    if (to == open) open_until_ = now + cfg_.open_for;
    if (to == half_open) probes_since_ = now;
}

bool circuit_breaker::window_trips(clock::time_point now) noexcept {
    const std::int64_t current = now.time_since_epoch() / slice_;
    int calls = 0, rejected = 0, unhealthy = 0;
    for (const auto& b : window_) {
        if (b.slot < 0 || b.slot <= current - static_cast<std::int64_t>(bucket_count) || b.slot > current) continue;
        calls += b.calls;
        rejected += b.rejected;
        unhealthy += b.unhealthy;
    }
    // Answers that reject one request do not make up the volume, and weigh half: a burst of
    // poison requests, alone or among healthy traffic, cannot open the circuit.
    if (calls - rejected < cfg_.min_calls) return false;
    const double failed = unhealthy + 0.5 * rejected;
    return failed >= cfg_.failure_rate * calls;
}

circuit_breaker::admission circuit_breaker::admit(clock::time_point now) {
    std::uint64_t phase = phase_.load(std::memory_order_acquire);
    if ((phase & 3) == closed || cfg_.min_calls <= 0) return {true, {}, phase >> 2};
    transition moved;
    admission a;
    {
        std::lock_guard lock(mutex_);
        if (current() == open) {
            if (now < open_until_) return {false, at_least_1ms(open_until_ - now), 0};
            move_to(half_open, now);
            moved.emplace(open, half_open);
        }
        phase = phase_.load(std::memory_order_relaxed);
        if ((phase & 3) == closed) return {true, {}, phase >> 2};
        // Half-open. Probe slots whose calls never reported within open_for are handed out again.
        if (probes_in_flight_ >= cfg_.half_open_probes && now - probes_since_ >= cfg_.open_for) probes_in_flight_ = 0;
        if (probes_in_flight_ < cfg_.half_open_probes) {
            if (probes_in_flight_++ == 0) probes_since_ = now;
            a = {true, {}, phase >> 2};
        } else {
            a = {false, at_least_1ms(probes_since_ + cfg_.open_for - now), 0};
        }
    }
    if (moved) announce(moved->first, moved->second);
    return a;
}

void circuit_breaker::record(const admission& a, call_outcome o, clock::time_point now) {
    if (!a.admitted || cfg_.min_calls <= 0) return;
    transition moved;
    {
        std::lock_guard lock(mutex_);
        const std::uint64_t phase = phase_.load(std::memory_order_relaxed);
        if ((phase >> 2) != a.epoch) return;  // admitted before the last transition: says nothing now
        if ((phase & 3) == closed) {
            if (o == call_outcome::abandoned) return;
            const std::int64_t slot = now.time_since_epoch() / slice_;
            auto& b = window_[static_cast<std::size_t>(slot % static_cast<std::int64_t>(bucket_count))];
            if (b.slot != slot) b = bucket{slot};
            ++b.calls;
            b.rejected += o == call_outcome::request_rejected ? 1 : 0;
            b.unhealthy += o == call_outcome::unhealthy ? 1 : 0;
            if (o != call_outcome::success && window_trips(now)) {
                move_to(open, now);
                moved.emplace(closed, open);
            }
        } else if ((phase & 3) == half_open) {  // a probe
            probes_in_flight_ = std::max(probes_in_flight_ - 1, 0);
            if (o == call_outcome::unhealthy) {
                move_to(open, now);
                moved.emplace(half_open, open);
            } else if (o != call_outcome::abandoned && ++probe_successes_ >= cfg_.half_open_probes) {
                // A request_rejected answer counts: the upstream is up and answering.
                move_to(closed, now);
                moved.emplace(half_open, closed);
            }
        }
    }
    if (moved) announce(moved->first, moved->second);
}

}  // namespace offerd
