// Per-client token buckets shared by every worker thread, on an injected clock.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "offerd/security/security_config.hpp"

namespace offerd {

struct rate_decision {
    bool allowed = true;
    std::uint32_t limit = 0;             // the burst (RateLimit-Policy q)
    std::uint32_t remaining = 0;         // requests allowed right now after this one (RateLimit r)
    std::chrono::seconds window{0};      // time to refill a whole burst (RateLimit-Policy w)
    std::chrono::seconds reset{0};       // until the bucket is full again (RateLimit t)
    std::chrono::seconds retry_after{0}; // when denied: until one request is allowed (Retry-After, >= 1)
};

// Each client's bucket is a GCRA (the token bucket's exact integer form): its state is the
// time at which it would be full, so a refill needs no timer and the counts are exact in
// nanoseconds. Buckets live in 16 shards, each behind its own mutex, so a client's bucket is
// updated by one thread at a time whichever worker serves it: N workers never allow N times
// the limit. Beyond max_clients buckets, the full ones (equal to new ones) are dropped.
class rate_limiter {
public:
    using clock = std::chrono::steady_clock;
    explicit rate_limiter(std::size_t max_clients = 100'000) : max_per_shard_(max_clients / shard_count + 1) {}

    // Takes one request from `client`'s bucket (a new bucket starts full) at time `now`.
    // An unlimited rate always allows. Thread-safe.
    rate_decision acquire(std::string_view client, const rate_limit& limit, clock::time_point now);

private:
    static constexpr std::size_t shard_count = 16;
    struct shard {
        std::mutex mutex;  // guards full_at
        std::unordered_map<std::string, clock::time_point> full_at;
    };
    std::size_t max_per_shard_;
    std::array<shard, shard_count> shards_;
};

}  // namespace offerd
