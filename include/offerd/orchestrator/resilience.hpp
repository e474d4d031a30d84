// Retry policy with a retry budget, and a circuit breaker per upstream.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace offerd {

class logger;

struct retry_config {
    int max_attempts = 3;                         // 1 disables retries
    std::chrono::milliseconds base_backoff{5};    // full jitter: sleep U(0, min(max, base * 2^(n-1)))
    std::chrono::milliseconds max_backoff{100};
    double budget_ratio = 0.1;                    // retries may add at most ~10% extra calls
};

struct breaker_config {
    int failure_threshold = 5;                    // consecutive failures that open the circuit (0: never)
    std::chrono::milliseconds open_for{2'000};    // fail fast this long, then let one probe through
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

// Closed -> (threshold consecutive failures) -> open -> (open_for elapsed) -> half-open: one probe;
// its success closes the circuit, its failure opens it again. Shared by all workers: lock-free
// on the request path (atomics); state changes are logged as `circuit_state` events.
class circuit_breaker {
public:
    using clock = std::chrono::steady_clock;
    circuit_breaker(std::string service, const breaker_config& cfg, logger& log)
        : service_(std::move(service)), cfg_(cfg), log_(log) {}

    // nullopt: go ahead. Otherwise the call must fail fast; the value is when to retry.
    std::optional<std::chrono::milliseconds> admit(clock::time_point now = clock::now());
    void on_success();
    void on_failure(clock::time_point now = clock::now());
    const char* state_name() const noexcept;
    int state_code() const noexcept { return state_.load(std::memory_order_relaxed); }  // 0 closed, 1 open, 2 half-open

private:
    enum state : int { closed = 0, open = 1, half_open = 2 };
    void transition(int from, int to);

    std::string service_;
    breaker_config cfg_;
    logger& log_;
    std::atomic<int> state_{closed};
    std::atomic<int> failures_{0};
    std::atomic<std::int64_t> until_{0};  // open: end of the open period; half-open: probe deadline
};

}  // namespace offerd
