#include "offerd/orchestrator/admission.hpp"

#include <algorithm>

namespace offerd {

adaptive_limit::adaptive_limit(const admission_config& cfg, std::size_t workers, clock::time_point now)
    : cfg_(cfg),
      workers_(std::max<std::size_t>(workers, 1)),
      limit_(cfg.adaptive ? std::clamp(cfg.start_limit, std::min(cfg.min_limit, cfg.max_in_flight), cfg.max_in_flight) : cfg.max_in_flight),
      min_us_(new std::atomic<std::int64_t>[workers_]),
      interval_end_((now + cfg.interval).time_since_epoch().count()) {
    for (std::size_t i = 0; i < workers_; ++i) min_us_[i].store(-1, std::memory_order_relaxed);
}

bool adaptive_limit::try_acquire(bool after_shed) noexcept {
    std::size_t limit = limit_.load(std::memory_order_relaxed);
    if (after_shed) limit -= std::min(limit, std::max<std::size_t>(1, limit / 8));
    if (in_flight_.fetch_add(1, std::memory_order_relaxed) < limit) return true;
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    shed_.fetch_add(1, std::memory_order_relaxed);
    last_refusal_.store(clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    if (!refused_.load(std::memory_order_relaxed)) refused_.store(true, std::memory_order_relaxed);
    return false;
}

void adaptive_limit::observe(std::size_t worker, std::chrono::microseconds delay, clock::time_point now) {
    if (!cfg_.adaptive) return;
    // A sample taken after the interval ended belongs to the next one: roll first.
    if (now.time_since_epoch().count() >= interval_end_.load(std::memory_order_relaxed)) {
        std::unique_lock lock(roll_mu_, std::try_to_lock);
        if (lock && now.time_since_epoch().count() >= interval_end_.load(std::memory_order_relaxed)) roll(now);
    }
    std::atomic<std::int64_t>& slot = min_us_[worker % workers_];
    const std::int64_t d = std::max<std::int64_t>(delay.count(), 0);
    std::int64_t cur = slot.load(std::memory_order_relaxed);
    while ((cur < 0 || d < cur) && !slot.compare_exchange_weak(cur, d, std::memory_order_relaxed)) {
    }
}

// Called once per interval, under roll_mu_.
void adaptive_limit::roll(clock::time_point now) {
    // The busiest worker decides: one saturated thread queues every request it serves.
    std::int64_t worst = -1;
    for (std::size_t i = 0; i < workers_; ++i) worst = std::max(worst, min_us_[i].exchange(-1, std::memory_order_relaxed));
    const bool refused = refused_.exchange(false, std::memory_order_relaxed);
    interval_end_.store((now + cfg_.interval).time_since_epoch().count(), std::memory_order_relaxed);
    if (worst < 0) return;  // no sample: nothing learnt
    last_delay_us_.store(worst, std::memory_order_relaxed);
    const std::size_t cur = limit_.load(std::memory_order_relaxed);
    const std::size_t floor = std::min(cfg_.min_limit, cfg_.max_in_flight);
    if (worst > cfg_.target.count()) {
        // Shrink in proportion to how far over the target the standing queue is, by 10% to 50%.
        const double factor = std::clamp(static_cast<double>(cfg_.target.count()) / static_cast<double>(worst), 0.5, 0.9);
        // From what is in use when that is below the limit: a limit far above the load bites only
        // once it is under it.
        const std::size_t base = std::min(cur, std::max<std::size_t>(in_flight_.load(std::memory_order_relaxed), 1));
        const std::size_t next = std::max(floor, static_cast<std::size_t>(static_cast<double>(base) * factor));
        if (next < cur) {
            limit_.store(next, std::memory_order_relaxed);
            decreases_.fetch_add(1, std::memory_order_relaxed);
        }
    } else if (refused && cur < cfg_.max_in_flight) {
        // Queues far below the target: there is room to spare, grow by a quarter; near it, by a
        // sixteenth (at least one).
        const std::size_t step = worst * 2 < cfg_.target.count() ? cur / 4 : cur / 16;
        limit_.store(std::min(cfg_.max_in_flight, cur + std::max<std::size_t>(1, step)), std::memory_order_relaxed);
        increases_.fetch_add(1, std::memory_order_relaxed);
    }
}

}  // namespace offerd
