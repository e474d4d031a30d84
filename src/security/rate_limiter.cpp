// GCRA token buckets.
#include "offerd/security/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace offerd {

namespace {
std::chrono::seconds ceil_seconds(std::chrono::nanoseconds d) {
    return std::chrono::ceil<std::chrono::seconds>(std::max(d, std::chrono::nanoseconds::zero()));
}
}  // namespace

rate_decision rate_limiter::acquire(std::string_view client, const rate_limit& limit, clock::time_point now) {
    if (limit.unlimited()) return {};
    // validate() and parse_rate() keep rates in [0.001, 1e6]/s and bursts <= 1e6: interval x
    // burst stays below 1e18 ns.
    const std::uint32_t burst = std::min<std::uint32_t>(effective_burst(limit), 1'000'000);
    // One request's worth of time, and the most a bucket may be ahead of `now` and still admit.
    const auto interval = std::chrono::nanoseconds(std::max<std::int64_t>(1, std::llround(1e9 / limit.per_second)));
    const auto tolerance = interval * static_cast<std::int64_t>(burst - 1);
    rate_decision d;
    d.limit = burst;
    d.window = ceil_seconds(interval * static_cast<std::int64_t>(burst));

    shard& s = shards_[std::hash<std::string_view>{}(client) % shard_count];
    const std::lock_guard lock(s.mutex);
    auto it = s.full_at.find(std::string(client));
    if (it == s.full_at.end()) {
        if (s.full_at.size() >= max_per_shard_) std::erase_if(s.full_at, [&](const auto& e) { return e.second <= now; });
        it = s.full_at.emplace(std::string(client), now).first;
    }
    const clock::time_point from = std::max(it->second, now);
    const auto ahead = from - now;
    if (ahead > tolerance) {
        d.allowed = false;
        d.reset = ceil_seconds(ahead);
        d.retry_after = std::max(std::chrono::seconds(1), ceil_seconds(ahead - tolerance));
        return d;
    }
    it->second = from + interval;
    const auto after = it->second - now;
    d.remaining = after > tolerance ? 0 : static_cast<std::uint32_t>((tolerance - after) / interval) + 1;
    d.reset = ceil_seconds(after);
    return d;
}

}  // namespace offerd
