// Retry policy with a retry budget, and a circuit breaker per upstream.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace offerd {

class logger;

struct retry_config {
    int max_attempts = 3;                         // 1 disables retries
    std::chrono::milliseconds base_backoff{5};    // full jitter: sleep U(0, min(max, base * 2^(n-1)))
    std::chrono::milliseconds max_backoff{100};
    double budget_ratio = 0.1;                    // retries may add at most ~10% extra calls
};

// The breaker judges the upstream over a sliding window, never one request: it opens when the
// window holds at least min_calls calls (request_rejected ones not counted towards this volume)
// and at least failure_rate of them failed (a request_rejected call weighs half a failure).
struct breaker_config {
    std::chrono::milliseconds window{10'000};     // the sliding window the rate is judged over
    int min_calls = 20;                           // minimum volume in the window before it may open (0: never open)
    double failure_rate = 0.5;                    // share of failed calls in the window that opens the circuit
    std::chrono::milliseconds open_for{2'000};    // fail fast this long, then let probes through
    int half_open_probes = 2;                     // probes let through at once; all must succeed to close
};

// Token bucket: each first attempt deposits budget_ratio tokens (capped), each retry spends one.
// Starts with a small reserve so a quiet service can still retry. Per worker: not thread-safe.
class retry_budget {
public:
    explicit retry_budget(double ratio) : ratio_(ratio) {}
    void on_request() noexcept;
    bool try_spend() noexcept;

private:
    static constexpr double reserve = 10.0;
    double ratio_;
    double tokens_ = reserve;
};

// How a call admitted by the breaker went, as its caller classifies it.
enum class call_outcome : std::uint8_t {
    success,           // answered as expected, or a 4xx that refuses this request only
    request_rejected,  // an answer that rejects one request (500, another non-retryable 5xx, an unparseable answer)
    unhealthy,         // refused, reset, a timeout not caused by our own deadline, 429/502/503/504
    abandoned,         // no verdict: our own deadline ran out (only frees a probe slot)
};

// Closed -> (rate over the window, see breaker_config) -> open -> (open_for elapsed) -> half-open:
// at most half_open_probes calls go through; when that many have succeeded the circuit closes, an
// unhealthy probe opens it again. Open -> closed without a probe cannot happen. Outcomes of calls
// admitted before the last transition are ignored. Every transition is a `circuit_state` log event
// and counted per from/to. Shared by all workers: admit() in the closed state is one atomic load;
// everything else is under a short mutex (window update, at most 10 buckets summed).
class circuit_breaker {
public:
    using clock = std::chrono::steady_clock;
    enum state : int { closed = 0, open = 1, half_open = 2 };

    // What admit() answered; an admitted call hands it back to record() exactly once.
    struct admission {
        bool admitted = false;
        std::chrono::milliseconds retry_after{0};  // when refused: time until probes may go (>= 1 ms)
        std::uint64_t epoch = 0;                   // the breaker's transition count when admitted
        explicit operator bool() const noexcept { return admitted; }
    };

    circuit_breaker(std::string service, const breaker_config& cfg, logger& log);

    admission admit(clock::time_point now = clock::now());
    void record(const admission& a, call_outcome o, clock::time_point now = clock::now());

    state current() const noexcept { return static_cast<state>(phase_.load(std::memory_order_acquire) & 3); }
    const char* state_name() const noexcept { return name(current()); }
    std::uint64_t transitions(state from, state to) const noexcept {
        return transitions_[static_cast<std::size_t>(from * 3 + to)].load(std::memory_order_relaxed);
    }
    static const char* name(state s) noexcept;

private:
    static constexpr std::size_t bucket_count = 10;
    struct bucket {
        std::int64_t slot = -1;  // window slice index (time / slice); -1: empty
        int calls = 0, rejected = 0, unhealthy = 0;
    };
    void clear_window() noexcept;
    bool window_trips(clock::time_point now) noexcept;
    // Under mutex_: changes the state, bumps the epoch; returns the pair to log after unlocking.
    void move_to(state to, clock::time_point now) noexcept;
    void announce(state from, state to);

    std::string service_;
    breaker_config cfg_;
    logger& log_;
    clock::duration slice_;
    // epoch << 2 | state: one load tells the fast path both. Written under mutex_ only.
    std::atomic<std::uint64_t> phase_{closed};
    std::array<std::atomic<std::uint64_t>, 9> transitions_{};  // [from * 3 + to]
    std::mutex mutex_;  // protects everything below
    std::array<bucket, bucket_count> window_{};
    clock::time_point open_until_{};      // open: end of the open period
    clock::time_point probes_since_{};    // half-open: when the current probe slots were handed out
    int probes_in_flight_ = 0;
    int probe_successes_ = 0;
};

}  // namespace offerd
