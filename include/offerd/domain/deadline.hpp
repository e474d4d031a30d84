// Request budgets: each step's timeout is min(its own limit, time left); none left means fail fast.
#pragma once

#include <chrono>

namespace offerd {

class deadline {
public:
    using clock = std::chrono::steady_clock;

    deadline() = default;  // never expires
    explicit deadline(clock::time_point at) : at_(at) {}
    static deadline after(clock::duration d, clock::time_point now = clock::now()) { return deadline(now + d); }

    clock::time_point at() const noexcept { return at_; }
    clock::duration remaining(clock::time_point now = clock::now()) const noexcept;
    bool expired(clock::time_point now = clock::now()) const noexcept { return remaining(now) <= clock::duration::zero(); }
    // min(per_call, remaining), never negative.
    clock::duration budget(clock::duration per_call, clock::time_point now = clock::now()) const noexcept;

private:
    clock::time_point at_ = clock::time_point::max();
};

}  // namespace offerd
