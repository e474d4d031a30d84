// The adaptive concurrency limit with injected delays and clock (built into component_tests: it
// lives in offerd_core).
#include <catch2/catch.hpp>

#include "offerd/orchestrator/admission.hpp"

using namespace offerd;
using namespace std::chrono_literals;
using clk = adaptive_limit::clock;

namespace {
admission_config cfg(std::size_t cap = 1000, std::size_t floor = 10) {
    admission_config c;
    c.max_in_flight = cap;
    c.min_limit = floor;
    c.start_limit = cap;
    c.target = 2ms;
    c.interval = 100ms;
    return c;
}

// `n` intervals in which every worker's delays are `delay` (a few samples each), from t.
clk::time_point intervals(adaptive_limit& a, std::size_t workers, clk::time_point t, int n, std::chrono::microseconds delay) {
    for (int i = 0; i < n; ++i) {
        for (int k = 0; k < 4; ++k)
            for (std::size_t w = 0; w < workers; ++w) a.observe(w, delay + std::chrono::microseconds(k * 100), t + k * 20ms);
        t += 100ms;
        a.observe(0, delay, t);  // the sample that rolls the interval
    }
    return t;
}

std::size_t hold(adaptive_limit& a, std::size_t n) {  // acquires up to n slots; how many it got
    std::size_t got = 0;
    while (got < n && a.try_acquire()) ++got;
    return got;
}
}  // namespace

TEST_CASE("admission: the limit starts at the cap and refuses beyond it", "[unit][admission]") {
    const auto t0 = clk::now();
    adaptive_limit a(cfg(5), 1, t0);
    CHECK(a.limit() == 5);
    CHECK(hold(a, 10) == 5);
    CHECK(a.shed() == 1);  // the sixth attempt, then hold() stopped
    a.release();
    CHECK(a.try_acquire());
    CHECK_FALSE(a.try_acquire());
    CHECK(a.in_flight() == 5);
}

TEST_CASE("admission: a standing queue shrinks the limit to what is in use, then below", "[unit][admission]") {
    auto t = clk::now();
    adaptive_limit a(cfg(1000), 2, t);
    REQUIRE(hold(a, 200) == 200);
    t = intervals(a, 2, t, 1, 8ms);  // 4x the target: the largest step, halving
    CHECK(a.limit() == 100);         // from the 200 in use, not from the cap
    CHECK(a.decreases() == 1);
    CHECK(a.last_delay_us() == 8000);
    t = intervals(a, 2, t, 1, 2100us);  // a little over: the smallest step (10%)
    CHECK(a.limit() == 90);
    t = intervals(a, 2, t, 50, 20ms);  // never below the floor
    CHECK(a.limit() == 10);
    CHECK_FALSE(a.try_acquire());  // 200 held, limit 10
}

TEST_CASE("admission: bursts do not count, a standing queue does (the minimum over the interval decides)", "[unit][admission]") {
    auto t = clk::now();
    adaptive_limit a(cfg(1000), 1, t);
    hold(a, 100);
    for (int k = 0; k < 10; ++k) a.observe(0, k == 3 ? 50ms : 100us, t + k * 10ms);  // one 50 ms spike
    t += 100ms;
    a.observe(0, 100us, t);
    CHECK(a.limit() == 1000);
    CHECK(a.decreases() == 0);
}

TEST_CASE("admission: the busiest worker decides", "[unit][admission]") {
    auto t = clk::now();
    adaptive_limit a(cfg(1000), 2, t);
    hold(a, 100);
    for (int k = 0; k < 5; ++k) {
        a.observe(0, 50us, t + k * 20ms);
        a.observe(1, 6ms, t + k * 20ms);  // worker 1 saturated
    }
    t += 100ms;
    a.observe(0, 50us, t);
    CHECK(a.limit() < 100);
    CHECK(a.last_delay_us() == 6000);
}

TEST_CASE("admission: it grows only when it refused work and queues stayed short", "[unit][admission]") {
    auto t = clk::now();
    adaptive_limit a(cfg(1000), 1, t);
    hold(a, 100);
    t = intervals(a, 1, t, 1, 8ms);
    REQUIRE(a.limit() == 50);
    // Short queues but nothing refused (the load is below the limit): no growth.
    t = intervals(a, 1, t, 5, 200us);
    CHECK(a.limit() == 50);
    CHECK(a.increases() == 0);
    // Refused work with queues under the target: grows by a sixteenth (at least one) per interval.
    t = intervals(a, 1, t, 1, 1500us);  // (an interval's minimum includes the sample that rolled the last)
    for (int i = 0; i < 5; ++i) {
        CHECK_FALSE(a.try_acquire());
        t = intervals(a, 1, t, 1, 1500us);
    }
    CHECK(a.increases() == 5);
    CHECK(a.limit() == 50 + 3 + 3 + 3 + 3 + 3);  // 50/16 = 3 each time until 64
    // Queues under half the target: by a quarter.
    t = intervals(a, 1, t, 1, 200us);  // not refused: no growth
    CHECK(a.limit() == 65);
    CHECK_FALSE(a.try_acquire());
    t = intervals(a, 1, t, 1, 200us);
    CHECK(a.limit() == 65 + 16);
    // ... never beyond the cap.
    adaptive_limit capped(cfg(20, 10), 1, t);
    hold(capped, 20);
    CHECK_FALSE(capped.try_acquire());
    intervals(capped, 1, t, 3, 100us);
    CHECK(capped.limit() == 20);
}

TEST_CASE("admission: an interval without samples changes nothing, and disabled it is only the cap", "[unit][admission]") {
    auto t = clk::now();
    adaptive_limit a(cfg(1000), 1, t);
    hold(a, 10);
    a.observe(0, 9ms, t + 500ms);  // the first sample after a quiet spell rolls an empty interval
    CHECK(a.limit() == 1000);
    CHECK(a.decreases() == 0);
    admission_config off = cfg(30);
    off.adaptive = false;
    adaptive_limit b(off, 1, t);
    hold(b, 30);
    intervals(b, 1, t, 10, 50ms);
    CHECK(b.limit() == 30);
    CHECK(b.decreases() == 0);
    CHECK_FALSE(b.try_acquire());
}

TEST_CASE("admission: by default the limit starts at 256 and grows from there while it refuses with short queues", "[unit][admission]") {
    auto t = clk::now();
    adaptive_limit a(admission_config{}, 1, t);
    CHECK(a.limit() == 256);
    CHECK(hold(a, 300) == 256);  // the 257th refused
    t = intervals(a, 1, t, 1, 100us);
    CHECK(a.limit() == 320);
    for (int i = 0; i < 20; ++i) {
        hold(a, 10'000);
        t = intervals(a, 1, t, 1, 100us);
    }
    CHECK(a.limit() == 4096);  // the cap (--max-in-flight) within about two seconds
    admission_config small;
    small.max_in_flight = 100;  // the start within [floor, cap]
    CHECK(adaptive_limit(small, 1, t).limit() == 100);
}

TEST_CASE("admission: while it refuses, a connection answered 503 last time gets a slot only while an eighth of the limit is free", "[unit][admission]") {
    const auto t = clk::now();
    adaptive_limit a(cfg(16), 1, t);
    CHECK(hold(a, 14) == 14);
    CHECK_FALSE(a.try_acquire(true));  // 2 free: an eighth of 16 is kept for the others
    CHECK(a.try_acquire(false));
    CHECK(a.try_acquire(false));
    CHECK_FALSE(a.try_acquire(false));
    CHECK(a.shedding(t + 10ms) == true);
    CHECK_FALSE(a.shedding(clk::now() + 2s));  // the last refusal was more than a second ago
    for (int i = 0; i < 4; ++i) a.release();
    CHECK(a.try_acquire(true));
}

TEST_CASE("admission: congested while shedding or with three quarters of the limit in flight, not below", "[unit][admission]") {
    const auto t = clk::now();
    adaptive_limit a(cfg(16), 1, t);
    CHECK(hold(a, 11) == 11);
    CHECK_FALSE(a.congested(t));  // 11 of 16: a member's burst may queue
    CHECK(a.try_acquire());
    CHECK(a.congested(t));  // 12 of 16, no refusal yet
    a.release();
    a.release();
    CHECK_FALSE(a.congested(t));
    CHECK(hold(a, 10) == 6);  // up to the limit, then one refused
    for (int i = 0; i < 16; ++i) a.release();
    CHECK(a.in_flight() == 0);
    CHECK(a.congested(t + 10ms));               // nothing in flight, but it refused within the second
    CHECK_FALSE(a.congested(clk::now() + 2s));  // and not once that second is over
}

TEST_CASE("admission: by default a lagging machine keeps 128 admitted, and a cap below the floor is the limit", "[unit][admission]") {
    auto t = clk::now();
    admission_config lagging;  // the defaults: a 1 ms target, a floor of 128
    lagging.start_limit = 4096;
    adaptive_limit a(lagging, 2, t);
    REQUIRE(hold(a, 300) == 300);
    t = intervals(a, 2, t, 30, 50ms);  // a sanitizer's or a busy machine's lag, for 3 s
    CHECK(a.limit() == 128);
    for (int i = 0; i < 300; ++i) a.release();
    CHECK(hold(a, 200) == 128);  // 100 concurrent requests of a test are never shed

    admission_config small;
    small.max_in_flight = 8;  // below the floor: the floor is the cap, nothing to shrink
    adaptive_limit b(small, 1, t);
    REQUIRE(hold(b, 8) == 8);
    intervals(b, 1, t, 10, 50ms);
    CHECK(b.limit() == 8);
    CHECK(b.decreases() == 0);
}
